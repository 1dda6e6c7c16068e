"""Batch grading end to end: solutions get full marks, fresh exercises get 0, and a set of adversarial
submissions (bad files, crashes, hangs, memory bombs, tampering) is graded exactly as expected."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest

from course_lib.grading import all_assignments
from course_lib.instructor.cli import main

ROOT = Path(__file__).resolve().parents[1]
SEED = "test-secret"


def _load_fixtures():
    spec = importlib.util.spec_from_file_location(
        "adversarial", ROOT / "tests" / "fixtures" / "adversarial.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FIXTURES


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
    """Grade every adversarial fixture once (with --jobs 2); the tests below read the results."""
    root = tmp_path_factory.mktemp("adversarial")
    fixtures = _load_fixtures()
    solution = nbformat.read(ROOT / "solutions" / "01_self_attention.ipynb", as_version=4)
    subs = root / "subs"
    subs.mkdir()
    hashes = {}
    for name, (build, _, _) in fixtures.items():
        path = subs / f"{name}.ipynb"
        path.write_bytes(build(solution))
        hashes[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    scratch = root / "scratch" / "deep"
    scratch.mkdir(parents=True)
    out = root / "out"
    old = tempfile.tempdir
    tempfile.tempdir = str(scratch)  # the students' scratch folders go here, next to nothing of value
    try:
        code = main(
            [
                "grade",
                "--assignment",
                "01_self_attention",
                str(subs),
                "--out",
                str(out),
                "--seed",
                SEED,
                "--jobs",
                "2",
                "--timeout",
                "8",
                "--memory-mb",
                "1600",
                "--quiet",
            ]
        )
    finally:
        tempfile.tempdir = old
    return {"code": code, "out": out, "subs": subs, "fixtures": fixtures, "hashes": hashes}


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
        "--seed",
        SEED,
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
