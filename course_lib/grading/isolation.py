"""A sandbox for one submission, built from Linux namespaces with ``unshare(2)`` (no helper binary).

The grader's warm server (which has imported torch once) forks one child per submission. That child
is single-threaded, the one moment ``unshare(CLONE_NEWUSER)`` is allowed, and calls :func:`enter`:

* **user** namespace: the child keeps its uid, and gains capabilities only over its own namespaces;
* **network** namespace: no interface but a loopback that is down, so every ``connect`` fails
  (127.0.0.1 included);
* **IPC** and **UTS** namespaces: no shared memory segments or semaphores with the host;
* **mount** namespace: every mount is remounted read-only; ``/tmp`` and ``/dev/shm`` are fresh,
  private, size-limited tmpfs (where the Python environment or ``course_lib`` live under ``/tmp``,
  they are bound back, read-only: :func:`runtime_paths`); the paths in ``hide`` (the grader's
  output folder, the scratch folders of all submissions, the submitted files) are covered: a folder
  with an empty read-only tmpfs, a file with ``/dev/null``;
* **PID** namespace: the notebook runs as process 1 of a namespace of its own, so when it ends
  (or is killed) the kernel kills every process it started, including those in a new session.

:func:`enter` forks: the caller becomes a *watcher* that waits for the notebook process and exits
with its status (a death by signal is re-raised), and the function returns in the notebook process,
which has then dropped every capability (``capset``) and set ``no_new_privs``. Mounts made here
are locked against a student who creates a nested namespace (the kernel locks mounts copied into a
less privileged namespace).

Where the kernel or a container forbids unprivileged namespaces, :func:`probe` says why, and the
grader falls back to process limits only. This module imports nothing heavy: ``python isolation.py``
runs the probe in a fresh interpreter.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import time
from typing import Iterable, Optional

__all__ = ["IsolationError", "enter", "probe", "runtime_paths", "supported_platform"]

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24

_FLAGS = {
    "ro": MS_RDONLY,
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
}


class IsolationError(OSError):
    """A step of building the sandbox failed; the message names the step and the kernel's answer."""


_LIBC: Optional[ctypes.CDLL] = None


def _libc() -> ctypes.CDLL:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _LIBC.mount.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_char_p,
        ]
        _LIBC.unshare.argtypes = [ctypes.c_int]
        _LIBC.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return _LIBC


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise IsolationError(errno, f"{what}: {os.strerror(errno)}")


def supported_platform() -> Optional[str]:
    """``None`` where namespaces may work, else why they cannot (not Linux)."""
    if not sys.platform.startswith("linux"):
        return f"Linux namespaces do not exist on {sys.platform}"
    return None


def _mount(source: Optional[str], target: str, fstype: Optional[str], flags: int, data: str = "") -> None:
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    _check(
        _libc().mount(enc(source), enc(target), enc(fstype), flags, enc(data) if data else None),
        f"mount {fstype or source or ''} on {target}",
    )


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _mounts() -> list[tuple[str, int]]:
    """Every mount point (parents first) with the flags that must be kept when remounting it."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")
            flags = 0
            for opt in fields[5].split(","):
                flags |= _FLAGS.get(opt, 0)
            found.append((point, flags))
    return found


def _under(path: str, folders: Iterable[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def _readonly_everywhere(keep_writable: Iterable[str], runtime: Iterable[str] = ()) -> None:
    keep, runtime = set(keep_writable), list(runtime)
    for point, flags in _mounts():
        if _under(point, keep) and not _under(point, runtime):
            continue
        if point == "/proc" or point.startswith("/proc/"):
            continue  # replaced by the namespace's own /proc
        try:
            _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)
        except IsolationError as exc:
            if exc.errno in (2, 13):  # ENOENT, EACCES: a mount under a folder we cannot reach
                continue
            raise


def _drop_capabilities() -> None:
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [
            ("effective", ctypes.c_uint32),
            ("permitted", ctypes.c_uint32),
            ("inheritable", ctypes.c_uint32),
        ]

    libc = _libc()
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break
    header = Header(0x20080522, 0)
    data = (Data * 2)()
    _check(libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset (drop capabilities)")
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")


#: Exit status of a watcher that killed its sandbox for starting more than ``max_processes``.
TOO_MANY_PROCESSES = 75


def _count_processes() -> int:
    """Processes of the sandbox: the watcher shares its mount namespace, so ``/proc`` is the sandbox's."""
    if os.path.exists("/proc/self/stat"):
        return 0  # still the host's /proc (the watcher is outside the sandbox's PID namespace)
    try:
        return sum(name.isdigit() for name in os.listdir("/proc"))
    except OSError:
        return 0


