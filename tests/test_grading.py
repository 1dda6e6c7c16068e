"""The grading engine in-process: specs, the comparison and its hints, check(), the tripwire, release.

The grader's expected answers come from course_lib; here they are checked against INDEPENDENT
references (torch's own attention and MultiheadAttention, the papers' formulas written out), and the
feedback is checked on independent right and wrong implementations written below.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
import time
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F

from course_lib.grading import Case, all_assignments, case_generator, get_assignment, run_public_tests
from course_lib.grading.spec import PUBLIC_SECRET, Raised, evaluate_reference
from course_lib.grading.tripwire import Tripwire
from course_lib.instructor.cli import main
from course_lib.instructor.release import ReleaseError, make_exercise, strip_solutions

ROOT = Path(__file__).resolve().parents[1]
SETUP_CELL = "\n".join(
    [
        "# Setup: installs course_lib on Colab (see the README to install it elsewhere), seeds everything, "
        "picks the GPU if there is one.",
        "import sys",
        'if "google.colab" in sys.modules:',
        "    import subprocess",
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q",',
        '                    "course-lib[book] @ git+https://github.com/tfv-course/transformers-for-vision@main"]'
        ", check=True)",
        "from course_lib.runtime import setup",
        "device = setup(seed=0)",
    ]
)


def _cases(assignment, question, hidden_seed="s"):
    for part in question.parts:
        secret = hidden_seed if part.hidden else PUBLIC_SECRET
        yield from part.cases(case_generator(secret, assignment.name, question.id, part.name))


# ---- specs ---------------------------------------------------------------------------------------------


def test_every_assignment_is_complete() -> None:
    names = [a.name for a in all_assignments()]
    assert names[:3] == ["01_self_attention", "02_multi_head_attention", "03_positional_encoding"]
    for a in all_assignments():
        assert len(a.questions) >= 3
        assert (ROOT / "solutions" / f"{a.name}.ipynb").exists()
        assert any(len(q.parts) > 1 for q in a.questions)  # partial credit exists
        for q in a.questions:
            if q.kind == "value":  # a number or an option's number: no inputs, so nothing to hide
                assert all(not p.hidden for p in q.parts)
                continue
            assert any(p.hidden for p in q.parts) and any(not p.hidden for p in q.parts)


def test_hidden_inputs_depend_on_the_secret_and_public_ones_do_not() -> None:
    a = get_assignment("01")
    q = a.question("q2")
    hidden = [p for p in q.parts if p.hidden][0]
    one = hidden.cases(case_generator("alpha", a.name, q.id, hidden.name))
    two = hidden.cases(case_generator("beta", a.name, q.id, hidden.name))
    again = hidden.cases(case_generator("alpha", a.name, q.id, hidden.name))
    assert not all(
        x.args[0].shape == y.args[0].shape and torch.equal(x.args[0], y.args[0]) for x, y in zip(one, two)
    )
    assert all(torch.equal(x.args[0], y.args[0]) for x, y in zip(one, again))


def test_lookup_by_number_and_name() -> None:
    assert get_assignment("1").name == get_assignment("01_self_attention.ipynb").name == "01_self_attention"
    with pytest.raises(KeyError, match="known"):
        get_assignment("99")


def test_reference_raising_means_student_must_raise() -> None:
    q = get_assignment("02").question("q1")
    expected = evaluate_reference(q, Case((torch.zeros(1, 2, 10), 4)))
    assert isinstance(expected, Raised) and expected.name == "ValueError"


# ---- the grader's expected answers vs independent references -------------------------------------------


def test_attention_reference_matches_torch() -> None:
    a = get_assignment("01")
    q = a.question("q2")
    for case in _cases(a, q):
        out, weights = evaluate_reference(q, case)
        mask = case.kwargs.get("mask")
        qq, kk, vv = case.args
        want = F.scaled_dot_product_attention(qq, kk, vv, attn_mask=mask)
        if mask is not None:  # torch gives NaN for a query with no key; the course says zeros
            empty = ~mask.any(-1, keepdim=True)
            want = want.masked_fill(empty.expand_as(want[..., :1]), 0.0)
        torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)
        logits = qq @ kk.transpose(-2, -1) / math.sqrt(qq.shape[-1])
        if mask is None:
            torch.testing.assert_close(weights, torch.softmax(logits, -1), atol=1e-6, rtol=1e-5)


def test_mha_reference_matches_torch_multihead_attention() -> None:
    a = get_assignment("02")
    q = a.question("q3")
    for case in _cases(a, q):
        x, w_qkv, b_qkv, w_proj, b_proj, heads = case.args
        D = x.shape[-1]
        mha = torch.nn.MultiheadAttention(D, heads, batch_first=True)
        with torch.no_grad():
            mha.in_proj_weight.copy_(w_qkv)
            mha.in_proj_bias.copy_(b_qkv)
            mha.out_proj.weight.copy_(w_proj)
            mha.out_proj.bias.copy_(b_proj)
        mask = case.kwargs.get("mask")
        want = mha(x, x, x, attn_mask=None if mask is None else ~mask, need_weights=False)[0]
        torch.testing.assert_close(evaluate_reference(q, case), want, atol=1e-5, rtol=1e-5)
    count = a.question("q4")
    layer = torch.nn.MultiheadAttention(768, 12)
    assert evaluate_reference(count, Case((768, 12))) == sum(p.numel() for p in layer.parameters())


def test_positional_references_match_the_paper_formulas() -> None:
    a = get_assignment("03")
    n, d = 50, 16
    pe = torch.zeros(n, d, dtype=torch.float64)
    for pos in range(n):
        for i in range(d // 2):
            pe[pos, 2 * i] = math.sin(pos / 10000 ** (2 * i / d))
            pe[pos, 2 * i + 1] = math.cos(pos / 10000 ** (2 * i / d))
    torch.testing.assert_close(
        evaluate_reference(a.question("q1"), Case((n, d))), pe.float(), atol=1e-5, rtol=0
    )
    x = torch.randn(6, 4)
    rotated = evaluate_reference(a.question("q3"), Case((x,)))
    for pos in range(6):
        for i in range(2):
            phi = pos * 10000 ** (-2 * i / 4)
            c, s = math.cos(phi), math.sin(phi)
            x1, x2 = float(x[pos, 2 * i]), float(x[pos, 2 * i + 1])
            assert rotated[pos, 2 * i].item() == pytest.approx(x1 * c - x2 * s, abs=1e-5)
            assert rotated[pos, 2 * i + 1].item() == pytest.approx(x1 * s + x2 * c, abs=1e-5)


# ---- check(): right and wrong independent implementations --------------------------------------------


def attention(q, k, v, mask=None):
    """A loop-free but independent attention: einsum and an explicit exp/sum softmax."""
    s = torch.einsum("...id,...jd->...ij", q, k) * q.shape[-1] ** -0.5
    if mask is not None:
        s = torch.where(mask, s, torch.tensor(float("-inf")))
    s = s - s.amax(-1, keepdim=True).clamp_min(-1e30)
    e = torch.exp(s)
    w = e / e.sum(-1, keepdim=True).clamp_min(1e-30)
    return torch.einsum("...ij,...jd->...id", w, v), w


def test_check_passes_a_correct_implementation(capsys) -> None:
    from course_lib.grading import check

    check("q2", attention)  # the first call imports the assignments and resolves the forbidden names
    out = capsys.readouterr().out
    start = time.perf_counter()
    check("q2", attention)
    assert time.perf_counter() - start < 1.0
    assert capsys.readouterr().out == out
    assert "4/4 public points" in out and "\u2717" not in out


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda q, k, v, mask=None: attention(q * q.shape[-1] ** 0.5, k, v, mask), "1/sqrt(d_k)"),
        (lambda q, k, v, mask=None: attention(q, k, v, None if mask is None else ~mask), "mask is inverted"),
        (
            lambda q, k, v, mask=None: (attention(q, k, v, mask)[0][..., :1], attention(q, k, v, mask)[1]),
            "shape",
        ),
    ],
)
def test_check_explains_mistakes_without_the_answer(wrong, hint: str) -> None:
    a = get_assignment("01")
    report = run_public_tests(a, a.question("q2"), wrong)
    text = report.format()
    assert hint in text
    assert report.score < a.question("q2").public_points
    assert "tensor(" not in text


def test_check_shape_message_names_both_shapes() -> None:
    a = get_assignment("01")
    report = run_public_tests(
        a, a.question("q2"), lambda q, k, v, mask=None: (attention(q, k, v)[0][..., :1], None)
    )
    assert "has shape (2, 4, 1), expected (2, 4, 5)" in report.format()


def test_check_flags_the_reference_and_softmax() -> None:
    import course_lib.attention as A

    a = get_assignment("01")
    report = run_public_tests(
        a,
        a.question("q2"),
        lambda q, k, v, mask=None: A.scaled_dot_product_attention(q, k, v, mask, need_weights=True),
    )
    assert report.score == 0 and report.reference_used == "course_lib.attention.scaled_dot_product_attention"
    soft = run_public_tests(a, a.question("q1"), lambda x: x.softmax(-1))
    assert soft.score == 0 and soft.reference_used == "torch.Tensor.softmax"
    overflow = run_public_tests(a, a.question("q1"), lambda x: x.exp() / x.exp().sum(-1, keepdim=True))
    assert "subtract each row's maximum" in overflow.format()


def test_check_not_implemented(capsys) -> None:
    from course_lib.grading import check

    def causal_mask(n):
        raise NotImplementedError("use torch.tril")

    check("q3", causal_mask)
    assert "not implemented yet (NotImplementedError: use torch.tril)" in capsys.readouterr().out


# ---- tripwire --------------------------------------------------------------------------------------------


def test_tripwire_sees_aliases_reloads_builtins_and_classes() -> None:
    import course_lib.attention as A

    wire = Tripwire(
        [
            "course_lib.attention.scaled_dot_product_attention",
            "torch.nn.functional.scaled_dot_product_attention",
            "torch.nn.MultiheadAttention",
        ]
    )
    x = torch.randn(1, 3, 4)
    alias = A.scaled_dot_product_attention
    with wire:
        alias(x, x, x)
    assert wire.hit == "course_lib.attention.scaled_dot_product_attention"
    # A fresh copy of the module (what importlib.reload gives), without disturbing sys.modules.
    spec = importlib.util.spec_from_file_location("attention_copy", A.__file__)
    reloaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reloaded)
    with wire:
        reloaded.scaled_dot_product_attention(x, x, x)
    assert wire.hit == "course_lib.attention.scaled_dot_product_attention"
    with wire:
        torch._C._nn.scaled_dot_product_attention(x, x, x)
    assert wire.hit == "torch.nn.functional.scaled_dot_product_attention"
    mha = torch.nn.MultiheadAttention(4, 2, batch_first=True)
    with wire:
        mha(x, x, x)
    assert wire.hit == "torch.nn.MultiheadAttention"
    with wire:
        torch.softmax(x, -1)
    assert wire.hit is None


# ---- release ----------------------------------------------------------------------------------------------


def test_strip_solutions_uses_the_hint_and_keeps_indentation() -> None:
    source = "def f(x):\n    # BEGIN SOLUTION\n    # HINT: add one\n    return x + 1\n    # END SOLUTION\n"
    assert strip_solutions(source) == 'def f(x):\n    raise NotImplementedError("add one")\n'
    with pytest.raises(ReleaseError, match="without"):
        strip_solutions("# BEGIN SOLUTION\nx = 1\n")
    with pytest.raises(ReleaseError, match="without"):
        strip_solutions("x = 1\n# END SOLUTION\n")


def test_make_exercise_strips_everything_secret() -> None:
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("Answer: <!-- BEGIN SOLUTION -->42<!-- END SOLUTION -->"),
            nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["solution-only"]}),
            nbformat.v4.new_code_cell(
                "def f():\n    # BEGIN SOLUTION\n    return 42\n    # END SOLUTION",
                outputs=[nbformat.v4.new_output("stream", text="42")],
            ),
        ]
    )
    ex = make_exercise(nb, "demo")
    # cell ids are random hex (nbformat's), e.g. "9ec44424": not the notebook's content, so not searched
    text = re.sub(r'"id": "[0-9a-f]+"', '"id": ""', nbformat.writes(ex))
    assert "42" not in text.replace("\\n", " ")
    assert len(ex.cells) == 2 and ex.cells[1].outputs == []
    assert ex.metadata["course_lib"]["kind"] == "exercise"


def test_exercises_are_up_to_date_with_solutions() -> None:
    assert (
        main(["release", "--source", str(ROOT / "solutions"), "--dest", str(ROOT / "exercises"), "--check"])
        == 0
    )


def test_release_check_notices_a_stale_exercise(tmp_path: Path, capsys) -> None:
    src, dest = tmp_path / "solutions", tmp_path / "exercises"
    src.mkdir()
    dest.mkdir()
    nb = nbformat.read(ROOT / "solutions" / "01_self_attention.ipynb", as_version=4)
    nbformat.write(nb, src / "01_self_attention.ipynb")
    nbformat.write(
        nbformat.read(ROOT / "exercises" / "01_self_attention.ipynb", as_version=4),
        dest / "01_self_attention.ipynb",
    )
    assert main(["release", "--source", str(src), "--dest", str(dest), "--check"]) == 0
    nb.cells[-2].source += "\n# a late change"
    nbformat.write(nb, src / "01_self_attention.ipynb")
    assert main(["release", "--source", str(src), "--dest", str(dest), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err


# ---- the notebooks -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["solutions", "exercises"])
@pytest.mark.parametrize("assignment", [a.name for a in all_assignments()])
def test_notebook_layout(folder: str, assignment: str) -> None:
    a = get_assignment(assignment)
    nb = nbformat.read(ROOT / folder / f"{assignment}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source == SETUP_CELL
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    # absolute, so that the link works from Colab too
    assert f"](https://tfv-course.github.io/transformers-for-vision/book/{a.chapter}.html)" in markdown
    assert (
        f"colab.research.google.com/github/tfv-course/transformers-for-vision/blob/main/exercises/{assignment}"
        in markdown
    )
    for q in a.questions:
        heading = re.search(rf"^## {q.id.upper()}\. .*\((\d+) points?\)", markdown, re.M)
        assert heading and float(heading.group(1)) == q.points, q.id
        assert any(f"def {q.function}(" in c.source for c in code)
        assert any(c.source.strip() == f'check("{q.id}", {q.function})' for c in code)
    if folder == "solutions":
        assert all(c.execution_count is not None for c in code), "store the solutions executed"
        assert "BEGIN SOLUTION" in "".join(c.source for c in code)
    else:
        assert "BEGIN SOLUTION" not in "".join(c.source for c in code)
        assert "NotImplementedError" in "".join(c.source for c in code)
