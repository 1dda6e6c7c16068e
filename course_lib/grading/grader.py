"""``course-lib grade``: grade a batch of submitted notebooks, write the gradebook and the feedback.

Layout of ``--out DIR`` (everything written atomically by the grader's process, never by a student's)::

    DIR/gradebook.csv                          one row per submission: name, each question, total, status
    DIR/feedback/<submission>.md               per question: points, what failed, hints; cell errors; output
    DIR/gradescope/<submission>/results.json   Gradescope's autograder format
    DIR/records/<submission>.json              the full result, signed with a key derived from the seed
    DIR/grading.json                           which assignment this folder holds, the isolation used
                                               (and why it was reduced, if it was), where the seed came from

A submission whose record already exists with the same content hash and the same grading arguments
(assignment spec, seed, limits) is skipped unless ``force=True``.

The instructor's secret (``--seed-file``, ``$COURSE_GRADING_SEED`` or ``--seed``) stays in this
process; every submission runs in a child forked from a server that never saw it, inside a namespace
sandbox when the kernel allows one (``--isolation``, see :mod:`.isolation`).
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from . import isolation
from .alone import replaced_note  # issue 16
from .compare import Outcome, Verdict, judge
from .hints import NO_HINT_ISSUES, dedupe_feedback_hints, feedback_hints  # issue 16
from .reports import STATUS_ORDER, atomic_write, gradebook_csv, scrub, write_outputs
from .sandbox import Limits, QuestionJob, run_submission, warm_up
from .sandbox_child import SECRET_ENV
from .spec import PUBLIC_SECRET, Assignment, Case, case_generator, evaluate_reference

__all__ = [
    "GradeOptions",
    "grade",
    "resolve_submissions",
    "read_code_cells",
    "resolve_seed",
    "choose_isolation",
    "wipe_from_proc",
    "STATUS_ORDER",
    "DEFAULT_SEED",
]

ENGINE_VERSION = "1"
DEFAULT_SEED = "course-lib-default-seed"
MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024
ISOLATION_MODES = ("auto", "namespaces", "none")


@dataclass
class GradeOptions:
    """Arguments of :func:`grade` (the CLI's flags)."""

    assignment: Assignment
    out: Path
    jobs: int = 1
    timeout: float = 60.0
    memory_mb: int = 2048
    seed: Optional[str] = None
    force: bool = False
    progress: bool = True
    hidden_visibility: str = "after_published"
    seed_file: Optional[Path] = None
    isolation: str = "auto"


# ---- the secret and the sandbox ---------------------------------------------------------------------


def resolve_seed(
    seed: Optional[str] = None, seed_file: Optional[str | os.PathLike] = None
) -> tuple[str, str]:
    """The instructor's secret and where it came from: ``seed_file`` (its first line), else ``seed``,
    else ``$COURSE_GRADING_SEED``, else the public default (with a warning).

    The secret stays in the grader's process: it seeds the hidden inputs and the records' signatures,
    and is passed to no child process, in no argument, environment variable or file it can read.
    """
    if seed_file is not None:
        try:
            text = Path(seed_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read the seed file {seed_file}: {exc.strerror or exc}") from None
        secret = text.splitlines()[0].strip() if text.strip() else ""
        if not secret:
            raise ValueError(f"the seed file {seed_file} is empty")
        return secret, "file"
    if seed is not None:
        if not seed:
            raise ValueError("--seed is empty")
        return seed, "argument"
    env = os.environ.get(SECRET_ENV)
    if env:
        return env, "environment"
    print(
        "warning: no --seed-file (nor $COURSE_GRADING_SEED): hidden inputs use the public default seed",
        file=sys.stderr,
    )
    return DEFAULT_SEED, "default"


def wipe_from_proc(secret: str) -> bool:
    """Overwrite ``secret`` where ``/proc/<this pid>/cmdline`` and ``environ`` read it (the original
    command line and environment in this process's memory), with ``*`` of the same length.

    ``--seed SECRET`` and ``$COURSE_GRADING_SEED`` are otherwise readable by every process of the
    same user (``cmdline`` by every user) for as long as the grader runs. Linux only; best effort:
    ``False`` if nothing could be overwritten. ``--seed-file`` needs none of this.
    """
    if not secret or not sys.platform.startswith("linux"):
        return False
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        # fields 48-51 of stat (arg_start, arg_end, env_start, env_end); [0] here is field 3
        regions = [(int(fields[45]), int(fields[46])), (int(fields[47]), int(fields[48]))]
        needle, wiped = secret.encode(), False
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            for start, end in regions:
                mem.seek(start)
                data = mem.read(end - start)
                if needle in data:
                    mem.seek(start)
                    mem.write(data.replace(needle, b"*" * len(needle)))
                    wiped = True
        return wiped
    except (OSError, ValueError, IndexError):
        return False


def choose_isolation(mode: str, hide: Sequence[str] = ()) -> tuple[str, str]:
    """``("namespaces" | "none", reason)`` for ``--isolation mode``.

    ``auto`` tries the namespace sandbox (:func:`isolation.probe`, in a fresh interpreter) and falls
    back to process limits only, saying why, where the kernel or a container forbids it;
    ``namespaces`` refuses to grade without it (``ValueError``); ``none`` does not try.
    """
    if mode not in ISOLATION_MODES:
        raise ValueError(f"--isolation must be one of {', '.join(ISOLATION_MODES)}, got {mode!r}")
    if mode == "none":
        return "none", "--isolation none"
    reason = _probe_isolation(hide)
    if reason is None:
        return "namespaces", ""
    if mode == "namespaces":
        raise ValueError(f"--isolation namespaces: the sandbox cannot be built here: {reason}")
    return "none", reason


def _probe_isolation(hide: Sequence[str]) -> Optional[str]:
    reason = isolation.supported_platform()
    if reason:
        return reason
    try:
        done = subprocess.run(
            [sys.executable, "-I", isolation.__file__, *hide],
            capture_output=True,
            text=True,
            timeout=30,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the sandbox test could not run: {exc}"
    if done.returncode == 0:
        return None
    return (done.stdout.strip() or done.stderr.strip().splitlines()[-1:] or ["unknown"])[-1]


def _hidden_paths(
    out: Path, scratch_root: str, sources: Sequence[Path], seed_file: Optional[Path]
) -> list[str]:
    """What a sandboxed notebook must not see: the output folder, every scratch folder, the submitted
    files, the seed file. A folder that also holds the Python environment or course_lib (say, the
    course's repository) is not hidden whole: its grading files are."""
    keep = [Path(p).resolve() for p in [sys.prefix, *sys.path, Path(__file__).parents[2]] if p]

    def holds_keep(folder: Path) -> bool:
        return folder == Path("/") or any(k == folder or folder in k.parents for k in keep)

    hide = {str(Path(scratch_root).resolve())}
    out = out.resolve()
    if holds_keep(out):
        for sub in ("records", "feedback", "gradescope"):
            (out / sub).mkdir(parents=True, exist_ok=True)
            hide.add(str(out / sub))
        hide |= {str(out / "gradebook.csv"), str(out / "grading.json")}
    else:
        hide.add(str(out))
    for src in sources:
        folder = src.resolve().parent
        hide.add(str(src.resolve()) if holds_keep(folder) else str(folder))
    if seed_file is not None:
        hide.add(str(Path(seed_file).resolve()))
    return sorted(hide)


# ---- inputs -----------------------------------------------------------------------------------------


def resolve_submissions(paths: Iterable[str | os.PathLike]) -> list[tuple[str, Path]]:
    """``(name, path)`` for every submission; a folder stands for the ``*.ipynb`` files in it.

    Names are file stems made safe for file names, made unique with ``-2``, ``-3``... in input order.
    """
    files: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files.extend(sorted(x for x in path.glob("*.ipynb") if x.is_file()))
        else:
            files.append(path)
    named: list[tuple[str, Path]] = []
    used: set[str] = set()
    for path in files:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem).strip("._-") or "submission"
        name, n = base, 1
        while name.lower() in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name.lower())
        named.append((name, path))
    return named


class InvalidNotebook(Exception):
    pass


def read_code_cells(data: bytes) -> list[str]:
    """The code cells of a notebook file, IPython syntax (``%magic``, ``!cmd``) turned into Python."""
    import nbformat

    if len(data) > MAX_NOTEBOOK_BYTES:
        raise InvalidNotebook(f"the file is {len(data) / 2**20:.0f} MB, more than a notebook should be")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidNotebook(
            f"the file is not valid JSON ({str(exc)[:120]}); submit the .ipynb file itself"
        ) from None
    if not isinstance(raw, dict) or "cells" not in raw or not isinstance(raw.get("cells"), list):
        raise InvalidNotebook("the file is JSON but not a Jupyter notebook (it has no list of cells)")
    try:
        nb = nbformat.reads(json.dumps(raw), as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # nbformat raises several kinds
        raise InvalidNotebook(f"the notebook is malformed: {str(exc).splitlines()[0][:200]}") from None
    cells = []
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        cells.append(_transform(source if isinstance(source, str) else "".join(source)))
    return cells


def _transform(source: str) -> str:
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)
    except Exception:
        return source


# ---- scoring ----------------------------------------------------------------------------------------


@dataclass
class _PreparedPart:
    name: str
    points: float
    hidden: bool
    description: str
    compare: Any
    cases: list[Case]
    expected: list[Any]


def _prepare(assignment: Assignment, seed: str) -> dict[str, list[_PreparedPart]]:
    prepared = {}
    for q in assignment.questions:
        parts = []
        for part in q.parts:
            secret = seed if part.hidden else PUBLIC_SECRET
            cases = list(part.cases(case_generator(secret, assignment.name, q.id, part.name)))
            parts.append(
                _PreparedPart(
                    part.name,
                    part.points,
                    part.hidden,
                    part.description,
                    part.compare,
                    cases,
                    [evaluate_reference(q, c) for c in cases],
                )
            )
        prepared[q.id] = parts
    return prepared


def _score(
    assignment: Assignment, prepared: dict, outcomes: dict[str, list[Outcome]]
) -> tuple[list[dict], set[str]]:
    questions, issues = [], set()
    for q in assignment.questions:
        got = iter(outcomes[q.id])
        parts, reference_used = [], None
        for part in prepared[q.id]:
            verdict: Verdict = Verdict(True)
            for case, expected in zip(part.cases, part.expected):
                outcome = next(got)
                v = judge(q, part.compare, case, expected, outcome)
                if v.issue:
                    issues.add(v.issue)
                if v.issue == "reference_used":
                    reference_used = v.message
                if not v.passed and verdict.passed:
                    if case.label and v.issue not in (
                        "not_implemented",
                        "missing_function",
                        "reference_used",
                    ):
                        v.message = f"{v.message} [input: {case.label}]"
                    verdict = v
            parts.append(
                {
                    "name": part.name,
                    "points": part.points,
                    "hidden": part.hidden,
                    "description": part.description,
                    "passed": verdict.passed,
                    "score": part.points if verdict.passed else 0.0,
                    "message": verdict.message,
                    "hints": (  # issue 16: every stage of the staged hints of a failed part
                        []
                        if verdict.passed or verdict.issue in NO_HINT_ISSUES
                        else feedback_hints(q, part.name)
                    ),
                }
            )
        dedupe_feedback_hints(q, parts)  # issue 16
        message = ""
        if reference_used:
            message = (
                f"no credit: your function {reference_used.replace('calls ', 'calls ', 1)}, the reference "
                f"implementation of what it should implement"
            )
            for p in parts:
                p["score"] = 0.0
        questions.append(
            {
                "id": q.id,
                "title": q.title,
                "function": q.function,
                "score": sum(p["score"] for p in parts),
                "max_score": q.points,
                "message": message,
                "parts": parts,
                "note": replaced_note(assignment, q),  # issue 16
            }
        )
    return questions, issues


def _status(issues: set[str]) -> str:
    codes = [c for c in STATUS_ORDER if c in issues]
    return ";".join(codes) if codes else "ok"


# ---- one submission ----------------------------------------------------------------------------------


def _grade_one(
    name: str,
    path: Path,
    data: Optional[bytes],
    read_error: Optional[str],
    assignment: Assignment,
    prepared: dict,
    limits: Limits,
    scratch_root: str,
) -> dict:
    start = time.perf_counter()
    record: dict[str, Any] = {"submission": name, "source": str(path), "assignment": assignment.name}
    cells: Optional[list[str]] = None
    error = read_error
    if error is None:
        try:
            cells = read_code_cells(data or b"")
        except InvalidNotebook as exc:
            error = str(exc)
    if cells is None:
        outcomes = {
            q.id: [Outcome("not_run", message="not graded: " + (error or "unreadable"))]
            * sum(len(p.cases) for p in prepared[q.id])
            for q in assignment.questions
        }
        questions, issues = _score(assignment, prepared, outcomes)
        issues.add("invalid_notebook")
        record.update(cell_errors=[], events=[error or "unreadable"], log="", attempts=0)
    else:
        jobs = [
            QuestionJob(
                q.id,
                q.function,
                q.forbidden,
                [(c.args, dict(c.kwargs)) for part in prepared[q.id] for c in part.cases],
                assignment=assignment.name,  # issue 16
            )
            for q in assignment.questions
        ]
        scratch = tempfile.mkdtemp(prefix="sub-", dir=scratch_root)
        try:
            (Path(scratch) / "submission.ipynb").write_bytes(data or b"")
            report = run_submission(cells, jobs, scratch, limits)
        finally:
            _remove_tree(scratch)
        questions, issues = _score(assignment, prepared, report.outcomes)
        issues |= report.issues
        for q in assignment.questions:
            if report.defined.get(q.function) is False:
                issues.add("missing_function")
        record.update(
            cell_errors=report.cell_errors, events=report.events, log=report.log, attempts=report.attempts
        )
    record.update(
        questions=questions,
        total=sum(q["score"] for q in questions),
        max_total=assignment.points,
        status=_status(issues),
        seconds=round(time.perf_counter() - start, 3),
    )
    return record


def _remove_tree(path: str) -> None:
    def unlock(func: Any, target: str, _exc: Any) -> None:
        try:
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
            func(target)
        except OSError:
            pass

    shutil.rmtree(path, onerror=unlock)


def _sign(record: dict, key: bytes) -> str:
    body = json.dumps({k: v for k, v in record.items() if k != "hmac"}, sort_keys=True, default=str)
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


# ---- the batch --------------------------------------------------------------------------------------


def _grading_key(options: GradeOptions, seed: str) -> str:
    spec_source = ""
    for q in options.assignment.questions:
        mod = inspect.getmodule(q.reference)
        if mod is not None and getattr(mod, "__file__", None):
            spec_source = Path(mod.__file__).read_text()
            break
    parts = {
        "engine": ENGINE_VERSION,
        "assignment": options.assignment.name,
        "spec": hashlib.sha256(spec_source.encode()).hexdigest(),
        "seed": hashlib.sha256(("seed|" + seed).encode()).hexdigest(),
        "timeout": options.timeout,
        "memory_mb": options.memory_mb,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _load_record(path: Path, key: bytes) -> Optional[dict]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not hmac.compare_digest(
        str(record.get("hmac", "")), _sign(record, key)
    ):
        return None
    return record


def grade(submissions: Sequence[str | os.PathLike], options: GradeOptions) -> dict:
    """Grade every submission; returns ``{"records": [...], "graded": n, "skipped": n, "seconds": s}``."""
    from tqdm.auto import tqdm

    assignment = options.assignment
    seed, seed_source = resolve_seed(options.seed, options.seed_file)
    if seed_source in ("argument", "environment"):
        wipe_from_proc(seed)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "grading.json"
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError:
            meta = {}
        if meta.get("assignment") not in (None, assignment.name):
            raise ValueError(
                f"{out} holds grades of assignment {meta.get('assignment')!r}; "
                f"use another --out for {assignment.name!r}"
            )
    start = time.perf_counter()
    named = resolve_submissions(submissions)
    scratch_root = tempfile.mkdtemp(prefix="course-grade-")
    hide = _hidden_paths(out, scratch_root, [p for _, p in named], options.seed_file)
    try:
        used, reason = choose_isolation(options.isolation, hide)
    except ValueError:
        _remove_tree(scratch_root)
        raise
    if reason and options.isolation == "auto":
        print(
            f"warning: isolation reduced: submissions run WITHOUT the namespace sandbox (no network, "
            f"read-only files, private /tmp, their processes die with them) because {reason}; they still "
            f"run in their own process under time, memory and file-size limits. Details in {meta_path}.",
            file=sys.stderr,
        )
    meta = {
        "assignment": assignment.name,
        "engine": ENGINE_VERSION,
        "isolation": {"requested": options.isolation, "used": used, "reason": reason},
        "seed_from": seed_source,
    }
    atomic_write(meta_path, json.dumps(meta, indent=2) + "\n")

    limits = Limits(
        timeout=float(options.timeout), memory_mb=int(options.memory_mb), isolation=used, hide=tuple(hide)
    )
    key = _grading_key(options, seed)
    sign_key = hashlib.sha256(("records|" + seed).encode()).digest()
    scrub_secret = seed if seed not in (DEFAULT_SEED, PUBLIC_SECRET) and len(seed) >= 4 else ""
    records_dir = out / "records"
    records_dir.mkdir(exist_ok=True)

    todo, done = [], {}
    for name, path in named:
        data, read_error = None, None
        try:
            if path.stat().st_size > MAX_NOTEBOOK_BYTES:
                read_error = f"the file is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
            else:
                data = path.read_bytes()
        except OSError as exc:
            read_error = f"cannot read the file: {exc.strerror or exc}"
        digest = hashlib.sha256(data or (read_error or "").encode()).hexdigest()
        previous = None if options.force else _load_record(records_dir / f"{name}.json", sign_key)
        if previous and previous.get("key") == key and previous.get("sha256") == digest:
            done[name] = previous
        else:
            todo.append((name, path, data, read_error, digest))

    bar = tqdm(
        total=len(named),
        desc=f"grading {assignment.name}",
        unit="nb",
        disable=not options.progress,
        file=sys.stderr,
        initial=len(done),
    )
    prepared = _prepare(assignment, seed) if todo else {}
    fresh: dict[str, dict] = {}

    def finish(name: str, record: dict) -> None:
        record = scrub(record, scrub_secret)
        record["key"] = key
        record["graded_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        record["hmac"] = _sign(record, sign_key)
        write_outputs(out, record, assignment, options.hidden_visibility)
        fresh[name] = record
        bar.update(1)

    if todo:
        warm_up()
        with ThreadPoolExecutor(max_workers=max(1, int(options.jobs))) as pool:
            futures = {
                pool.submit(_grade_one, name, path, data, err, assignment, prepared, limits, scratch_root): (
                    name,
                    path,
                    digest,
                )
                for name, path, data, err, digest in todo
            }
            for future in as_completed(futures):
                name, path, digest = futures[future]
                try:
                    record = future.result()
                except Exception as exc:  # a grader bug must not lose the batch
                    record = {
                        "submission": name,
                        "source": str(path),
                        "assignment": assignment.name,
                        "total": 0.0,
                        "max_total": assignment.points,
                        "status": "crashed",
                        "events": [f"internal grader error: {type(exc).__name__}: {exc}"],
                        "cell_errors": [],
                        "log": "",
                    }
                    record["questions"] = [
                        {
                            "id": q.id,
                            "title": q.title,
                            "function": q.function,
                            "score": 0.0,
                            "max_score": q.points,
                            "message": "not graded (internal grader error)",
                            "parts": [],
                        }
                        for q in assignment.questions
                    ]
                record["sha256"] = digest
                finish(name, record)
    bar.close()
    _remove_tree(scratch_root)

    # The gradebook holds every valid record in the folder; this run's come from memory.
    everything: dict[str, dict] = {}
    for path in sorted(records_dir.glob("*.json")):
        record = _load_record(path, sign_key)
        if record and record.get("assignment") == assignment.name:
            everything[record["submission"]] = record
    everything.update(done)
    everything.update(fresh)
    atomic_write(out / "gradebook.csv", gradebook_csv(list(everything.values()), assignment))
    return {
        "records": [fresh.get(n) or done.get(n) for n, _ in named],
        "graded": len(fresh),
        "skipped": len(done),
        "seconds": time.perf_counter() - start,
        "isolation": used,
    }
