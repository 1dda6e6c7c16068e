"""Assignment 4, the Transformer block and its cost: a pre-/post-norm block as a function of its
weights, the multiply-adds of self-attention and of a convolution, and where the two cross."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from course_lib.block import TransformerBlock
from course_lib.complexity import conv2d_macs, msa_macs

from ..compare import matches_variant, same_shape
from ..inputs import choice, randint, randn
from ..spec import Assignment, Case, Part, Question, Rule

BLOCK_REFERENCES = (
    "course_lib.block.TransformerBlock",
    "course_lib.multihead.MultiHeadAttention",
    "course_lib.attention.scaled_dot_product_attention",
    "torch.nn.functional.scaled_dot_product_attention",
    "torch.nn.functional.multi_head_attention_forward",
    "torch.nn.MultiheadAttention",
    "torch.nn.TransformerEncoderLayer",
    "torch.nn.TransformerEncoder",
)
# The formulas are the exercise: the library's own counters (and the FLOP counter, which measures
# the answer instead of deriving it) may be used to check an answer in the notebook, not inside it.
COST_REFERENCES = (
    "course_lib.complexity.msa_macs",
    "course_lib.complexity.wmsa_macs",
    "course_lib.complexity.attention_macs",
    "course_lib.complexity.conv2d_macs",
    "course_lib.complexity.vit_macs",
    "course_lib.complexity.swin_macs",
    "course_lib.complexity.measure_flops",
    "course_lib.complexity.measure_flop_breakdown",
    "torch.utils.flop_counter.FlopCounterMode",
)
# ---- q1: the block ------------------------------------------------------------------------------


def _block_from(params: dict[str, Tensor], num_heads: int, pre_norm: bool, eps: float = 1e-6):
    D = params["norm1.weight"].shape[0]
    hidden = params["mlp.fc1.weight"].shape[0]
    block = TransformerBlock(D, num_heads, mlp_ratio=hidden / D, norm_eps=eps, pre_norm=pre_norm)
    block.load_state_dict(params)
    return block.eval()


def _block_reference(x: Tensor, params: dict[str, Tensor], num_heads: int, pre_norm: bool = True) -> Tensor:
    return _block_from(params, num_heads, pre_norm)(x)


def _block_params(rng: torch.Generator, D: int, hidden: int) -> dict[str, Tensor]:
    """Weights at the scale of a trained model (unit-variance activations), LayerNorm affine not 1/0."""
    s, s_h = D**-0.5, hidden**-0.5
    return {
        "norm1.weight": 1.0 + randn(rng, D, scale=0.2),
        "norm1.bias": randn(rng, D, scale=0.1),
        "attn.qkv.weight": randn(rng, 3 * D, D, scale=s),
        "attn.qkv.bias": randn(rng, 3 * D, scale=0.1),
        "attn.proj.weight": randn(rng, D, D, scale=s),
        "attn.proj.bias": randn(rng, D, scale=0.1),
        "norm2.weight": 1.0 + randn(rng, D, scale=0.2),
        "norm2.bias": randn(rng, D, scale=0.1),
        "mlp.fc1.weight": randn(rng, hidden, D, scale=s),
        "mlp.fc1.bias": randn(rng, hidden, scale=0.1),
        "mlp.fc2.weight": randn(rng, D, hidden, scale=s_h),
        "mlp.fc2.bias": randn(rng, D, scale=0.1),
    }


def _block_case(rng: torch.Generator, B: int, N: int, D: int, H: int, pre_norm: bool, ratio: int = 4) -> Case:
    x = randn(rng, B, N, D)
    kwargs = {} if pre_norm else {"pre_norm": False}
    norm = "pre-norm" if pre_norm else "post-norm"
    return Case(
        (x, _block_params(rng, D, ratio * D), H), kwargs, label=f"x {tuple(x.shape)}, {H} heads, {norm}"
    )


def _block_hidden(rng: torch.Generator) -> list[Case]:
    cases = []
    for pre_norm in (True, False, True):
        H = randint(rng, 1, 4)
        D = H * randint(rng, 2, 6)
        cases.append(
            _block_case(
                rng, randint(rng, 1, 3), randint(rng, 1, 9), D, H, pre_norm, ratio=choice(rng, [2, 4])
            )
        )
    return cases


def _block_variant(
    x: Tensor,
    params: dict[str, Tensor],
    num_heads: int,
    pre_norm: bool = True,
    *,
    gelu: str = "none",
    eps: float = 1e-6,
    scale_dim: Optional[int] = None,
    flip_norm: bool = False,
    residual: bool = True,
) -> Tensor:
    """The reference with one typical mistake (for the hints)."""
    block = _block_from(params, num_heads, pre_norm ^ flip_norm, eps)
    if gelu != "none":
        block.mlp.act = torch.nn.GELU(approximate=gelu)
    if scale_dim is not None:
        block.attn.scale = scale_dim**-0.5
    if residual:
        return block(x)
    a = block.attn(block.norm1(x))[0]
    return block.mlp(block.norm2(a))


Q1 = Question(
    id="q1",
    title="A Transformer block from its weights",
    function="transformer_block",
    reference=_block_reference,
    parts=(
        Part(
            "shape",
            1,
            lambda rng: [_block_case(rng, 2, 5, 8, 2, True)],
            compare=same_shape(),
            description="(B, N, D) -> (B, N, D)",
        ),
        Part(
            "pre-norm",
            2,
            lambda rng: [_block_case(rng, 2, 5, 8, 1, True), _block_case(rng, 1, 7, 12, 3, True)],
            description="x + MHA(LN1(x)), then + MLP(LN2(.)), one and several heads",
        ),
        Part(
            "post-norm",
            1,
            lambda rng: [_block_case(rng, 2, 6, 8, 2, False)],
            description="LN1(x + MHA(x)), then LN2(. + MLP(.))",
        ),
        Part("hidden inputs", 2, _block_hidden, hidden=True, description="other sizes, heads and MLP widths"),
    ),
    forbidden=BLOCK_REFERENCES,
    diagnostics=(
        matches_variant(
            lambda *a, **k: _block_variant(*a, **k, flip_norm=True),
            "this is the other variant: pre-norm normalises the input of each sub-layer "
            "(x + MHA(LN(x))), post-norm the sum (LN(x + MHA(x)))",
        ),
        matches_variant(
            lambda *a, **k: _block_variant(*a, **k, gelu="tanh"),
            "use the exact GELU (erf form, torch's default), not the tanh approximation",
        ),
        matches_variant(
            lambda *a, **k: _block_variant(*a, **k, eps=1e-5),
            "the LayerNorms use eps = 1e-6 (ViT's value), not torch's default 1e-5",
        ),
        matches_variant(
            lambda *a, **k: _block_variant(*a, **k, scale_dim=a[0].shape[-1]),
            "scale the scores by 1/sqrt(D/H), the width of one head, not by 1/sqrt(D)",
        ),
        matches_variant(
            lambda *a, **k: _block_variant(*a, **k, residual=False),
            "each sub-layer's output is added to its input (the residual connection)",
        ),
    ),
    hints=(
        "Chapter 4, section 4.1: a block is two residual sub-layers, attention then MLP; pre-norm normalises "
        "the input of each branch, post-norm the sum after it.",
        "Write three small helpers from the params dict (LayerNorm, multi-head attention, MLP), then combine "
        "them as the statement's two formulas say.",
        "Check the details: the exact GELU, LayerNorm eps 1e-6, and the attention scale of ONE head's width.",
    ),
)


# ---- q2: the cost of self-attention ---------------------------------------------------------------


def _attention_cost_reference(num_tokens: int, dim: int) -> int:
    # Swin's Eq. (1) with h * w = num_tokens.
    return msa_macs(num_tokens, 1, dim)


def _attention_macs_float(num_tokens: int, dim: int) -> float:
    """Breaks the rule "a Python int"."""
    return float(_attention_cost_reference(num_tokens, dim))


Q2 = Question(
    id="q2",
    title="The multiply-adds of self-attention",
    function="self_attention_macs",
    reference=_attention_cost_reference,
    parts=(
        Part(
            "ViT-B/16 at 224",
            1,
            lambda rng: [Case((197, 768), label="197 tokens of width 768")],
            description="an int, the MACs of one layer",
        ),
        Part(
            "small sizes",
            1,
            lambda rng: [
                Case((1, 1), label="1 token of width 1"),
                Case((10, 4), label="10 tokens of width 4"),
            ],
        ),
        Part(
            "hidden sizes",
            1,
            lambda rng: [
                Case((randint(rng, 1, 5000), 8 * randint(rng, 1, 160)), label="other sizes") for _ in range(3)
            ],
            hidden=True,
        ),
    ),
    forbidden=COST_REFERENCES,
    diagnostics=(
        matches_variant(
            lambda n, d: 2 * n * n * d,
            "count the four projections too (q, k, v and the output), each a D x D matrix per token",
        ),
        matches_variant(
            lambda n, d: 3 * n * d * d + 2 * n * n * d,
            "don't forget the output projection: four D x D projections in all",
        ),
        matches_variant(
            lambda n, d: 4 * n * d * d + n * n * d,
            "there are two products of size n x n x D: Q K^T and the weights times V",
        ),
        matches_variant(
            lambda n, d: 2 * (4 * n * d * d + 2 * n * n * d),
            "count multiply-adds (one per multiplication), not FLOPs (two per multiply-add)",
        ),
    ),
    hints=(
        "Chapter 4, section 4.2: an (a, b) by (b, c) matrix product costs a*b*c multiply-adds. List the "
        "layer's matrix products and their shapes.",
        "There are four projections of the tokens and two products of the tokens with each other.",
        "Count multiply-adds, not FLOPs (a FLOP counter reports two per multiply-add), and return a Python "
        "int.",
    ),
    rules=(Rule("as a Python `int`", "ViT-B/16 at 224", _attention_macs_float),),
)


# ---- q3: the cost of a convolution -------------------------------------------------------------------


def _conv_reference(
    h: int, w: int, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding=None
) -> int:
    return conv2d_macs(h, w, in_channels, out_channels, kernel_size, stride=stride, padding=padding)


def _conv_hidden(rng: torch.Generator) -> list[Case]:
    cases = []
    for _ in range(2):
        k = choice(rng, [1, 3, 5, 7])
        h, w = randint(rng, k, 64), randint(rng, k, 64)
        cin, cout = randint(rng, 1, 256), randint(rng, 1, 256)
        cases.append(Case((h, w, cin, cout, k), label="'same' padding, stride 1"))
    k = randint(rng, 2, 7)
    s = randint(rng, 2, 4)
    cases.append(
        Case(
            (randint(rng, k, 80), randint(rng, k, 80), randint(rng, 1, 64), randint(rng, 1, 64), k),
            {"stride": s, "padding": randint(rng, 0, k // 2)},
            label="strided convolution with padding",
        )
    )
    return cases


def _no_output_size(h, w, cin, cout, k, stride=1, padding=None) -> int:
    return h * w * k * k * cin * cout


def _conv_macs_float(h: int, w: int, cin: int, cout: int, k: int, stride: int = 1, padding=None) -> float:
    """Breaks the rule "a Python int"."""
    return float(_conv_reference(h, w, cin, cout, k, stride=stride, padding=padding))


Q3 = Question(
    id="q3",
    title="The multiply-adds of a convolution",
    function="conv_macs",
    reference=_conv_reference,
    parts=(
        Part(
            "'same' padding",
            1,
            lambda rng: [
                Case((56, 56, 64, 64, 3), label="56 x 56 map, 64 -> 64 channels, 3 x 3"),
                Case((7, 9, 16, 32, 1), label="7 x 9 map, 16 -> 32 channels, 1 x 1"),
            ],
            description="stride 1, padding k // 2: as many outputs as inputs",
        ),
        Part(
            "stride and padding",
            1,
            lambda rng: [
                Case(
                    (224, 224, 3, 768, 16), {"stride": 16, "padding": 0}, label="ViT-B/16's patch embedding"
                ),
                Case((224, 224, 3, 64, 7), {"stride": 2, "padding": 3}, label="ResNet's first convolution"),
            ],
            description="the output size (h + 2p - k) // s + 1",
        ),
        Part("hidden sizes", 2, _conv_hidden, hidden=True, description="other maps, kernels and strides"),
    ),
    forbidden=COST_REFERENCES,
    diagnostics=(
        matches_variant(
            _no_output_size,
            "the sum runs over the OUTPUT positions: (h + 2p - k) // s + 1 rows and likewise columns",
        ),
        matches_variant(
            lambda *a, **k: 2 * _conv_reference(*a, **k),
            "count multiply-adds (one per multiplication), not FLOPs (two per multiply-add)",
        ),
        matches_variant(
            lambda *a, **k: _conv_reference(*a, **k) // (a[4] * a[4]),
            "every output takes k x k x C_in inputs: multiply by the kernel's area k^2",
        ),
    ),
    hints=(
        "Chapter 4, section 4.2: a convolution does the same work at every OUTPUT position, so first find "
        "how many output positions there are.",
        "The statement gives the number of output rows from h, the padding, the kernel and the stride, and "
        "says what padding=None means; the columns work the same way with w.",
        "Each output position costs one multiply-add per kernel weight, for every output channel; return a "
        "Python int.",
    ),
    rules=(Rule("as a Python `int`", "'same' padding", _conv_macs_float),),
)


# ---- q4: where attention overtakes the convolution ---------------------------------------------------


def _crossover_reference(channels: int, kernel_size: int = 3) -> int:
    if channels <= 0 or kernel_size <= 0 or kernel_size % 2 == 0:
        raise ValueError(f"need channels > 0 and an odd kernel size, got {channels} and {kernel_size}")
    s = 1
    while msa_macs(s, s, channels) <= conv2d_macs(s, s, channels, channels, kernel_size):
        s += 1
    return s


def _crossover_not_strict(channels: int, kernel_size: int = 3) -> int:
    s = 1
    while msa_macs(s, s, channels) < conv2d_macs(s, s, channels, channels, kernel_size):
        s += 1
    return s


def _crossover_tokens(channels: int, kernel_size: int = 3) -> int:
    return _crossover_reference(channels, kernel_size) ** 2


Q4 = Question(
    id="q4",
    title="Where attention overtakes the convolution",
    function="crossover_side",
    reference=_crossover_reference,
    parts=(
        Part(
            "3 x 3 convolution",
            1,
            lambda rng: [Case((64,), label="C = 64, 3 x 3"), Case((768,), label="C = 768, 3 x 3")],
        ),
        Part(
            "other kernels",
            1,
            lambda rng: [
                Case((96,), {"kernel_size": 7}, label="C = 96, 7 x 7"),
                Case((32,), {"kernel_size": 1}, label="C = 32, 1 x 1"),
            ],
            description="including a 1 x 1 convolution",
        ),
        Part(
            "hidden widths",
            1,
            lambda rng: (
                [Case((40,), label="a width where the costs tie exactly at one side")]
                + [
                    Case(
                        (randint(rng, 1, 1024),),
                        {"kernel_size": choice(rng, [3, 5, 7])},
                        label="other widths",
                    )
                    for _ in range(2)
                ]
            ),
            hidden=True,
        ),
    ),
    forbidden=COST_REFERENCES,
    diagnostics=(
        matches_variant(
            _crossover_not_strict,
            "'overtakes' means strictly more: where the two costs are equal, attention has not overtaken yet",
        ),
        matches_variant(
            _crossover_tokens, "return the side s of the map (s x s positions), not the number of tokens"
        ),
    ),
    hints=(
        "Chapter 4, section 4.2 (the crossover): use your Q2 and Q3 on an s x s map for s = 1, 2, 3, ... "
        "until attention costs strictly more.",
        "Attention sees n = s*s tokens of width C; the convolution maps C channels to C, 'same' padding, "
        "stride 1.",
        "Return the side s, not the number of tokens, and mind ties: an equal cost is not 'more'.",
    ),
    uses=("self_attention_macs", "conv_macs"),
)


ASSIGNMENT = Assignment(
    name="04_transformer_block_and_cost",
    title="The Transformer block and its cost",
    chapter="04_transformer_block_and_cost",
    questions=(Q1, Q2, Q3, Q4),
)

__all__ = ["ASSIGNMENT"]
