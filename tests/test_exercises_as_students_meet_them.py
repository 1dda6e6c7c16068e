"""The assignments as a student meets them (issue 16).

* every rule a statement states (errors to raise, dtypes, edge cases) is tied to a part whose tests catch
  an answer that breaks it, and no rule can be stated without being registered (requirement coverage);
* one mistake costs one question: a bug in Q1 no longer costs points in the question that calls Q1's
  function, in ``check()`` and in the batch grader;
* stubs and hints guide without giving the answer, and hints come in stages;
* mask and index-map feedback says which way it is wrong, with an example pair;
* "Run All" on an exercise never stops on a stub;
* each chapter lists exactly its assignment's questions, titles and points, and the statements list the
  parts of their spec.
"""

from __future__ import annotations

import ast
import csv
import json
import re
from pathlib import Path
from typing import Any, Callable

import nbformat
import pytest
import torch

from course_lib.grading import all_assignments, get_assignment
from course_lib.grading.checker import _outcome, run_public_tests
from course_lib.grading.compare import judge
from course_lib.grading.demo import finish_first
from course_lib.grading.grader import _prepare, _score
from course_lib.grading.hints import feedback_hints, reset, staged_hint
from course_lib.grading.outline import parts_markdown, questions_markdown
from course_lib.grading.reports import feedback_markdown
from course_lib.grading.spec import PUBLIC_SECRET, case_generator, evaluate_reference
from course_lib.grading.tripwire import Tripwire
from course_lib.instructor.cli import main

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = all_assignments()
QUESTIONS = [(a, q) for a in ASSIGNMENTS for q in a.questions]
ids = [f"{a.name.split('_')[0]}-{q.id}" for a, q in QUESTIONS]


def _squash(text: str) -> str:
    return " ".join(text.split())


