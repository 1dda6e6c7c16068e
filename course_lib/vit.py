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
(see :mod:`course_lib.convert`). The blocks are :class:`course_lib.block.TransformerBlock`; the patch
embedding (:class:`~course_lib.layers.PatchEmbed`, :func:`~course_lib.layers.patchify`...) lives in
:mod:`course_lib.layers`, shared with Swin, and is importable from here too.

A model is built from its configuration: ``VisionTransformer(ViTConfig(embed_dim=192, ...))``, or
by name with ``create_vit('vit_tiny_patch16_224', num_classes=10)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

import torch
from torch import Tensor, nn

from .block import TransformerBlock
from .layers import (
    PatchEmbed,
    check_heads,
    check_rate,
    conv_weight_as_linear,
    drop_path_rates,
    patchify,
    unpatchify,
)
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


@dataclass(frozen=True)
class ViTConfig:
    """Hyper-parameters of a :class:`VisionTransformer` (names as timm's ``VisionTransformer``).

    Args:
        img_size: input height = width it is built for (position embeddings for that grid).
        patch_size: patch side ``P``; ``img_size`` must be divisible by it.
        in_chans: image channels.
        num_classes: classes of the head (0: no head, the model returns features ``(B, D)``).
        embed_dim: token width ``D``.
        depth: number of encoder blocks.
        num_heads: attention heads per block (``embed_dim`` must be divisible by it).
        mlp_ratio: MLP hidden width / ``D``.
        qkv_bias: bias in the q/k/v projection.
        class_token: prepend a learned ``[CLS]`` token.
        global_pool: ``'token'`` (use ``[CLS]``, final ``norm``) or ``'avg'`` (mean of the patch tokens,
            then ``fc_norm``, as timm does).
        drop_rate: dropout after the position embedding, the projections and before the head.
        attn_drop_rate: dropout on the attention weights.
        drop_path_rate: stochastic depth of the last block (rising linearly from 0 over the blocks).
        dynamic_img_size: accept other image sizes by resampling the position embedding on the fly
            (bicubic, as timm); otherwise another size raises ``ValueError`` (use ``set_image_size``).

    Inconsistent values raise ``ValueError`` when the config is made.
    """

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

    def __post_init__(self) -> None:
        if self.global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {self.global_pool!r}")
        if self.global_pool == "token" and not self.class_token:
            raise ValueError("global_pool='token' needs class_token=True")
        check_heads(self.embed_dim, self.num_heads)
        for name in ("drop_rate", "attn_drop_rate", "drop_path_rate"):
            check_rate(name, getattr(self, name))

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2


class VisionTransformer(nn.Module):
    """ViT for classification, numerically equal to timm's ``VisionTransformer`` with the same weights.

    Built from a :class:`ViTConfig` (the default config is ViT-B/16), kept as ``model.config``.

    Shapes: images ``(B, C, H, W)`` -> logits ``(B, num_classes)``;
    :meth:`forward_features` -> tokens ``(B, 1+N, D)``.
    """

    def __init__(self, config: Optional[ViTConfig] = None) -> None:
        super().__init__()
        if config is None:
            config = ViTConfig()
        if not isinstance(config, ViTConfig):
            raise TypeError(
                f"VisionTransformer takes a ViTConfig, got {type(config).__name__}; build one with "
                "VisionTransformer(ViTConfig(embed_dim=..., ...)) or create_vit(name, **overrides)"
            )
        c = self.config = config
        self.num_prefix_tokens = 1 if c.class_token else 0
        self.num_features = c.embed_dim

        self.patch_embed = PatchEmbed(c.img_size, c.patch_size, in_chans=c.in_chans, embed_dim=c.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim)) if c.class_token else None
        # One learned vector per position, the class token's included (timm, DeiT, original ViT).
        self.pos_embed = nn.Parameter(
            torch.zeros(1, self.patch_embed.num_patches + self.num_prefix_tokens, c.embed_dim)
        )
        self.pos_drop = nn.Dropout(c.drop_rate)
        self.blocks = nn.Sequential(
            *(
                TransformerBlock(
                    c.embed_dim,
                    c.num_heads,
                    mlp_ratio=c.mlp_ratio,
                    qkv_bias=c.qkv_bias,
                    drop=c.drop_rate,
                    attn_drop=c.attn_drop_rate,
                    drop_path=rate,
                    norm_eps=1e-6,
                )
                for rate in drop_path_rates(c.drop_path_rate, c.depth)
            )
        )
        use_fc_norm = c.global_pool == "avg"
        self.norm = nn.Identity() if use_fc_norm else nn.LayerNorm(c.embed_dim, eps=1e-6)
        self.fc_norm = nn.LayerNorm(c.embed_dim, eps=1e-6) if use_fc_norm else nn.Identity()
        self.head_drop = nn.Dropout(c.drop_rate)
        self.head = nn.Linear(c.embed_dim, c.num_classes) if c.num_classes > 0 else nn.Identity()
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
        if not self.config.dynamic_img_size:
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
        c = self.config
        new = PatchEmbed(img_size, c.patch_size, in_chans=c.in_chans, embed_dim=c.embed_dim)
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
        if self.config.global_pool == "token":
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
    return VisionTransformer(vit_config(name, **overrides))
