"""Assignment 5, the Vision Transformer: cutting images into patches, the patch embedding as a linear
map equal to a strided convolution, the class token and position embedding, and what the patch size
does to the sequence length and the attention cost."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from course_lib.complexity import attention_macs
from course_lib.vit import PatchEmbed, patchify

from ..compare import close, matches_variant, same_shape
from ..inputs import choice, randint, randn
from ..spec import Assignment, Case, Part, Question, Rule

# course_lib's own ViT pieces do the job; torch's tools (reshape, permute, F.unfold, matmul) do not.
VIT_REFERENCES = (
    "course_lib.vit.patchify",
    "course_lib.vit.unpatchify",
    "course_lib.vit.conv_weight_as_linear",
    "course_lib.vit.PatchEmbed",
    "course_lib.vit.VisionTransformer",
)
# Q2 is "the convolution written as a matrix product": the convolution itself is what it replaces.
CONV_REFERENCES = VIT_REFERENCES + (
    "torch.nn.functional.conv2d",
    "torch.nn.Conv2d",
    "torch.nn.functional.conv_transpose2d",
)
COST_REFERENCES = VIT_REFERENCES + (
    "course_lib.complexity.attention_macs",
    "course_lib.complexity.msa_macs",
    "course_lib.complexity.vit_macs",
    "course_lib.complexity.measure_flops",
    "course_lib.complexity.measure_flop_breakdown",
    "torch.utils.flop_counter.FlopCounterMode",
)


# ---- q1: patchify ---------------------------------------------------------------------------------


def _patchify_public(rng: torch.Generator) -> list[Case]:
    return [
        Case((randn(rng, 2, 3, 8, 8), 4), label="images (2, 3, 8, 8), patch 4"),
        Case((randn(rng, 1, 2, 6, 9), 3), label="images (1, 2, 6, 9), patch 3"),
    ]


def _patchify_hidden(rng: torch.Generator) -> list[Case]:
    cases = []
    for _ in range(3):
        p = randint(rng, 1, 5)
        B, C, gh, gw = randint(rng, 1, 3), choice(rng, [1, 3, 4]), randint(rng, 1, 5), randint(rng, 1, 5)
        cases.append(Case((randn(rng, B, C, gh * p, gw * p), p), label=f"{C} channels, patch {p}"))
    return cases


def _patchify_channel_first(images: Tensor, p: int) -> Tensor:
    """F.unfold's order inside a patch: (channel, row, column)."""
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, (H // p) * (W // p), C * p * p)


def _patchify_column_major(images: Tensor, p: int) -> Tensor:
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 4, 2, 3, 5, 1)
    return x.reshape(B, (H // p) * (W // p), p * p * C)


def _patchify_no_permute(images: Tensor, p: int) -> Tensor:
    B, C, H, W = images.shape
    return images.reshape(B, (H // p) * (W // p), p * p * C)


def _patchify_unchecked(images: Tensor, p: int) -> Tensor:
    """Breaks the rule "raise ValueError when P does not divide H or W" (reshape raises RuntimeError)."""
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(B, (H // p) * (W // p), p * p * C)


Q1 = Question(
    id="q1",
    title="Cut images into patches",
    function="patchify",
    reference=lambda images, patch_size: patchify(images, patch_size),
    parts=(
        Part(
            "shape",
            1,
            _patchify_public,
            compare=same_shape(),
            description="(B, C, H, W) -> (B, (H/P)(W/P), P*P*C)",
        ),
        Part(
            "values",
            2,
            _patchify_public,
            description="patches row by row; inside a patch (row, column, channel)",
        ),
        Part(
            "indivisible size",
            1,
            lambda rng: [
                Case((randn(rng, 1, 3, 10, 8), 4), label="height 10, patch 4"),
                Case((randn(rng, 1, 3, 8, 6), 4), label="width 6, patch 4"),
            ],
            description="raises ValueError when H or W is not a multiple of P",
        ),
        Part("hidden inputs", 1, _patchify_hidden, hidden=True, description="other sizes and channels"),
    ),
    forbidden=VIT_REFERENCES,
    diagnostics=(
        matches_variant(
            _patchify_channel_first,
            "inside a patch the values go (row, column, channel), channels last; F.unfold gives "
            "(channel, row, column): reorder its features",
        ),
        matches_variant(
            _patchify_column_major,
            "number the patches row by row: patch n sits at grid row n // (W/P), column n % (W/P)",
        ),
        matches_variant(
            _patchify_no_permute,
            "a reshape alone mixes pixels from different patches: split H and W into (grid, P) first, "
            "then permute the axes",
        ),
    ),
    hints=(
        "Chapter 5, section 5.1 cuts the image into a grid of P x P patches: split each of H and W into "
        "(number of patches, P) before anything else.",
        "A reshape alone mixes pixels of different patches: after splitting H and W, one permute puts the "
        "axes in the order the statement lists (grid first, then inside the patch, channels last), and a "
        "final reshape flattens them.",
        "Work out a 1 x 1 x 4 x 4 image with P = 2 by hand: patch 1 must be the top-right 2 x 2 block, and "
        "its 4 values must come out row by row.",
    ),
    rules=(
        Rule(
            "Raise a `ValueError` naming the sizes when `H` or `W` is not a multiple of `P`",
            "indivisible size",
            _patchify_unchecked,
        ),
    ),
)


# ---- q2: the patch embedding as a linear map ---------------------------------------------------------


def _patch_embed_reference(images: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    D, C, P, _ = weight.shape
    layer = PatchEmbed(images.shape[-2:], P, in_chans=C, embed_dim=D)
    layer.proj.load_state_dict({"weight": weight, "bias": bias})
    return layer(images)  # the strided convolution, (B, N, D)


def _embed_case(rng: torch.Generator, B: int, C: int, H: int, W: int, P: int, D: int) -> Case:
    fan_in = C * P * P
    args = (randn(rng, B, C, H, W), randn(rng, D, C, P, P, scale=fan_in**-0.5), randn(rng, D, scale=0.1))
    return Case(args, label=f"images {(B, C, H, W)}, {P} x {P} patches, D = {D}")


def _embed_hidden(rng: torch.Generator) -> list[Case]:
    cases = []
    for _ in range(3):
        P = randint(rng, 1, 8)
        C = choice(rng, [1, 3])
        cases.append(
            _embed_case(rng, randint(rng, 1, 2), C, P * randint(rng, 1, 4), P * randint(rng, 1, 4), P, 16)
        )
    return cases


def _embed_unpermuted(images: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """The kernel flattened as (channel, row, column) against (row, column, channel) patches."""
    P = weight.shape[-1]
    return patchify(images, P) @ weight.reshape(weight.shape[0], -1).T + bias


Q2 = Question(
    id="q2",
    title="The patch embedding is a linear map",
    function="patch_embed",
    reference=_patch_embed_reference,
    parts=(
        Part(
            "shape",
            1,
            lambda rng: [_embed_case(rng, 2, 3, 8, 8, 4, 6)],
            compare=same_shape(),
            description="(B, C, H, W) -> (B, N, D)",
        ),
        Part(
            "values",
            2,
            lambda rng: [_embed_case(rng, 2, 3, 8, 8, 4, 6), _embed_case(rng, 1, 1, 6, 9, 3, 5)],
            description="equals the convolution with kernel size = stride = P",
        ),
        Part("hidden inputs", 2, _embed_hidden, hidden=True, description="other patch sizes and images"),
    ),
    forbidden=CONV_REFERENCES,
    diagnostics=(
        matches_variant(
            _embed_unpermuted,
            "the kernel is (D, C, P, P), channel first, while your patches are (row, column, channel): "
            "permute the kernel to (D, P, P, C) before flattening it",
        ),
        matches_variant(
            lambda images, weight, bias: _patch_embed_reference(images, weight, torch.zeros_like(bias)),
            "add the bias",
        ),
    ),
    hints=(
        "Chapter 5, section 5.2: the convolution with kernel size = stride = P applies ONE linear map to "
        "every patch, and the kernel (D, C, P, P) holds that map's D rows.",
        "Your patches are flattened (row, column, channel), the kernel (channel, row, column): rearrange the "
        "kernel's axes into your patches' order before flattening it into a (D, P*P*C) matrix.",
        "Tokens (B, N, F) times a weight stored as (D, F) is a product with the weight's transpose; the bias "
        "(D,) is added last and broadcasts over the tokens.",
    ),
    uses=("patchify",),
)


# ---- q3: class token and position embedding ------------------------------------------------------------


def _prepend_reference(tokens: Tensor, cls_token: Tensor, pos_embed: Tensor) -> Tensor:
    B, N, D = tokens.shape
    if cls_token.shape != (1, 1, D) or pos_embed.shape != (1, N + 1, D):
        raise ValueError(
            f"for {N} tokens of width {D}, expected cls_token (1, 1, {D}) and pos_embed (1, {N + 1}, {D}), "
            f"got {tuple(cls_token.shape)} and {tuple(pos_embed.shape)}"
        )
    return torch.cat([cls_token.expand(B, 1, D), tokens], dim=1) + pos_embed


def _prepend_case(rng: torch.Generator, B: int, N: int, D: int) -> Case:
    args = (randn(rng, B, N, D), randn(rng, 1, 1, D), randn(rng, 1, N + 1, D, scale=0.5))
    return Case(args, label=f"{B} images of {N} tokens, D = {D}")


def _prepend_wrong_shapes(rng: torch.Generator) -> list[Case]:
    tokens, cls, pos = randn(rng, 2, 4, 6), randn(rng, 1, 1, 6), randn(rng, 1, 5, 6)
    return [
        Case((tokens, cls, randn(rng, 1, 4, 6)), label="pos_embed without the class token's row"),
        Case((tokens, randn(rng, 1, 6), pos), label="cls_token of shape (1, D), without the token axis"),
        Case((tokens, randn(rng, 1, 2, 6), pos), label="two class tokens, (1, 2, D)"),
    ]


def _prepend_checks_pos_only(tokens: Tensor, cls_token: Tensor, pos_embed: Tensor) -> Tensor:
    """Breaks the rule on ``cls_token``: checks ``pos_embed`` only (the trial's planted bug)."""
    B, N, D = tokens.shape
    if pos_embed.shape != (1, N + 1, D):
        raise ValueError("wrong pos_embed")
    return torch.cat([cls_token.expand(B, 1, D), tokens], dim=1) + pos_embed


def _prepend_checks_cls_only(tokens: Tensor, cls_token: Tensor, pos_embed: Tensor) -> Tensor:
    B, N, D = tokens.shape
    if cls_token.shape != (1, 1, D):
        raise ValueError("wrong cls_token")
    return torch.cat([cls_token.expand(B, 1, D), tokens], dim=1) + pos_embed


Q3 = Question(
    id="q3",
    title="Class token and position embedding",
    function="add_class_token",
    reference=_prepend_reference,
    parts=(
        Part(
            "shape",
            1,
            lambda rng: [_prepend_case(rng, 2, 4, 6)],
            compare=same_shape(),
            description="(B, N, D) -> (B, 1 + N, D)",
        ),
        Part(
            "values",
            1,
            lambda rng: [_prepend_case(rng, 2, 4, 6), _prepend_case(rng, 3, 1, 2)],
            description="the class token first, then every position gets its embedding",
        ),
        Part(
            "wrong shapes",
            1,
            _prepend_wrong_shapes,
            description="raises ValueError when cls_token is not (1, 1, D) or pos_embed is not (1, N + 1, D)",
        ),
        Part(
            "hidden inputs",
            1,
            lambda rng: [
                _prepend_case(rng, randint(rng, 1, 4), randint(rng, 1, 50), randint(rng, 1, 16))
                for _ in range(3)
            ],
            hidden=True,
        ),
    ),
    forbidden=VIT_REFERENCES,
    diagnostics=(
        matches_variant(
            lambda t, c, p: torch.cat([t, c.expand(t.shape[0], 1, -1)], dim=1) + p,
            "the class token goes first, at position 0",
        ),
        matches_variant(
            lambda t, c, p: torch.cat([c.expand(t.shape[0], 1, -1), t + p[:, 1:]], dim=1),
            "the class token gets a position embedding too: row 0 of pos_embed",
        ),
    ),
    hints=(
        "Chapter 5, section 5.3: the class token is one learned vector shared by all images: give every "
        "image of the batch a copy and put it BEFORE the patch tokens.",
        "Every position gets its own row of pos_embed, the class token's included: the result has 1 + N "
        "rows, and pos_embed's leading 1 broadcasts over the batch.",
        "Check both shapes before computing anything, and raise ValueError naming them: a wrong cls_token "
        "can broadcast silently, so the error would not come by itself.",
    ),
    rules=(
        Rule(
            "Raise a `ValueError` naming the shapes when `cls_token` is not `(1, 1, D)`",
            "wrong shapes",
            _prepend_checks_pos_only,
        ),
        Rule("or `pos_embed` is not `(1, N + 1, D)`", "wrong shapes", _prepend_checks_cls_only),
    ),
)


# ---- q4: tokens and attention cost per patch size ------------------------------------------------------


def _cost_reference(img_size: int, patch_size: int, embed_dim: int) -> tuple[int, int]:
    tokens = PatchEmbed(img_size, patch_size, in_chans=1, embed_dim=1).num_patches + 1
    return tokens, attention_macs(tokens, embed_dim)


def _cost_variant(img_size: int, patch_size: int, embed_dim: int, products: int) -> tuple[int, int]:
    tokens = (img_size // patch_size) ** 2 + 1
    return tokens, products * tokens * tokens * embed_dim


def _cost_unchecked(img_size: int, patch_size: int, embed_dim: int) -> tuple[int, int]:
    tokens = (img_size // patch_size) ** 2 + 1
    return tokens, 2 * tokens * tokens * embed_dim


def _cost_floats(img_size: int, patch_size: int, embed_dim: int) -> tuple[float, float]:
    tokens, macs = _cost_reference(img_size, patch_size, embed_dim)
    return float(tokens), float(macs)


def _cost_hint(case: Case, got: Any, expected: Any) -> Optional[str]:
    if isinstance(got, (tuple, list)) and len(got) == 2 and got[0] == expected[0] - 1:
        return "ViT adds a class token to the patches: N + 1 tokens"
    return None


Q4 = Question(
    id="q4",
    title="Patch size, sequence length and attention cost",
    function="vit_attention_cost",
    reference=_cost_reference,
    parts=(
        Part(
            "number of tokens",
            1,
            lambda rng: [
                Case((224, 16, 768), label="ViT-B/16 at 224"),
                Case((224, 32, 768), label="ViT-B/32 at 224"),
            ],
            compare=close(select=0),
            description="the first value: tokens entering the first block",
        ),
        Part(
            "attention MACs",
            1,
            lambda rng: [
                Case((224, 16, 768), label="ViT-B/16 at 224"),
                Case((384, 16, 384), label="ViT-S/16 at 384"),
            ],
            description="both values: (tokens, MACs of Q K^T and A V in one layer)",
        ),
        Part(
            "indivisible size",
            1,
            lambda rng: [Case((224, 15, 768), label="image 224, patch 15")],
            description="raises ValueError when the image size is not a multiple of the patch size",
        ),
        Part(
            "hidden sizes",
            1,
            lambda rng: [
                Case((p * randint(rng, 1, 64), p, 64 * randint(rng, 1, 16)), label="other sizes")
                for p in (choice(rng, [2, 4, 8]), choice(rng, [14, 16, 32]))
            ],
            hidden=True,
        ),
    ),
    forbidden=COST_REFERENCES,
    diagnostics=(
        _cost_hint,
        matches_variant(
            lambda s, p, d: _cost_variant(s, p, d, 1),
            "there are two products of size T x T x D: Q K^T, then the weights times V",
        ),
        matches_variant(
            lambda s, p, d: _cost_variant(s, p, d, 4),
            "count multiply-adds (one per multiplication), not FLOPs (two per multiply-add)",
        ),
    ),
    output_names=("num_tokens", "attention_macs"),
    hints=(
        "Chapter 5, section 5.5 counts the tokens of ViT for each patch size: the patches form a grid, and "
        "ViT adds one token of its own.",
        "Chapter 4, section 4.2: a (a, b) by (b, c) matrix product costs one multiply-add per term of each "
        "of its a*c dot products. Write down the shapes of the two attention products, all heads together.",
        "Both values are Python ints (use //, not /), and an image size that P does not divide raises "
        "ValueError naming the sizes.",
    ),
    rules=(
        Rule(
            "returning a tuple of two Python `int`s",
            "number of tokens",
            _cost_floats,
        ),
        Rule(
            "Raise a `ValueError` naming the sizes when `img_size` is not a multiple of `patch_size`",
            "indivisible size",
            _cost_unchecked,
        ),
    ),
    answers=("T * T * D", "2 * T * T * D", "T^2 D", "2 T^2 D", "T**2 * D"),
)

ASSIGNMENT = Assignment(
    name="05_vision_transformer",
    title="The Vision Transformer",
    chapter="05_vision_transformer",
    questions=(Q1, Q2, Q3, Q4),
)

__all__ = ["ASSIGNMENT"]
