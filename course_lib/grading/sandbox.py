"""The parent side of the process boundary: start a submission's child, limit it, collect its outputs.

:func:`run_submission` starts children with :mod:`multiprocessing`'s *forkserver*: a server process
imports torch and course_lib once (about 2-3 s), then forks one child per submission in about 40 ms.
What runs in the child (sandbox, notebook, graded calls) is :mod:`.sandbox_child`. The server is
started with neither the grader's command line nor the instructor's secret (:func:`warm_up`).

The parent never unpickles anything from the child: headers are JSON and payloads are read with
``torch.load(weights_only=True)``. A run goes through two phases, *notebook* then *questions*; when
something stops a child, :func:`_after_stop` names what happens next:

* ``could_not_start``: the child died before its first cell; nothing is graded;
* ``skip_cell``: a cell hung (timeout) or killed the process (``os._exit``, segfault): the notebook
  is run again in a fresh child without that cell;
* ``question_fails``: a question's function hung or killed the process: that question scores 0 and
  the remaining questions are graded in a fresh child.

At most ``limits.max_attempts`` children per submission.
"""

from __future__ import annotations

import collections
import io
import json
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from .alone import assignment_modules
from .compare import Outcome
from .isolation import TOO_MANY_PROCESSES
from .sandbox_child import ENV_KEEP, SECRET_ENV, child_main
from .spec import Raised

__all__ = ["Limits", "QuestionJob", "RunReport", "run_submission", "warm_up"]

MB = 1024 * 1024
_MAX_MESSAGE = 256 * MB
_PRELOAD = [
    "torch",
    # torch.broadcast_shapes (every attention call checks shapes with it) imports this, with sympy, on its
    # first call: about 0.9 s that each forked submission would otherwise pay again.
    "torch.fx.experimental.symbolic_shapes",
    "numpy",
    "course_lib.attention",
    "course_lib.multihead",
    "course_lib.positional",
    "course_lib.runtime",
    "course_lib.grading",
    "course_lib.grading.sandbox",
    "course_lib.grading.sandbox_child",
    "course_lib.grading.isolation",
    "course_lib.grading.assignments",
    "course_lib.grading.alone",
]
# The assignment specs too (issue 16): their references stand in for earlier answers a question calls
# (:mod:`.alone`), so they are imported here, before any notebook can patch course_lib. They read no
# secret: the server starts without it (:func:`_start`), and the hidden inputs travel per question.
_PRELOAD += assignment_modules()


@dataclass(frozen=True)
class Limits:
    """What one submission may use.

    ``timeout``: seconds for running the notebook, and again for each question's test calls.
    ``memory_mb``: ``RLIMIT_DATA`` of the process, torch's own ~0.8 GB included.
    ``max_output_elements``: total tensor elements one question's outputs may hold.
    ``log_bytes``: how much of stdout/stderr is kept (head and tail).
    ``isolation``: ``"namespaces"`` (the child builds its sandbox, see :mod:`.isolation`) or ``"none"``.
    ``hide``: paths the sandbox covers (output folder, scratch folders, submitted files).
    ``max_processes``: processes a sandbox may hold at once (its watcher kills it past that; also
    ``RLIMIT_NPROC`` inside, which the kernel does not apply to root).
    """

    timeout: float = 60.0
    memory_mb: int = 2048
    max_output_elements: int = 8_000_000
    log_bytes: int = 16_000
    file_mb: int = 64
    max_attempts: int = 6
    isolation: str = "none"
    hide: tuple[str, ...] = ()
    max_processes: int = 256


@dataclass
class QuestionJob:
    """One question to run: the function's name, the forbidden callables and the pickled cases."""

    qid: str
    function: str
    forbidden: tuple[str, ...]
    cases: list[tuple[tuple, dict]]
    #: the assignment's name, so that the child grades the question on its own (:mod:`.alone`: earlier
    #: answers it calls are replaced by their reference); ``""`` grades it as written
    assignment: str = ""


@dataclass
class RunReport:
    """What happened in the child(ren)."""

    cell_errors: list[dict] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    issues: set[str] = field(default_factory=set)
    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)
    defined: dict[str, bool] = field(default_factory=dict)
    log: str = ""
    attempts: int = 0
    seconds: float = 0.0


_CONTEXT: Optional[Any] = None
_START_LOCK = threading.Lock()
_SERVER_STARTED = False


