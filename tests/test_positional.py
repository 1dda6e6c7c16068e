"""Position encodings against the papers' formulas (written out with plain Python here) and against timm."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import tol
from hypothesis import given
from hypothesis import strategies as st
from timm.layers import resample_abs_pos_embed as timm_resample
from timm.models.swin_transformer import WindowAttention, get_relative_position_index

from course_lib.positional import (
    LearnedPositionalEmbedding,
    RelativePositionBias,
    SinusoidalPositionalEncoding,
    apply_rope,
    relative_position_index,
    resample_abs_pos_embed,
    rope_frequencies,
    sincos_2d_encoding,
    sinusoidal_encoding,
    sinusoidal_shift_matrix,
)

# ---------------------------------------------------------------------------------------------------
# Sinusoidal (Vaswani et al. 2017, §3.5)
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("n", "dim", "base"), [(9, 6, 10000.0), (50, 16, 10000.0), (7, 4, 100.0)])
def test_sinusoidal_equals_the_paper_formula(n: int, dim: int, base: float, dtype: torch.dtype) -> None:
    expected = [[0.0] * dim for _ in range(n)]
    for pos in range(n):
        for i in range(dim // 2):
            expected[pos][2 * i] = math.sin(pos / base ** (2 * i / dim))
            expected[pos][2 * i + 1] = math.cos(pos / base ** (2 * i / dim))
    pe = sinusoidal_encoding(n, dim, base, dtype=dtype)
    assert pe.shape == (n, dim) and pe.dtype == dtype
    torch.testing.assert_close(pe, torch.tensor(expected, dtype=dtype), **tol(dtype))


@pytest.mark.parametrize("k", [1, 3, 17, -5, 0])
def test_shift_matrix_moves_every_position_by_k(k: int) -> None:
    dim, n = 32, 300
    pe = sinusoidal_encoding(n + 40, dim)
    m = sinusoidal_shift_matrix(k, dim)
    pos = torch.arange(20, n)
    # PE(pos + k) = M_k PE(pos), the same M_k for every pos.
    torch.testing.assert_close(pe[pos] @ m.T, pe[pos + k], atol=1e-5, rtol=0)
    # M_k is a rotation, and shifting by j then by k is shifting by j + k.
    m64 = sinusoidal_shift_matrix(k, dim, dtype=torch.float64)
    torch.testing.assert_close(m64 @ m64.T, torch.eye(dim, dtype=torch.float64))
    torch.testing.assert_close(
        sinusoidal_shift_matrix(4, dim, dtype=torch.float64) @ m64,
        sinusoidal_shift_matrix(k + 4, dim, dtype=torch.float64),
    )


def test_sinusoidal_module_adds_a_non_persistent_table() -> None:
    module = SinusoidalPositionalEncoding(12, max_len=30)
    x = torch.randn(2, 10, 12)
    torch.testing.assert_close(module(x), x + sinusoidal_encoding(10, 12))
    assert "pe" not in module.state_dict()
    assert module.pe.shape == (30, 12)


def test_learned_embedding_shape_init_and_use() -> None:
    module = LearnedPositionalEmbedding(200, 64)
    assert module.pos_embed.shape == (1, 200, 64)
    assert set(module.state_dict()) == {"pos_embed"}
    assert 0.018 < module.pos_embed.std().item() < 0.022
    x = torch.randn(3, 50, 64)
    torch.testing.assert_close(module(x), x + module.pos_embed[:, :50])


# ---------------------------------------------------------------------------------------------------
# 2-D sin-cos
# ---------------------------------------------------------------------------------------------------


def _mae_1d(dim: int, pos: np.ndarray) -> np.ndarray:
    """MAE's ``get_1d_sincos_pos_embed_from_grid`` (facebookresearch/mae, util/pos_embed.py)."""
    omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    out = np.einsum("m,d->md", pos.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


@pytest.mark.parametrize(("h", "w", "dim"), [(4, 4, 16), (3, 5, 8), (14, 14, 64)])
def test_sincos_2d_structure(h: int, w: int, dim: int) -> None:
    pe = sincos_2d_encoding(h, w, dim, dtype=torch.float64)
    assert pe.shape == (h * w, dim)
    grid = pe.reshape(h, w, dim)
    half = dim // 2
    # Tokens in the same row share the first half, tokens in the same column the second.
    assert torch.equal(grid[:, :, :half], grid[:, :1, :half].expand(h, w, half))
    assert torch.equal(grid[:, :, half:], grid[:1, :, half:].expand(h, w, half))
    # Each half is MAE's 1-D code of the row / column, up to the order of the channels
    # (MAE: [sin ... | cos ...]; here sin and cos interleaved as in the 1-D paper formula).
    rows = torch.from_numpy(_mae_1d(half, np.arange(h)))
    cols = torch.from_numpy(_mae_1d(half, np.arange(w)))
    order = torch.cat([torch.arange(0, half, 2), torch.arange(1, half, 2)])
    torch.testing.assert_close(grid[:, 0, :half][:, order], rows, **tol(torch.float64))
    torch.testing.assert_close(grid[0, :, half:][:, order], cols, **tol(torch.float64))
    # Every token gets its own code.
    assert torch.cdist(pe, pe).add(torch.eye(h * w, dtype=torch.float64)).min() > 1e-3


# ---------------------------------------------------------------------------------------------------
# Swin's relative position index and bias
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("wh", "ww"), [(1, 1), (2, 2), (3, 5), (7, 7), (4, 1)])
def test_relative_position_index_brute_force_and_timm(wh: int, ww: int) -> None:
    n = wh * ww
    expected = torch.empty(n, n, dtype=torch.long)
    for i in range(n):
        yi, xi = divmod(i, ww)
        for j in range(n):
            yj, xj = divmod(j, ww)
            expected[i, j] = (yi - yj + wh - 1) * (2 * ww - 1) + (xi - xj + ww - 1)
    index = relative_position_index(wh, ww)
    assert index.dtype == torch.long
    assert torch.equal(index, expected)
    assert torch.equal(index, get_relative_position_index(wh, ww))
    # The table is exactly used up: every offset occurs.
    assert torch.equal(index.unique(), torch.arange((2 * wh - 1) * (2 * ww - 1)))


