"""Multi-head attention: project, split into heads, attend per head, merge, project back.

The weight names follow timm's ViT (``qkv``, ``proj``) so that ViT and Swin checkpoints load
as they are. ``qkv`` is one fused ``Linear(D, 3D)`` whose output is ordered ``[q | k | v]``, the same
order as ``torch.nn.MultiheadAttention.in_proj_weight``.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import fast_attention, scaled_dot_product_attention
from .layers import check_heads, check_rate

__all__ = ["MultiHeadAttention", "split_heads", "merge_heads"]


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """``(B, N, D) -> (B, H, N, D/H)``: head ``h`` gets features ``h*D/H ... (h+1)*D/H - 1``."""
    B, N, D = x.shape
    if D % num_heads:
        raise ValueError(f"embed_dim={D} is not divisible by num_heads={num_heads}")
    return x.reshape(B, N, num_heads, D // num_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """``(B, H, N, d) -> (B, N, H*d)``: the inverse of :func:`split_heads` (more leading dimensions
    than ``B`` are kept as they are)."""
    *lead, H, N, d = x.shape
    return x.transpose(-3, -2).reshape(*lead, N, H * d)


class MultiHeadAttention(nn.Module):
    """Multi-head (self- or cross-) attention on batch-first tokens.

    Args:
        embed_dim: model width ``D``.
        num_heads: number of heads ``H``; each head works in ``D/H`` dimensions.
        qkv_bias: bias in the q/k/v projection (ViT and Swin: ``True``).
        attn_drop: dropout on the attention weights.
        proj_drop: dropout after the output projection.

    Shapes: ``x`` ``(B, N, D)``; ``context`` (cross-attention keys/values) ``(B, M, D)``;
    output ``(B, N, D)``; weights ``(B, H, N, M)`` or, averaged over heads, ``(B, N, M)``.
    Self-attention also takes more leading dimensions, ``(..., N, D)``: Swin passes its windows as
    ``(B, windows, N, D)`` so that a per-window bias broadcasts over the batch.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        check_heads(embed_dim, num_heads)
        check_rate("attn_drop", attn_drop)
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scale = self.head_dim**-0.5
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim, bias=qkv_bias)
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def project_qkv(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor, Tensor]:
        """Queries from ``x``, keys and values from ``context`` (``x`` itself for self-attention).

        Returns ``q, k, v``, each ``(B, H, tokens, D/H)``.
        """
        D = x.shape[-1]
        if D != self.embed_dim:
            raise ValueError(f"input has {D} features but the layer expects embed_dim={self.embed_dim}")
        H, d = self.num_heads, self.head_dim
        if context is None:
            # One matmul for all three, then (B, N, 3, H, d) -> (3, B, H, N, d), as timm's
            # permute(2, 0, 3, 1, 4); written with negative dimensions for any leading ones.
            qkv = self.qkv(x).unflatten(-1, (3, H, d)).movedim(-3, 0).transpose(-3, -2)
            return qkv.unbind(0)
        B = x.shape[0]
        if x.dim() != 3 or context.dim() != 3 or context.shape[0] != B or context.shape[-1] != D:
            raise ValueError(
                f"context of shape {tuple(context.shape)} does not fit x of shape {tuple(x.shape)}"
            )
        w, b = self.qkv.weight, self.qkv.bias
        q = F.linear(x, w[:D], None if b is None else b[:D])
        kv = F.linear(context, w[D:], None if b is None else b[D:])
        M = context.shape[1]
        k, v = kv.reshape(B, M, 2, H, d).permute(2, 0, 3, 1, 4).unbind(0)
        return split_heads(q, H), k, v

    def forward(
        self,
        x: Tensor,
        context: Optional[Tensor] = None,
        mask: Optional[Tensor] = None,
        bias: Optional[Tensor] = None,
        is_causal: bool = False,
        need_weights: bool = False,
        average_weights: bool = False,
    ) -> tuple[Tensor, Optional[Tensor]]:
        """Attend from ``x`` ``(B, N, D)`` to ``context`` ``(B, M, D)`` (default: ``x``).

        ``mask``/``bias`` broadcast to ``(B, H, N, M)``; a boolean mask is ``True`` where attention
        is allowed (the opposite of ``nn.MultiheadAttention``'s boolean masks).
        Returns ``(out (B, N, D), weights)`` with weights ``(B, H, N, M)``, ``(B, N, M)`` when
        ``average_weights``, or ``None`` unless ``need_weights``.
        """
        if x.dim() < 3:
            raise ValueError(f"expected x of shape (B, N, D), got {tuple(x.shape)}")
        q, k, v = self.project_qkv(x, context)  # each (B, H, tokens, D/H)
        dropout_p = self.attn_drop if self.training else 0.0
        if need_weights:  # the book's formula, which also returns the weights
            out, weights = scaled_dot_product_attention(
                q, k, v, mask, bias, is_causal=is_causal, scale=self.scale, dropout_p=dropout_p,
                need_weights=True,
            )  # fmt: skip
        else:  # the same output, from torch's fused kernel where it can (see fast_attention)
            out = fast_attention(
                q, k, v, mask, bias, is_causal=is_causal, scale=self.scale, dropout_p=dropout_p
            )  # fmt: skip
            weights = None
        out = self.proj_drop(self.proj(merge_heads(out)))
        if weights is not None and average_weights:
            weights = weights.mean(dim=-3)
        return out, weights

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """Build a module with the weights of a ``torch.nn.MultiheadAttention``.

        Works for modules with equal q/k/v sizes (``kdim == vdim == embed_dim``), either bias
        setting and either ``batch_first`` (this module is always batch-first).
        """
        if not mha._qkv_same_embed_dim:
            raise ValueError("only nn.MultiheadAttention with kdim == vdim == embed_dim can be converted")
        if mha.bias_k is not None or mha.bias_v is not None:
            raise ValueError("nn.MultiheadAttention with add_bias_kv=True has no counterpart here")
        has_bias = mha.in_proj_bias is not None
        new = cls(mha.embed_dim, mha.num_heads, qkv_bias=has_bias, attn_drop=mha.dropout)
        # Move first, copy after: copying float64 weights into float32 parameters would round them.
        new = new.to(mha.in_proj_weight.device, mha.in_proj_weight.dtype)
        with torch.no_grad():
            new.qkv.weight.copy_(mha.in_proj_weight)
            if has_bias:
                new.qkv.bias.copy_(mha.in_proj_bias)
            new.proj.weight.copy_(mha.out_proj.weight)
            if mha.out_proj.bias is not None:
                new.proj.bias.copy_(mha.out_proj.bias)
            else:
                new.proj.bias.zero_()
        return new

    def to_torch(self, batch_first: bool = True) -> nn.MultiheadAttention:
        """The same layer as a ``torch.nn.MultiheadAttention`` (the inverse of :meth:`from_torch`).

        ``nn.MultiheadAttention`` has one ``bias`` switch for both projections; a layer built with
        ``qkv_bias=False`` whose output projection has a non-zero bias gets ``bias=True`` with a zero
        ``in_proj_bias``, so that the function computed stays the same.
        """
        has_qkv_bias = self.qkv.bias is not None
        has_bias = has_qkv_bias or bool(self.proj.bias.detach().ne(0).any())
        mha = nn.MultiheadAttention(
            self.embed_dim, self.num_heads, dropout=self.attn_drop, bias=has_bias, batch_first=batch_first
        ).to(self.qkv.weight.device, self.qkv.weight.dtype)
        with torch.no_grad():
            mha.in_proj_weight.copy_(self.qkv.weight)
            if has_bias:
                if has_qkv_bias:
                    mha.in_proj_bias.copy_(self.qkv.bias)
                else:
                    mha.in_proj_bias.zero_()
                mha.out_proj.bias.copy_(self.proj.bias)
            mha.out_proj.weight.copy_(self.proj.weight)
        return mha