def _context() -> Any:
    global _CONTEXT
    if _CONTEXT is None:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([m for m in _PRELOAD])
        _CONTEXT = ctx
    return _CONTEXT


def warm_up() -> float:
    """Start the fork server now (imports torch once); returns the seconds it took.

    The server starts without the instructor's secret in its argv or environment (see :func:`_start`),
    so no child forked from it inherits the secret in its memory.
    """
    start = time.perf_counter()
    ctx = _context()
    p = ctx.Process(target=_noop)
    _start(p)
    p.join()
    return time.perf_counter() - start


def _start(proc: Any) -> None:
    """``proc.start()`` with the grader's command line and environment out of what the child receives.

    multiprocessing sends the parent's ``sys.argv`` to every child it starts, and the fork server
    inherits the environment when it starts (its children can read it in ``/proc/self/environ``):
    the command line is replaced while a child starts, and the server starts with only the variables
    a notebook needs (``$COURSE_GRADING_SEED`` and every other secret of the instructor left out).
    """
    global _SERVER_STARTED
    with _START_LOCK:
        argv, environ = sys.argv, None
        sys.argv = ["course-lib-grader"]
        if not _SERVER_STARTED:
            environ = dict(os.environ)
            os.environ.clear()
            os.environ.update({k: v for k, v in environ.items() if k in ENV_KEEP and k != SECRET_ENV})
        try:
            proc.start()
            _SERVER_STARTED = True
        finally:
            sys.argv = argv
            if environ is not None:
                os.environ.clear()
                os.environ.update(environ)


def _noop() -> None:
    pass


