"""The child side of the process boundary: what runs inside a submission's sandbox.

:func:`child_main` runs in a fork of the grader's warm server (torch is already imported). In order:

1. **forget the grader**: a new session, ``sys.argv`` and the environment reduced to what a notebook
   needs (the instructor's secret never reaches this process; see ``grader.resolve_seed``);
2. **limits**: stdout/stderr into the grader's capped pipe, ``RLIMIT_DATA`` (memory), ``RLIMIT_FSIZE``
   (file size), ``RLIMIT_NPROC`` (processes), no core dumps, one thread;
3. **sandbox** (``limits.isolation == "namespaces"``): :func:`course_lib.grading.isolation.enter`;
   the notebook then works in a private ``/tmp/submission``, else in its scratch folder;
4. **notebook**: the assignment specs' references are bound first (:func:`.alone.preload`; the fork
   server has imported them), then the code cells run one by one; the parent hears of the start of
   each cell and of its error, if any (IPython magics and ``!shell`` lines are turned into no-ops);
5. **questions**: for each question the parent sends its inputs; :func:`call_graded` calls the
   student's function on every case, with the earlier answers the question calls replaced by their
   reference (:func:`.alone.graded_alone_by_name`); the outcomes go back as ``torch.save`` bytes
   (plain tensors and numbers only; the parent reads them with ``weights_only=True``).
"""

from __future__ import annotations

import builtins
import faulthandler
import io
import json
import os
import resource
import signal
import sys
import traceback
from dataclasses import dataclass
from typing import Any

import torch

from . import isolation
from .alone import graded_alone_by_name, preload
from .compare import Outcome, graded_call
from .spec import Raised
from .tripwire import Tripwire

__all__ = ["child_main", "call_graded", "ChildJob", "SECRET_ENV", "ENV_KEEP"]

MB = 1024 * 1024
#: The environment variable that may hold the instructor's secret; never passed to a notebook.
SECRET_ENV = "COURSE_GRADING_SEED"
#: What a notebook's environment keeps from the grader's (everything else is dropped).
ENV_KEEP = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "PYTHONPATH",
    "PYTHONHASHSEED",
    "VIRTUAL_ENV",
    "LD_LIBRARY_PATH",
    "OMP_NUM_THREADS",
)


@dataclass(frozen=True)
class ChildJob:
    """What the child needs to know about one question (its cases arrive later, over the channel)."""

    qid: str
    function: str
    forbidden: tuple[str, ...]


class _FakeShell:
    """Stands in for ``get_ipython()``: magics and shell commands do nothing when grading."""

    def __init__(self, namespace: dict) -> None:
        self.user_ns = namespace

    def system(self, cmd: str, *a: Any, **k: Any) -> None:
        print(f"[grader] shell command skipped: !{cmd}")

    getoutput = system

    def run_line_magic(self, name: str, line: str, *a: Any, **k: Any) -> None:
        if name in ("time", "timeit", "prun") and line.strip():
            exec(compile(line, "<magic>", "exec"), self.user_ns)
            return
        print(f"[grader] magic skipped: %{name} {line}")

    def run_cell_magic(self, name: str, line: str, cell: str, *a: Any, **k: Any) -> None:
        if name in ("time", "timeit", "capture", "prun"):
            exec(compile(cell, "<magic>", "exec"), self.user_ns)
            return
        print(f"[grader] cell magic skipped: %%{name}")

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def _display(*objs: Any, **kwargs: Any) -> None:
    for obj in objs:
        print(repr(obj)[:2000])


def _send(conn: Any, header: dict, payload: bytes = b"") -> None:
    conn.send_bytes(json.dumps(header).encode() + b"\n" + payload)


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return "syntax_error"
    if isinstance(exc, SystemExit):
        return "sys_exit"
    if isinstance(exc, MemoryError) or "can't allocate memory" in str(exc) or "out of memory" in str(exc):
        return "memory_limit"
    if isinstance(exc, NotImplementedError):
        return "not_implemented"
    return "exception"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno}: {(exc.text or '').strip()[:120]})"
    if isinstance(exc, SystemExit):
        return f"SystemExit: sys.exit({exc.code!r}) was called"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<cell")]
    where = f" ({frames[-1].filename[1:-1]}, line {frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {str(exc)[:500]}{where}"


def call_graded(
    namespace: dict, job: ChildJob, case: tuple[tuple, dict], wire: Tripwire, budget: list
) -> Outcome:
    """THE call site of a graded function: ``namespace[job.function](*args, **kwargs)``.

    Every call of a student's graded function in the batch grader goes through here (``check()``
    shares :func:`course_lib.grading.compare.graded_call`, the tripwire rule and the marshalling).
    """
    fn = namespace.get(job.function)
    if not callable(fn):
        return Outcome("missing")
    args, kwargs = case
    # BaseException: SystemExit and KeyboardInterrupt raised by a graded function are the student's.
    return graded_call(fn, args, kwargs, wire, budget=budget, catch=(BaseException,))


