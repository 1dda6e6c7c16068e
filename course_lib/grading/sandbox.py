"""Running a submission's code in a child process that can only send back outputs.

Parent side: :func:`run_submission` starts a child with :mod:`multiprocessing`'s *forkserver*: a
server process imports torch and course_lib once (about 2-3 s), then forks one child per
submission in about 40 ms. The child

1. starts its own session (so the whole process group can be killed), points stdout/stderr at a
   pipe the parent reads with a size cap, sets ``RLIMIT_DATA`` (memory), ``RLIMIT_FSIZE`` (files
   it writes) and ``RLIMIT_CORE`` (no core dumps), works in a scratch directory, uses one thread;
2. executes the notebook's code cells one by one, reporting the start of each cell and its error,
   if any (IPython magics and ``!shell`` lines are turned into no-ops);
3. receives each question's inputs, calls the student's function under a :class:`Tripwire`, and
   sends back the outputs as ``torch.save`` bytes, or what went wrong.

The parent never unpickles anything from the child: headers are JSON and payloads are read with
``torch.load(weights_only=True)``. When a cell hangs (timeout) or kills the process (``os._exit``,
segfault), the notebook is run again in a fresh child without that cell; when a question's
function does, that question scores 0 and the others are graded in a fresh child.
"""

from __future__ import annotations

import builtins
import collections
import faulthandler
import io
import json
import multiprocessing as mp
import os
import resource
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from .compare import Outcome
from .isolation import assignment_modules  # issue 16
from .spec import Raised

__all__ = ["Limits", "QuestionJob", "RunReport", "run_submission", "warm_up"]

MB = 1024 * 1024
_MAX_MESSAGE = 256 * MB
_PRELOAD = [
    "torch",
    "numpy",
    "course_lib.attention",
    "course_lib.multihead",
    "course_lib.positional",
    "course_lib.runtime",
    "course_lib.grading",
    "course_lib.grading.sandbox",
    "course_lib.grading.assignments",
]
_PRELOAD += assignment_modules()  # issue 16: the references are imported before any notebook runs


@dataclass(frozen=True)
class Limits:
    """What one submission may use.

    ``timeout``: seconds for running the notebook, and again for each question's test calls.
    ``memory_mb``: ``RLIMIT_DATA`` of the process, torch's own ~0.8 GB included.
    ``max_output_elements``: total tensor elements one question's outputs may hold.
    ``log_bytes``: how much of stdout/stderr is kept (head and tail).
    """

    timeout: float = 60.0
    memory_mb: int = 2048
    max_output_elements: int = 8_000_000
    log_bytes: int = 16_000
    file_mb: int = 64
    max_attempts: int = 6


@dataclass
class QuestionJob:
    """One question to run: the function's name, the forbidden callables and the pickled cases."""

    qid: str
    function: str
    forbidden: tuple[str, ...]
    cases: list[tuple[tuple, dict]]
    assignment: str = ""  # issue 16: lets the child replace earlier answers by their reference


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


# =====================================================================================================
# Child side
# =====================================================================================================


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


class _BadOutput(Exception):
    pass


def _pack(value: Any, budget: list, depth: int = 0) -> Any:
    """Tensors (CPU, plain, compact copies), numbers, None and tuples of them; anything else is an error."""
    if isinstance(value, torch.Tensor):
        if value.device.type != "cpu":
            raise _BadOutput(
                f"returned a tensor on device '{value.device}'; the grader's inputs are on the CPU: return "
                f"your result on the device of the inputs"
            )
        if value.is_sparse or value.layout != torch.strided:
            value = value.to_dense()
        budget[0] -= value.numel()
        if budget[0] < 0:
            raise _BadOutput("returned more tensor elements than the grader accepts (output too large)")
        return value.detach().as_subclass(torch.Tensor).clone()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (tuple, list)):
        if depth >= 3 or len(value) > 16:
            raise _BadOutput(
                "returned a nested or long sequence; return a tensor or a small tuple of tensors"
            )
        return tuple(_pack(v, budget, depth + 1) for v in value)
    kind = type(value).__module__ + "." + type(value).__qualname__
    if kind.startswith("numpy."):
        raise _BadOutput(f"returned a {kind}; return a torch.Tensor (torch.from_numpy converts)")
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return value.item()
    raise _BadOutput(f"returned a {kind}, expected a tensor")


