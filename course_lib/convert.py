"""Weight converters between timm's models and course_lib's.

course_lib's ViT and Swin use timm's parameter names, so converting is building the model with the
same hyper-parameters and loading the state dict with ``strict=True``: every tensor must find its
place, and nothing may be left over. The functions read the hyper-parameters off the timm model and
refuse (``ValueError``) the timm variants that course_lib does not implement (layer scale, register
tokens, QK-norm...), rather than silently computing something else.

timm is only needed for the ``*_to_timm`` functions and is imported there.

* :func:`vit_from_timm` / :func:`vit_to_timm`;
* :func:`swin_from_timm` / :func:`swin_to_timm`;
* :func:`swin_state_dict_from_official`: a checkpoint of the official Microsoft code (patch merging at
  the *end* of stages 0..2, head named ``head``) renamed for course_lib/timm (merging at the *start*
  of stages 1..3, head named ``head.fc``).
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from .swin import SwinConfig, SwinTransformer
from .vit import VisionTransformer, ViTConfig

__all__ = [
    "vit_from_timm",
    "vit_to_timm",
    "swin_from_timm",
    "swin_to_timm",
    "swin_state_dict_from_official",
]


def _side(size: Any) -> int:
    """timm stores sizes as ``(h, w)`` pairs; course_lib's models are square."""
    h, w = (size, size) if isinstance(size, int) else size
    if h != w:
        raise ValueError(f"only square sizes are supported, got {(h, w)}")
    return int(h)


def _require(cond: bool, what: str) -> None:
    if not cond:
        raise ValueError(f"this timm model uses {what}, which course_lib does not implement")


def _load(model: nn.Module, state_dict: dict[str, torch.Tensor], like: nn.Module) -> nn.Module:
    model.load_state_dict(state_dict, strict=True)
    p = next(like.parameters())
    return model.to(device=p.device, dtype=p.dtype).train(like.training)


# ---- ViT --------------------------------------------------------------------------------------
def vit_from_timm(timm_model: nn.Module) -> VisionTransformer:
    """A :class:`~course_lib.vit.VisionTransformer` with the weights of a timm ``VisionTransformer``
    (e.g. ``timm.create_model('vit_base_patch16_224', pretrained=False)``). Same device, dtype and
    train/eval mode; dropout and drop-path rates are 0 (set them on the result if you train it)."""
    t = timm_model
    blocks = list(t.blocks)
    _require(getattr(t, "reg_token", None) is None, "register tokens")
    _require(not getattr(t, "no_embed_class", False), "position embeddings without the class token")
    _require(getattr(t, "attn_pool", None) is None, "attention pooling")
    _require(isinstance(getattr(t, "norm_pre", nn.Identity()), nn.Identity), "a pre-norm before the blocks")
    _require(t.pos_embed is not None, "no absolute position embedding")
    _require(t.global_pool in ("token", "avg"), f"global_pool={t.global_pool!r}")
    _require(
        (t.global_pool == "avg") == (not isinstance(t.fc_norm, nn.Identity)), "fc_norm with this pooling"
    )
    blk = blocks[0]
    _require(isinstance(blk.ls1, nn.Identity), "layer scale")
    _require(isinstance(getattr(blk.attn, "q_norm", nn.Identity()), nn.Identity), "QK normalisation")
    _require(isinstance(blk.mlp.act, nn.GELU) and blk.mlp.act.approximate == "none", "a non-exact-GELU MLP")
    _require(abs(blk.norm1.eps - 1e-6) < 1e-12, f"LayerNorm eps {blk.norm1.eps}")
    embed_dim = t.embed_dim
    num_classes = t.head.out_features if isinstance(t.head, nn.Linear) else 0
    model = VisionTransformer(ViTConfig(
        img_size=_side(t.patch_embed.img_size),
        patch_size=_side(t.patch_embed.patch_size),
        in_chans=t.patch_embed.proj.in_channels,
        num_classes=num_classes,
        embed_dim=embed_dim,
        depth=len(blocks),
        num_heads=blk.attn.num_heads,
        mlp_ratio=blk.mlp.fc1.out_features / embed_dim,
        qkv_bias=blk.attn.qkv.bias is not None,
        class_token=t.cls_token is not None,
        global_pool=t.global_pool,
        dynamic_img_size=bool(getattr(t, "dynamic_img_size", False)),
    ))  # fmt: skip
    return _load(model, t.state_dict(), t)