def _statement(folder: str, assignment, qid: str) -> str:
    """The question's markdown cell, without its "Parts:" list (whitespace squashed)."""
    nb = nbformat.read(ROOT / folder / f"{assignment.name}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith(f"## {qid.upper()}. "):
            return cell.source
    raise AssertionError(f"{assignment.name}: no statement for {qid}")


def _loses_part(assignment, question, fn: Callable, part_name: str, secret: str = "coverage") -> bool:
    part = next(p for p in question.parts if p.name == part_name)
    rng = case_generator(secret if part.hidden else PUBLIC_SECRET, assignment.name, question.id, part.name)
    wire = Tripwire(question.forbidden)
    verdicts = [
        judge(question, part.compare, c, evaluate_reference(question, c), _outcome(fn, c, wire, None))
        for c in part.cases(rng)
    ]
    return not all(v.passed for v in verdicts)


def _solution_namespace(name: str) -> dict[str, Any]:
    nb = nbformat.read(ROOT / "solutions" / f"{name}.ipynb", as_version=4)
    namespace: dict[str, Any] = {"__name__": "__solutions__"}
    for cell in nb.cells:
        if cell.cell_type == "code" and not cell.source.startswith(
            ("check(", "# Setup", "with finish_first")
        ):
            exec(compile(cell.source, f"<{name}>", "exec"), namespace)
    return namespace


# ---- every stated rule is tested --------------------------------------------------------------------------

#: Words that state a requirement: an error to raise, a dtype, an integer result, an edge case.
RULE_WORDS = re.compile(
    r"[Rr]aise (?:a|an) `\w+`|`torch\.(?:bool|long|int64)`|\*\*boolean\*\*|boolean mask|Python `int`s?|"
    r"Swin does not shift"
)


@pytest.mark.parametrize(("assignment", "question"), QUESTIONS, ids=ids)
def test_every_stated_rule_is_tied_to_a_part_that_catches_it(assignment, question) -> None:
    statement = _squash(_statement("solutions", assignment, question.id).split("\nParts:")[0])
    spans = []
    for rule in question.rules:
        text = _squash(rule.text)
        start = statement.find(text)
        assert start >= 0, f"{question.id}: the rule {text!r} is not in the statement"
        spans.append((start, start + len(text)))
        # An answer that breaks only this rule must lose the part named for it...
        assert _loses_part(assignment, question, rule.violation, rule.part), (question.id, rule.text)
    # ...and every requirement the statement states must be one of the registered rules.
    for m in RULE_WORDS.finditer(statement):
        assert any(a <= m.start() and m.end() <= b for a, b in spans), (
            f"{assignment.name} {question.id}: {m.group(0)!r} states a requirement that no Rule ties to a "
            f"test: add Rule(text, part, violation) to the question's spec"
        )
    # A sentence "Raise ... when A or B" states one rule per condition: each condition is in a rule's text.
    for sentence in re.findall(r"Raise (?:a|an) `\w+`[^.]*", statement):
        for condition in sentence.split(" when ", 1)[-1].split(" or "):
            assert any(condition.strip() in _squash(r.text) for r in question.rules), (question.id, condition)


def test_the_trials_planted_bug_now_loses_a_point() -> None:
    """05 Q3: a copy that checks only pos_embed scored 18/18; now it loses the "wrong shapes" part."""
    a = get_assignment("05")
    q = a.question("q3")
    solution = _solution_namespace(a.name)["add_class_token"]

    def checks_pos_only(tokens, cls_token, pos_embed):
        B, N, D = tokens.shape
        if pos_embed.shape != (1, N + 1, D):
            raise ValueError("pos_embed")
        return torch.cat([cls_token.expand(B, 1, D), tokens], dim=1) + pos_embed

    planted = run_public_tests(a, q, checks_pos_only)
    assert planted.score == q.public_points - 1
    assert "should raise ValueError" in planted.format()
    assert run_public_tests(a, q, solution).score == q.public_points


def test_statements_list_the_parts_of_their_spec() -> None:
    for folder in ("solutions", "exercises"):
        for a, q in QUESTIONS:
            cell = _statement(folder, a, q.id)
            assert parts_markdown(q) in cell, (folder, a.name, q.id)
            heading = re.match(rf"## {q.id.upper()}\. (.*) \((\d+) points?\)", cell)
            assert heading and heading.group(1) == q.title and float(heading.group(2)) == q.points


@pytest.mark.parametrize("assignment", ASSIGNMENTS, ids=lambda a: a.name)
def test_chapter_lists_exactly_the_assignments_questions(assignment) -> None:
    nb = nbformat.read(ROOT / "book" / f"{assignment.chapter}.ipynb", as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## Exercises")]
    assert len(cells) == 1
    text = cells[0].source
    assert questions_markdown(assignment) in text, "run: python -m course_lib.grading.outline"
    mentioned = set(re.findall(r"\bQ(\d+)\b", text))
    assert mentioned == {q.id[1:] for q in assignment.questions}
    # The exercise notebook's own "N points in all" agrees with the spec.
    intro = "\n".join(
        c.source for c in nbformat.read(ROOT / "solutions" / f"{assignment.name}.ipynb", 4).cells[:4]
    )
    total = re.search(r"\((\d+) points in all\)", intro)
    assert total and float(total.group(1)) == assignment.points


def test_chapter5_promises_what_the_assignment_asks() -> None:
    nb = nbformat.read(ROOT / "book" / "05_vision_transformer.ipynb", as_version=4)
    text = next(c.source for c in nb.cells if c.source.startswith("## Exercises"))
    assert "both as a strided convolution" not in text and "attention entries of ViT-B at 384" not in text


# ---- a question is graded on its own ---------------------------------------------------------------------

SQUARE_ONLY_PATCHIFY = """
def patchify(images, patch_size):
    B, C, H, W = images.shape
    P = patch_size
    if H % P or W % P:
        raise ValueError("indivisible")
    x = images.reshape(B, C, H // P, P, H // P, P)  # the planted bug: H where W belongs
    return x.permute(0, 2, 4, 3, 5, 1).reshape(B, -1, P * P * C)
"""


def _buggy_vit_namespace() -> dict[str, Any]:
    namespace = _solution_namespace("05_vision_transformer")
    exec(SQUARE_ONLY_PATCHIFY, namespace)
    return namespace


def test_a_bug_in_q1_no_longer_costs_points_in_q2_with_check() -> None:
    a = get_assignment("05")
    namespace = _buggy_vit_namespace()
    buggy = namespace["patchify"]
    q1 = run_public_tests(a, a.question("q1"), buggy)
    assert q1.score < a.question("q1").public_points  # the bug costs points in Q1...
    q2 = run_public_tests(a, a.question("q2"), namespace["patch_embed"])
    assert q2.score == a.question("q2").public_points  # ...and no longer in Q2
    assert q2.reference_used is None  # the substitute does not trip the "forbidden reference" wire
    assert "graded with the reference `patchify` (Q1) in place of yours" in q2.format()
    assert namespace["patchify"] is buggy  # the student's function is back after the check
    # A question that does not use Q1's function is not touched, and says nothing.
    q3 = run_public_tests(a, a.question("q3"), namespace["add_class_token"])
    assert "note:" not in q3.format()


def test_every_call_to_an_earlier_answer_is_declared() -> None:
    """A solution that calls another question's function must list it in ``uses``."""
    for a in ASSIGNMENTS:
        namespace = _solution_namespace(a.name)
        graded = {q.function for q in a.questions}
        for q in a.questions:
            called = set(namespace[q.function].__code__.co_names) & (graded - {q.function})
            assert called <= set(q.uses), (a.name, q.id, called)


def test_a_bug_in_q1_no_longer_costs_points_in_q2_in_the_batch_grader(tmp_path: Path) -> None:
    a = get_assignment("05")
    nb = nbformat.read(ROOT / "solutions" / f"{a.name}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith("def patchify("):
            cell.source = SQUARE_ONLY_PATCHIFY.strip()
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    nbformat.write(nb, subs / "square.ipynb")
    args = ["grade", "--assignment", a.name, str(subs), "--out", str(out), "--seed", "s", "--quiet"]
    assert main(args + ["--jobs", "1", "--timeout", "60"]) == 0
    with open(out / "gradebook.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert float(row["q1"]) < a.question("q1").points
    assert float(row["q2"]) == a.question("q2").points
    assert float(row["q3"]) == a.question("q3").points and float(row["q4"]) == a.question("q4").points
    feedback = (out / "feedback" / "square.md").read_text()
    assert "graded with the reference `patchify` (Q1) in place of yours" in feedback
    assert "hint 1/3" in feedback  # the failed part of Q1 gets the staged hints
    # Gradescope's results.json tells the student the same: the staged hints and the replaced answer
    tests = json.loads((out / "gradescope" / "square" / "results.json").read_text())["tests"]
    q1_failed = [t["output"] for t in tests if t["name"].startswith("q1 ") and t["status"] == "failed"]
    assert q1_failed and "hint 1/3" in q1_failed[0]
    note = "graded with the reference `patchify` (Q1)"
    assert any(t["name"].startswith("q2 ") and note in t["output"] for t in tests)



PATCHES_THE_LIBRARY = """
import torch
import course_lib.attention as _lib
_lib.scaled_dot_product_attention = lambda *args, **kwargs: (torch.zeros(()), torch.zeros(()))
"""


def test_the_batch_binds_the_references_before_the_notebook_can_patch_the_library(tmp_path: Path) -> None:
    """The grader's fork server imports every assignment spec (no secret there) and the child binds them
    before the first cell: a notebook that replaces ``course_lib.attention.scaled_dot_product_attention``
    does not change the reference that stands in for its ``attention`` while Q4 is graded."""
    from course_lib.grading import sandbox
    from course_lib.grading.alone import assignment_modules

    assert set(assignment_modules()) <= set(sandbox._PRELOAD)
    a = get_assignment("01")
    nb = nbformat.read(ROOT / "solutions" / f"{a.name}.ipynb", as_version=4)
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells.insert(first + 1, nbformat.v4.new_code_cell(PATCHES_THE_LIBRARY.strip()))
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    nbformat.write(nb, subs / "patched.ipynb")
    args = ["grade", "--assignment", a.name, str(subs), "--out", str(out), "--seed", "s", "--quiet"]
    assert main(args + ["--jobs", "1", "--timeout", "60"]) == 0
    with open(out / "gradebook.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert float(row["q4"]) == a.question("q4").points, (out / "feedback" / "patched.md").read_text()
    assert float(row["total"]) == sum(q.points for q in a.questions)


# ---- hints: staged, and never the answer ----------------------------------------------------------------


def _answer_expressions(source: str) -> set[str]:
    """Sub-expressions of the solution's code (whitespace removed) long enough to be an answer."""
    region = re.search(r"# BEGIN SOLUTION\n(.*?)# END SOLUTION", source, re.S).group(1)
    lines = [line for line in region.split("\n") if not line.strip().startswith("# HINT")]
    tree = ast.parse(__import__("textwrap").dedent("\n".join(lines)))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.BinOp, ast.Call, ast.Subscript, ast.Compare)):
            text = "".join(ast.unparse(node).split())
            if len(text) >= 10:
                found.add(text)
    return found


@pytest.mark.parametrize(("assignment", "question"), QUESTIONS, ids=ids)
def test_no_stub_or_hint_contains_its_questions_reference_expression(assignment, question) -> None:
    solution = next(
        c.source
        for c in nbformat.read(ROOT / "solutions" / f"{assignment.name}.ipynb", 4).cells
        if c.cell_type == "code" and f"def {question.function}(" in c.source
    )
    exercise = next(
        c.source
        for c in nbformat.read(ROOT / "exercises" / f"{assignment.name}.ipynb", 4).cells
        if c.cell_type == "code" and f"def {question.function}(" in c.source
    )
    stub = ast.literal_eval(re.search(r"raise NotImplementedError\((.*)\)", exercise).group(1))
    assert "chapter" in stub, f"{question.id}: the stub should say where to look in the book"
    messages = [stub, *question.hints, *(h for p in question.parts for h in p.hints)]
    answers = _answer_expressions(solution) | {"".join(a.split()) for a in question.answers}
    assert answers
    for message in messages:
        squashed = "".join(message.split())
        for answer in answers:
            assert answer not in squashed, (question.id, answer, message)


def test_the_trials_stub_no_longer_hands_over_the_cost_formula() -> None:
    exercise = (ROOT / "exercises" / "05_vision_transformer.ipynb").read_text()
    assert "T * T * D" not in exercise and "each cost" not in exercise


def test_hints_come_in_stages_in_check_and_the_same_in_the_batch_feedback(capsys) -> None:
    from course_lib.grading import check

    a = get_assignment("06")
    q = a.question("q3")
    stages = feedback_hints(q, "shifted windows")
    assert len(stages) == 3 and staged_hint(q, "shifted windows", 0) is None
    assert staged_hint(q, "shifted windows", 7) == stages[-1]  # the last stage repeats

    def shifted_window_mask(h, w, window, shift):  # everything allowed: too permissive when shifted
        return torch.ones((h // window) * (w // window), window * window, window * window, dtype=torch.bool)

    reset()
    seen = []
    for _ in range(4):
        check("q3", shifted_window_mask)
        seen.append(capsys.readouterr().out)
    for n, text in enumerate(seen[:3]):
        assert stages[n] in text and all(s not in text for s in stages[n + 1 :])
    assert stages[2] in seen[3]
    # The batch feedback shows the same stages, in the same words, once per question.
    prepared = _prepare(a, "seed")
    outcomes = {}
    for question in a.questions:
        fn = shifted_window_mask if question.id == "q3" else _solution_namespace(a.name)[question.function]
        wire = Tripwire(question.forbidden)
        outcomes[question.id] = [_outcome(fn, c, wire, None) for p in prepared[question.id] for c in p.cases]
    questions, _ = _score(a, prepared, outcomes)
    record = {"submission": "s", "questions": questions, "status": "ok", "max_total": a.points}
    record["total"] = sum(x["score"] for x in questions)
    feedback = feedback_markdown(record, a)
    for stage in stages:
        assert feedback.count(stage) == 1, stage


# ---- masks and index maps say which way they are wrong --------------------------------------------------


def test_mask_feedback_says_too_permissive_or_too_strict_with_an_example() -> None:
    a = get_assignment("06")
    q = a.question("q3")
    mask = _solution_namespace(a.name)["shifted_window_mask"]
    permissive = run_public_tests(a, q, lambda h, w, m, s: torch.ones_like(mask(h, w, m, s))).format()
    assert re.search(r"(\d+) allow a pair that must be blocked \(too permissive\), 0 block", permissive)
    assert re.search(r"e\.g\. window \d+, query \d+ \(row \d+, column \d+\) and key \d+", permissive)
    assert "yours allows it, it must be blocked" in permissive
    strict = run_public_tests(
        a, q, lambda h, w, m, s: torch.eye(m * m, dtype=torch.bool).expand_as(mask(h, w, m, s))
    )
    assert re.search(r"0 allow a pair that must be blocked \(too permissive\), \d+ block", strict.format())
    assert "yours blocks it, it may attend" in strict.format()
    index = _solution_namespace(a.name)["relative_position_index"]
    text = run_public_tests(a, a.question("q4"), lambda h, w: index(h, w) + 1).format()
    assert re.search(r"your values run from 1 to \d+ \(the table's rows are 0 \.\. \d+\)", text)
    assert re.search(r"e\.g\. query \d+ \(row \d+, column \d+\) and key \d+ \(row \d+, column \d+\)", text)


# ---- Run All never stops on a stub ---------------------------------------------------------------------


@pytest.mark.parametrize("assignment", ASSIGNMENTS, ids=lambda a: a.name)
def test_run_all_never_stops_on_a_stub(assignment) -> None:
    nb = nbformat.read(ROOT / "exercises" / f"{assignment.name}.ipynb", as_version=4)
    functions = {q.function for q in assignment.questions}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert "raises-exception" not in cell.metadata.get("tags", []), f"cell {index + 1}"
        assert not any(o.get("output_type") == "error" for o in cell.outputs), f"cell {index + 1}"
        calls = {f for f in functions if re.search(rf"(?<![\w.]){f}\(", cell.source)}
        if calls and not cell.source.startswith(("def ", "check(")):
            assert cell.source.startswith("with finish_first("), f"cell {index + 1} calls {calls}"


def test_finish_first_prints_one_line_for_a_stub_and_lets_real_errors_through(capsys) -> None:
    with finish_first("Q3"):
        raise NotImplementedError("stub")
    assert capsys.readouterr().out == "(finish Q3 to see this)\n"
    with pytest.raises(ValueError), finish_first("Q3"):
        raise ValueError("a real bug")


def test_exercises_import_what_their_demo_cells_use() -> None:
    for a in ASSIGNMENTS:
        text = (ROOT / "exercises" / f"{a.name}.ipynb").read_text()
        if "with finish_first(" in text:
            assert "from course_lib.grading.demo import finish_first" in text


# ---- questions answered by a value ------------------------------------------------------------------------


def test_the_numeric_question_is_the_papers_formula_and_its_feedback_hides_the_value() -> None:
    a = get_assignment("06")
    q = a.question("q6")
    h = w = 96
    C, M = 128, 12  # Swin-B at 384 pixels, first stage (the statement's numbers)
    msa = 4 * h * w * C**2 + 2 * (h * w) ** 2 * C  # Swin paper, Eq. 1
    wmsa = 4 * h * w * C**2 + 2 * M**2 * h * w * C  # Eq. 2
    assert q.reference() == pytest.approx(msa / wmsa, rel=1e-12)
    statement = _squash(_statement("solutions", a, "q6"))
    assert all(f"`{s}`" in statement for s in ("96 x 96", "C = 128", "M = 12"))
    assert run_public_tests(a, q, lambda: msa / wmsa * (1 + 5e-4)).score == q.points
    for wrong, way in ((lambda: h * w / M**2, "too large"), (lambda: 2.0, "too small")):
        text = run_public_tests(a, q, wrong).format()
        assert way in text and f"{msa / wmsa:.2f}" not in text and f"{msa / wmsa:.1f}" not in text
    assert "should return a number" in run_public_tests(a, q, lambda: "23.7").format()
    from course_lib.complexity import msa_macs, wmsa_macs

    shortcut = run_public_tests(a, q, lambda: msa_macs(96, 96, 128) / wmsa_macs(96, 96, 128, 12))
    assert shortcut.score == 0 and shortcut.reference_used == "course_lib.complexity.msa_macs"


def test_the_choice_question_lists_its_options_and_grades_only_the_right_one() -> None:
    a = get_assignment("06")
    q = a.question("q7")
    statement = _statement("solutions", a, "q7")
    for number, option in enumerate(q.options, start=1):
        assert f"{number}. {option}" in statement
    right = q.reference()
    assert run_public_tests(a, q, lambda: right).score == q.points
    for other in set(range(1, len(q.options) + 1)) - {right}:
        text = run_public_tests(a, q, lambda o=other: o).format()
        assert f"option {other} is not the right one" in text and f"option {right}" not in text
    assert "an int from 1 to 4" in run_public_tests(a, q, lambda: 7).format()