def _child_main(
    cells: list, skip: list, questions: list, conn: Any, log_writer: Any, scratch: str, limits: Limits
) -> None:
    """Entry point of the child process (runs in a fork of the warm server)."""
    os.setsid()
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
    os.chdir(scratch)
    os.environ.update(
        {
            "HOME": scratch,
            "TMPDIR": scratch,
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

    from .isolation import graded_alone_by_name, preload  # issue 16

    preload()  # issue 16: the references are bound before the notebook can patch course_lib
    from .tripwire import Tripwire

    def check_skipped(*args: Any, **kwargs: Any) -> None:
        """The grader runs the tests itself, in its own process."""

    grading_pkg.check = checker_mod.check = check_skipped
    wires = {qid: Tripwire(forbidden) for qid, _, forbidden in questions}

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
    defined = {function: callable(namespace.get(function)) for _, function, _ in questions}
    _send(conn, {"event": "ready", "defined": defined})

    while True:
        request = conn.recv()
        if request[0] != "call":
            break
        _, qid, function, blob, assignment = request  # issue 16: + assignment
        cases = torch.load(io.BytesIO(blob), weights_only=True)
        fn = namespace.get(function)
        wire = wires[qid]
        budget = [limits.max_output_elements]
        results = []
        isolation = graded_alone_by_name(namespace, assignment, qid)  # issue 16
        isolation.__enter__()  # issue 16
        for args, kwargs in cases:
            if not callable(fn):
                results.append({"kind": "missing"})
                continue
            try:
                with wire:
                    value = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: B036
                if wire.hit:
                    results.append({"kind": "reference_used", "message": f"calls {wire.hit}"})
                    continue
                raised = Raised.from_exception(exc)
                results.append({"kind": "raised", "types": list(raised.types), "message": raised.message})
                continue
            if wire.hit:
                results.append({"kind": "reference_used", "message": f"calls {wire.hit}"})
            elif wire.tampered:
                results.append(
                    {"kind": "reference_used", "message": "switched off the grader's call tracing"}
                )
            else:
                try:
                    results.append({"kind": "value", "value": _pack(value, budget)})
                except _BadOutput as exc:
                    results.append({"kind": "bad_output", "message": str(exc)})
        isolation.__exit__(None, None, None)  # issue 16
        sys.stdout.flush()
        buffer = io.BytesIO()
        torch.save(results, buffer)
        _send(conn, {"event": "result", "qid": qid}, buffer.getvalue())
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip atexit handlers and lingering threads the notebook may have left


# =====================================================================================================
# Parent side
# =====================================================================================================

_CONTEXT: Optional[Any] = None
_START_LOCK = threading.Lock()


def _context() -> Any:
    global _CONTEXT
    if _CONTEXT is None:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([m for m in _PRELOAD])
        _CONTEXT = ctx
    return _CONTEXT


def warm_up() -> float:
    """Start the fork server now (imports torch once); returns the seconds it took."""
    start = time.perf_counter()
    ctx = _context()
    with _START_LOCK:
        p = ctx.Process(target=_noop)
        p.start()
    p.join()
    return time.perf_counter() - start


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
            except EOFError:
                raise _death(proc, False) from None
            except OSError:
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


def run_submission(cells: list[str], jobs: list[QuestionJob], scratch: str, limits: Limits) -> RunReport:
    """Run ``cells`` in a fresh child (several, if one hangs or dies) and call every job's function.

    ``scratch`` is the child's working directory (a copy of the submission may sit there).
    """
    report = RunReport()
    start = time.perf_counter()
    ctx = _context()
    skip: list[int] = []
    pending = list(jobs)
    blobs = {job.qid: _encode_cases(job.cases) for job in jobs}
    spec = [(job.qid, job.function, tuple(job.forbidden)) for job in jobs]
    logs: list[str] = []
    seen_errors: set[tuple[int, str]] = set()

    while True:
        report.attempts += 1
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        log_read, log_write = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_child_main,
            args=(cells, skip, spec, child_conn, log_write, scratch, limits),
            daemon=True,
        )
        with _START_LOCK:
            proc.start()
        child_conn.close()
        log_write.close()
        reader = _LogReader(log_read.fileno(), limits.log_bytes)
        reader.start()
        current: Optional[int] = None
        phase = "notebook"
        retry = False
        try:
            deadline = time.monotonic() + limits.timeout
            while True:
                header, _ = _receive(
                    conn=parent_conn,
                    proc=proc,
                    deadline=deadline,
                    timeout=limits.timeout,
                    what=f"cell {current + 1}" if current is not None else "the notebook",
                )
                event = header.get("event")
                if event == "cell":
                    current = int(header.get("index", -1))
                elif event == "cell_error":
                    index, kind = int(header.get("index", -1)), str(header.get("kind", "exception"))
                    if (index, kind) not in seen_errors:
                        seen_errors.add((index, kind))
                        report.cell_errors.append(
                            {"cell": index + 1, "kind": kind, "message": str(header.get("message", ""))[:800]}
                        )
                        report.issues.add(kind)
                elif event == "ready":
                    defined = header.get("defined", {})
                    report.defined = (
                        {str(k): bool(v) for k, v in defined.items()} if isinstance(defined, dict) else {}
                    )
                    break
            phase = "questions"
            while pending:
                job = pending[0]
                current_q = job.qid
                parent_conn.send(("call", job.qid, job.function, blobs[job.qid], job.assignment))  # issue 16
                deadline = time.monotonic() + limits.timeout
                while True:
                    header, payload = _receive(
                        parent_conn,
                        proc,
                        deadline,
                        limits.timeout,
                        f"the tests of {current_q} ({job.function})",
                    )
                    if header.get("event") == "result" and header.get("qid") == job.qid:
                        break
                report.outcomes[job.qid] = _parse_results(payload, len(job.cases))
                pending.pop(0)
            parent_conn.send(("done",))
            proc.join(5)
        except _Stop as stop:
            _kill(proc)
            if (
                stop.kind == "crashed"
                and proc.exitcode not in (None,)
                and phase == "notebook"
                and current is None
            ):
                report.events.append(f"the notebook could not start: {stop.message}")
                report.issues.add("crashed")
                for job in pending:
                    report.outcomes[job.qid] = [
                        Outcome("not_run", message="not graded: the process could not start")
                    ] * len(job.cases)
                pending = []
            elif phase == "notebook":
                where = f"cell {current + 1}" if current is not None else "the notebook"
                report.events.append(
                    f"{where}: {stop.message}; it was skipped and the notebook run again without it"
                )
                report.issues.add(stop.kind)
                skip.append(current if current is not None else -1)
                retry = True
            else:
                job = pending.pop(0)
                report.events.append(f"{job.qid} ({job.function}): {stop.message}")
                report.issues.add(stop.kind)
                outcome = Outcome(stop.kind, message=stop.message)
                report.outcomes[job.qid] = [outcome] * len(job.cases)
                retry = bool(pending)
        except (BrokenPipeError, ConnectionResetError, EOFError) as exc:
            _kill(proc)
            stop = _death(proc, True)
            report.events.append(f"lost the connection to the process ({type(exc).__name__}): {stop.message}")
            report.issues.add("crashed")
            if phase == "questions" and pending:
                job = pending.pop(0)
                report.outcomes[job.qid] = [Outcome("crashed", message=stop.message)] * len(job.cases)
            retry = bool(pending)
        finally:
            _kill(proc)
            reader.join(2)
            try:
                log_read.close()
            except OSError:
                pass
            parent_conn.close()
            logs.append(reader.text())
        if not retry:
            break
        if report.attempts >= limits.max_attempts:
            report.events.append(f"gave up after {report.attempts} runs of the notebook")
            for job in pending:
                report.outcomes[job.qid] = [
                    Outcome("not_run", message="not graded: the notebook kept failing")
                ] * len(job.cases)
            break

    for job in jobs:
        report.outcomes.setdefault(job.qid, [Outcome("not_run", message="not graded")] * len(job.cases))
    if len(logs) == 1:
        report.log = logs[0]
    else:
        report.log = "".join(f"\n----- run {i + 1} -----\n{text}" for i, text in enumerate(logs)).lstrip("\n")
    report.seconds = time.perf_counter() - start
    return report