class _LogReader(threading.Thread):
    """Drains the child's stdout/stderr, keeping the first and the last ``cap/2`` bytes."""

    def __init__(self, fd: int, cap: int) -> None:
        super().__init__(daemon=True)
        self.fd, self.half = fd, max(cap // 2, 1024)
        self.head = bytearray()
        self.tail: collections.deque = collections.deque()
        self.tail_len = 0
        self.total = 0

    def run(self) -> None:
        try:
            while True:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    break
                self.total += len(chunk)
                room = self.half - len(self.head)
                if room > 0:
                    self.head += chunk[:room]
                    chunk = chunk[room:]
                if chunk:
                    self.tail.append(chunk)
                    self.tail_len += len(chunk)
                    while self.tail_len - len(self.tail[0]) >= self.half:
                        self.tail_len -= len(self.tail.popleft())
        except OSError:
            pass

    def text(self) -> str:
        tail = b"".join(self.tail)[-self.half :]
        kept = len(self.head) + len(tail)
        middle = b""
        if self.total > kept:
            middle = f"\n... [{self.total - kept} bytes of output cut] ...\n".encode()
        return (bytes(self.head) + middle + tail).decode("utf-8", errors="replace")


class _Stop(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


_SIGNALS = {
    signal.SIGSEGV: "a segmentation fault",
    signal.SIGABRT: "an abort (SIGABRT)",
    signal.SIGBUS: "a bus error",
    signal.SIGFPE: "a floating-point exception signal",
    signal.SIGILL: "an illegal instruction",
}


def _death(proc: Any, killed_by_us: bool) -> _Stop:
    proc.join(2)
    code = proc.exitcode
    if code is None:
        return _Stop("crashed", "the process stopped responding")
    if code < 0:
        sig = -code
        if sig == signal.SIGKILL and not killed_by_us:
            return _Stop(
                "crashed",
                "the process was killed (SIGKILL), possibly by the system for using too much memory",
            )
        return _Stop("crashed", f"the process died from {_SIGNALS.get(sig, f'signal {sig}')}")
    if code == TOO_MANY_PROCESSES:
        return _Stop(
            "crashed", "it started more processes than the grader allows (a fork bomb?); all were killed"
        )
    return _Stop("crashed", f"the process exited with code {code} (os._exit or a kernel that died)")


def _kill(proc: Any) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass
    try:
        proc.kill()
    except (ProcessLookupError, OSError, AttributeError):
        pass
    proc.join(5)


def _receive(conn: Any, proc: Any, deadline: float, timeout: float, what: str) -> tuple[dict, bytes]:
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Stop("timeout", f"{what} ran longer than the {timeout:g} s time limit")
        if conn.poll(min(remaining, 0.25)):
            try:
                data = conn.recv_bytes(_MAX_MESSAGE)
            except (EOFError, ConnectionError):
                raise _death(proc, False) from None
            except OSError:  # "bad message length": more than _MAX_MESSAGE
                raise _Stop("bad_output", "sent back more data than the grader accepts") from None
            head, _, payload = data.partition(b"\n")
            try:
                header = json.loads(head)
                if not isinstance(header, dict):
                    raise ValueError
            except ValueError:
                raise _Stop("crashed", "the process wrote garbage on the grader's channel") from None
            return header, payload
        if not proc.is_alive() and not conn.poll(0):
            raise _death(proc, False)


def _check_value(value: Any, depth: int = 0) -> bool:
    if isinstance(value, torch.Tensor):
        return type(value) is torch.Tensor and value.device.type == "cpu" and value.layout == torch.strided
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, tuple) and depth < 4:
        return all(_check_value(v, depth + 1) for v in value)
    return False


def _parse_results(payload: bytes, n: int) -> list[Outcome]:
    try:
        results = torch.load(io.BytesIO(payload), weights_only=True)
    except Exception:
        raise _Stop("crashed", "the process sent back results the grader cannot read") from None
    if not isinstance(results, list) or len(results) != n:
        raise _Stop("crashed", "the process sent back the wrong number of results")
    outcomes = []
    for r in results:
        kind = r.get("kind") if isinstance(r, dict) else None
        message = str(r.get("message", ""))[:600] if isinstance(r, dict) else ""
        if kind == "value":
            value = r.get("value")
            if _check_value(value):
                outcomes.append(Outcome("value", value=value))
            else:
                outcomes.append(Outcome("bad_output", message="returned something the grader cannot read"))
        elif kind == "raised":
            types = tuple(str(t) for t in r.get("types", ()))[:20] or ("Exception",)
            outcomes.append(Outcome("raised", raised=Raised(types, message)))
        elif kind in ("missing", "bad_output", "reference_used"):
            outcomes.append(Outcome(kind, message=message))
        else:
            outcomes.append(Outcome("crashed", message="unreadable result"))
    return outcomes


def _encode_cases(cases: list[tuple[tuple, dict]]) -> bytes:
    buffer = io.BytesIO()
    torch.save(cases, buffer)
    return buffer.getvalue()


class _Run:
    """One submission's children, one attempt after the other, and what they reported."""

    def __init__(self, cells: list[str], jobs: list[QuestionJob], scratch: str, limits: Limits) -> None:
        self.cells, self.scratch, self.limits = cells, scratch, limits
        self.report = RunReport()
        self.skip: list[int] = []
        self.pending = list(jobs)
        self.blobs = {job.qid: _encode_cases(job.cases) for job in jobs}
        self.spec = [(job.qid, job.function, tuple(job.forbidden)) for job in jobs]
        self.logs: list[str] = []
        self.seen_errors: set[tuple[int, str]] = set()
        # where the current attempt is: "notebook" (and which cell) or "questions"
        self.phase = "notebook"
        self.cell: Optional[int] = None

    # ---- one attempt --------------------------------------------------------------------------------

    def attempt(self) -> bool:
        """Run one child until it finishes or is stopped; ``True`` if another attempt is needed."""
        ctx = _context()
        self.report.attempts += 1
        self.phase, self.cell = "notebook", None
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        log_read, log_write = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=child_main,
            args=(self.cells, self.skip, self.spec, child_conn, log_write, self.scratch, self.limits),
            daemon=True,
        )
        _start(proc)
        child_conn.close()
        log_write.close()
        reader = _LogReader(log_read.fileno(), self.limits.log_bytes)
        reader.start()
        try:
            self._notebook_phase(parent_conn, proc)
            self.phase = "questions"
            self._questions_phase(parent_conn, proc)
            parent_conn.send(("done",))
            proc.join(5)
            return False
        except _Stop as stop:
            _kill(proc)
            return self._after_stop(stop, proc)
        except (BrokenPipeError, ConnectionResetError, EOFError) as exc:
            _kill(proc)
            stop = _death(proc, True)
            stop.message = f"lost the connection to the process ({type(exc).__name__}): {stop.message}"
            return self._after_stop(stop, proc)
        finally:
            _kill(proc)
            reader.join(2)
            try:
                log_read.close()
            except OSError:
                pass
            parent_conn.close()
            self.logs.append(reader.text())

    def _notebook_phase(self, conn: Any, proc: Any) -> None:
        """Follow the cells until the child says it is ready for the questions."""
        limits, report = self.limits, self.report
        deadline = time.monotonic() + limits.timeout
        while True:
            what = f"cell {self.cell + 1}" if self.cell is not None else "the notebook"
            header, _ = _receive(conn, proc, deadline, limits.timeout, what)
            event = header.get("event")
            if event == "cell":
                self.cell = int(header.get("index", -1))
            elif event == "fatal":
                raise _Stop("crashed", str(header.get("message", "the process could not start"))[:800])
            elif event == "cell_error":
                index, kind = int(header.get("index", -1)), str(header.get("kind", "exception"))
                if (index, kind) not in self.seen_errors:
                    self.seen_errors.add((index, kind))
                    report.cell_errors.append(
                        {"cell": index + 1, "kind": kind, "message": str(header.get("message", ""))[:800]}
                    )
                    report.issues.add(kind)
            elif event == "ready":
                defined = header.get("defined", {})
                report.defined = (
                    {str(k): bool(v) for k, v in defined.items()} if isinstance(defined, dict) else {}
                )
                return

    def _questions_phase(self, conn: Any, proc: Any) -> None:
        """Send each pending question's inputs and collect its outcomes."""
        limits = self.limits
        while self.pending:
            job = self.pending[0]
            conn.send(("call", job.qid, job.function, self.blobs[job.qid], job.assignment))
            deadline = time.monotonic() + limits.timeout
            while True:
                header, payload = _receive(
                    conn, proc, deadline, limits.timeout, f"the tests of {job.qid} ({job.function})"
                )
                if header.get("event") == "result" and header.get("qid") == job.qid:
                    break
            self.report.outcomes[job.qid] = _parse_results(payload, len(job.cases))
            self.pending.pop(0)

    # ---- what happens after a child was stopped ---------------------------------------------------

    def _after_stop(self, stop: _Stop, proc: Any) -> bool:
        report = self.report
        if self.phase == "notebook" and self.cell is None and stop.kind == "crashed":
            return self._could_not_start(stop)
        report.issues.add(stop.kind)
        if self.phase == "notebook":
            return self._skip_cell(stop)
        return self._question_fails(stop)

    def _could_not_start(self, stop: _Stop) -> bool:
        """The child died before its first cell: nothing can be graded."""
        self.report.events.append(f"the notebook could not start: {stop.message}")
        self.report.issues.add("crashed")
        for job in self.pending:
            self.report.outcomes[job.qid] = [
                Outcome("not_run", message="not graded: the process could not start")
            ] * len(job.cases)
        self.pending = []
        return False

    def _skip_cell(self, stop: _Stop) -> bool:
        """A cell hung or killed the process: run the notebook again without it."""
        where = f"cell {self.cell + 1}" if self.cell is not None else "the notebook"
        self.report.events.append(
            f"{where}: {stop.message}; it was skipped and the notebook run again without it"
        )
        self.skip.append(self.cell if self.cell is not None else -1)
        return True

    def _question_fails(self, stop: _Stop) -> bool:
        """A question's function hung or killed the process: it scores 0, the others go on."""
        if not self.pending:
            return False
        job = self.pending.pop(0)
        self.report.events.append(f"{job.qid} ({job.function}): {stop.message}")
        self.report.outcomes[job.qid] = [Outcome(stop.kind, message=stop.message)] * len(job.cases)
        return bool(self.pending)

    def give_up(self) -> None:
        self.report.events.append(f"gave up after {self.report.attempts} runs of the notebook")
        for job in self.pending:
            self.report.outcomes[job.qid] = [
                Outcome("not_run", message="not graded: the notebook kept failing")
            ] * len(job.cases)


def run_submission(cells: list[str], jobs: list[QuestionJob], scratch: str, limits: Limits) -> RunReport:
    """Run ``cells`` in a fresh child (several, if one hangs or dies) and call every job's function.

    ``scratch`` is the child's working directory (a copy of the submission may sit there); inside a
    namespace sandbox the child copies it to its private ``/tmp/submission``.
    """
    start = time.perf_counter()
    run = _Run(cells, jobs, scratch, limits)
    while run.attempt():
        if run.report.attempts >= limits.max_attempts:
            run.give_up()
            break
    report = run.report
    for job in jobs:
        report.outcomes.setdefault(job.qid, [Outcome("not_run", message="not graded")] * len(job.cases))
    logs = run.logs
    if len(logs) == 1:
        report.log = logs[0]
    else:
        report.log = "".join(f"\n----- run {i + 1} -----\n{text}" for i, text in enumerate(logs)).lstrip("\n")
    report.seconds = time.perf_counter() - start
    return report
