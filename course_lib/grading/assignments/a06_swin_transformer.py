"""Assignment 6, the Swin Transformer: windows and back, the shifted-window attention mask, the
relative position index, and patch merging."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from course_lib.positional import relative_position_index
from course_lib.swin import PatchMerging, shifted_window_mask, window_partition, window_reverse

from ..compare import compare_close, matches_variant, same_shape
from ..inputs import choice, randint, randn
from ..spec import Assignment, Case, Part, Question

# Swin's building blocks; constructing a SwinBlock or WindowAttention builds the mask and the index.
SWIN_REFERENCES = (
    "course_lib.swin.window_partition",
    "course_lib.swin.window_reverse",
    "course_lib.swin.region_ids",
    "course_lib.swin.window_ids",
    "course_lib.swin.shifted_window_mask",
    "course_lib.swin.shifted_window_bias",
    "course_lib.swin.WindowAttention",
    "course_lib.swin.SwinBlock",
    "course_lib.swin.PatchMerging",
    "course_lib.positional.relative_position_index",
    "course_lib.positional.RelativePositionBias",
)


# ---- q1 / q2: windows -----------------------------------------------------------------------------------


def _map_case(rng: torch.Generator, B: int, H: int, W: int, C: int, M: int) -> Case:
    return Case((randn(rng, B, H, W, C), M), label=f"x {(B, H, W, C)}, window {M}")


def _partition_hidden(rng: torch.Generator) -> list[Case]:
    cases = []
    for _ in range(3):
        M = randint(rng, 1, 7)
        cases.append(_map_case(rng, randint(rng, 1, 3), M * randint(rng, 1, 4), M * randint(rng, 1, 4), 3, M))
    return cases


def _partition_column_major(x: Tensor, M: int) -> Tensor:
    B, H, W, C = x.shape
    return x.reshape(B, H // M, M, W // M, M, C).permute(0, 3, 1, 2, 4, 5).reshape(-1, M, M, C)


def _partition_no_permute(x: Tensor, M: int) -> Tensor:
    return x.reshape(-1, M, M, x.shape[-1])


Q1 = Question(
    id="q1",
    title="Cut a feature map into windows",
    function="window_partition",
    reference=lambda x, window: window_partition(x, window),
    parts=(
        Part(
            "shape",
            1,
            lambda rng: [_map_case(rng, 2, 4, 6, 3, 2)],
            compare=same_shape(),
            description="(B, H, W, C) -> (B * H/M * W/M, M, M, C)",
        ),
        Part(
            "values",
            1,
            lambda rng: [_map_case(rng, 2, 4, 6, 3, 2), _map_case(rng, 1, 9, 6, 2, 3)],
            description="windows row by row, image after image",
        ),
        Part(
            "indivisible size",
            1,
            lambda rng: [_map_case(rng, 1, 7, 8, 2, 4)],
            description="raises ValueError when H or W is not a multiple of M",
        ),
        Part("hidden inputs", 1, _partition_hidden, hidden=True),
    ),
    forbidden=SWIN_REFERENCES,
    diagnostics=(
        matches_variant(
            _partition_column_major,
            "number the windows row by row: window i of an image sits at window-row i // (W/M)",
        ),
        matches_variant(
            _partition_no_permute,
            "a reshape alone mixes tokens of different windows: view as (B, H/M, M, W/M, M, C), then "
            "bring the two window-grid axes together before the two within-window axes",
        ),
    ),
)


def _reverse_case(rng: torch.Generator, B: int, H: int, W: int, C: int, M: int) -> Case:
    n = B * (H // M) * (W // M)
    return Case((randn(rng, n, M, M, C), M, H, W), label=f"{n} windows of {M} x {M}, map {H} x {W}")


def _reverse_column_major(windows: Tensor, M: int, H: int, W: int) -> Tensor:
    C = windows.shape[-1]
    x = windows.reshape(-1, W // M, H // M, M, M, C)  # windows numbered column by column
    return x.permute(0, 2, 3, 1, 4, 5).reshape(-1, H, W, C)


Q2 = Question(
    id="q2",
    title="Put the windows back",
    function="window_reverse",
    reference=lambda windows, window, H, W: window_reverse(windows, window, H, W),
    parts=(
        Part(
            "shape",
            1,
            lambda rng: [_reverse_case(rng, 2, 4, 6, 3, 2)],
            compare=same_shape(),
            description="(B * nW, M, M, C) -> (B, H, W, C)",
        ),
        Part(
            "values",
            1,
            lambda rng: [_reverse_case(rng, 2, 4, 6, 3, 2), _reverse_case(rng, 3, 6, 9, 1, 3)],
            description="the inverse of window_partition",
        ),
        Part(
            "hidden inputs",
            1,
            lambda rng: [
                _reverse_case(
                    rng,
                    randint(rng, 1, 3),
                    7 * randint(rng, 1, 2),
                    7 * randint(rng, 1, 3),
                    randint(rng, 1, 4),
                    7,
                ),
                _reverse_case(rng, 1, 8, 8, 2, 8),
            ],
            hidden=True,
            description="other sizes, one window per image",
        ),
    ),
    forbidden=SWIN_REFERENCES,
    diagnostics=(
        matches_variant(
            _reverse_column_major,
            "windows are numbered row by row: window i of an image goes to window-row i // (W/M)",
        ),
        matches_variant(
            lambda w, M, H, W: w.reshape(-1, H, W, w.shape[-1]),
            "a reshape alone puts the tokens of one window on one row of the map: view the windows as "
            "(B, H/M, W/M, M, M, C) and permute before reshaping",
        ),
    ),
)


# ---- q3: the shifted-window mask ------------------------------------------------------------------------


def _mask_case(h: int, w: int, M: int, s: int) -> Case:
    return Case((h, w, M, s), label=f"{h} x {w} map, window {M}, shift {s}")


def _mask_hidden(rng: torch.Generator) -> list[Case]:
    cases = []
    for _ in range(3):
        M = randint(rng, 2, 7)
        cases.append(_mask_case(M * randint(rng, 1, 4), M * randint(rng, 1, 4), M, randint(rng, 1, M - 1)))
    return cases


def _mask_all_true(h: int, w: int, M: int, s: int) -> Tensor:
    n = (h // M) * (w // M)
    return torch.ones(n, M * M, M * M, dtype=torch.bool)


def _mask_unshifted_windows(h: int, w: int, M: int, s: int) -> Tensor:
    """Labels in image coordinates (no roll): the regions of the wrong windows."""
    ids = torch.zeros(h, w, dtype=torch.long)
    bands = ((0, s), (s, None))
    cnt = 0
    for hs in bands:
        for ws in bands:
            ids[slice(*hs), slice(*ws)] = cnt
            cnt += 1
    per_window = window_partition(ids.view(1, h, w, 1), M).reshape(-1, M * M)
    return per_window.unsqueeze(2) == per_window.unsqueeze(1)


def _mask_dtype(got: Any, expected: Any, case: Case, question: Question) -> Optional[str]:
    message = compare_close(got, expected, question, shape_only=True)
    if message is None and got.dtype != torch.bool:
        return (
            f"output has dtype {got.dtype}, expected torch.bool: return True where attention is allowed "
            f"(not the additive -100 / 0 mask)"
        )
    return message


Q3 = Question(
    id="q3",
    title="The shifted-window attention mask",
    function="shifted_window_mask",
    reference=lambda h, w, window, shift: shifted_window_mask(h, w, window, shift),
    parts=(
        Part(
            "shape and dtype",
            1,
            lambda rng: [_mask_case(8, 8, 4, 2)],
            compare=_mask_dtype,
            description="(num_windows, M*M, M*M), torch.bool",
        ),
        Part("no shift", 1, lambda rng: [_mask_case(4, 6, 2, 0)], description="shift 0: everything allowed"),
        Part(
            "shifted windows",
            2,
            lambda rng: [_mask_case(8, 8, 4, 2), _mask_case(6, 9, 3, 1)],
            description="a square and a non-square map",
        ),
        Part("hidden inputs", 2, _mask_hidden, hidden=True, description="other maps, windows and shifts"),
    ),
    forbidden=SWIN_REFERENCES,
    diagnostics=(
        matches_variant(
            lambda h, w, M, s: ~shifted_window_mask(h, w, M, s),
            "your mask is inverted: True means the query MAY attend to the key",
        ),
        matches_variant(
            _mask_all_true,
            "after the cyclic shift, the windows on the bottom and right border hold tokens from opposite "
            "sides of the image: those pairs must not attend to each other",
        ),
        matches_variant(
            _mask_unshifted_windows,
            "label the regions in the coordinates of the SHIFTED map (after torch.roll by -shift): the "
            "border bands are the last `window` and the last `shift` rows and columns",
        ),
    ),
)


# ---- q4: the relative position index ------------------------------------------------------------------


def _index_case(h: int, w: int) -> Case:
    return Case((h, w), label=f"{h} x {w} window")


def _index_variant(
    h: int, w: int, *, key_minus_query: bool = False, row_stride: Optional[int] = None
) -> Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :]
    if key_minus_query:
        rel = -rel
    dy, dx = rel[0] + h - 1, rel[1] + w - 1
    return dy * (2 * w - 1 if row_stride is None else row_stride) + dx


def _index_dtype(got: Any, expected: Any, case: Case, question: Question) -> Optional[str]:
    message = compare_close(got, expected, question, shape_only=True)
    if message is None and got.dtype != torch.long:
        return f"output has dtype {got.dtype}, expected torch.long (torch.int64): it indexes a table"
    return message


Q4 = Question(
    id="q4",
    title="The relative position index",
    function="relative_position_index",
    reference=lambda window_h, window_w: relative_position_index(window_h, window_w),
    parts=(
        Part(
            "shape and dtype",
            1,
            lambda rng: [_index_case(3, 3)],
            compare=_index_dtype,
            description="(Wh*Ww, Wh*Ww), torch.long",
        ),
        Part("square window", 1, lambda rng: [_index_case(2, 2), _index_case(7, 7)]),
        Part("non-square window", 1, lambda rng: [_index_case(2, 3), _index_case(4, 1)]),
        Part(
            "hidden sizes",
            1,
            lambda rng: [_index_case(randint(rng, 1, 8), randint(rng, 1, 8)) for _ in range(3)],
            hidden=True,
        ),
    ),
    forbidden=SWIN_REFERENCES,
    diagnostics=(
        matches_variant(
            lambda h, w: _index_variant(h, w, key_minus_query=True),
            "the offset is the query's position minus the key's (row i is the query)",
        ),
        matches_variant(
            lambda h, w: _index_variant(h, w, row_stride=2 * h - 1),
            "multiply the row offset by the number of distinct column offsets, 2*Ww - 1",
        ),
        matches_variant(
            lambda h, w: _index_variant(h, w, row_stride=w),
            "shifted column offsets run from 0 to 2*Ww - 2: multiply the row offset by 2*Ww - 1",
        ),
    ),
)


# ---- q5: patch merging ------------------------------------------------------------------------------------


def _merging_reference(x: Tensor, norm_weight: Tensor, norm_bias: Tensor, reduction_weight: Tensor) -> Tensor:
    C = x.shape[-1]
    layer = PatchMerging(C, out_dim=reduction_weight.shape[0])
    layer.load_state_dict(
        {"norm.weight": norm_weight, "norm.bias": norm_bias, "reduction.weight": reduction_weight}
    )
    return layer(x)


def _merging_case(rng: torch.Generator, B: int, H: int, W: int, C: int) -> Case:
    args = (
        randn(rng, B, H, W, C),
        1.0 + randn(rng, 4 * C, scale=0.2),
        randn(rng, 4 * C, scale=0.1),
        randn(rng, 2 * C, 4 * C, scale=(4 * C) ** -0.5),
    )
    return Case(args, label=f"x {(B, H, W, C)}")


def _merging_manual(
    x: Tensor, nw: Tensor, nb: Tensor, rw: Tensor, *, row_major: bool = False, eps: float = 1e-5
) -> Tensor:
    """Patch merging written out, with a typical mistake: the 2x2 neighbourhood concatenated in
    reading order (0,0), (0,1), (1,0), (1,1), or ViT's LayerNorm eps."""
    B, H, W, C = x.shape
    x = x.reshape(B, H // 2, 2, W // 2, 2, C)
    x = x.permute(0, 1, 3, 2, 4, 5) if row_major else x.permute(0, 1, 3, 4, 2, 5)
    x = x.reshape(B, H // 2, W // 2, 4 * C)
    return torch.nn.functional.layer_norm(x, (4 * C,), nw, nb, eps=eps) @ rw.T


Q5 = Question(
    id="q5",
    title="Patch merging",
    function="patch_merging",
    reference=_merging_reference,
    parts=(
        Part(
            "shape",
            1,
            lambda rng: [_merging_case(rng, 2, 4, 6, 3)],
            compare=same_shape(),
            description="(B, H, W, C) -> (B, H/2, W/2, 2C)",
        ),
        Part(
            "values",
            2,
            lambda rng: [_merging_case(rng, 2, 4, 6, 3), _merging_case(rng, 1, 2, 2, 5)],
            description="Swin's concatenation order, LayerNorm over 4C, linear map without bias",
        ),
        Part(
            "odd resolution",
            1,
            lambda rng: [_merging_case(rng, 1, 5, 4, 2)],
            description="raises ValueError when H or W is odd",
        ),
        Part(
            "hidden inputs",
            1,
            lambda rng: [
                _merging_case(
                    rng,
                    randint(rng, 1, 3),
                    2 * randint(rng, 1, 7),
                    2 * randint(rng, 1, 7),
                    choice(rng, [1, 4, 8]),
                )
                for _ in range(2)
            ],
            hidden=True,
        ),
    ),
    forbidden=SWIN_REFERENCES,
    diagnostics=(
        matches_variant(
            lambda *a: _merging_manual(*a, row_major=True),
            "Swin concatenates x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]: the ROW offset "
            "changes first",
        ),
        matches_variant(
            lambda *a: _merging_manual(*a, eps=1e-6),
            "Swin's LayerNorms use eps = 1e-5 (torch's default), not ViT's 1e-6",
        ),
    ),
)

ASSIGNMENT = Assignment(
    name="06_swin_transformer",
    title="The Swin Transformer",
    chapter="06_swin_transformer",
    questions=(Q1, Q2, Q3, Q4, Q5),
)

__all__ = ["ASSIGNMENT"]
