"""The Transformer encoder block: attention and an MLP, each wrapped in a residual connection.

Pre-norm (ViT, Swin, GPT-2; the default)::

    x = x + DropPath(Attention(LayerNorm(x)))
    x = x + DropPath(MLP(LayerNorm(x)))

Post-norm (the original Transformer)::

    x = LayerNorm(x + Attention(x))
    x = LayerNorm(x + MLP(x))

Weight names follow timm's ViT ``Block`` (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``,
``mlp.fc1``, ``mlp.fc2``).
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from .multihead import MultiHeadAttention

__all__ = ["Mlp", "DropPath", "drop_path", "TransformerBlock"]


class Mlp(nn.Module):
    """Two linear layers with a GELU between: ``(..., D) -> (..., hidden) -> (..., D_out)``.

    GELU is the exact (erf) form, as in timm and torch's defaults (the original JAX ViT used the
    tanh approximation).
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: Optional[int] = None,
        out_features: Optional[int] = None,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


def drop_path(x: Tensor, p: float = 0.0, training: bool = False) -> Tensor:
    """Stochastic depth: zero the whole residual branch of each sample with probability ``p``.

    Kept samples are scaled by ``1/(1-p)`` so that the expected value is unchanged.
    ``x`` is ``(B, ...)``; one coin is drawn per sample.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"drop path probability {p} must be in [0, 1)")
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    coin = x.new_empty(shape).bernoulli_(keep)
    return x * coin / keep


class DropPath(nn.Module):
    """Module form of :func:`drop_path` (identity in eval mode)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path probability {p} must be in [0, 1)")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class TransformerBlock(nn.Module):
    """A Transformer encoder block on tokens ``(B, N, D) -> (B, N, D)``.

    Args:
        dim: token width ``D``.
        num_heads: attention heads (``dim`` must be divisible by it).
        mlp_ratio: MLP hidden width as a multiple of ``dim`` (4 in ViT and Swin).
        qkv_bias: bias in the q/k/v projection.
        drop: dropout after the attention projection and inside the MLP.
        attn_drop: dropout on the attention weights.
        drop_path: stochastic-depth probability of each residual branch.
        norm_eps: LayerNorm epsilon (1e-6 in ViT, 1e-5 in Swin and torch's default).
        pre_norm: ``True`` for pre-norm (ViT), ``False`` for the original post-norm block.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
        pre_norm: bool = True,
    ) -> None:
        super().__init__()
        if mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio={mlp_ratio} must be positive")
        self.pre_norm = pre_norm
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = MultiHeadAttention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.drop_path2 = DropPath(drop_path)

    def forward(
        self,
        x: Tensor,
        mask: Optional[Tensor] = None,
        bias: Optional[Tensor] = None,
        need_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Optional[Tensor]]:
        """``x`` ``(B, N, D)`` -> ``(B, N, D)``; with ``need_weights`` also the attention weights
        ``(B, H, N, N)``. ``mask``/``bias`` are passed to the attention (see
        :func:`course_lib.attention.scaled_dot_product_attention`)."""
        if self.pre_norm:
            a, w = self.attn(self.norm1(x), mask=mask, bias=bias, need_weights=need_weights)
            x = x + self.drop_path1(a)
            x = x + self.drop_path2(self.mlp(self.norm2(x)))
        else:
            a, w = self.attn(x, mask=mask, bias=bias, need_weights=need_weights)
            x = self.norm1(x + self.drop_path1(a))
            x = self.norm2(x + self.drop_path2(self.mlp(x)))
        return (x, w) if need_weights else x

