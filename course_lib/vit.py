"""The Vision Transformer (Dosovitskiy et al., 2021): an image is a sequence of 16x16 words.

::

    image (B, C, H, W)
      -> patches (B, N, P*P*C), N = (H/P)(W/P)       patchify
      -> tokens  (B, N, D)                            one shared linear map (= a strided convolution)
      -> [CLS] + tokens, + position embedding         (B, 1+N, D)
      -> depth x pre-norm Transformer block           (B, 1+N, D)
      -> LayerNorm, take [CLS] (or average tokens)    (B, D)
      -> linear head                                  (B, num_classes)

Parameter names are timm's (``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``blocks.{i}.norm1``,
``blocks.{i}.attn.qkv`` ...), so a timm state dict loads with ``strict=True``
(see :mod:`course_lib.convert`). The blocks are :class:`course_lib.block.TransformerBlock`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .block import TransformerBlock
from .positional import resample_abs_pos_embed
from .registry import named_config

__all__ = [
    "patchify",
    "unpatchify",
    "conv_weight_as_linear",
    "PatchEmbed",
    "ViTConfig",
    "VisionTransformer",
    "VIT_CONFIGS",
    "list_vits",
    "vit_config",
    "create_vit",
]

_Size = Union[int, tuple[int, int]]


def _pair(x: _Size) -> tuple[int, int]:
    return (x, x) if isinstance(x, int) else (int(x[0]), int(x[1]))


def _linspace(end: float, n: int) -> list[float]:
    """Stochastic-depth rates rising linearly from 0 to ``end`` over ``n`` blocks (plain Python, so
    that models can be built on the ``meta`` device)."""
    return [end * i / (n - 1) if n > 1 else 0.0 for i in range(n)]


def _check_images(images: Tensor, patch_size: tuple[int, int], in_chans: Optional[int] = None) -> None:
    if images.dim() != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")
    C, H, W = images.shape[1:]
    if in_chans is not None and C != in_chans:
        raise ValueError(f"images have {C} channels but the model expects in_chans={in_chans}")
    for name, size, p in (("height", H, patch_size[0]), ("width", W, patch_size[1])):
        if size % p:
            raise ValueError(f"image {name} {size} is not divisible by patch size {p}")


def patchify(images: Tensor, patch_size: _Size) -> Tensor:
    """Cut images into non-overlapping patches and flatten each: ``(B, C, H, W) -> (B, N, P*P*C)``.

    Patches are numbered row by row (``N = (H/P) * (W/P)``); inside a patch the values are
    ordered (row, column, channel), so ``patches[b, n].view(P, P, C)`` is patch ``n`` as a small
    ``(height, width, channel)`` image, ready for ``plt.imshow``.
    """
    ph, pw = _pair(patch_size)
    _check_images(images, (ph, pw))
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // ph, ph, W // pw, pw)
    # (B, C, gh, ph, gw, pw) -> (B, gh, gw, ph, pw, C)
    x = x.permute(0, 2, 4, 3, 5, 1)
    return x.reshape(B, (H // ph) * (W // pw), ph * pw * C)


def unpatchify(patches: Tensor, patch_size: _Size, image_size: _Size, in_chans: int = 3) -> Tensor:
    """The inverse of :func:`patchify`: ``(B, N, P*P*C) -> (B, C, H, W)``."""
    ph, pw = _pair(patch_size)
    H, W = _pair(image_size)
    B, N, F_ = patches.shape
    if H % ph or W % pw:
        raise ValueError(f"image size {(H, W)} is not divisible by patch size {(ph, pw)}")
    if N != (H // ph) * (W // pw) or F_ != ph * pw * in_chans:
        raise ValueError(
            f"patches of shape {tuple(patches.shape)} do not make a {in_chans}x{H}x{W} image with "
            f"{ph}x{pw} patches (expected N={(H // ph) * (W // pw)}, features={ph * pw * in_chans})"
        )
    x = patches.reshape(B, H // ph, W // pw, ph, pw, in_chans)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(B, in_chans, H, W)


def conv_weight_as_linear(weight: Tensor) -> Tensor:
    """The patch-embedding convolution's kernel ``(D, C, P, P)`` as a linear map ``(D, P*P*C)``
    acting on :func:`patchify`'s vectors (whose features are ordered row, column, channel)."""
    D = weight.shape[0]
    return weight.permute(0, 2, 3, 1).reshape(D, -1)