@pytest.mark.parametrize("window", [7, (3, 5)])
def test_relative_position_bias_equals_timm_window_attention(window) -> None:
    heads = 3
    ours = RelativePositionBias(window, heads)
    wh, ww = (window, window) if isinstance(window, int) else window
    assert ours.relative_position_bias_table.shape == ((2 * wh - 1) * (2 * ww - 1), heads)
    assert "relative_position_index" not in ours.state_dict()
    assert 0.015 < ours.relative_position_bias_table.std().item() < 0.025
    timm_attn = WindowAttention(12, heads, window_size=window)
    with torch.no_grad():
        timm_attn.relative_position_bias_table.copy_(ours.relative_position_bias_table)
    bias = ours()
    assert bias.shape == (heads, wh * ww, wh * ww)
    assert torch.equal(bias, timm_attn._get_rel_pos_bias()[0])


# ---------------------------------------------------------------------------------------------------
# RoPE (Su et al. 2021)
# ---------------------------------------------------------------------------------------------------


def test_rope_frequencies_formula() -> None:
    freqs = rope_frequencies(8, base=100.0, dtype=torch.float64)
    expected = torch.tensor([100.0 ** (-2 * i / 8) for i in range(4)], dtype=torch.float64)
    torch.testing.assert_close(freqs, expected, **tol(torch.float64))


def test_rope_equals_complex_multiplication() -> None:
    # RoFormer Eq. (34): pair (x_2i, x_2i+1) as the complex number x_2i + i x_2i+1, times e^{i m theta_i}.
    x = torch.randn(2, 3, 11, 16, dtype=torch.float64)
    positions = torch.tensor([0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89])
    theta = torch.tensor([10000.0 ** (-2 * i / 16) for i in range(8)], dtype=torch.float64)
    z = torch.view_as_complex(x.reshape(2, 3, 11, 8, 2).contiguous())
    rotated = z * torch.polar(torch.ones(11, 8, dtype=torch.float64), positions[:, None] * theta)
    expected = torch.view_as_real(rotated).reshape(x.shape)
    torch.testing.assert_close(apply_rope(x, positions), expected, **tol(torch.float64))
    torch.testing.assert_close(apply_rope(x), apply_rope(x, torch.arange(11)), rtol=0, atol=0)
    torch.testing.assert_close(apply_rope(x).norm(dim=-1), x.norm(dim=-1), **tol(torch.float64))
    assert apply_rope(x.float()).dtype == torch.float32


@given(
    d=st.sampled_from([2, 8, 32]),
    m=st.integers(0, 500),
    n=st.integers(0, 500),
    shift=st.integers(-200, 200),
    seed=st.integers(0, 2**31 - 1),
)
def test_rope_scores_depend_only_on_the_offset(d, m, n, shift, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, d, generator=g, dtype=torch.float64)
    k = torch.randn(1, d, generator=g, dtype=torch.float64)

    def score(a: int, b: int) -> float:
        qa = apply_rope(q, torch.tensor([a]))
        kb = apply_rope(k, torch.tensor([b]))
        return (qa * kb).sum().item()

    a, b = m + 200, n + 200  # keep positions non-negative after the shift
    assert score(a + shift, b + shift) == pytest.approx(score(a, b), abs=1e-9)
    # With 0 offset the rotation cancels: the score is the plain dot product.
    assert score(a, a) == pytest.approx((q * k).sum().item(), abs=1e-9)


