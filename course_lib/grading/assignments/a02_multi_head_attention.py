"""Assignment 2, multi-head attention: split and merge heads, a functional multi-head attention with
given weights, and its parameter count."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from course_lib.multihead import MultiHeadAttention, merge_heads, split_heads

from ..compare import matches_variant, same_shape
from ..inputs import bool_mask, randint, randn
from ..spec import Assignment, Case, Part, Question, Rule

MHA_REFERENCES = (
    "course_lib.multihead.MultiHeadAttention",
    "course_lib.multihead.split_heads",
    "course_lib.multihead.merge_heads",
    "torch.nn.MultiheadAttention",
    "torch.nn.functional.multi_head_attention_forward",
)


# ---- q1 / q2: split and merge ----------------------------------------------------------------------


def _split_public(rng: torch.Generator) -> list[Case]:
    return [
        Case((randn(rng, 2, 3, 8), 2), label="x (2, 3, 8), 2 heads"),
        Case((randn(rng, 1, 4, 12), 3), label="x (1, 4, 12), 3 heads"),
    ]


def _split_hidden(rng: torch.Generator) -> list[Case]:
    cases = []
    for _ in range(3):
        h, d = randint(rng, 1, 6), randint(rng, 1, 5)
        cases.append(Case((randn(rng, randint(rng, 1, 3), randint(rng, 1, 7), h * d), h), label=f"{h} heads"))
    return cases


def _split_wrong_order(x: Tensor, num_heads: int) -> Tensor:
    B, N, D = x.shape
    return x.reshape(B, N, D // num_heads, num_heads).permute(0, 3, 1, 2)


def _split_no_transpose(x: Tensor, num_heads: int) -> Tensor:
    B, N, D = x.shape
    return x.reshape(B, num_heads, N, D // num_heads)


def _split_unchecked(x: Tensor, num_heads: int) -> Tensor:
    """Breaks the rule "raise ValueError when D % H != 0" (reshape raises RuntimeError instead)."""
    B, N, D = x.shape
    return x.reshape(B, N, num_heads, D // num_heads).transpose(1, 2)


Q1 = Question(
    id="q1",
    title="Split the features into heads",
    function="split_heads",
    reference=split_heads,
    parts=(
        Part("shape", 1, _split_public, compare=same_shape(), description="(B, N, D) -> (B, H, N, D/H)"),
        Part("values", 1, _split_public, description="head h gets features h*D/H ... (h+1)*D/H - 1"),
        Part(
            "indivisible width",
            1,
            lambda rng: [Case((randn(rng, 2, 3, 10), 4), label="D = 10, 4 heads")],
            description="raises ValueError when D is not divisible by H",
        ),
        Part("hidden inputs", 1, _split_hidden, hidden=True),
    ),
    forbidden=MHA_REFERENCES,
    diagnostics=(
        matches_variant(
            _split_wrong_order,
            "head h must get the consecutive features h*d ... (h+1)*d - 1: "
            "reshape to (B, N, H, d) before moving the head axis",
        ),
        matches_variant(
            _split_no_transpose,
            "a reshape alone mixes tokens and heads: reshape to (B, N, H, d), "
            "then transpose the token and head axes",
        ),
    ),
    hints=(
        "Chapter 2, section 2.1 (split, attend, merge, project): head h owns a block of consecutive "
        "features of every token. First check that D splits evenly into the heads.",
        "Split the feature axis into (heads, features per head), then move the head axis in front of the "
        "token axis.",
        "A reshape straight to (B, H, N, D/H) hands each head features of several tokens: the token axis "
        "must stay where it is until the heads are split off.",
    ),
    rules=(
        Rule(
            "Raise a `ValueError` naming the sizes when `D` is not divisible by `H`",
            "indivisible width",
            _split_unchecked,
        ),
    ),
)


def _merge_public(rng: torch.Generator) -> list[Case]:
    return [
        Case((randn(rng, 2, 4, 3, 5),), label="x (2, 4, 3, 5)"),
        Case((randn(rng, 1, 1, 6, 2),), label="one head"),
    ]


def _merge_hidden(rng: torch.Generator) -> list[Case]:
    return [
        Case(
            (randn(rng, randint(rng, 1, 3), randint(rng, 1, 6), randint(rng, 1, 7), randint(rng, 1, 6)),),
            label="other sizes",
        )
        for _ in range(3)
    ]


Q2 = Question(
    id="q2",
    title="Merge the heads back",
    function="merge_heads",
    reference=merge_heads,
    parts=(
        Part("shape", 1, _merge_public, compare=same_shape(), description="(B, H, N, d) -> (B, N, H*d)"),
        Part("values", 1, _merge_public, description="the inverse of split_heads"),
        Part("hidden inputs", 1, _merge_hidden, hidden=True),
    ),
    forbidden=MHA_REFERENCES,
    diagnostics=(
        matches_variant(
            lambda x: x.reshape(x.shape[0], x.shape[2], -1),
            "move the head axis next to the features (transpose(1, 2)) before reshaping",
        ),
    ),
    hints=(
        "Chapter 2, section 2.1: merge_heads(split_heads(x, H)) must give x back, so do the steps of your "
        "split_heads backwards.",
        "Bring the token axis back in front of the head axis, then flatten the last two axes.",
        "After a transpose the tensor is not contiguous: use reshape (which copies when it must), not view.",
    ),
)


# ---- q3: multi-head attention -------------------------------------------------------------------------


def _mha_reference(
    x: Tensor,
    w_qkv: Tensor,
    b_qkv: Tensor,
    w_proj: Tensor,
    b_proj: Tensor,
    num_heads: int,
    mask: Optional[Tensor] = None,
    *,
    scale_dim: Optional[int] = None,
    project: bool = True,
) -> Tensor:
    D = x.shape[-1]
    layer = MultiHeadAttention(D, num_heads)
    with torch.no_grad():
        layer.qkv.weight.copy_(w_qkv)
        layer.qkv.bias.copy_(b_qkv)
        layer.proj.weight.copy_(w_proj if project else torch.eye(D))
        layer.proj.bias.copy_(b_proj if project else torch.zeros(D))
        if scale_dim is not None:
            layer.scale = scale_dim**-0.5
        return layer.eval()(x, mask=mask)[0]


def _mha_args(rng: torch.Generator, B: int, N: int, D: int, H: int) -> tuple:
    s = D**-0.5
    return (
        randn(rng, B, N, D),
        randn(rng, 3 * D, D, scale=s),
        randn(rng, 3 * D, scale=0.1),
        randn(rng, D, D, scale=s),
        randn(rng, D, scale=0.1),
        H,
    )


Q3 = Question(
    id="q3",
    title="Multi-head self-attention",
    function="multi_head_attention",
    reference=_mha_reference,
    parts=(
        Part(
            "shape",
            1,
            lambda rng: [Case(_mha_args(rng, 2, 5, 8, 2), label="x (2, 5, 8), 2 heads")],
            compare=same_shape(),
            description="(B, N, D)",
        ),
        Part("one head", 1, lambda rng: [Case(_mha_args(rng, 2, 5, 8, 1), label="x (2, 5, 8), 1 head")]),
        Part(
            "several heads", 1, lambda rng: [Case(_mha_args(rng, 2, 6, 12, 4), label="x (2, 6, 12), 4 heads")]
        ),
        Part(
            "boolean mask",
            1,
            lambda rng: [
                Case(_mha_args(rng, 2, 5, 8, 2), {"mask": bool_mask(rng, 5, 5)}, label="boolean mask (5, 5)")
            ],
        ),
        Part(
            "hidden inputs",
            2,
            lambda rng: [
                Case(
                    _mha_args(rng, randint(rng, 1, 3), randint(rng, 1, 8), 4 * randint(rng, 1, 4), 4),
                    label="other sizes",
                ),
                Case(_mha_args(rng, 1, 4, 6, 6), label="head width 1"),
                Case(
                    _mha_args(rng, 2, 7, 16, 2),
                    {"mask": torch.ones(7, 7, dtype=torch.bool).tril()},
                    label="causal mask",
                ),
            ],
            hidden=True,
        ),
    ),
    forbidden=MHA_REFERENCES,
    diagnostics=(
        matches_variant(
            lambda *a, mask=None: _mha_reference(*a, mask=mask, project=False),
            "looks like you forgot the output projection (w_proj, b_proj)",
        ),
        matches_variant(
            lambda *a, mask=None: _mha_reference(*a, mask=mask, scale_dim=a[0].shape[-1]),
            "scale by 1/sqrt(D/H), the width of one head, not by 1/sqrt(D)",
        ),
    ),
    hints=(
        "Chapter 2, section 2.1: project to q, k, v with the packed weight, split each into heads, attend in "
        "every head, merge the heads, project.",
        "The packed projection holds q, k and v one after the other along the last axis, each D wide; the "
        "scale uses the width of ONE head.",
        "The mask acts on every head's scores before the softmax; True means the query may attend.",
    ),
    uses=("split_heads", "merge_heads"),
)


# ---- q4: parameter count ---------------------------------------------------------------------------------


def _count(embed_dim: int, num_heads: int, qkv_bias: bool = True) -> int:
    layer = MultiHeadAttention(embed_dim, num_heads, qkv_bias=qkv_bias)
    return sum(p.numel() for p in layer.parameters())


def _count_float(embed_dim: int, num_heads: int, qkv_bias: bool = True) -> float:
    """Breaks the rule "a Python int"."""
    return float(_count(embed_dim, num_heads, qkv_bias))


Q4 = Question(
    id="q4",
    title="Counting the parameters",
    function="mha_num_params",
    reference=_count,
    parts=(
        Part(
            "ViT-B",
            1,
            lambda rng: [
                Case((768, 12), label="D = 768, 12 heads"),
                Case((64, 4), {"qkv_bias": False}, label="no qkv bias"),
            ],
        ),
        Part(
            "hidden sizes",
            1,
            lambda rng: [
                Case(
                    (8 * randint(rng, 1, 64), 8), {"qkv_bias": bool(randint(rng, 0, 1))}, label="other widths"
                )
                for _ in range(3)
            ],
            hidden=True,
        ),
    ),
    forbidden=MHA_REFERENCES,
    diagnostics=(
        matches_variant(lambda D, H, qkv_bias=True: 4 * D * D, "count the biases too"),
        matches_variant(
            lambda D, H, qkv_bias=True: 4 * D * D + 4 * D,
            "with qkv_bias=False only the output projection has a bias",
        ),
    ),
    hints=(
        "Chapter 2, section 2.2: add up the sizes of w_qkv, b_qkv (only when qkv_bias), w_proj and b_proj.",
        "Splitting into heads reshapes the same matrices: the count does not depend on num_heads.",
        "Return a Python int, not a float or a tensor.",
    ),
    rules=(Rule("as a Python `int`", "ViT-B", _count_float),),
)

ASSIGNMENT = Assignment(
    name="02_multi_head_attention",
    title="Multi-head attention",
    chapter="02_multi_head_attention",
    questions=(Q1, Q2, Q3, Q4),
)