def vit_to_timm(model: VisionTransformer) -> nn.Module:
    """The inverse of :func:`vit_from_timm`: a timm ``VisionTransformer`` with these weights."""
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    # ViTConfig's fields are timm's constructor arguments, by design.
    t = TimmViT(**asdict(model.config))
    return _load(t, model.state_dict(), model)


# ---- Swin -------------------------------------------------------------------------------------
def swin_from_timm(timm_model: nn.Module) -> SwinTransformer:
    """A :class:`~course_lib.swin.SwinTransformer` with the weights of a timm ``SwinTransformer``
    (e.g. ``timm.create_model('swin_tiny_patch4_window7_224', pretrained=False)``).

    Both place patch merging at the start of stages 1..3 (``layers.{s}.downsample``), so the names
    are identical; the relative position index and the shift masks are buffers that both rebuild.
    """
    t = timm_model
    stages = list(t.layers)
    _require(t.global_pool == "avg", f"global_pool={t.global_pool!r}")
    _require(not getattr(t, "dynamic_img_size", False), "dynamic image sizes")
    windows = {s.blocks[0].attn.window_size for s in stages}
    # A stage whose map is smaller than the window shrinks its window to the map: take the largest.
    window = max(_side(w) for w in windows)
    blk = stages[0].blocks[0]
    _require(abs(blk.norm1.eps - 1e-5) < 1e-12, f"LayerNorm eps {blk.norm1.eps}")
    _require(blk.attn.qkv.out_features == 3 * blk.dim, "a head_dim other than dim / num_heads")
    num_classes = t.head.fc.out_features if isinstance(t.head.fc, nn.Linear) else 0
    model = SwinTransformer(SwinConfig(
        img_size=_side(t.patch_embed.img_size),
        patch_size=_side(t.patch_embed.patch_size),
        in_chans=t.patch_embed.proj.in_channels,
        num_classes=num_classes,
        embed_dim=t.embed_dim,
        depths=tuple(len(s.blocks) for s in stages),
        num_heads=tuple(s.blocks[0].attn.num_heads for s in stages),
        window_size=window,
        mlp_ratio=blk.mlp.fc1.out_features / blk.dim,
        qkv_bias=blk.attn.qkv.bias is not None,
    ))  # fmt: skip
    for ours, theirs in zip(model.layers, stages):
        for b_ours, b_theirs in zip(ours.blocks, theirs.blocks):
            if (b_ours.window_size, b_ours.shift_size) != (
                _side(b_theirs.window_size),
                _side(b_theirs.shift_size),
            ):
                raise ValueError("timm's window/shift sizes differ from course_lib's for this configuration")
    return _load(model, t.state_dict(), t)


def swin_to_timm(model: SwinTransformer) -> nn.Module:
    """The inverse of :func:`swin_from_timm`: a timm ``SwinTransformer`` with these weights."""
    from timm.models.swin_transformer import SwinTransformer as TimmSwin

    # SwinConfig's fields are timm's constructor arguments, by design.
    t = TimmSwin(**asdict(model.config))
    return _load(t, model.state_dict(), model)


def swin_state_dict_from_official(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a checkpoint of github.com/microsoft/Swin-Transformer for course_lib (and timm).

    The official code ends stage ``s`` with its patch merging (``layers.{s}.downsample``); here the
    same layer starts stage ``s+1``. The classifier ``head`` becomes ``head.fc``. The saved buffers
    ``relative_position_index`` and ``attn_mask`` are dropped: course_lib rebuilds them.
    (Also accepts a ``{'model': state_dict}`` checkpoint.)
    """
    if "model" in state_dict and isinstance(state_dict["model"], dict):
        state_dict = state_dict["model"]
    out = {}
    for k, v in state_dict.items():
        if k.endswith(("relative_position_index", "attn_mask")):
            continue
        k = re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) + 1}.downsample", k)
        k = re.sub(r"^head\.", "head.fc.", k)
        out[k] = v
    return out
