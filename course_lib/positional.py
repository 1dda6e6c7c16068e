"""Position information for attention, which on its own is blind to the order of its tokens.

Self-attention is *permutation-equivariant*: shuffling the input tokens shuffles the output in the same
way. Everything that makes "token 3 is left of token 4" visible to the model lives here:

* :func:`sinusoidal_encoding` and :class:`SinusoidalPositionalEncoding` - the fixed sin/cos code of
  Vaswani et al. (2017, §3.5), with :func:`sinusoidal_shift_matrix` showing why it encodes relative
  offsets: ``PE(pos + k) = M_k @ PE(pos)``;
* :class:`LearnedPositionalEmbedding` - one trained vector per position (BERT, ViT's ``pos_embed``);
* :func:`sincos_2d_encoding` - the fixed code for a 2-D grid of patches (MAE, "Better plain ViT baselines");
* :func:`relative_position_index` and :class:`RelativePositionBias` - Swin's learned bias per relative offset
  inside a window, added to the attention logits;
* :func:`rope_frequencies` and :func:`apply_rope` - rotary embeddings (RoFormer), which rotate queries and
  keys so that their dot product depends only on the offset between their positions;
* :func:`resample_abs_pos_embed` - resize a learned ViT position embedding to a new image size, exactly as
  timm does when a checkpoint is loaded at another resolution.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import Size2d, pair

__all__ = [
    "sinusoidal_encoding",
    "sinusoidal_shift_matrix",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEmbedding",
    "sincos_2d_encoding",
    "relative_position_index",
    "RelativePositionBias",
    "rope_frequencies",
    "apply_rope",
    "resample_abs_pos_embed",
]

def _check_even_dim(dim: int, what: str = "dim") -> None:
    if dim <= 0 or dim % 2:
        raise ValueError(f"{what}={dim} must be a positive even number (channels come in sin/cos pairs)")


def _check_base(base: float) -> None:
    if not base > 0:
        raise ValueError(f"base={base} must be positive")


def _angle_dtype(device: Optional[torch.device]) -> torch.dtype:
    # Angles such as 1000 * 1.0 lose ~1e-4 in float32; compute them in float64 where the device has it.
    return torch.float32 if device is not None and torch.device(device).type == "mps" else torch.float64


def _inverse_frequencies(dim: int, base: float, dtype: torch.dtype, device=None) -> Tensor:
    """``omega_i = base^(-2i/dim)`` for ``i = 0 .. dim/2 - 1``: shape ``(dim/2,)``."""
    two_i = torch.arange(0, dim, 2, dtype=dtype, device=device)
    return base ** (-two_i / dim)


# --------------------------------------------------------------------------------------------------------
# Fixed sinusoidal encoding (Attention Is All You Need)
# --------------------------------------------------------------------------------------------------------


def sinusoidal_encoding(
    num_positions: int,
    dim: int,
    base: float = 10000.0,
    *,
    dtype: torch.dtype = torch.float32,
    device: Optional[torch.device] = None,
) -> Tensor:
    """The sinusoidal position code of Vaswani et al. (2017, §3.5): ``(num_positions, dim)``.

    ::

        PE(pos, 2i)     = sin(pos / base^(2i/dim))
        PE(pos, 2i + 1) = cos(pos / base^(2i/dim))

    Sines sit in the even channels and cosines in the odd ones (interleaved, as in the paper).
    Channel pair ``i`` oscillates with wavelength ``2*pi*base^(2i/dim)``, from ``2*pi`` to about
    ``2*pi*base``.
    """
    if num_positions <= 0:
        raise ValueError(f"num_positions={num_positions} must be positive")
    _check_even_dim(dim)
    _check_base(base)
    work = _angle_dtype(device)
    pos = torch.arange(num_positions, dtype=work, device=device)[:, None]  # (N, 1)
    angles = pos * _inverse_frequencies(dim, base, work, device)  # (N, dim/2)
    pe = torch.empty(num_positions, dim, dtype=work, device=device)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)
    return pe.to(dtype)


def sinusoidal_shift_matrix(
    k: float, dim: int, base: float = 10000.0, *, dtype: torch.dtype = torch.float32
) -> Tensor:
    """The ``(dim, dim)`` matrix ``M_k`` with ``PE(pos + k) = M_k @ PE(pos)`` for every ``pos``.

    It is block-diagonal: channel pair ``(2i, 2i+1)`` holds ``(sin(pos w_i), cos(pos w_i))`` and the
    angle-addition formulas move it by ``k`` steps with the rotation
    ``[[cos(k w_i), sin(k w_i)], [-sin(k w_i), cos(k w_i)]]``. ``M_k`` does not depend on ``pos``:
    this is the paper's argument that a linear map can attend "by relative position".
    """
    _check_even_dim(dim)
    _check_base(base)
    angles = float(k) * _inverse_frequencies(dim, base, torch.float64)  # (dim/2,)
    c, s = torch.cos(angles), torch.sin(angles)
    m = torch.zeros(dim, dim, dtype=torch.float64)
    idx = torch.arange(0, dim, 2)
    m[idx, idx] = c
    m[idx, idx + 1] = s
    m[idx + 1, idx] = -s
    m[idx + 1, idx + 1] = c
    return m.to(dtype)


class SinusoidalPositionalEncoding(nn.Module):
    """Add the fixed sinusoidal code to a sequence: ``(B, N, D) -> (B, N, D)``, ``N <= max_len``.

    The table is a non-persistent buffer: it moves with ``.to(device)`` but is not saved in the
    ``state_dict`` (it can always be recomputed).
    """

    pe: Tensor

    def __init__(self, dim: int, max_len: int = 5000, base: float = 10000.0) -> None:
        super().__init__()
        self.dim = dim
        self.max_len = max_len
        self.register_buffer("pe", sinusoidal_encoding(max_len, dim, base), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        n, d = x.shape[-2], x.shape[-1]
        if d != self.dim:
            raise ValueError(f"input has {d} features but the encoding has dim={self.dim}")
        if n > self.max_len:
            raise ValueError(f"sequence of {n} tokens is longer than max_len={self.max_len}")
        return x + self.pe[:n].to(x.dtype)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, max_len={self.max_len}"


class LearnedPositionalEmbedding(nn.Module):
    """One learned vector per position, added to the tokens: ``(B, N, D) -> (B, N, D)``.

    The parameter ``pos_embed`` has shape ``(1, num_positions, dim)`` (timm's ViT name and layout)
    and starts as a truncated normal with std 0.02. Shorter sequences use its first ``N`` rows.
    """

    def __init__(self, num_positions: int, dim: int) -> None:
        super().__init__()
        if num_positions <= 0 or dim <= 0:
            raise ValueError(f"num_positions={num_positions} and dim={dim} must be positive")
        self.pos_embed = nn.Parameter(torch.empty(1, num_positions, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        n, d = x.shape[-2], x.shape[-1]
        num_positions, dim = self.pos_embed.shape[1:]
        if d != dim:
            raise ValueError(f"input has {d} features but the embedding has dim={dim}")
        if n > num_positions:
            raise ValueError(f"sequence of {n} tokens is longer than num_positions={num_positions}")
        return x + self.pos_embed[:, :n]


# --------------------------------------------------------------------------------------------------------
# 2-D fixed encoding for a grid of patches
# --------------------------------------------------------------------------------------------------------


def sincos_2d_encoding(
    grid_h: int,
    grid_w: int,
    dim: int,
    base: float = 10000.0,
    *,
    dtype: torch.dtype = torch.float32,
    device: Optional[torch.device] = None,
) -> Tensor:
    """A fixed code for a ``grid_h x grid_w`` grid of patches: ``(grid_h * grid_w, dim)``.

    Tokens are in raster order (row by row, as a patch embedding flattens them). The first
    ``dim/2`` channels are the 1-D :func:`sinusoidal_encoding` of the token's **row**, the last
    ``dim/2`` that of its **column**, so two tokens in the same row share the first half and two in
    the same column share the second. MAE and "Better plain ViT baselines" build the same kind of
    code (they order each half as ``[sin ... | cos ...]`` instead of interleaving, and big_vision
    spaces the frequencies slightly differently). ``dim`` must be divisible by 4.
    """
    if dim <= 0 or dim % 4:
        raise ValueError(f"dim={dim} must be a positive multiple of 4 (sin/cos pairs for rows and columns)")
    grid_h, grid_w = pair((grid_h, grid_w), "grid size")
    rows = sinusoidal_encoding(grid_h, dim // 2, base, dtype=dtype, device=device)  # (h, D/2)
    cols = sinusoidal_encoding(grid_w, dim // 2, base, dtype=dtype, device=device)  # (w, D/2)
    half = dim // 2
    grid = torch.cat(
        [rows[:, None, :].expand(grid_h, grid_w, half), cols[None, :, :].expand(grid_h, grid_w, half)], dim=-1
    )  # (h, w, D)
    return grid.reshape(grid_h * grid_w, dim)


# --------------------------------------------------------------------------------------------------------
# Swin's relative position bias
# --------------------------------------------------------------------------------------------------------


def relative_position_index(window_h: int, window_w: int) -> Tensor:
    """Swin's table index of every (query, key) pair in a window: ``LongTensor (N, N)``, ``N = Wh*Ww``.

    Token ``n`` sits at ``(n // Ww, n % Ww)``. The offset ``(dy, dx)`` from key to query ranges over
    ``[-(Wh-1), Wh-1] x [-(Ww-1), Ww-1]``; shifting both to start at 0 and reading them as a
    2-D index with ``2*Ww - 1`` columns gives a row of the ``((2Wh-1)(2Ww-1), heads)`` bias table.
    Pairs with the same offset share a row, which is what makes the bias *relative*.
    """
    window_h, window_w = pair((window_h, window_w), "window size")
    coords = torch.stack(
        torch.meshgrid(torch.arange(window_h), torch.arange(window_w), indexing="ij")
    )  # (2, Wh, Ww)
    coords = coords.flatten(1)  # (2, N)
    rel = coords[:, :, None] - coords[:, None, :]  # (2, N, N): query minus key
    rel = rel.permute(1, 2, 0).contiguous()  # (N, N, 2)
    rel[:, :, 0] += window_h - 1
    rel[:, :, 1] += window_w - 1
    rel[:, :, 0] *= 2 * window_w - 1
    return rel.sum(-1)


class RelativePositionBias(nn.Module):
    """Swin's learned relative position bias for one window: ``forward() -> (heads, N, N)``.

    Holds ``relative_position_bias_table`` ``((2Wh-1)(2Ww-1), heads)`` (truncated normal, std 0.02)
    and the non-persistent buffer ``relative_position_index`` ``(N, N)`` (as timm: not saved in the
    ``state_dict``). The output broadcasts against attention logits ``(B, heads, N, N)`` and is
    passed as ``bias`` to :func:`course_lib.attention.scaled_dot_product_attention`.
    """

    relative_position_index: Tensor

    def __init__(self, window_size: Size2d, num_heads: int) -> None:
        super().__init__()
        self.window_size = pair(window_size, "window_size")
        if num_heads <= 0:
            raise ValueError(f"num_heads={num_heads} must be positive")
        self.num_heads = num_heads
        wh, ww = self.window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(wh, ww), persistent=False)

    def forward(self) -> Tensor:
        n = self.window_size[0] * self.window_size[1]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]  # (N*N, heads)
        return bias.view(n, n, self.num_heads).permute(2, 0, 1).contiguous()

    def extra_repr(self) -> str:
        return f"window_size={self.window_size}, num_heads={self.num_heads}"


# --------------------------------------------------------------------------------------------------------
# Rotary position embedding (RoFormer, Su et al. 2021)
# --------------------------------------------------------------------------------------------------------


def rope_frequencies(
    dim: int, base: float = 10000.0, *, dtype: torch.dtype = torch.float32, device=None
) -> Tensor:
    """RoPE's angular frequencies ``theta_i = base^(-2i/dim)``, ``i = 0 .. dim/2 - 1``: ``(dim/2,)``."""
    _check_even_dim(dim)
    _check_base(base)
    return _inverse_frequencies(dim, base, _angle_dtype(device), device).to(dtype)


def apply_rope(x: Tensor, positions: Optional[Tensor] = None, base: float = 10000.0) -> Tensor:
    """Rotate each channel pair ``(2i, 2i+1)`` of ``x`` by the angle ``pos * theta_i``.

    Args:
        x: queries or keys ``(..., N, d)`` with ``d`` even.
        positions: the position of each token, ``(N,)`` (or any shape ending in ``N`` that
            broadcasts with ``x``'s leading dimensions); ``arange(N)`` by default.
        base: frequency base of :func:`rope_frequencies`.

    Returns:
        A tensor of ``x``'s shape and dtype. Rotations preserve norms, and
        ``<apply_rope(q, m), apply_rope(k, n)>`` depends on ``m - n`` only: for one pair,
        ``(R_m q) . (R_n k) = q . R_{n-m} k``.
    """
    if x.dim() < 2:
        raise ValueError(f"x needs shape (..., N, d), got {tuple(x.shape)}")
    n, d = x.shape[-2], x.shape[-1]
    _check_even_dim(d, "last dimension d")
    work = _angle_dtype(x.device)
    if positions is None:
        positions = torch.arange(n, device=x.device)
    elif positions.dim() == 0 or positions.shape[-1] != n:
        raise ValueError(
            f"positions of shape {tuple(positions.shape)} must end in N={n} (x {tuple(x.shape)})"
        )
    angles = positions.to(device=x.device, dtype=work)[..., None] * rope_frequencies(
        d, base, dtype=work, device=x.device
    )  # (..., N, d/2)
    cos, sin = torch.cos(angles), torch.sin(angles)
    compute = torch.promote_types(x.dtype, torch.float32)
    cos, sin = cos.to(compute), sin.to(compute)
    x1, x2 = x[..., 0::2].to(compute), x[..., 1::2].to(compute)
    rotated = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (..., N, d/2, 2)
    return rotated.flatten(-2).to(x.dtype)


# --------------------------------------------------------------------------------------------------------
# Resizing a learned position embedding (fine-tuning at another resolution)
# --------------------------------------------------------------------------------------------------------


def resample_abs_pos_embed(
    posemb: Tensor,
    new_size: Size2d,
    old_size: Optional[Size2d] = None,
    num_prefix_tokens: int = 1,
) -> Tensor:
    """Resize the grid part of a ViT position embedding; the prefix tokens are kept as they are.

    Args:
        posemb: ``(1, P + h*w, D)``: ``P = num_prefix_tokens`` rows (the class token) then the
            ``h x w`` grid in raster order.
        new_size: the new grid ``(h', w')`` (an int means square).
        old_size: the old grid ``(h, w)``; by default a square grid is assumed.
        num_prefix_tokens: how many leading rows are not part of the grid.

    Returns:
        ``(1, P + h'*w', D)``. The grid is resized as an image with ``D`` channels using bicubic
        interpolation with antialiasing (``align_corners=False``), computed in float32 and cast
        back: the same numbers as ``timm.layers.resample_abs_pos_embed``. (torchvision uses
        ``align_corners=True`` and differs.)
    """
    if posemb.dim() != 3 or posemb.shape[0] != 1:
        raise ValueError(f"posemb must have shape (1, tokens, D), got {tuple(posemb.shape)}")
    if num_prefix_tokens < 0 or num_prefix_tokens > posemb.shape[1]:
        raise ValueError(
            f"num_prefix_tokens={num_prefix_tokens} does not fit posemb with {posemb.shape[1]} tokens"
        )
    new_h, new_w = pair(new_size, "new_size")
    num_grid = posemb.shape[1] - num_prefix_tokens
    if old_size is None:
        side = math.isqrt(num_grid)
        if side * side != num_grid:
            raise ValueError(
                f"posemb has {num_grid} grid tokens, not a square number: pass old_size=(h, w)"
            )
        old_h, old_w = side, side
    else:
        old_h, old_w = pair(old_size, "old_size")
        if old_h * old_w != num_grid:
            raise ValueError(
                f"old_size=({old_h}, {old_w}) needs {old_h * old_w} grid tokens, posemb has {num_grid}"
            )
    if (old_h, old_w) == (new_h, new_w):
        return posemb

    prefix, grid = posemb[:, :num_prefix_tokens], posemb[:, num_prefix_tokens:]
    dim = posemb.shape[-1]
    grid = grid.float().reshape(1, old_h, old_w, dim).permute(0, 3, 1, 2)  # (1, D, h, w)
    grid = F.interpolate(grid, size=(new_h, new_w), mode="bicubic", antialias=True, align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_h * new_w, dim).to(posemb.dtype)
    return torch.cat([prefix, grid], dim=1)