def test_rope_attention_scores_are_toeplitz() -> None:
    q = torch.randn(1, 16).expand(12, 16)  # the same query at every position
    k = torch.randn(1, 16).expand(12, 16)
    scores = apply_rope(q) @ apply_rope(k).T  # (12, 12), entry [m, n] depends only on m - n
    for offset in range(-11, 12):
        diag = torch.diagonal(scores, offset)
        torch.testing.assert_close(diag, diag[:1].expand_as(diag), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------------
# Resampling a ViT position embedding
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "prefix", "dtype"),
    [
        ((14, 14), (24, 24), 1, torch.float32),  # 224 -> 384 with patch 16
        ((14, 14), (7, 7), 1, torch.float32),  # downsampling: antialias matters
        ((14, 14), (10, 20), 0, torch.float32),
        ((6, 8), (9, 4), 2, torch.float32),
        ((4, 4), (5, 5), 1, torch.float64),
    ],
)
def test_resample_equals_timm(old, new, prefix, dtype) -> None:
    posemb = torch.randn(1, prefix + old[0] * old[1], 24, dtype=dtype)
    square = old[0] == old[1]
    out = resample_abs_pos_embed(posemb, new, None if square else old, num_prefix_tokens=prefix)
    expected = timm_resample(posemb, list(new), None if square else list(old), num_prefix_tokens=prefix)
    assert out.shape == (1, prefix + new[0] * new[1], 24) and out.dtype == dtype
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert torch.equal(out[:, :prefix], posemb[:, :prefix])  # the class token is untouched


def test_resample_to_the_same_size_is_the_identity() -> None:
    posemb = torch.randn(1, 1 + 49, 8)
    assert torch.equal(resample_abs_pos_embed(posemb, 7), posemb)
    assert torch.equal(resample_abs_pos_embed(posemb, (7, 7), (7, 7)), posemb)


# ---------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------


def test_bad_inputs_raise_value_error() -> None:
    with pytest.raises(ValueError, match=r"dim=7 must be a positive even number"):
        sinusoidal_encoding(10, 7)
    with pytest.raises(ValueError, match=r"num_positions=0 must be positive"):
        sinusoidal_encoding(0, 8)
    with pytest.raises(ValueError, match=r"base=0.0 must be positive"):
        sinusoidal_encoding(4, 8, base=0.0)
    with pytest.raises(ValueError, match=r"dim=5 must be a positive even number"):
        sinusoidal_shift_matrix(1, 5)
    with pytest.raises(ValueError, match=r"sequence of 11 tokens is longer than max_len=10"):
        SinusoidalPositionalEncoding(8, max_len=10)(torch.randn(1, 11, 8))
    with pytest.raises(ValueError, match=r"input has 6 features but the encoding has dim=8"):
        SinusoidalPositionalEncoding(8, max_len=10)(torch.randn(1, 3, 6))
    with pytest.raises(ValueError, match=r"sequence of 5 tokens is longer than num_positions=4"):
        LearnedPositionalEmbedding(4, 8)(torch.randn(1, 5, 8))
    with pytest.raises(ValueError, match=r"input has 6 features but the embedding has dim=8"):
        LearnedPositionalEmbedding(4, 8)(torch.randn(1, 3, 6))
    with pytest.raises(ValueError, match=r"dim=10 must be a positive multiple of 4"):
        sincos_2d_encoding(4, 4, 10)
    with pytest.raises(ValueError, match=r"window size must be a positive int or a pair"):
        relative_position_index(0, 3)
    with pytest.raises(ValueError, match=r"window_size must be a positive int or a pair"):
        RelativePositionBias((7, 7, 7), 3)
    with pytest.raises(ValueError, match=r"num_heads=0 must be positive"):
        RelativePositionBias(7, 0)
    with pytest.raises(ValueError, match=r"last dimension d=5 must be a positive even number"):
        apply_rope(torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match=r"positions of shape \(3,\) must end in N=4"):
        apply_rope(torch.randn(2, 4, 6), torch.arange(3))
    with pytest.raises(ValueError, match=r"dim=3 must be a positive even number"):
        rope_frequencies(3)
    with pytest.raises(ValueError, match=r"posemb has 20 grid tokens, not a square number: pass old_size"):
        resample_abs_pos_embed(torch.randn(1, 21, 8), (5, 5))
    with pytest.raises(ValueError, match=r"old_size=\(4, 4\) needs 16 grid tokens, posemb has 20"):
        resample_abs_pos_embed(torch.randn(1, 21, 8), (5, 5), (4, 4))
    with pytest.raises(ValueError, match=r"posemb must have shape \(1, tokens, D\), got \(2, 17, 8\)"):
        resample_abs_pos_embed(torch.randn(2, 17, 8), (5, 5))
    with pytest.raises(ValueError, match=r"num_prefix_tokens=-1 does not fit"):
        resample_abs_pos_embed(torch.randn(1, 17, 8), (5, 5), num_prefix_tokens=-1)
