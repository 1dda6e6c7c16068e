"""The Swin Transformer (Liu et al., 2021): attention inside local windows, shifted every other block.

::

    image (B, 3, H, W)
      -> patch embedding + LayerNorm           (B, H/4, W/4, C)        4x4 patches
      -> stage 0: Swin blocks                  (B, H/4, W/4, C)
      -> stage 1: patch merging + Swin blocks  (B, H/8, W/8, 2C)
      -> stage 2: patch merging + Swin blocks  (B, H/16, W/16, 4C)
      -> stage 3: patch merging + Swin blocks  (B, H/32, W/32, 8C)
      -> LayerNorm, average over positions, linear head  (B, num_classes)

Tokens stay channels-last, ``(B, H, W, C)``, from the patch embedding to the head (as in timm), so
no layout change is needed between the token-wise layers (LayerNorm, MLP) and the window ops.

A Swin block is a pre-norm Transformer block whose attention only looks inside ``M x M`` windows::

    x = x + W-MSA(LN(x))          even blocks: regular windows
    x = x + MLP(LN(x))
    x = x + SW-MSA(LN(x))         odd blocks: windows shifted by M/2 (cyclic shift + mask)
    x = x + MLP(LN(x))

**Where patch merging lives.** The paper's Figure 3 draws stage 2, 3, 4 as "Patch Merging, then Swin
blocks", and timm (since 2023) builds it that way: ``layers.{s}.downsample`` at the *start* of stages
1..3. The official Microsoft code and torchvision put the same layer at the *end* of stages 0..2. The
two compute the same function; we follow the paper's figure and timm (each stage then works at one
resolution from start to end), so timm checkpoints load unchanged and official ones need a rename
(:func:`course_lib.convert.swin_state_dict_from_official`).

**The shift mask.** After the cyclic shift (``torch.roll`` by ``-M/2``) a window at the bottom/right
border holds tokens that were far apart in the image. Tokens are labelled by the region they came from
(:func:`region_ids`); attention between different regions gets ``-100.0`` added to its logit, as in
the official code and timm (``exp(-100)`` is about ``4e-44``: the weight vanishes in float32 and the
arithmetic stays finite in float16, where ``-inf`` could turn a fully masked row into NaN).

Parameter counts: Swin-T 28,288,354, Swin-S 49,606,258, Swin-B 87,768,224 (equal to timm's). The
paper's Table 1 prints 29M / 50M / 88M; the official repository lists Swin-T as 28M. 28.29M rounds to
28M; 29M is what rounding *up* gives, and rounding up is consistent with the paper's 50M (49.61M) and
88M (87.77M) too, so the difference is in the rounding, not in the architecture.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor, nn

from .block import DropPath, Mlp
from .layers import PatchEmbed, check_heads, check_rate, drop_path_rates
from .multihead import MultiHeadAttention
from .positional import RelativePositionBias
from .registry import named_config

__all__ = [
    "window_partition",
    "window_reverse",
    "region_ids",
    "window_ids",
    "shifted_window_mask",
    "shifted_window_bias",
    "WindowAttention",
    "SwinBlock",
    "PatchMerging",
    "SwinStage",
    "SwinConfig",
    "SwinTransformer",
    "SWIN_CONFIGS",
    "list_swins",
    "swin_config",
    "create_swin",
]

MASK_FILL = -100.0  # the official code's "minus infinity" for pairs of tokens from different regions


# ---- windows ----------------------------------------------------------------------------------
def _check_windows(h: int, w: int, window: int) -> None:
    if window <= 0:
        raise ValueError(f"window size {window} must be positive")
    if h % window or w % window:
        raise ValueError(f"resolution {h}x{w} is not divisible by window size {window}")


def window_partition(x: Tensor, window: int) -> Tensor:
    """Cut a feature map into non-overlapping ``window x window`` windows.

    ``(B, H, W, C) -> (B * num_windows, window, window, C)``; windows are numbered row by row within
    each image, images one after the other (window ``b * nW + i`` is window ``i`` of image ``b``).
    """
    if x.dim() != 4:
        raise ValueError(f"expected x of shape (B, H, W, C), got {tuple(x.shape)}")
    B, H, W, C = x.shape
    _check_windows(H, W, window)
    x = x.view(B, H // window, window, W // window, window, C)
    # (B, rows of windows, window, cols of windows, window, C) -> (B, rows, cols, window, window, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, C)


def window_reverse(windows: Tensor, window: int, H: int, W: int) -> Tensor:
    """The inverse of :func:`window_partition`: ``(B * nW, window, window, C) -> (B, H, W, C)``."""
    _check_windows(H, W, window)
    C = windows.shape[-1]
    nW = (H // window) * (W // window)
    if windows.dim() != 4 or windows.shape[0] % nW or windows.shape[1:3] != (window, window):
        raise ValueError(
            f"windows of shape {tuple(windows.shape)} do not tile a {H}x{W} map "
            f"with {window}x{window} windows"
        )
    x = windows.view(-1, H // window, W // window, window, window, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, C)


def region_ids(h: int, w: int, window: int, shift: int) -> Tensor:
    """The official code's ``img_mask`` (its ``cnt`` labels): ``(h, w)`` LongTensor in *shifted*
    coordinates (after ``torch.roll(x, -shift)``), labelling up to 9 regions ``0..8``.

    Rows (and likewise columns) fall into three bands: ``[0, h-window)`` holds whole windows of
    neighbouring tokens; ``[h-window, h-shift)`` and ``[h-shift, h)`` share the last row of windows, but
    the second band came from the *top* of the image by the cyclic shift. Two tokens may attend to each
    other only if they carry the same label.
    """
    _check_windows(h, w, window)
    if not 0 <= shift < window:
        raise ValueError(f"shift {shift} must be in [0, window size {window})")
    ids = torch.zeros(h, w, dtype=torch.long)
    if shift == 0:
        return ids
    cnt = 0
    bands = ((0, -window), (-window, -shift), (-shift, None))
    for hs in bands:
        for ws in bands:
            ids[slice(*hs), slice(*ws)] = cnt
            cnt += 1
    return ids


def window_ids(h: int, w: int, window: int, shift: int = 0) -> Tensor:
    """Which window each token falls in: ``(h, w)`` LongTensor indexed by the token's position in
    the *original* (unshifted) image.

    With ``shift=0``, the regular grid of windows (numbered row by row). With ``shift=s``, the windows
    of a shifted block: the map is rolled by ``(-s, -s)``, partitioned, and rolled back, so the window
    boundaries move ``s`` tokens down and right and the border windows wrap around.
    """
    _check_windows(h, w, window)
    if not 0 <= shift < window:
        raise ValueError(f"shift {shift} must be in [0, window size {window})")
    rows = torch.arange(h) // window
    cols = torch.arange(w) // window
    grid = rows[:, None] * (w // window) + cols[None, :]  # window id in shifted coordinates
    # token (i, j) of the image sits at ((i - s) mod h, (j - s) mod w) after the roll by -s.
    return torch.roll(grid, shifts=(shift, shift), dims=(0, 1))


def shifted_window_mask(h: int, w: int, window: int, shift: int) -> Tensor:
    """Which pairs of tokens may attend in each shifted window: ``(num_windows, M*M, M*M)`` bool.

    ``True`` = the query may attend to the key (the convention of :mod:`course_lib.attention` and
    ``torch.nn.functional.scaled_dot_product_attention``). Windows are numbered as in
    :func:`window_partition` of the *shifted* map; tokens inside a window row by row. With
    ``shift=0`` everything is ``True``. The mask is symmetric.
    """
    ids = region_ids(h, w, window, shift)
    per_window = window_partition(ids.view(1, h, w, 1), window).reshape(-1, window * window)
    return per_window.unsqueeze(2) == per_window.unsqueeze(1)


def shifted_window_bias(h: int, w: int, window: int, shift: int, fill: float = MASK_FILL) -> Optional[Tensor]:
    """:func:`shifted_window_mask` as an additive float mask ``(nW, M*M, M*M)``: 0 where attention is
    allowed, ``fill`` (``-100.0``, as the official code and timm) where it is not; ``None`` when
    ``shift == 0`` (nothing to mask)."""
    if shift == 0:
        return None
    allowed = shifted_window_mask(h, w, window, shift)
    return torch.zeros(allowed.shape).masked_fill(~allowed, fill)


# ---- attention --------------------------------------------------------------------------------
class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a learned relative position bias.

    ``(B * nW, N, C) -> (B * nW, N, C)`` with ``N = M*M`` tokens per window. It is made of two modules
    the book has already built:

    * ``mha``, the :class:`~course_lib.multihead.MultiHeadAttention` of chapter 2 (``qkv`` and ``proj``);
    * ``position_bias``, the :class:`~course_lib.positional.RelativePositionBias` of chapter 3: one learned
      number per head for every offset between two tokens of a window, ``(heads, N, N)``.

    The bias, plus the shift mask if any, is the ``bias`` argument of the attention.

    **State-dict names.** The state dict uses timm's flat names (``qkv.weight``, ``proj.weight``,
    ``relative_position_bias_table``), so timm and official checkpoints load as they are; in Python the
    parameters are reached through the two parts (``attn.mha.qkv``,
    ``attn.position_bias.relative_position_bias_table``).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,
        *,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.position_bias = RelativePositionBias(window_size, num_heads)
        self.mha = MultiHeadAttention(
            dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop
        )
        _save_as_own_parameters(self, ("position_bias", "mha"))

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """``x`` ``(B * nW, N, C)``; ``mask`` additive ``(nW, N, N)`` (0 or -100) or ``None``."""
        if x.dim() != 3 or x.shape[1] != self.window_size**2:
            raise ValueError(
                f"expected windows of shape (B*nW, {self.window_size**2}, C), got {tuple(x.shape)}"
            )
        bias = self.position_bias()  # (heads, N, N): the same for every window
        if mask is None:
            return self.mha(x, bias=bias)[0]
        B_, N, C = x.shape
        nW = mask.shape[0]
        bias = bias + mask.unsqueeze(1)  # (nW, heads, N, N): window i gets shift mask i
        # The windows of one image side by side, (B, nW, N, C): window i of every image meets the
        # bias of window i by broadcasting, without copying the bias B times.
        out, _ = self.mha(x.view(B_ // nW, nW, N, C), bias=bias)
        return out.view(B_, N, C)


def _save_as_own_parameters(module: nn.Module, children: tuple[str, ...]) -> None:
    """Save and load the state of ``module``'s ``children`` under ``module``'s own prefix, as if
    their parameters were ``module``'s: ``attn.mha.qkv.weight`` is stored as ``attn.qkv.weight``
    (timm's name). Both directions are ``state_dict`` hooks of ``module`` (plain functions, so that a
    whole model can still be pickled)."""
    module.register_state_dict_post_hook(functools.partial(_lift_keys, children))
    module.register_load_state_dict_pre_hook(functools.partial(_lower_keys, children))


def _lift_keys(children: tuple[str, ...], module: nn.Module, state_dict: dict, prefix: str, *_: Any) -> None:
    """After ``state_dict()``: ``{prefix}{child}.{name}`` -> ``{prefix}{name}``."""
    for child in children:
        for key in [k for k in state_dict if k.startswith(f"{prefix}{child}.")]:
            state_dict[prefix + key[len(prefix) + len(child) + 1 :]] = state_dict.pop(key)


def _lower_keys(children: tuple[str, ...], module: nn.Module, state_dict: dict, prefix: str, *_: Any) -> None:
    """Before ``load_state_dict()``: ``{prefix}{name}`` -> ``{prefix}{child}.{name}``."""
    for child in children:
        for name in module.get_submodule(child).state_dict():
            if prefix + name in state_dict:
                state_dict[f"{prefix}{child}.{name}"] = state_dict.pop(prefix + name)


# ---- block, merging, stage --------------------------------------------------------------------
class SwinBlock(nn.Module):
    """One Swin Transformer block on a channels-last map ``(B, H, W, C) -> (B, H, W, C)``.

    Args:
        dim: channels ``C``.
        input_resolution: ``(H, W)`` of the maps it will see (the shift mask is built for it).
        num_heads: attention heads.
        window_size: ``M``; if the map is not larger than ``M`` the window becomes the whole map and
            there is no shift (as in the official code).
        shift_size: ``M // 2`` for odd blocks (SW-MSA), 0 for even ones (W-MSA).
        mlp_ratio, qkv_bias, drop, attn_drop, drop_path: as in :class:`course_lib.block.TransformerBlock`.
        norm_eps: LayerNorm epsilon (1e-5 in Swin).
    """

    attn_mask: Optional[Tensor]

    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        num_heads: int,
        *,
        window_size: int = 7,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        H, W = input_resolution
        if min(H, W) <= window_size:
            window_size, shift_size = min(H, W), 0
        _check_windows(H, W, window_size)
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift size {shift_size} must be in [0, window size {window_size})")
        self.dim = dim
        self.input_resolution = (H, W)
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = WindowAttention(
            dim, num_heads, window_size, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop
        )
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.drop_path2 = DropPath(drop_path)
        self.register_buffer(
            "attn_mask", shifted_window_bias(H, W, window_size, shift_size), persistent=False
        )

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[1:]) != (*self.input_resolution, self.dim):
            H, W = self.input_resolution
            raise ValueError(f"expected a map of shape (B, {H}, {W}, {self.dim}), got {tuple(x.shape)}")

    def window_attention(self, x: Tensor) -> Tensor:
        """The (shifted) window attention branch on a normalised map ``(B, H, W, C)``."""
        B, H, W, C = x.shape
        M, s = self.window_size, self.shift_size
        if s:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        windows = window_partition(x, M).view(-1, M * M, C)  # (B*nW, M*M, C)
        windows = self.attn(windows, mask=self.attn_mask)
        x = window_reverse(windows.view(-1, M, M, C), M, H, W)
        if s:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        return x

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        x = x + self.drop_path1(self.window_attention(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Halve the resolution, double the channels: ``(B, H, W, C) -> (B, H/2, W/2, 2C)``.

    The four neighbours of each 2x2 neighbourhood are concatenated on channels (in the order of the
    official code, timm and torchvision), normalised, and mapped by a linear layer ``4C -> 2C``
    without bias.
    """

    def __init__(self, dim: int, *, out_dim: Optional[int] = None, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.dim = dim
        self.out_dim = out_dim or 2 * dim
        self.norm = nn.LayerNorm(4 * dim, eps=norm_eps)
        self.reduction = nn.Linear(4 * dim, self.out_dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[-1] != self.dim:
            raise ValueError(f"expected a map of shape (B, H, W, {self.dim}), got {tuple(x.shape)}")
        H, W = x.shape[1:3]
        if H % 2 or W % 2:
            raise ValueError(f"patch merging needs an even resolution, got {H}x{W}")
        x0 = x[:, 0::2, 0::2]  # top-left token of each 2x2 neighbourhood    (B, H/2, W/2, C)
        x1 = x[:, 1::2, 0::2]  # bottom-left
        x2 = x[:, 0::2, 1::2]  # top-right
        x3 = x[:, 1::2, 1::2]  # bottom-right
        x = torch.cat([x0, x1, x2, x3], dim=-1)  # (B, H/2, W/2, 4C)
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    """Optional :class:`PatchMerging` (``downsample``), then ``depth`` Swin blocks alternating
    regular (even) and shifted (odd) windows. ``(B, H, W, C_in) -> (B, H', W', C_out)``."""

    def __init__(
        self,
        *,
        dim: int,
        out_dim: int,
        input_resolution: tuple[int, int],
        depth: int,
        num_heads: int,
        window_size: int,
        downsample: bool,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: Optional[list[float]] = None,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        H, W = input_resolution
        if downsample:
            if H % 2 or W % 2:
                raise ValueError(f"patch merging needs an even resolution, got {H}x{W}")
            self.downsample: nn.Module = PatchMerging(dim, out_dim=out_dim, norm_eps=norm_eps)
            H, W = H // 2, W // 2
        else:
            if dim != out_dim:
                raise ValueError(
                    f"a stage without patch merging keeps its width: dim={dim} != out_dim={out_dim}"
                )
            self.downsample = nn.Identity()
        self.output_resolution = (H, W)
        drop_path = drop_path or [0.0] * depth
        self.blocks = nn.Sequential(
            *(
                SwinBlock(
                    out_dim,
                    (H, W),
                    num_heads,
                    window_size=window_size,
                    shift_size=0 if i % 2 == 0 else window_size // 2,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    drop=drop,
                    attn_drop=attn_drop,
                    drop_path=drop_path[i],
                    norm_eps=norm_eps,
                )
                for i in range(depth)
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.downsample(x))


class _PoolHead(nn.Module):
    """Global average over positions, dropout, linear: ``(B, H, W, C) -> (B, num_classes)``.

    A module of its own so that the weights are named ``head.fc`` as in timm."""

    def __init__(self, dim: int, num_classes: int, drop: float = 0.0) -> None:
        super().__init__()
        self.drop = nn.Dropout(drop)
        self.fc = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.drop(x.mean(dim=(1, 2)))
        return x if pre_logits else self.fc(x)


# ---- the model --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SwinConfig:
    """Hyper-parameters of a :class:`SwinTransformer` (names as timm's ``SwinTransformer``).

    Args:
        img_size: input height = width (masks and windows are built for it).
        patch_size: side of the patches of the patch embedding (4).
        in_chans: image channels.
        num_classes: classes of the head (0: the model returns pooled features ``(B, 8C)``).
        embed_dim: channels ``C`` of stage 0; stage ``s`` has ``C * 2**s``.
        depths: blocks per stage.
        num_heads: heads per stage.
        window_size: ``M``; every stage's resolution must be divisible by it (a stage whose resolution
            is at most ``M`` uses one window covering the whole map, unshifted).
        mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, drop_path_rate: as in
            :class:`~course_lib.vit.ViTConfig` (stochastic depth rises linearly over all blocks).

    Inconsistent values raise ``ValueError``, naming the stage, when the config is made.
    """

    img_size: int = 224
    patch_size: int = 4
    in_chans: int = 3
    num_classes: int = 1000
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", tuple(self.depths))
        object.__setattr__(self, "num_heads", tuple(self.num_heads))
        if len(self.depths) != len(self.num_heads):
            raise ValueError(f"depths {self.depths} and num_heads {self.num_heads} must have the same length")
        for name in ("drop_rate", "attn_drop_rate", "drop_path_rate"):
            check_rate(name, getattr(self, name))
        if self.img_size % self.patch_size:
            raise ValueError(f"image size {self.img_size} is not divisible by patch size {self.patch_size}")
        sides = self.stage_resolutions()
        for s, (dim, heads, side) in enumerate(zip(self.stage_dims(), self.num_heads, sides)):
            check_heads(dim, heads, where=f"stage {s}")
            if s > 0 and sides[s - 1] % 2:
                raise ValueError(f"stage {s}: patch merging needs an even resolution, got {sides[s - 1]}")
            if side > self.window_size and side % self.window_size:
                raise ValueError(
                    f"stage {s}: resolution {side}x{side} is not divisible by window size {self.window_size} "
                    f"(image {self.img_size}, patch {self.patch_size})"
                )

    def stage_resolutions(self) -> list[int]:
        """Token-grid side of each stage, e.g. ``[56, 28, 14, 7]`` for Swin-T at 224."""
        side = self.img_size // self.patch_size
        return [side // 2**i for i in range(len(self.depths))]

    def stage_dims(self) -> list[int]:
        return [self.embed_dim * 2**i for i in range(len(self.depths))]


class SwinTransformer(nn.Module):
    """Swin Transformer for classification, numerically equal to timm's with the same weights.

    Built from a :class:`SwinConfig` (the default config is Swin-T), kept as ``model.config``.

    Shapes: images ``(B, C, H, W)`` -> logits ``(B, num_classes)``; :meth:`forward_features` ->
    ``(B, H/32, W/32, 8C)`` for four stages.
    """

    def __init__(self, config: Optional[SwinConfig] = None) -> None:
        super().__init__()
        if config is None:
            config = SwinConfig()
        if not isinstance(config, SwinConfig):
            raise TypeError(
                f"SwinTransformer takes a SwinConfig, got {type(config).__name__}; build one with "
                "SwinTransformer(SwinConfig(embed_dim=..., ...)) or create_swin(name, **overrides)"
            )
        c = self.config = config
        dims, sides = c.stage_dims(), c.stage_resolutions()
        self.num_features = dims[-1]
        self.patch_embed = PatchEmbed(
            c.img_size, c.patch_size, in_chans=c.in_chans, embed_dim=c.embed_dim, norm=True, flatten=False
        )
        rates = drop_path_rates(c.drop_path_rate, sum(c.depths))
        stages, start = [], 0
        for s, depth in enumerate(c.depths):
            side = sides[max(s - 1, 0)]  # resolution entering the stage (before its merging)
            stages.append(
                SwinStage(
                    dim=dims[max(s - 1, 0)],
                    out_dim=dims[s],
                    input_resolution=(side, side),
                    depth=depth,
                    num_heads=c.num_heads[s],
                    window_size=c.window_size,
                    downsample=s > 0,
                    mlp_ratio=c.mlp_ratio,
                    qkv_bias=c.qkv_bias,
                    drop=c.drop_rate,
                    attn_drop=c.attn_drop_rate,
                    drop_path=rates[start : start + depth],
                )
            )
            start += depth
        self.layers = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(self.num_features, eps=1e-5)
        self.head = _PoolHead(self.num_features, c.num_classes, c.drop_rate)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """timm's initialisation: truncated normal (std 0.02) for linear layers and the relative position
        tables, zero biases; convolution and LayerNorms keep PyTorch's defaults."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-2.0, b=2.0)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, RelativePositionBias):
                nn.init.trunc_normal_(m.relative_position_bias_table, std=0.02, a=-2.0, b=2.0)

    def forward_features(self, x: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` -> the normalised last feature map ``(B, H', W', C')``."""
        if x.dim() == 4 and tuple(x.shape[-2:]) != self.patch_embed.img_size:
            raise ValueError(
                f"image size {tuple(x.shape[-2:])} does not match the model's img_size "
                f"{self.patch_embed.img_size} (the windows and shift masks are built for it)"
            )
        return self.norm(self.layers(self.patch_embed(x)))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` -> logits ``(B, num_classes)``."""
        return self.forward_head(self.forward_features(x))


SWIN_CONFIGS: dict[str, SwinConfig] = {
    # Swin paper, Table 1 (ImageNet-1K, 224x224, window 7).
    "swin_tiny_patch4_window7_224": SwinConfig(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    "swin_small_patch4_window7_224": SwinConfig(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    "swin_base_patch4_window7_224": SwinConfig(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    # CIFAR-10: 32x32, 2x2 patches -> 16x16, 8x8, 4x4 tokens in three stages, windows of 4. ~0.8M params.
    "swin_cifar": SwinConfig(
        img_size=32,
        patch_size=2,
        num_classes=10,
        embed_dim=48,
        depths=(2, 2, 2),
        num_heads=(3, 6, 12),
        window_size=4,
        mlp_ratio=2.0,
    ),  # fmt: skip
    # sklearn digits: 8x8 grey, 2x2 patches (as vit_digits) -> 4x4 then 2x2 tokens, windows of 2.
    # ~0.1M params. With 1x1 patches (one grey value per token) it trains far slower on 8x8 digits.
    "swin_digits": SwinConfig(
        img_size=8,
        patch_size=2,
        in_chans=1,
        num_classes=10,
        embed_dim=32,
        depths=(2, 2),
        num_heads=(2, 4),
        window_size=2,
        mlp_ratio=2.0,
    ),  # fmt: skip
}


def list_swins() -> list[str]:
    """Names accepted by :func:`create_swin`."""
    return list(SWIN_CONFIGS)


def swin_config(name: str, **overrides: Any) -> SwinConfig:
    """The :class:`SwinConfig` of a named model, with ``overrides`` applied."""
    return named_config(SWIN_CONFIGS, "Swin", name, overrides)


def create_swin(name: str, **overrides: Any) -> SwinTransformer:
    """Build a named Swin, e.g. ``create_swin('swin_tiny_patch4_window7_224')`` or
    ``create_swin('swin_cifar', drop_path_rate=0.1)``. Weights are randomly initialised."""
    return SwinTransformer(swin_config(name, **overrides))
