"""check() in a student's notebook and the batch grader give the same verdict on every public part.

Both go through one call path (:func:`course_lib.grading.compare.graded_call`: the tripwire's rule,
then the output's marshalling) and one judge; this test grades a set of submissions both ways, the
grader in its sandboxed child and check() in this process, and compares part by part.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nbformat
import pytest

from course_lib.grading import get_assignment, run_public_tests
from course_lib.grading.grader import read_code_cells
from course_lib.instructor.cli import main

ROOT = Path(__file__).resolve().parents[1]
#: Fixtures (tests/fixtures/adversarial.py) whose code is safe to run in the test's own process.
AGREE = [
    "good",
    "wrong_shape",
    "wrong_dtype",
    "meta_device",
    "huge_output",
    "nan_output",
    "function_raises",
    "hard_coded",
    "calls_reference",
    "calls_torch_sdpa",
    "tampers_tripwire",
]


def _fixtures():
    spec = importlib.util.spec_from_file_location(
        "adversarial", ROOT / "tests" / "fixtures" / "adversarial.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FIXTURES


class _Shell:
    def __getattr__(self, name):
        return lambda *a, **k: None


def _run_in_process(data: bytes) -> dict:
    namespace: dict = {"__name__": "__main__", "get_ipython": lambda: _Shell()}
    for index, source in enumerate(read_code_cells(data)):
        try:
            exec(compile(source, f"<cell {index + 1}>", "exec"), namespace)
        except Exception:
            pass  # a failing cell is the student's; the functions defined so far stay
    return namespace


@pytest.fixture(scope="module")
def both_ways(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("agree")
    fixtures = _fixtures()
    solution = nbformat.read(ROOT / "solutions" / "01_self_attention.ipynb", as_version=4)
    subs = root / "subs"
    subs.mkdir()
    data = {}
    for name in AGREE:
        data[name] = fixtures[name][0](solution)
        (subs / f"{name}.ipynb").write_bytes(data[name])
    out = root / "out"
    args = ["grade", "--assignment", "01_self_attention", str(subs), "--out", str(out), "--jobs", "2"]
    assert main([*args, "--timeout", "30", "--quiet", "--seed", "agree"]) == 0
    records = {n: json.loads((out / "records" / f"{n}.json").read_text()) for n in AGREE}
    return data, records


@pytest.mark.parametrize("name", AGREE)
def test_check_and_grade_agree_on_every_public_part(both_ways, name: str, capsys) -> None:
    data, records = both_ways
    assignment = get_assignment("01_self_attention")
    namespace = _run_in_process(data[name])
    capsys.readouterr()
    graded = {q["id"]: q for q in records[name]["questions"]}
    compared = 0
    for q in assignment.questions:
        report = run_public_tests(assignment, q, namespace[q.function])
        by_check = {p.name: p.passed and not report.reference_used for p in report.parts}
        by_grade = {p["name"]: p["score"] > 0 for p in graded[q.id]["parts"] if not p["hidden"]}
        assert by_check == by_grade, (name, q.id, report.format(), graded[q.id])
        assert bool(report.reference_used) == bool(graded[q.id]["message"]), (name, q.id)
        compared += len(by_check)
    assert compared == sum(len([p for p in q.parts if not p.hidden]) for q in assignment.questions)


def test_the_set_covers_each_kind_of_verdict(both_ways) -> None:
    _, records = both_ways
    statuses = {records[n]["status"] for n in AGREE}
    assert {"ok", "bad_output", "exception", "reference_used"} <= statuses