class PatchEmbed(nn.Module):
    """Image to patch tokens, ``(B, C, H, W) -> (B, N, D)`` (or ``(B, H/P, W/P, D)``, ``flatten=False``).

    The same function written two ways, sharing one weight ``proj.weight`` ``(D, C, P, P)``:

    * a convolution whose kernel size and stride both equal the patch size (timm, the default), and
    * :func:`patchify` followed by one linear layer (the paper's formulation), see
      :meth:`forward_linear`; choose it for ``forward`` with ``use_conv=False``.

    Args:
        img_size: the image size the model is built for (used for ``grid_size``/``num_patches``).
        patch_size: ``P`` (an int or ``(Ph, Pw)``).
        in_chans: image channels ``C``.
        embed_dim: token width ``D``.
        norm: apply a LayerNorm to the tokens (Swin does, ViT does not).
        norm_eps: that LayerNorm's epsilon.
        flatten: return ``(B, N, D)`` (ViT); else channels-last ``(B, H/P, W/P, D)`` (Swin).
        use_conv: compute with the convolution (fast) or with patchify + linear.
    """

    def __init__(
        self,
        img_size: _Size = 224,
        patch_size: _Size = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        norm: bool = False,
        norm_eps: float = 1e-5,
        flatten: bool = True,
        use_conv: bool = True,
    ) -> None:
        super().__init__()
        self.img_size = _pair(img_size)
        self.patch_size = _pair(patch_size)
        for name, size, p in zip(("height", "width"), self.img_size, self.patch_size):
            if size % p:
                raise ValueError(f"image {name} {size} is not divisible by patch size {p}")
        self.grid_size = (self.img_size[0] // self.patch_size[0], self.img_size[1] // self.patch_size[1])
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.flatten = flatten
        self.use_conv = use_conv
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=self.patch_size, stride=self.patch_size)
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps) if norm else nn.Identity()

    def forward_conv(self, x: Tensor) -> Tensor:
        """``(B, C, H, W) -> (B, H/P, W/P, D)`` with the strided convolution."""
        _check_images(x, self.patch_size, self.in_chans)
        return self.proj(x).permute(0, 2, 3, 1)

    def forward_linear(self, x: Tensor) -> Tensor:
        """``(B, C, H, W) -> (B, H/P, W/P, D)`` with :func:`patchify` and a linear layer."""
        _check_images(x, self.patch_size, self.in_chans)
        B, _, H, W = x.shape
        tokens = F.linear(
            patchify(x, self.patch_size), conv_weight_as_linear(self.proj.weight), self.proj.bias
        )
        return tokens.reshape(B, H // self.patch_size[0], W // self.patch_size[1], self.embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        if self.use_conv:
            _check_images(x, self.patch_size, self.in_chans)
            x = self.proj(x)  # (B, D, h, w)
            # timm's exact layout: flatten(2).transpose(1, 2) for ViT, permute for Swin.
            x = x.flatten(2).transpose(1, 2) if self.flatten else x.permute(0, 2, 3, 1)
        else:
            x = self.forward_linear(x)
            if self.flatten:
                x = x.flatten(1, 2)
        return self.norm(x)


@dataclass(frozen=True)
class ViTConfig:
    """Hyper-parameters of a :class:`VisionTransformer` (the keyword arguments of its constructor)."""

    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    class_token: bool = True
    global_pool: str = "token"
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    dynamic_img_size: bool = False

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2


class VisionTransformer(nn.Module):
    """ViT for classification, numerically equal to timm's ``VisionTransformer`` with the same weights.

    Args:
        img_size: input height = width it is built for (position embeddings for that grid).
        patch_size: patch side ``P``; ``img_size`` must be divisible by it.
        in_chans: image channels.
        num_classes: classes of the head (0: no head, :meth:`forward` returns features ``(B, D)``).
        embed_dim: token width ``D``.
        depth: number of encoder blocks.
        num_heads: attention heads per block (``embed_dim`` must be divisible by it).
        mlp_ratio: MLP hidden width / ``D``.
        qkv_bias: bias in the q/k/v projection.
        class_token: prepend a learned ``[CLS]`` token.
        global_pool: ``'token'`` (use ``[CLS]``, final ``norm``) or ``'avg'`` (mean of the patch tokens,
            then ``fc_norm``, as timm does).
        drop_rate, attn_drop_rate, drop_path_rate: dropout after projections / on attention weights /
            stochastic depth (increasing linearly with depth up to ``drop_path_rate``).
        dynamic_img_size: accept other image sizes by resampling the position embedding on the fly
            (bicubic, as timm); otherwise another size raises ``ValueError`` (use :meth:`set_image_size`).

    Shapes: images ``(B, C, H, W)`` -> logits ``(B, num_classes)``;
    :meth:`forward_features` -> tokens ``(B, 1+N, D)``.
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        class_token: bool = True,
        global_pool: str = "token",
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        dynamic_img_size: bool = False,
    ) -> None:
        super().__init__()
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
        if global_pool == "token" and not class_token:
            raise ValueError("global_pool='token' needs class_token=True")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}")
        self.config = ViTConfig(
            img_size, patch_size, in_chans, num_classes, embed_dim, depth, num_heads, mlp_ratio, qkv_bias,
            class_token, global_pool, drop_rate, attn_drop_rate, drop_path_rate, dynamic_img_size,
        )  # fmt: skip
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.embed_dim = self.num_features = embed_dim
        self.num_prefix_tokens = 1 if class_token else 0
        self.dynamic_img_size = dynamic_img_size

        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        # One learned vector per position, the class token's included (timm, DeiT, original ViT).
        self.pos_embed = nn.Parameter(
            torch.zeros(1, self.patch_embed.num_patches + self.num_prefix_tokens, embed_dim)
        )
        self.pos_drop = nn.Dropout(drop_rate)
        rates = _linspace(drop_path_rate, depth)
        self.blocks = nn.Sequential(
            *(
                TransformerBlock(
                    embed_dim,
                    num_heads,
                    mlp_ratio,
                    qkv_bias,
                    drop=drop_rate,
                    attn_drop=attn_drop_rate,
                    drop_path=rates[i],
                    norm_eps=1e-6,
                )  # fmt: skip
                for i in range(depth)
            )
        )
        use_fc_norm = global_pool == "avg"
        self.norm = nn.Identity() if use_fc_norm else nn.LayerNorm(embed_dim, eps=1e-6)
        self.fc_norm = nn.LayerNorm(embed_dim, eps=1e-6) if use_fc_norm else nn.Identity()
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """timm's default initialisation: truncated normal (std 0.02) for linear layers and the position
        embedding, zero biases, a tiny class token; the convolution keeps PyTorch's default."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02, a=-2.0, b=2.0)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-2.0, b=2.0)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # ---- position embedding ----------------------------------------------------------------
    def _pos_embed_for(self, grid: tuple[int, int]) -> Tensor:
        if grid == self.patch_embed.grid_size:
            return self.pos_embed
        if not self.dynamic_img_size:
            P = self.patch_embed.patch_size
            raise ValueError(
                f"image size {(grid[0] * P[0], grid[1] * P[1])} does not match the model's img_size "
                f"{self.patch_embed.img_size}; build it with dynamic_img_size=True or call set_image_size()"
            )
        return resample_abs_pos_embed(
            self.pos_embed, grid, self.patch_embed.grid_size, self.num_prefix_tokens
        )

    def set_image_size(self, img_size: int) -> None:
        """Adapt the model to ``img_size`` for good: the position embedding is resampled (bicubic,
        antialiased, as timm's ``resample_abs_pos_embed``) to the new patch grid."""
        new = PatchEmbed(img_size, self.patch_embed.patch_size, self.patch_embed.in_chans, self.embed_dim)
        with torch.no_grad():
            pos = resample_abs_pos_embed(
                self.pos_embed, new.grid_size, self.patch_embed.grid_size, self.num_prefix_tokens
            )
        self.pos_embed = nn.Parameter(pos.detach().clone())
        self.patch_embed.img_size, self.patch_embed.grid_size = new.img_size, new.grid_size
        self.patch_embed.num_patches = new.num_patches
        self.config = replace(self.config, img_size=img_size)

    # ---- forward ---------------------------------------------------------------------------
    def embed(self, x: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` -> input tokens ``(B, 1+N, D)`` (class token first, positions added)."""
        tokens = self.patch_embed(x)  # (B, N, D)
        P = self.patch_embed.patch_size
        pos = self._pos_embed_for((x.shape[-2] // P[0], x.shape[-1] // P[1]))
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return self.pos_drop(tokens + pos)

    def forward_features(self, x: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` -> encoded tokens ``(B, 1+N, D)`` (after the final ``norm``)."""
        return self.norm(self.blocks(self.embed(x)))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Tokens ``(B, 1+N, D)`` -> logits ``(B, num_classes)`` (or pooled features ``(B, D)``)."""
        if self.global_pool == "token":
            x = x[:, 0]
        else:
            x = x[:, self.num_prefix_tokens :].mean(dim=1)
        x = self.head_drop(self.fc_norm(x))
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` -> logits ``(B, num_classes)``."""
        return self.forward_head(self.forward_features(x))

    @torch.no_grad()
    def attention_maps(self, x: Tensor) -> list[Tensor]:
        """The attention weights of every block, each ``(B, heads, 1+N, 1+N)`` (for visualisation)."""
        maps = []
        h = self.embed(x)
        for blk in self.blocks:
            h, w = blk(h, need_weights=True)
            maps.append(w)
        return maps


# ---- named configurations -------------------------------------------------------------------
VIT_CONFIGS: dict[str, ViTConfig] = {
    # ViT paper Table 1 / DeiT Table 1, 224x224 ImageNet, 1000 classes.
    "vit_tiny_patch16_224": ViTConfig(patch_size=16, embed_dim=192, depth=12, num_heads=3),
    "vit_small_patch16_224": ViTConfig(patch_size=16, embed_dim=384, depth=12, num_heads=6),
    "vit_base_patch16_224": ViTConfig(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "vit_base_patch32_224": ViTConfig(patch_size=32, embed_dim=768, depth=12, num_heads=12),
    "vit_large_patch16_224": ViTConfig(patch_size=16, embed_dim=1024, depth=24, num_heads=16),
    # Small ones for the training chapter (train on a CPU in seconds).
    # sklearn digits: 8x8 grey images, 2x2 patches -> 16 tokens. ~0.14M parameters.
    "vit_digits": ViTConfig(
        img_size=8,
        patch_size=2,
        in_chans=1,
        num_classes=10,
        embed_dim=64,
        depth=4,
        num_heads=4,
        mlp_ratio=2.0,
    ),
    # CIFAR-10: 32x32 RGB, 4x4 patches -> 64 tokens. ~0.8M parameters.
    "vit_cifar": ViTConfig(
        img_size=32,
        patch_size=4,
        in_chans=3,
        num_classes=10,
        embed_dim=128,
        depth=6,
        num_heads=4,
        mlp_ratio=2.0,
    ),
}


def list_vits() -> list[str]:
    """Names accepted by :func:`create_vit`."""
    return list(VIT_CONFIGS)


def vit_config(name: str, **overrides: Any) -> ViTConfig:
    """The :class:`ViTConfig` of a named model, with ``overrides`` applied."""
    return named_config(VIT_CONFIGS, "ViT", name, overrides)


def create_vit(name: str, **overrides: Any) -> VisionTransformer:
    """Build a named ViT, e.g. ``create_vit('vit_small_patch16_224')`` or ``create_vit('vit_cifar',
    drop_path_rate=0.1)``. Weights are randomly initialised (no download)."""
    return VisionTransformer(**asdict(vit_config(name, **overrides)))
