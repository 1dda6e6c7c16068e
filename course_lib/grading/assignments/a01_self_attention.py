"""Assignment 1, self-attention: a stable softmax, scaled dot-product attention, the causal mask and
a single-head self-attention layer."""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import Tensor

from course_lib.attention import masked_softmax, scaled_dot_product_attention

from ..compare import close, compare_close, matches_variant, same_shape
from ..inputs import bool_mask, integer_valued, randint, randn
from ..spec import Assignment, Case, Part, Question, Rule

# Everything that computes attention (or its softmax) for you.
ATTENTION_REFERENCES = (
    "course_lib.attention.scaled_dot_product_attention",
    "course_lib.attention.masked_softmax",
    "course_lib.attention.attention_logits",
    "course_lib.multihead.MultiHeadAttention",
    "torch.nn.functional.scaled_dot_product_attention",
    "torch.nn.functional.multi_head_attention_forward",
    "torch.nn.MultiheadAttention",
)
SOFTMAX_REFERENCES = (
    "torch.softmax",
    "torch.Tensor.softmax",
    "torch.nn.functional.softmax",
    "torch.special.softmax",
    "torch.log_softmax",
    "torch.Tensor.log_softmax",
    "torch.nn.functional.log_softmax",
    "torch.nn.Softmax",
    "course_lib.attention.masked_softmax",
)


# ---- q1: softmax -------------------------------------------------------------------------------


def _softmax_values(rng: torch.Generator) -> list[Case]:
    return [
        Case((randn(rng, 4, 6),), label="x of shape (4, 6)"),
        Case((randn(rng, 2, 3, 5, scale=3.0),), label="x of shape (2, 3, 5)"),
    ]


def _softmax_large(rng: torch.Generator) -> list[Case]:
    return [Case((integer_valued(rng, 3, 5, high=1000) + 500.0,), label="entries in the hundreds")]


def _softmax_hidden(rng: torch.Generator) -> list[Case]:
    cases = []
    for _ in range(3):
        shape = [randint(rng, 1, 4) for _ in range(randint(rng, 1, 3))] + [randint(rng, 2, 9)]
        cases.append(
            Case((randn(rng, *shape, scale=float(randint(rng, 1, 20))),), label=f"shape {tuple(shape)}")
        )
    x = randn(rng, 4, 7)
    x[1, 2] = x[3, 0] = float("-inf")
    cases.append(Case((x,), label="some entries are -inf (removed)"))
    cases.append(Case((torch.full((2, 5), 7.5),), label="all entries equal"))
    return cases


def _rows_sum_to_one(case: Case, got: Any, expected: Any) -> Optional[str]:
    if not isinstance(got, Tensor) or got.shape != expected.shape or not torch.isfinite(got).all():
        return None
    if not torch.allclose(got.sum(-1).double(), torch.ones(()).double(), atol=1e-4):
        if got.dim() >= 2 and torch.allclose(got.sum(0).double(), torch.ones(()).double(), atol=1e-4):
            return "your output sums to 1 over the first dimension: normalise over the last one (dim=-1)"
        return "the rows of your output do not sum to 1: divide exp(x) by its sum over the last dimension"
    return None


def _overflow(case: Case, got: Any, expected: Any) -> Optional[str]:
    x = case.args[0]
    if isinstance(got, Tensor) and not torch.isfinite(got).all() and x[torch.isfinite(x)].abs().max() > 80:
        return "exp overflows for large entries: subtract each row's maximum before exponentiating"
    return None


Q1 = Question(
    id="q1",
    title="A numerically stable softmax",
    function="stable_softmax",
    reference=lambda x: masked_softmax(x),
    parts=(
        Part("values", 1, _softmax_values, description="matches softmax over the last dimension"),
        Part("large entries", 1, _softmax_large, description="no overflow for entries in the hundreds"),
        Part("hidden inputs", 1, _softmax_hidden, hidden=True, description="other shapes, -inf entries"),
    ),
    forbidden=SOFTMAX_REFERENCES,
    diagnostics=(_overflow, _rows_sum_to_one),
    hints=(
        "Chapter 1, section 1.2, step 2: the softmax of a row does not change when the same number is "
        "subtracted from all its entries. Choose that number so that no exponential can overflow.",
        "Reduce over the last dimension only and keep it (keepdim=True), so that the row statistic "
        "broadcasts back against x of any shape (..., n).",
        "Entries equal to -inf must come out as weight 0: check what your subtraction and the exponential do "
        "to them, and that a row of equal entries gives equal weights.",
    ),
)