def _watch(child: int, max_processes: int) -> None:
    """The watcher: wait for the notebook process, then leave with its status (never returns).

    Every 20 ms it counts the sandbox's processes; past ``max_processes`` (a fork bomb) it kills
    process 1 of the sandbox, which takes every other process with it, and exits with
    :data:`TOO_MANY_PROCESSES`. (``RLIMIT_NPROC`` also bounds them, except for root, whom the
    kernel exempts.)
    """
    for fd in range(0, 3):
        try:
            os.close(fd)
        except OSError:
            pass
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while True:
        try:
            pid, status = os.waitpid(child, os.WNOHANG)
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(70)
        if pid:
            break
        if max_processes and _count_processes() > max_processes:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            os._exit(TOO_MANY_PROCESSES)
        time.sleep(0.02)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 70)


def runtime_paths() -> list[str]:
    """What the notebook process needs to keep importing: the Python environment, the folders on
    ``sys.path`` and the ``course_lib`` package, outermost first, without folders inside another."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # course_lib/
    candidates = (sys.prefix, sys.exec_prefix, package, *sys.path)
    found = {os.path.realpath(p) for p in candidates if p and os.path.isdir(p)}
    outer = []
    for path in sorted(found, key=len):
        if not _under(path, outer):
            outer.append(path)
    return outer


def enter(
    hide: Iterable[str] = (), tmp_mb: int = 256, close_in_watcher: Iterable[int] = (), max_processes: int = 0
) -> None:
    """Move this (single-threaded, just forked) process into a fresh sandbox; see the module's doc.

    Returns in the sandboxed notebook process; the calling process stays behind as its watcher and
    never returns. ``close_in_watcher``: file descriptors the watcher closes (the grader's channel),
    so that the grader sees the end of the channel when the notebook process dies.
    ``max_processes``: the watcher kills the sandbox when it holds more processes (0: no limit).
    Raises :class:`IsolationError` (in the calling process, before any fork) if a step fails.
    """
    reason = supported_platform()
    if reason:
        raise IsolationError(0, reason)
    uid, gid = os.getuid(), os.getgid()
    hide = [os.path.realpath(h) for h in hide if h and os.path.exists(h)]
    libc = _libc()
    threads = _threads()
    if threads != 1:
        raise IsolationError(22, f"unshare needs a single-threaded process; this one has {threads} threads")
    _check(
        libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID),
        "unshare(user, mount, network, IPC, UTS, PID namespaces)",
    )
    try:
        _write("/proc/self/setgroups", "deny")
    except FileNotFoundError:
        pass
    _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
    _write("/proc/self/gid_map", f"{gid} {gid} 1\n")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    size = f"size={int(tmp_mb)}m,mode=1777"
    private = ["/tmp"] + (["/dev/shm"] if os.path.isdir("/dev/shm") else [])
    # A venv or a clone under /tmp must survive the private /tmp: hold it by a file descriptor, then
    # bind it back at its place on the new tmpfs (read-only with the rest, below).
    needed = [p for p in runtime_paths() if _under(p, private) and p not in private]
    runtime = [(p, os.open(p, os.O_PATH | os.O_DIRECTORY)) for p in needed]
    for point in private:
        _mount("tmpfs", point, "tmpfs", MS_NOSUID | MS_NODEV, size)
    for path, fd in runtime:
        os.makedirs(path, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)
    kept = [path for path, _ in runtime]
    for path in hide:
        if path == "/" or (_under(path, private) and not _under(path, kept)):
            continue  # already gone with the private /tmp
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=4k,mode=755")
        else:  # a file: an empty one in its place
            _mount("/dev/null", path, None, MS_BIND)
    _readonly_everywhere(private, kept)

    child = os.fork()  # process 1 of the new PID namespace
    if child:
        for fd in close_in_watcher:
            try:
                os.close(fd)
            except OSError:
                pass
        _watch(child, max_processes)
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _drop_capabilities()


def probe(hide: Iterable[str] = ()) -> Optional[str]:
    """``None`` if :func:`enter` works here (tried in a forked child), else the reason it does not."""
    reason = supported_platform()
    if reason:
        return reason
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read)
        try:
            enter(hide, tmp_mb=1)
            import socket

            with socket.socket() as s:
                s.settimeout(1)
                try:
                    s.connect(("127.0.0.1", 9))
                    message = "the network is still reachable"
                except OSError:
                    message = "ok" if os.getpid() == 1 else "not process 1 of a PID namespace"
        except BaseException as exc:  # noqa: B036
            message = str(exc) or type(exc).__name__
        os.write(write, message.encode()[:500])
        os._exit(0)
    os.close(write)
    chunks = []
    while True:
        chunk = os.read(read, 1024)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    message = b"".join(chunks).decode(errors="replace")
    return None if message == "ok" else (message or "the sandbox's test process died")


if __name__ == "__main__":
    result = probe(sys.argv[1:])
    print(result or "ok")
    sys.exit(0 if result is None else 1)
