"""Assignment 6, the Swin Transformer: windows and back, the shifted-window attention mask, the
relative position index, and patch merging."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from course_lib.complexity import msa_macs, wmsa_macs
from course_lib.positional import relative_position_index
from course_lib.swin import PatchMerging, shifted_window_mask, window_partition, window_reverse

from ..compare import matches_variant, same_shape
from ..inputs import choice, randint, randn
from ..masks import grid_position, index_comparer, mask_comparer, structure
from ..spec import Assignment, Case, Part, Question, Rule
from ..understanding import choice_question, numeric_question

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


def _partition_unchecked(x: Tensor, M: int) -> Tensor:
    B, H, W, C = x.shape
    return x.reshape(B, H // M, M, W // M, M, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, M, M, C)


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
    hints=(
        "Chapter 6, section 6.1: the same cut as ViT's patchify (chapter 5), on a channels-last map: split "
        "H and W each into (number of windows, M) first.",
        "Bring the two window-grid axes together, in front of the two within-window axes, then merge the "
        "batch and the grid into one axis.",
        "Check a 1 x 4 x 4 x 1 map with M = 2 by hand: window 1 is the top-right 2 x 2 block.",
    ),
    rules=(
        Rule(
            "Raise a `ValueError` naming the sizes when `H` or `W` is not a multiple of `window`",
            "indivisible size",
            _partition_unchecked,
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
    hints=(
        "Chapter 6, section 6.1: window_reverse(window_partition(x, M), M, H, W) must give x back: undo the "
        "steps of your Q1 in reverse order.",
        "The batch size is not an argument: let reshape infer it (-1) from the number of windows.",
        "Windows are numbered row by row within an image: check the map with a window grid that is not "
        "square, e.g. 2 x 3 windows.",
    ),
)


# ---- q3: the shifted-window mask ------------------------------------------------------------------------


def _mask_case(h: int, w: int, M: int, s: int) -> Case:
    return Case((h, w, M, s), label=f"{h} x {w} map, window {M}, shift {s}")


def _mask_reference(h: int, w: int, window: int, shift: int) -> Tensor:
    """The mask a Swin block uses: no shift when the map is no larger than the window (``min(h, w) <=
    window``), as the official code, ``course_lib.swin.SwinBlock`` and the book (section 6.8) do."""
    return shifted_window_mask(h, w, window, 0 if min(h, w) <= window else shift)


def _mask_bands_always(h: int, w: int, window: int, shift: int) -> Tensor:
    """Breaks the small-map rule: labels the bands even when the map fits in one window."""
    return shifted_window_mask(h, w, window, shift)


def _mask_float(h: int, w: int, window: int, shift: int) -> Tensor:
    return _mask_reference(h, w, window, shift).float()


def _mask_where(case: Case, index: tuple[int, ...]) -> str:
    h, w, M, s = case.args
    i, q, k = index
    return (
        f"window {i}, query {q} {grid_position(q, M)} and key {k} {grid_position(k, M)} of the window "
        f"(rows and columns inside the window)"
    )


def _mask_hidden(rng: torch.Generator) -> list[Case]:
    cases = []
    for _ in range(3):
        M = randint(rng, 2, 7)
        cases.append(_mask_case(M * randint(rng, 2, 4), M * randint(rng, 2, 4), M, randint(rng, 1, M - 1)))
    M = randint(rng, 2, 7)  # one window row: Swin does not shift
    cases.append(_mask_case(M, M * randint(rng, 1, 3), M, randint(rng, 1, M - 1)))
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


_MASK_DTYPE = "return True where attention is allowed (not the additive -100 / 0 mask)"


def _mask_structure(got: Any, expected: Any, case: Case, question: Question) -> Optional[str]:
    """Shape and dtype only (the part "shape and dtype")."""
    return structure(got, expected, question, torch.bool, _MASK_DTYPE)


Q3 = Question(
    id="q3",
    title="The shifted-window attention mask",
    function="shifted_window_mask",
    reference=_mask_reference,
    parts=(
        Part(
            "shape and dtype",
            1,
            lambda rng: [_mask_case(8, 8, 4, 2)],
            compare=_mask_structure,
            description="(num_windows, M*M, M*M), torch.bool",
        ),
        Part(
            "no shift",
            1,
            lambda rng: [_mask_case(4, 6, 2, 0), _mask_case(4, 4, 4, 2), _mask_case(3, 9, 3, 1)],
            compare=mask_comparer(_mask_where, _MASK_DTYPE),
            description="shift 0, or min(h, w) <= window (Swin does not shift): everything allowed",
        ),
        Part(
            "shifted windows",
            2,
            lambda rng: [_mask_case(8, 8, 4, 2), _mask_case(6, 9, 3, 1)],
            compare=mask_comparer(_mask_where, _MASK_DTYPE),
            description="a square and a non-square map",
        ),
        Part(
            "hidden inputs",
            2,
            _mask_hidden,
            hidden=True,
            compare=mask_comparer(_mask_where, _MASK_DTYPE),
            description="other maps, windows and shifts",
        ),
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
    hints=(
        "Chapter 6, section 6.2: after the cyclic shift, one window may hold tokens from different regions "
        "of the image. Give every position of the shifted map the label of its region first.",
        "The statement gives the three bands of each axis; cut the label map into windows as in Q1, and two "
        "tokens of a window may attend when they carry the same label.",
        "Too permissive means pairs from different regions are allowed (check the bands on the bottom and "
        "right border); too strict means the bands are too many or in the wrong place. With shift 0, or a "
        "map no larger than the window, every entry is True.",
    ),
    uses=("window_partition",),
    rules=(
        Rule("returning a **boolean** tensor", "shape and dtype", _mask_float),
        Rule(
            "`min(h, w) <= window`, Swin does not shift",
            "no shift",
            _mask_bands_always,
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


def _index_where(case: Case, index: tuple[int, ...]) -> str:
    h, w = case.args
    q, k = index
    return f"query {q} {grid_position(q, w)} and key {k} {grid_position(k, w)}"


_index_compare = index_comparer(
    _index_where, lambda case: (2 * case.args[0] - 1) * (2 * case.args[1] - 1), "it indexes a table"
)


def _index_dtype(got: Any, expected: Any, case: Case, question: Question) -> Optional[str]:
    """Shape and dtype only (the part "shape and dtype")."""
    return structure(got, expected, question, torch.long, "it indexes a table")


def _index_int32(h: int, w: int) -> Tensor:
    return relative_position_index(h, w).int()


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
        Part("square window", 1, lambda rng: [_index_case(2, 2), _index_case(7, 7)], compare=_index_compare),
        Part(
            "non-square window", 1, lambda rng: [_index_case(2, 3), _index_case(4, 1)], compare=_index_compare
        ),
        Part(
            "hidden sizes",
            1,
            lambda rng: [_index_case(randint(rng, 1, 8), randint(rng, 1, 8)) for _ in range(3)],
            hidden=True,
            compare=_index_compare,
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
    hints=(
        "Chapter 6, section 6.3: the bias table has one row per possible offset (dy, dx) between a query "
        "and a key of the window; the index says which row each pair reads.",
        "Give every token its (row, column) in the window (the statement says how), take query minus key "
        "for both coordinates at once by broadcasting, and shift each offset so that it starts at 0.",
        "Read the shifted pair as a 2-D index into a table with 2*Ww - 1 columns, as the statement's formula "
        "says, and return torch.long: the feedback shows one pair whose row is wrong.",
    ),
    rules=(Rule("`torch.long` tensor", "shape and dtype", _index_int32),),
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


def _merging_unchecked(x: Tensor, nw: Tensor, nb: Tensor, rw: Tensor) -> Tensor:
    C = x.shape[-1]
    merged = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
    return torch.nn.functional.layer_norm(merged, (4 * C,), nw, nb, eps=1e-5) @ rw.T


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
    hints=(
        "Chapter 6, section 6.4: concatenate the four tokens of every 2 x 2 neighbourhood on the channels, "
        "in the order the statement gives, then a LayerNorm and a linear map.",
        "A strided slice (step 2 along the rows and the columns) picks the same position of every "
        "neighbourhood; in the statement's order the ROW offset changes first.",
        "LayerNorm over the 4C channels with eps 1e-5, then the weight in nn.Linear's layout without a bias; "
        "an odd H or W raises ValueError naming the sizes.",
    ),
    rules=(
        Rule(
            "Raise a `ValueError` naming the sizes when `H` or `W` is odd",
            "odd resolution",
            _merging_unchecked,
        ),
    ),
)

# ---- q6 / q7: questions that make readers think (answers are values) -----------------------------------

Q6 = numeric_question(
    "q6",
    "What the windows save",
    "wmsa_saving",
    lambda: msa_macs(96, 96, 128) / wmsa_macs(96, 96, 128, 12),  # Swin-B at 384: stage 1, M = 12
    points=2,
    rtol=1e-3,
    description="Omega(MSA) / Omega(W-MSA) within a relative 1e-3",
    hints=(
        "Chapter 6, section 6.5 gives the multiply-adds of one global (MSA) and one window (W-MSA) attention "
        "layer on an h x w map of C channels with M x M windows: the paper's Eq. 1 and 2.",
        "Put in the statement's h, w, C and M and divide the first count by the second.",
        "Both counts contain the same four projections, so the ratio is smaller than the ratio of the "
        "attention terms alone; return a float.",
    ),
    forbidden=("course_lib.complexity.msa_macs", "course_lib.complexity.wmsa_macs"),
)

Q7 = choice_question(
    "q7",
    "Why the shifted windows need a mask",
    "why_the_mask",
    (
        "Without it the cost of attention would grow quadratically with the size of the map.",
        "After the cyclic shift, a window on the bottom or right border holds tokens that were not "
        "neighbours in the image.",
        "The windows on the border are smaller than M x M and are padded with zeros, which must be ignored.",
        "It keeps each token from attending to itself.",
    ),
    correct=2,
    hints=(
        "Chapter 6, section 6.2: what does the cyclic shift put into the windows on the bottom and right "
        "border?",
        "The cyclic shift changes neither the number of windows nor their size, and a token may attend to "
        "itself in every kind of attention of this course.",
        "Which pairs of tokens does your Q3 mask block, and where did those tokens sit before the roll?",
    ),
)

ASSIGNMENT = Assignment(
    name="06_swin_transformer",
    title="The Swin Transformer",
    chapter="06_swin_transformer",
    questions=(Q1, Q2, Q3, Q4, Q5, Q6, Q7),
)

__all__ = ["ASSIGNMENT"]