# ---- q2: scaled dot-product attention ------------------------------------------------------------


def _sdpa(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor] = None, scale: Optional[float] = None):
    return scaled_dot_product_attention(q, k, v, mask, need_weights=True, scale=scale)


def _attention_shapes(rng: torch.Generator) -> list[Case]:
    q, k, v = randn(rng, 2, 4, 8), randn(rng, 2, 6, 8), randn(rng, 2, 6, 5)
    return [Case((q, k, v), label="q (2, 4, 8), k (2, 6, 8), v (2, 6, 5)")]


def _attention_values(rng: torch.Generator) -> list[Case]:
    x = randn(rng, 3, 5, 4)
    return [
        Case(
            (randn(rng, 2, 4, 8), randn(rng, 2, 6, 8), randn(rng, 2, 6, 5)),
            label="q (2, 4, 8), k (2, 6, 8), v (2, 6, 5)",
        ),
        Case((x, x, x), label="self-attention, q = k = v of shape (3, 5, 4)"),
    ]


def _attention_mask(rng: torch.Generator) -> list[Case]:
    q, k, v = randn(rng, 2, 4, 8), randn(rng, 2, 6, 8), randn(rng, 2, 6, 8)
    return [Case((q, k, v), {"mask": bool_mask(rng, 4, 6)}, label="boolean mask (4, 6) shared by the batch")]


def _attention_hidden(rng: torch.Generator) -> list[Case]:
    cases = []
    for _ in range(3):
        b, h, n, m = randint(rng, 1, 3), randint(rng, 1, 4), randint(rng, 1, 9), randint(rng, 1, 9)
        d, dv = randint(rng, 1, 16), randint(rng, 1, 16)
        args = (randn(rng, b, h, n, d), randn(rng, b, h, m, d), randn(rng, b, h, m, dv))
        kwargs = {"mask": bool_mask(rng, b, 1, n, m)} if randint(rng, 0, 1) else {}
        cases.append(
            Case(args, kwargs, label=f"4-D inputs (batch, heads, tokens, features), mask={bool(kwargs)}")
        )
    return cases


def _attention_edge(rng: torch.Generator) -> list[Case]:
    q, k, v = randn(rng, 2, 5, 8), randn(rng, 2, 5, 8), randn(rng, 2, 5, 3)
    mask = bool_mask(rng, 2, 5, 5)
    mask[0, 2] = False
    large = integer_valued(rng, 1, 4, 4), integer_valued(rng, 1, 6, 4), randn(rng, 1, 6, 3)
    return [
        Case((q, k, v), {"mask": mask}, label="a query whose keys are all masked"),
        Case(large, label="large scores (hundreds)"),
        Case((randn(rng, 1, 8), randn(rng, 7, 8), randn(rng, 7, 2)), label="a single query"),
    ]


def _weights_rows(case: Case, got: Any, expected: Any) -> Optional[str]:
    if not (isinstance(got, (tuple, list)) and len(got) == 2 and isinstance(got[1], Tensor)):
        return None
    w, w_ref = got[1], expected[1]
    if w.shape != w_ref.shape or not torch.isfinite(w).all():
        return None
    live = w_ref.sum(-1) > 0.5  # rows that are not fully masked
    if bool(torch.isclose(w.sum(-1)[live].double(), torch.ones(()).double(), atol=1e-4).all()):
        return None
    if bool(torch.isclose(w.sum(-2).double(), torch.ones(()).double(), atol=1e-4).all()):
        return "your weights sum to 1 over the queries: take the softmax over the keys (the last dimension)"
    return "the rows of your weights do not sum to 1: each query's weights over the keys are a softmax"


def _empty_rows(case: Case, got: Any, expected: Any) -> Optional[str]:
    if not (isinstance(got, (tuple, list)) and len(got) == 2 and isinstance(got[1], Tensor)):
        return None
    empty = expected[1].sum(-1) == 0
    if bool(empty.any()) and got[1].shape == expected[1].shape and not torch.isfinite(got[1][empty]).all():
        return "a query whose keys are all masked must get all-zero weights and a zero output, not NaN"
    return None


