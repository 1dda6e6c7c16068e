"""Batch grading end to end: solutions get full marks, fresh exercises get 0, and a set of adversarial
submissions (bad files, crashes, hangs, memory bombs, tampering) is graded exactly as expected."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest

from course_lib.grading import all_assignments
from course_lib.instructor.cli import main

ROOT = Path(__file__).resolve().parents[1]
SEED = "test-secret"


def _fixtures_module():
    spec = importlib.util.spec_from_file_location(
        "adversarial", ROOT / "tests" / "fixtures" / "adversarial.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_fixtures():
    return _fixtures_module().FIXTURES


class _Listener:
    """A TCP server on 127.0.0.1 that records every connection it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.received.append(conn.recv(100) or b"<connected>")
                except OSError:
                    self.received.append(b"<connected>")

    def close(self) -> None:
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def _processes_with(marker: str) -> list[int]:
    """Pids of the processes whose command line holds ``marker``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = (Path("/proc") / pid / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(pid))
    return found


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _all_output_text(out: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(out.rglob("*")) if p.is_file())


def _run_attack_batch(root: Path, names, extra_args=(), monkeypatch=None):
    """Grade the fixtures ``names`` (all when None) the way an instructor would: the secret in a
    --seed-file, and also in this process's environment and command line, where a careless
    grader would pass it on. Returns what the tests below read."""
    module = _fixtures_module()
    secret = "tfv-" + secrets.token_hex(8)
    listener = _Listener()
    out = root / "out"
    scratch = root / "scratch" / "deep"
    scratch.mkdir(parents=True)
    marker = f"600.{os.getpid()}{secrets.randbelow(10**6):06d}"
    module.CONTEXT.update(
        secret=secret, port=listener.port, out=str(out), scratch=str(root / "scratch"), marker=marker
    )
    solution = nbformat.read(ROOT / "solutions" / "01_self_attention.ipynb", as_version=4)
    subs = root / "subs"
    subs.mkdir()
    fixtures = {n: f for n, f in module.FIXTURES.items() if names is None or n in names}
    hashes = {}
    for name, (build, _, _) in fixtures.items():
        path = subs / f"{name}.ipynb"
        path.write_bytes(build(solution))
        hashes[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    seed_file = root / "seed.txt"
    seed_file.write_text(secret + "\n")
    old_tempdir, old_argv, old_env = tempfile.tempdir, sys.argv, os.environ.get("COURSE_GRADING_SEED")
    tempfile.tempdir = str(scratch)  # the students' scratch folders go here, next to nothing of value
    sys.argv = [*sys.argv, "--seed", secret]
    os.environ["COURSE_GRADING_SEED"] = secret
    start = time.perf_counter()
    try:
        code = main(
            [
                "grade",
                "--assignment",
                "01_self_attention",
                str(subs),
                "--out",
                str(out),
                "--seed-file",
                str(seed_file),
                "--jobs",
                "2",
                "--timeout",
                "8",
                "--memory-mb",
                "1600",
                "--quiet",
                *extra_args,
            ]
        )
    finally:
        tempfile.tempdir, sys.argv = old_tempdir, old_argv
        if old_env is None:
            os.environ.pop("COURSE_GRADING_SEED", None)
        else:
            os.environ["COURSE_GRADING_SEED"] = old_env
    seconds = time.perf_counter() - start
    time.sleep(0.5)  # let the kernel finish tearing the namespaces down
    survivors = _processes_with(marker)
    _kill_all(survivors)
    listener.close()
    meta = json.loads((out / "grading.json").read_text()) if (out / "grading.json").exists() else {}
    return {
        "code": code,
        "out": out,
        "subs": subs,
        "fixtures": fixtures,
        "hashes": hashes,
        "secret": secret,
        "seed_file": seed_file,
        "received": listener.received,
        "survivors": survivors,
        "isolation": meta.get("isolation", {}),
        "seconds": seconds,
    }


def _feedback(batch, name: str) -> str:
    return (batch["out"] / "feedback" / f"{name}.md").read_text()


def _needs_namespaces(batch) -> None:
    if batch["isolation"].get("used") != "namespaces":
        pytest.skip(f"the kernel forbids the namespace sandbox here: {batch['isolation'].get('reason')}")


def _gradebook(out: Path) -> dict[str, dict]:
    with open(out / "gradebook.csv", newline="") as f:
        return {row["submission"]: row for row in csv.DictReader(f)}


def _check_gradescope(out: Path, name: str) -> dict:
    results = json.loads((out / "gradescope" / name / "results.json").read_text())
    assert set(results) >= {"score", "tests", "output"}
    for t in results["tests"]:
        assert set(t) >= {"name", "score", "max_score", "output", "visibility", "status"}
        assert t["visibility"] in ("hidden", "after_due_date", "after_published", "visible")
        assert 0 <= t["score"] <= t["max_score"]
    assert results["score"] == pytest.approx(sum(t["score"] for t in results["tests"]))
    return results


@pytest.mark.parametrize("assignment", [a.name for a in all_assignments()])
def test_solution_full_marks_and_exercise_zero(assignment: str, tmp_path: Path) -> None:
    a = next(x for x in all_assignments() if x.name == assignment)
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(ROOT / "solutions" / f"{assignment}.ipynb", subs / "solution.ipynb")
    shutil.copy(ROOT / "exercises" / f"{assignment}.ipynb", subs / "exercise.ipynb")
    out = tmp_path / "out"
    assert (
        main(
            [
                "grade",
                "--assignment",
                assignment,
                str(subs),
                "--out",
                str(out),
                "--seed",
                SEED,
                "--jobs",
                "2",
                "--timeout",
                "30",
                "--quiet",
            ]
        )
        == 0
    )
    book = _gradebook(out)
    assert set(book) == {"solution", "exercise"}
    assert float(book["solution"]["total"]) == a.points
    assert book["solution"]["status"] == "ok"
    for q in a.questions:
        assert float(book["solution"][q.id]) == q.points
        assert float(book["exercise"][q.id]) == 0
    assert float(book["exercise"]["total"]) == 0
    assert book["exercise"]["status"] == "not_implemented"
    feedback = (out / "feedback" / "exercise.md").read_text()
    assert "not implemented yet" in feedback
    assert _check_gradescope(out, "solution")["score"] == a.points


@pytest.fixture(scope="module")
def adversarial_batch(tmp_path_factory: pytest.TempPathFactory):
    """Grade every adversarial fixture once (with --jobs 2, --isolation auto); the tests below read the
    results."""
    return _run_attack_batch(tmp_path_factory.mktemp("adversarial"), None)


def test_batch_completes_with_one_row_each(adversarial_batch) -> None:
    assert adversarial_batch["code"] == 0
    book = _gradebook(adversarial_batch["out"])
    assert set(book) == set(adversarial_batch["fixtures"])
    for name in book:
        _check_gradescope(adversarial_batch["out"], name)
        assert (adversarial_batch["out"] / "feedback" / f"{name}.md").exists()


@pytest.mark.parametrize("name", list(_load_fixtures()))
def test_adversarial_scores(adversarial_batch, name: str) -> None:
    _, scores, status = adversarial_batch["fixtures"][name]
    if name == "fork_bomb" and adversarial_batch["isolation"].get("used") != "namespaces":
        status = "ok"  # no watcher to stop it: it runs, and its processes die with its group
    row = _gradebook(adversarial_batch["out"])[name]
    got = {q: float(row[q]) for q in scores}
    assert (got, row["status"]) == ({q: float(v) for q, v in scores.items()}, status), (
        adversarial_batch["out"] / "feedback" / f"{name}.md"
    ).read_text()[:3000]
    assert float(row["total"]) == sum(scores.values())


def test_submissions_are_never_modified(adversarial_batch) -> None:
    for name, digest in adversarial_batch["hashes"].items():
        path = adversarial_batch["subs"] / f"{name}.ipynb"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_feedback_explains(adversarial_batch) -> None:
    fb = {
        n: (adversarial_batch["out"] / "feedback" / f"{n}.md").read_text()
        for n in adversarial_batch["fixtures"]
    }
    assert "not valid JSON" in fb["not_json"]
    assert "time limit" in fb["infinite_loop_cell"] and "skipped" in fb["infinite_loop_cell"]
    assert "segmentation fault" in fb["segfault"]
    assert "calls course_lib.attention.scaled_dot_product_attention" in fb["calls_reference"]
    assert "device 'meta'" in fb["meta_device"]
    assert "contains NaN" in fb["nan_output"]
    assert "transposed" in fb["patches_allclose"]  # the grader's own comparison, untouched by the patch
    assert "bytes of output cut" in fb["print_flood"] and len(fb["print_flood"]) < 40_000
    assert "hidden" in fb["hard_coded"]
    # the feedback never prints tensors (so never the expected values)
    assert not any("tensor(" in text for text in fb.values())


def test_rerun_skips_and_force_regrades(adversarial_batch, tmp_path: Path, capsys) -> None:
    out = adversarial_batch["out"]
    before = (out / "gradebook.csv").read_text()
    good = adversarial_batch["subs"] / "good.ipynb"
    args = [
        "grade",
        "--assignment",
        "01_self_attention",
        str(good),
        "--out",
        str(out),
        "--seed-file",
        str(adversarial_batch["seed_file"]),
        "--timeout",
        "8",
        "--memory-mb",
        "1600",
        "--quiet",
    ]
    assert main(args) == 0
    assert "graded 0, skipped 1" in capsys.readouterr().out
    assert (out / "gradebook.csv").read_text() == before
    assert main(args + ["--force"]) == 0
    assert "graded 1, skipped 0" in capsys.readouterr().out
    # a record edited by hand no longer verifies and is graded again
    record = out / "records" / "good.json"
    data = json.loads(record.read_text())
    data["total"] = 999
    record.write_text(json.dumps(data))
    assert main(args) == 0
    assert "graded 1, skipped 0" in capsys.readouterr().out
    assert _gradebook(out)["good"]["total"] == "15"


def test_other_assignment_refused(adversarial_batch, capsys) -> None:
    good = adversarial_batch["subs"] / "good.ipynb"
    code = main(
        [
            "grade",
            "--assignment",
            "02_multi_head_attention",
            str(good),
            "--out",
            str(adversarial_batch["out"]),
            "--quiet",
        ]
    )
    assert code == 2
    assert "holds grades of assignment" in capsys.readouterr().err


# ---- attacks on the grader itself ------------------------------------------------------------------


def test_the_secret_never_reaches_a_submission(adversarial_batch) -> None:
    text = _all_output_text(adversarial_batch["out"])
    assert adversarial_batch["secret"] not in text
    # not even scrubbed: the scrub is a last line of defence, the secret never got there
    assert "[secret removed]" not in text
    fb = _feedback(adversarial_batch, "exfiltrate_secret")
    assert "ATTACK leaks 0 []" in fb and "ATTACK argv" in fb
    assert "RuntimeError: argv ['submission.ipynb']" in fb


def test_no_process_outlives_its_submission(adversarial_batch) -> None:
    assert "ATTACK orphan started" in _feedback(adversarial_batch, "orphan")
    _needs_namespaces(adversarial_batch)
    assert adversarial_batch["survivors"] == []


def test_no_network(adversarial_batch) -> None:
    _needs_namespaces(adversarial_batch)
    assert adversarial_batch["received"] == []
    assert "ATTACK network refused" in _feedback(adversarial_batch, "network")


def test_output_folder_and_other_scratch_folders_out_of_reach(adversarial_batch) -> None:
    out = adversarial_batch["out"]
    assert "hacker" not in (out / "gradebook.csv").read_text()
    _needs_namespaces(adversarial_batch)
    fb = _feedback(adversarial_batch, "reads_and_writes")
    assert "ATTACK wrote" not in fb and "ATTACK write refused gradebook.csv" in fb
    assert "ATTACK other submissions read: 0" in fb
    assert not (out / "pwned.txt").exists()
    assert "hacker" not in (out / "feedback" / "good.md").read_text()


def test_fork_bomb_is_contained(adversarial_batch) -> None:
    fb = _feedback(adversarial_batch, "fork_bomb")
    assert adversarial_batch["survivors"] == []
    _needs_namespaces(adversarial_batch)
    assert "started more processes than the grader allows" in fb and "skipped" in fb


def test_fallback_without_namespaces(tmp_path: Path, monkeypatch, capsys) -> None:
    """Where the kernel forbids namespaces, ``auto`` grades with process limits only, says so once and
    records it; ``namespaces`` refuses; the secret is still kept out."""
    from course_lib.grading import grader

    monkeypatch.setattr(grader, "_probe_isolation", lambda hide: "simulated: unshare(CLONE_NEWUSER) refused")
    names = ["good", "exfiltrate_secret", "fork_bomb", "calls_reference"]
    batch = _run_attack_batch(tmp_path / "auto", names)
    err = capsys.readouterr().err
    assert batch["code"] == 0
    assert err.count("isolation reduced") == 1 and "simulated" in err
    assert batch["isolation"] == {
        "requested": "auto",
        "used": "none",
        "reason": "simulated: unshare(CLONE_NEWUSER) refused",
    }
    book = _gradebook(batch["out"])
    for name in names:
        _, scores, status = batch["fixtures"][name]
        status = "ok" if name == "fork_bomb" else status
        assert ({q: float(book[name][q]) for q in scores}, book[name]["status"]) == (
            {q: float(v) for q, v in scores.items()},
            status,
        )
    assert batch["secret"] not in _all_output_text(batch["out"])
    assert "ATTACK leaks 0 []" in _feedback(batch, "exfiltrate_secret")
    assert batch["survivors"] == []  # the fork bomb's processes share its process group
    assert "ATTACK forked 16" in _feedback(batch, "fork_bomb")

    refused = main(
        [
            "grade",
            "--assignment",
            "01",
            str(batch["subs"] / "good.ipynb"),
            "--out",
            str(tmp_path / "ns"),
            "--isolation",
            "namespaces",
            "--quiet",
        ]
    )
    assert refused == 2
    assert "--isolation namespaces: the sandbox cannot be built here: simulated" in capsys.readouterr().err


def test_isolation_none(tmp_path: Path) -> None:
    batch = _run_attack_batch(tmp_path, ["good", "exfiltrate_secret"], extra_args=["--isolation", "none"])
    assert batch["isolation"] == {"requested": "none", "used": "none", "reason": "--isolation none"}
    book = _gradebook(batch["out"])
    assert book["good"]["total"] == "15" and book["exfiltrate_secret"]["total"] == "15"
    assert batch["secret"] not in _all_output_text(batch["out"])


def test_scrub_is_the_last_line_of_defence() -> None:
    from course_lib.grading.reports import scrub

    record = {
        "log": "xx s3cr3t-value yy",
        "events": ["s3cr3t-value"],
        "n": 3,
        "q": [{"m": ("a s3cr3t-value",)}],
    }
    assert scrub(record, "s3cr3t-value") == {
        "log": "xx [secret removed] yy",
        "events": ["[secret removed]"],
        "n": 3,
        "q": [{"m": ("a [secret removed]",)}],
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_wipe_from_proc_hides_a_secret_given_on_the_command_line() -> None:
    """What ``ps`` and ``/proc/<grader>/{cmdline,environ}`` show no longer holds the secret."""
    import subprocess

    code = (
        "import sys; from course_lib.grading.grader import wipe_from_proc; "
        "print(wipe_from_proc('tfv-on-the-command-line'), flush=True); sys.stdin.read()"
    )
    env = {**os.environ, "COURSE_GRADING_SEED": "tfv-on-the-command-line"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--seed", "tfv-on-the-command-line"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "True"
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
        assert b"--seed\0***********************" in cmdline
        assert b"tfv-on-the-command-line" not in cmdline + environ
    finally:
        proc.communicate("")


def test_hidden_paths_never_hide_the_python_environment(tmp_path: Path, monkeypatch) -> None:
    """Submissions and --out inside a folder that holds the Python environment (say, the course's
    repository): their files are hidden, not that folder."""
    from course_lib.grading.grader import _hidden_paths

    repo = tmp_path / "repo"
    (repo / "lib").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [*sys.path, str(repo / "lib")])
    subs = tmp_path / "subs"
    subs.mkdir()
    seed = tmp_path / "seed.txt"
    hide = set(_hidden_paths(repo, str(tmp_path / "scratch"), [repo / "a.ipynb", subs / "b.ipynb"], seed))
    assert str(repo) not in hide and str(repo / "lib") not in hide
    assert {
        str(repo / "a.ipynb"),
        str(repo / "records"),
        str(repo / "feedback"),
        str(subs),
        str(seed),
    } <= hide
    assert str(tmp_path / "scratch") in hide


def test_seed_file_errors_are_clear(tmp_path: Path, capsys) -> None:
    nb = tmp_path / "x.ipynb"
    nb.write_text("{}")
    base = ["grade", "--assignment", "01", str(nb), "--out", str(tmp_path / "out"), "--quiet"]
    assert main([*base, "--seed-file", str(tmp_path / "missing.txt")]) == 2
    assert "cannot read the seed file" in capsys.readouterr().err
    (tmp_path / "empty.txt").write_text("\n")
    assert main([*base, "--seed-file", str(tmp_path / "empty.txt")]) == 2
    assert "is empty" in capsys.readouterr().err
    assert main([*base, "--seed-file", str(tmp_path / "empty.txt"), "--seed", "x"]) == 2
    assert "not both" in capsys.readouterr().err


def test_a_python_environment_under_tmp_stays_importable_in_the_sandbox(tmp_path: Path, monkeypatch) -> None:
    """A clone or a venv under /tmp (a CI checkout, say) must survive the sandbox's private /tmp: it is
    bound back read-only, while the rest of /tmp is gone."""
    from course_lib.grading import isolation

    reason = isolation.probe()
    if reason:
        pytest.skip(f"the kernel forbids the namespace sandbox here: {reason}")
    kept, other = tmp_path / "venv", tmp_path / "other"
    kept.mkdir()
    other.mkdir()
    (kept / "module.py").write_text("x = 1\n")
    (other / "secret.txt").write_text("no\n")
    monkeypatch.setattr(isolation, "runtime_paths", lambda: [str(kept)])
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            isolation.enter(tmp_mb=1)
            readable = (kept / "module.py").read_text() == "x = 1\n"
            try:
                (kept / "new.py").write_text("y = 2\n")
                read_only = False
            except OSError:
                read_only = True
            code = 0 if (readable and read_only and not other.exists()) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert not (kept / "new.py").exists()
