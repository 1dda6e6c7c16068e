"""``course-lib grade``: grade a batch of submitted notebooks, write the gradebook and the feedback.

Layout of ``--out DIR`` (everything written atomically by the grader's process, never by a student's)::

    DIR/gradebook.csv                          one row per submission: name, each question, total, status
    DIR/feedback/<submission>.md               per question: points, what failed, hints; cell errors; output
    DIR/gradescope/<submission>/results.json   Gradescope's autograder format
    DIR/records/<submission>.json              the full result, signed with a key derived from the seed
    DIR/grading.json                           which assignment this folder holds

A submission whose record already exists with the same content hash and the same grading arguments
(assignment spec, seed, limits) is skipped unless ``force=True``.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import inspect
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from .compare import Outcome, Verdict, judge
from .hints import NO_HINT_ISSUES, dedupe_feedback_hints, feedback_hints  # issue 16
from .isolation import replaced_note  # issue 16
from .sandbox import Limits, QuestionJob, run_submission, warm_up
from .spec import PUBLIC_SECRET, Assignment, Case, case_generator, evaluate_reference

__all__ = ["GradeOptions", "grade", "resolve_submissions", "read_code_cells", "STATUS_ORDER", "DEFAULT_SEED"]

ENGINE_VERSION = "1"
DEFAULT_SEED = "course-lib-default-seed"
MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024
#: Status codes, most severe first (``gradebook.csv`` lists those that apply in this order).
STATUS_ORDER = (
    "invalid_notebook",
    "crashed",
    "timeout",
    "memory_limit",
    "sys_exit",
    "syntax_error",
    "exception",
    "missing_function",
    "not_implemented",
    "bad_output",
    "reference_used",
)
STATUS_TEXT = {
    "invalid_notebook": "the file is not a readable Jupyter notebook",
    "crashed": "the process running the notebook died (os._exit, a segfault, or it was killed)",
    "timeout": "something ran longer than the time limit",
    "memory_limit": "something used more memory than allowed",
    "sys_exit": "sys.exit() was called",
    "syntax_error": "a cell has a syntax error",
    "exception": "a cell or a graded function raised an exception",
    "missing_function": "a graded function is not defined",
    "not_implemented": "a graded function still raises NotImplementedError",
    "bad_output": (
        "a graded function returned something that is not a tensor/number, on the wrong device, or too large"
    ),
    "reference_used": "a graded function calls the reference implementation of what it should implement",
}


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
        scratch = tempfile.mkdtemp(prefix="course-grade-")
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


# ---- outputs -----------------------------------------------------------------------------------------


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _sign(record: dict, key: bytes) -> str:
    body = json.dumps({k: v for k, v in record.items() if k != "hmac"}, sort_keys=True, default=str)
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def _pts(x: float) -> str:
    return f"{x:g}"


def feedback_markdown(record: dict, assignment: Assignment) -> str:
    """The student's feedback file."""
    lines = [
        f"# {assignment.title}: feedback for `{record['submission']}`",
        "",
        f"**Score: {_pts(record['total'])} / {_pts(record['max_total'])}**  ",
        f"Status: `{record['status']}`",
        "",
    ]
    if record["status"] != "ok":
        for code in record["status"].split(";"):
            lines.append(f"- `{code}`: {STATUS_TEXT.get(code, code)}")
        lines.append("")
    for q in record["questions"]:
        lines += [
            f"## {q['id']}: {q['title']} (`{q['function']}`): {_pts(q['score'])} / {_pts(q['max_score'])}",
            "",
        ]
        if q["message"]:
            lines += [f"**{q['message']}**", ""]
        for p in q["parts"]:
            mark = "\u2713" if p["passed"] and not q["message"] else "\u2717"
            kind = " (hidden test)" if p["hidden"] else ""
            line = f"- {mark} {p['name']}{kind}: {_pts(p['score'])} / {_pts(p['points'])}"
            if not p["passed"] and p["message"]:
                line += f" \u2014 {p['message']}"
            lines.append(line)
            lines += [f"  - {h}" for h in p.get("hints", [])]  # issue 16
        if q.get("note"):  # issue 16
            lines.append(f"- note: {q['note']}")
        lines.append("")
    if record.get("cell_errors") or record.get("events"):
        lines += ["## What happened when your notebook ran", ""]
        for e in record.get("events", []):
            lines.append(f"- {e}")
        for e in record.get("cell_errors", []):
            lines.append(f"- cell {e['cell']}: `{e['kind']}`: {e['message']}")
        lines.append("")
    log = record.get("log", "")
    if log.strip():
        fence = "~~~~"
        while fence in log:
            fence += "~"
        lines += ["## Output of your notebook (shortened)", "", fence, log.rstrip(), fence, ""]
    lines.append(
        "Tolerances: values are compared in float32 on the CPU with atol = rtol = 1e-5 unless a question "
        "says otherwise."
    )
    return "\n".join(lines) + "\n"