def _inverted_mask(q, k, v, mask=None):
    if mask is None:
        raise ValueError("no mask")
    return _sdpa(q, k, v, ~mask)


ATTENTION_HINTS = (
    _empty_rows,
    matches_variant(
        lambda q, k, v, mask=None: _sdpa(q, k, v, mask, scale=1.0),
        "looks like you forgot to scale the scores by 1/sqrt(d_k)",
    ),
    matches_variant(
        lambda q, k, v, mask=None: _sdpa(q, k, v, mask, scale=1.0 / q.shape[-1]),
        "looks like you divided the scores by d_k instead of sqrt(d_k)",
    ),
    matches_variant(_inverted_mask, "your mask is inverted: True means the query MAY attend to that key"),
    _weights_rows,
)


def _attention_nan_rows(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor] = None):
    """Breaks the rule on fully masked queries: leaves their 0/0 as NaN."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.exp(scores - scores.amax(-1, keepdim=True))
    weights = weights / weights.sum(-1, keepdim=True)
    return weights @ v, weights


Q2 = Question(
    id="q2",
    title="Scaled dot-product attention",
    function="attention",
    reference=lambda q, k, v, mask=None: _sdpa(q, k, v, mask),
    parts=(
        Part(
            "shapes",
            1,
            _attention_shapes,
            compare=same_shape(),
            description="output (..., N_q, d_v), weights (..., N_q, N_k)",
        ),
        Part("values", 2, _attention_values, description="output and weights match the formula"),
        Part("boolean mask", 1, _attention_mask, description="False entries of the mask get weight 0"),
        Part("hidden inputs", 1, _attention_hidden, hidden=True, description="4-D inputs, other sizes"),
        Part(
            "hidden edge cases",
            1,
            _attention_edge,
            hidden=True,
            description="fully masked query, large scores, a single query",
        ),
    ),
    forbidden=ATTENTION_REFERENCES,
    diagnostics=ATTENTION_HINTS,
    output_names=("output", "weights"),
    hints=(
        "Chapter 1, section 1.2 (the three steps) and section 1.5 (why the scale): match every query with "
        "every key, softmax over the keys, weighted sum of the values.",
        "Transpose only the last two axes of k, so that any leading (batch, head) axes pass through; the "
        "mask acts on the scores, before the softmax (section 1.4).",
        "A query whose keys are all masked is 0/0 after the softmax: make its weights and output zero, not "
        "NaN.",
    ),
    uses=("stable_softmax",),
    rules=(
        Rule(
            "A query whose keys are *all* masked gets all-zero weights and a zero output (not NaN)",
            "hidden edge cases",
            _attention_nan_rows,
        ),
    ),
)


# ---- q3: causal mask -------------------------------------------------------------------------------


def _causal_reference(n: int) -> Tensor:
    if n <= 0:
        raise ValueError(f"n={n} must be positive")
    return torch.ones(n, n, dtype=torch.bool).tril()


def _causal_float(n: int) -> Tensor:
    """Breaks the rule "boolean": 1.0 / 0.0 instead of True / False."""
    return torch.ones(n, n).tril()


Q3 = Question(
    id="q3",
    title="The causal mask",
    function="causal_mask",
    reference=_causal_reference,
    parts=(
        Part(
            "shape and dtype",
            1,
            lambda rng: [Case((4,), label="n = 4")],
            compare=lambda got, exp, case, q: _causal_dtype(got, exp, q),
            description="a (n, n) tensor of dtype torch.bool",
        ),
        Part("values", 1, lambda rng: [Case((1,), label="n = 1"), Case((5,), label="n = 5")]),
        Part(
            "hidden sizes",
            1,
            lambda rng: [Case((randint(rng, 2, 40),), label="another n") for _ in range(3)],
            hidden=True,
        ),
    ),
    forbidden=("course_lib.attention.combine_masks",),
    diagnostics=(
        matches_variant(
            lambda n: torch.ones(n, n, dtype=torch.bool).triu(),
            "your mask is transposed: row i is query i, which may see keys j <= i",
        ),
        matches_variant(
            lambda n: torch.ones(n, n, dtype=torch.bool).tril(-1),
            "a token may attend to itself: the diagonal must be True",
        ),
        matches_variant(
            lambda n: ~torch.ones(n, n, dtype=torch.bool).tril(),
            "your mask is inverted: True means the query MAY attend to that key",
        ),
    ),
    hints=(
        "Chapter 1, section 1.4: in a causal model a query sees itself and the keys before it. Which "
        "entries [i, j] are those?",
        "Return a boolean tensor (torch.bool), True where attention is allowed; torch can keep the lower or "
        "the upper triangle of a matrix for you.",
        "Check n = 3 by hand: row 0 has one True entry, row 2 has three.",
    ),
    rules=(Rule("the `(n, n)` boolean mask", "shape and dtype", _causal_float),),
)


def _causal_dtype(got: Any, expected: Any, question: Question) -> Optional[str]:
    message = compare_close(got, expected, question, shape_only=True)
    if message is None and got.dtype != torch.bool:
        return f"output has dtype {got.dtype}, expected torch.bool"
    return message


# ---- q4: self-attention layer ------------------------------------------------------------------------


def _self_attention_reference(
    x: Tensor,
    w_q: Tensor,
    w_k: Tensor,
    w_v: Tensor,
    mask: Optional[Tensor] = None,
    scale: Optional[float] = None,
) -> Tensor:
    return scaled_dot_product_attention(x @ w_q, x @ w_k, x @ w_v, mask, scale=scale)[0]


def _weights(rng: torch.Generator, d_model: int, d_k: int, d_v: int) -> tuple[Tensor, Tensor, Tensor]:
    s = d_model**-0.5
    return (
        randn(rng, d_model, d_k, scale=s),
        randn(rng, d_model, d_k, scale=s),
        randn(rng, d_model, d_v, scale=s),
    )


def _self_attention_public(rng: torch.Generator) -> list[Case]:
    return [Case((randn(rng, 2, 5, 12), *_weights(rng, 12, 4, 6)), label="x (2, 5, 12), d_k = 4, d_v = 6")]


def _self_attention_hidden(rng: torch.Generator) -> list[Case]:
    b, n, d = randint(rng, 1, 3), randint(rng, 2, 9), randint(rng, 2, 16)
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    return [
        Case(
            (randn(rng, b, n, d), *_weights(rng, d, randint(rng, 1, 8), randint(rng, 1, 8))),
            label="other sizes",
        ),
        Case((randn(rng, b, n, d), *_weights(rng, d, 4, 4)), {"mask": causal}, label="causal mask"),
    ]


Q4 = Question(
    id="q4",
    title="A single-head self-attention layer",
    function="self_attention",
    reference=_self_attention_reference,
    parts=(
        Part("shape", 1, _self_attention_public, compare=same_shape(), description="(B, N, d_v)"),
        Part("values", 1, _self_attention_public, compare=close()),
        Part(
            "hidden inputs", 1, _self_attention_hidden, hidden=True, description="other sizes, a causal mask"
        ),
    ),
    forbidden=ATTENTION_REFERENCES,
    diagnostics=(
        matches_variant(
            lambda x, wq, wk, wv, mask=None: _self_attention_reference(x, wq, wk, wv, mask, scale=1.0),
            "looks like you forgot to scale the scores by 1/sqrt(d_k)",
        ),
        matches_variant(
            lambda x, wq, wk, wv, mask=None: _self_attention_reference(
                x, wq, wk, wv, mask, scale=x.shape[-1] ** -0.5
            ),
            "scale by 1/sqrt(d_k), the width of the queries, not of x",
        ),
    ),
    hints=(
        "Chapter 1, section 1.2: queries, keys and values all come from the same tokens x, each through its "
        "own matrix applied on the right.",
        "Your attention (Q2) returns two things; this layer returns only one of them.",
        "Pass the mask on to attention unchanged.",
    ),
    uses=("attention",),
)

ASSIGNMENT = Assignment(
    name="01_self_attention",
    title="Self-attention",
    chapter="01_self_attention",
    questions=(Q1, Q2, Q3, Q4),
)

__all__ = ["ASSIGNMENT"]