def _outcome_record(outcome: Outcome) -> dict:
    """An outcome as plain data for ``torch.save`` (read back by the parent's ``_parse_results``)."""
    if outcome.kind == "value":
        return {"kind": "value", "value": outcome.value}
    if outcome.kind == "raised":
        raised = outcome.raised or Raised(("Exception",))
        return {"kind": "raised", "types": list(raised.types), "message": raised.message}
    return {"kind": outcome.kind, "message": outcome.message}


def _forget_the_grader() -> None:
    """Nothing of the grader's command line or environment stays visible to the notebook."""
    sys.argv = ["submission.ipynb"]
    keep = {k: os.environ[k] for k in ENV_KEEP if k in os.environ}
    os.environ.clear()
    os.environ.update(keep)


def _limits(log_writer: Any, limits: Any) -> None:
    fd = log_writer.fileno()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    log_writer.close()
    sys.stdout = open(1, "w", buffering=1, errors="replace", closefd=False)
    sys.stderr = open(2, "w", buffering=1, errors="replace", closefd=False)
    faulthandler.enable(file=sys.stderr)
    data = limits.memory_mb * MB
    resource.setrlimit(resource.RLIMIT_DATA, (data, data))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # too big a file -> OSError, not death
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * MB, limits.file_mb * MB))


def _enter_sandbox(conn: Any, scratch: str, limits: Any) -> str:
    """The working folder of the notebook, inside the sandbox when ``limits.isolation`` asks for one."""
    if limits.isolation != "namespaces":
        return scratch
    copy = os.path.join(scratch, "submission.ipynb")
    notebook = open(copy, "rb").read() if os.path.exists(copy) else b""
    isolation.enter(
        limits.hide,
        tmp_mb=max(limits.file_mb * 2, 64),
        close_in_watcher=[conn.fileno()],
        max_processes=limits.max_processes,
    )
    # Now process 1 of the sandbox: the process limit counts this namespace's processes only.
    nproc = limits.max_processes
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    workdir = "/tmp/submission"
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "submission.ipynb"), "wb") as f:
        f.write(notebook)
    return workdir


def child_main(
    cells: list, skip: list, questions: list, conn: Any, log_writer: Any, scratch: str, limits: Any
) -> None:
    """Entry point of the child process (a fork of the warm server); see the module's doc."""
    os.setsid()
    _forget_the_grader()
    _limits(log_writer, limits)
    try:
        workdir = _enter_sandbox(conn, scratch, limits)
    except OSError as exc:
        _send(conn, {"event": "fatal", "message": f"the grader could not build the sandbox: {exc}"})
        os._exit(71)
    os.chdir(workdir)
    os.environ.update(
        {
            "HOME": workdir,
            "TMPDIR": workdir,
            "COURSE_DEVICE": "cpu",
            "MPLBACKEND": "Agg",
            "COURSE_GRADING": "1",
        }
    )
    torch.set_num_threads(1)
    from course_lib.runtime import seed_everything

    seed_everything(0)

    import course_lib.grading as grading_pkg
    import course_lib.grading.checker as checker_mod

    def check_skipped(*args: Any, **kwargs: Any) -> None:
        """The grader runs the tests itself, in its own process."""

    grading_pkg.check = checker_mod.check = check_skipped
    # The references that stand in for earlier answers are bound before the notebook can patch course_lib.
    preload()
    jobs = {job.qid: job for job in (ChildJob(*q) for q in questions)}
    wires = {qid: Tripwire(job.forbidden) for qid, job in jobs.items()}

    namespace: dict = {"__name__": "__main__", "__builtins__": builtins}
    shell = _FakeShell(namespace)
    namespace["get_ipython"] = lambda: shell
    namespace["display"] = _display
    skipped = set(skip)
    for index, source in enumerate(cells):
        if index in skipped:
            continue
        _send(conn, {"event": "cell", "index": index})
        try:
            code = compile(source, f"<cell {index + 1}>", "exec")
            exec(code, namespace)
        except BaseException as exc:  # noqa: B036 - SystemExit and KeyboardInterrupt are the student's too
            _send(
                conn,
                {"event": "cell_error", "index": index, "kind": _error_kind(exc), "message": _describe(exc)},
            )
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
    defined = {job.function: callable(namespace.get(job.function)) for job in jobs.values()}
    _send(conn, {"event": "ready", "defined": defined})

    while True:
        request = conn.recv()
        if request[0] != "call":
            break
        _, qid, _function, blob, assignment = request
        cases = torch.load(io.BytesIO(blob), weights_only=True)
        budget = [limits.max_output_elements]
        # A question is graded on its own: earlier answers it calls are the reference's meanwhile.
        with graded_alone_by_name(namespace, assignment, qid):
            results = [
                _outcome_record(call_graded(namespace, jobs[qid], case, wires[qid], budget)) for case in cases
            ]
        sys.stdout.flush()
        buffer = io.BytesIO()
        torch.save(results, buffer)
        _send(conn, {"event": "result", "qid": qid}, buffer.getvalue())
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip atexit handlers and lingering threads the notebook may have left