def gradescope_json(record: dict, hidden_visibility: str) -> str:
    """Gradescope's ``results.json`` for one submission."""
    tests = []
    for qi, q in enumerate(record["questions"], start=1):
        for pi, p in enumerate(q["parts"], start=1):
            output = q["message"] or (p["message"] if not p["passed"] else (p["description"] or "passed"))
            tests.append(
                {
                    "name": f"{q['id']} {q['title']}: {p['name']}",
                    "number": f"{qi}.{pi}",
                    "score": p["score"],
                    "max_score": p["points"],
                    "status": "passed" if p["score"] == p["points"] else "failed",
                    "output": output,
                    "visibility": hidden_visibility if p["hidden"] else "visible",
                }
            )
    summary = [f"Status: {record['status']}. Score {_pts(record['total'])} / {_pts(record['max_total'])}."]
    summary += [f"- {e}" for e in record.get("events", [])]
    summary += [f"- cell {e['cell']}: {e['kind']}: {e['message']}" for e in record.get("cell_errors", [])]
    results = {
        "score": record["total"],
        "execution_time": record.get("seconds", 0.0),
        "output": "\n".join(summary),
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {"status": record["status"], "submission": record["submission"]},
    }
    return json.dumps(results, indent=2) + "\n"


def gradebook_csv(records: Sequence[dict], assignment: Assignment) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["submission", *[q.id for q in assignment.questions], "total", "status"])
    for r in sorted(records, key=lambda r: r["submission"]):
        scores = {q["id"]: q["score"] for q in r["questions"]}
        writer.writerow(
            [
                r["submission"],
                *[_pts(scores.get(q.id, 0.0)) for q in assignment.questions],
                _pts(r["total"]),
                r["status"],
            ]
        )
    return out.getvalue()


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
    seed = options.seed if options.seed is not None else os.environ.get("COURSE_GRADING_SEED", DEFAULT_SEED)
    if seed == DEFAULT_SEED:
        print(
            "warning: no --seed (nor $COURSE_GRADING_SEED): hidden inputs use the public default seed",
            file=sys.stderr,
        )
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
    atomic_write(
        meta_path, json.dumps({"assignment": assignment.name, "engine": ENGINE_VERSION}, indent=2) + "\n"
    )

    start = time.perf_counter()
    limits = Limits(timeout=float(options.timeout), memory_mb=int(options.memory_mb))
    key = _grading_key(options, seed)
    sign_key = hashlib.sha256(("records|" + seed).encode()).digest()
    named = resolve_submissions(submissions)
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
        record["key"] = key
        record["graded_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        record["hmac"] = _sign(record, sign_key)
        _write_outputs(out, record, assignment, options.hidden_visibility)
        fresh[name] = record
        bar.update(1)

    if todo:
        warm_up()
        with ThreadPoolExecutor(max_workers=max(1, int(options.jobs))) as pool:
            futures = {
                pool.submit(_grade_one, name, path, data, err, assignment, prepared, limits): (
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
    }


def _write_outputs(out: Path, record: dict, assignment: Assignment, hidden_visibility: str) -> None:
    name = record["submission"]
    atomic_write(out / "feedback" / f"{name}.md", feedback_markdown(record, assignment))
    atomic_write(out / "gradescope" / name / "results.json", gradescope_json(record, hidden_visibility))
    atomic_write(out / "records" / f"{name}.json", json.dumps(record, indent=1, default=str) + "\n")
