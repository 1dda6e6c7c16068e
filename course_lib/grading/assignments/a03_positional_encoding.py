"""Assignment 3, positional encoding: the sinusoidal code, its 2-D version for a grid of patches, and
rotary embeddings."""

from __future__ import annotations

import torch
from torch import Tensor

from course_lib.positional import apply_rope, sincos_2d_encoding, sinusoidal_encoding

from ..compare import matches_variant, same_shape
from ..inputs import randint, randn
from ..spec import Assignment, Case, Part, Question

POSITIONAL_REFERENCES = (
    "course_lib.positional.sinusoidal_encoding",
    "course_lib.positional.SinusoidalPositionalEncoding",
    "course_lib.positional.sincos_2d_encoding",
    "course_lib.positional.rope_frequencies",
    "course_lib.positional.apply_rope",
    "course_lib.positional._inverse_frequencies",
    "course_lib.positional.sinusoidal_shift_matrix",
)
# Angles like 60 * 1.0 carry ~4e-6 of float32 rounding; 1e-4 separates that from real mistakes.
TOL = 1e-4


def _table(n: int, dim: int, *, swap: bool = False, halves: bool = False, exponent: float = 2.0) -> Tensor:
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(dim // 2, dtype=torch.float64)
    angles = pos * 10000.0 ** (-exponent * i / dim)
    s, c = (torch.cos(angles), torch.sin(angles)) if swap else (torch.sin(angles), torch.cos(angles))
    if halves:
        return torch.cat([s, c], dim=-1).float()
    return torch.stack([s, c], dim=-1).reshape(n, dim).float()


Q1 = Question(
    id="q1",
    title="The sinusoidal position code",
    function="sinusoidal_encoding",
    reference=lambda num_positions, dim: sinusoidal_encoding(num_positions, dim),
    parts=(
        Part(
            "shape",
            1,
            lambda rng: [Case((6, 8), label="6 positions, dim 8")],
            compare=same_shape(),
            description="(num_positions, dim)",
        ),
        Part(
            "values",
            2,
            lambda rng: [
                Case((6, 8), label="6 positions, dim 8"),
                Case((50, 16), label="50 positions, dim 16"),
            ],
        ),
        Part(
            "hidden sizes",
            1,
            lambda rng: [
                Case((randint(rng, 1, 64), 2 * randint(rng, 1, 16)), label="other sizes") for _ in range(3)
            ],
            hidden=True,
        ),
    ),
    forbidden=POSITIONAL_REFERENCES,
    diagnostics=(
        matches_variant(
            lambda n, d: _table(n, d, swap=True), "sines go in the even channels and cosines in the odd ones"
        ),
        matches_variant(
            lambda n, d: _table(n, d, halves=True),
            "interleave: channel 2i is a sine and channel 2i+1 a cosine (not [all sines | all cosines])",
        ),
        matches_variant(
            lambda n, d: _table(n, d, exponent=1.0),
            "pair i uses the frequency 1 / base^(2i/dim): the exponent has 2i, not i",
        ),
    ),
    atol=TOL,
    rtol=TOL,
    hints=(
        "Chapter 3, section 3.2: channel pair i (channels 2i and 2i + 1) uses one frequency; the sine goes "
        "in the even channel, the cosine in the odd one.",
        "Compute the angles of all positions and all pairs at once, by broadcasting a column of positions "
        "against a row of frequencies.",
        "Interleave (even channels, odd channels), do not put all sines first; computing in float64 and "
        "returning float32 keeps you well inside the tolerance.",
    ),
)


def _grid_swapped(h: int, w: int, dim: int) -> Tensor:
    code = sincos_2d_encoding(h, w, dim)
    return torch.cat([code[:, dim // 2 :], code[:, : dim // 2]], dim=-1)


def _grid_column_major(h: int, w: int, dim: int) -> Tensor:
    return sincos_2d_encoding(w, h, dim).reshape(w, h, dim).transpose(0, 1).reshape(h * w, dim)


Q2 = Question(
    id="q2",
    title="A 2-D code for a grid of patches",
    function="sincos_2d_encoding",
    reference=lambda grid_h, grid_w, dim: sincos_2d_encoding(grid_h, grid_w, dim),
    parts=(
        Part(
            "shape",
            1,
            lambda rng: [Case((3, 4, 8), label="3 x 4 grid, dim 8")],
            compare=same_shape(),
            description="(grid_h * grid_w, dim)",
        ),
        Part("square grid", 1, lambda rng: [Case((4, 4, 16), label="4 x 4 grid, dim 16")]),
        Part("non-square grid", 1, lambda rng: [Case((3, 5, 8), label="3 x 5 grid, dim 8")]),
        Part(
            "hidden sizes",
            1,
            lambda rng: [
                Case((randint(rng, 1, 9), randint(rng, 1, 9), 4 * randint(rng, 1, 8)), label="other grids")
                for _ in range(3)
            ],
            hidden=True,
        ),
    ),
    forbidden=POSITIONAL_REFERENCES,
    diagnostics=(
        matches_variant(
            _grid_swapped, "the first half of the channels encodes the row, the second half the column"
        ),
        matches_variant(
            _grid_column_major, "tokens go in raster order: row by row, so token n sits at (n // w, n % w)"
        ),
    ),
    atol=TOL,
    rtol=TOL,
    hints=(
        "Chapter 3, section 3.4: half of the channels encode the token's row, half its column, each with the "
        "1-D code of Q1 at half the width.",
        "Token n sits at row n // grid_w and column n % grid_w: give it the row code of its row and the "
        "column code of its column.",
        "The row code comes first in the channels, the column code second; check a non-square grid.",
    ),
    uses=("sinusoidal_encoding",),
)


def _rope_variant(x: Tensor, *, sign: float = 1.0, offset: int = 0, halves: bool = False) -> Tensor:
    n, d = x.shape[-2], x.shape[-1]
    pos = torch.arange(n, dtype=torch.float64)[:, None] + offset
    angles = sign * pos * 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    cos, sin = torch.cos(angles).float(), torch.sin(angles).float()
    if halves:
        x1, x2 = x[..., : d // 2], x[..., d // 2 :]
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)


Q3 = Question(
    id="q3",
    title="Rotary position embedding",
    function="apply_rope",
    reference=lambda x: apply_rope(x),
    parts=(
        Part(
            "shape",
            1,
            lambda rng: [Case((randn(rng, 2, 5, 8),), label="x (2, 5, 8)")],
            compare=same_shape(),
            description="same shape as x",
        ),
        Part(
            "values",
            2,
            lambda rng: [
                Case((randn(rng, 2, 5, 8),), label="x (2, 5, 8)"),
                Case((randn(rng, 12, 4),), label="x (12, 4)"),
            ],
        ),
        Part(
            "hidden inputs",
            1,
            lambda rng: [
                Case(
                    (
                        randn(
                            rng,
                            randint(rng, 1, 2),
                            randint(rng, 1, 3),
                            randint(rng, 1, 20),
                            2 * randint(rng, 1, 8),
                        ),
                    ),
                    label="4-D (batch, heads, tokens, features)",
                )
                for _ in range(2)
            ],
            hidden=True,
        ),
    ),
    forbidden=POSITIONAL_REFERENCES,
    diagnostics=(
        matches_variant(
            lambda x: _rope_variant(x, sign=-1.0),
            "you rotate the wrong way: (x1, x2) -> (x1 cos - x2 sin, x1 sin + x2 cos)",
        ),
        matches_variant(
            lambda x: _rope_variant(x, halves=True),
            "rotate the channel pairs (2i, 2i+1), not the two halves of the features",
        ),
        matches_variant(lambda x: _rope_variant(x, offset=1), "positions start at 0"),
    ),
    atol=TOL,
    rtol=TOL,
    hints=(
        "Chapter 3, section 3.6: channel pair i of the token at position pos is a 2-D vector, rotated by the "
        "angle pos * theta_i.",
        "Take the even and the odd channels as the two coordinates of each pair, rotate, and put them back "
        "interleaved in the same order.",
        "Return the dtype of x: compute the angles in float64, then cast their cosines and sines to x.dtype.",
    ),
)

ASSIGNMENT = Assignment(
    name="03_positional_encoding",
    title="Positional encoding",
    chapter="03_positional_encoding",
    questions=(Q1, Q2, Q3),
)

__all__ = ["ASSIGNMENT"]
