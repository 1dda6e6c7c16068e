"""Scaled dot-product attention, written out so that every step can be read.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + B) V          (Vaswani et al., 2017, Eq. 1)

Shapes: ``q`` is ``(..., N_q, d_k)``, ``k`` is ``(..., N_k, d_k)``, ``v`` is ``(..., N_k, d_v)``;
the leading dimensions (batch, heads, windows...) broadcast. The output is ``(..., N_q, d_v)`` and
the attention weights, when asked for, are ``(..., N_q, N_k)``.

Masks follow the convention of :func:`torch.nn.functional.scaled_dot_product_attention`:

* a **boolean** mask is ``True`` where a query MAY attend to a key (``False`` entries are removed);
  note that :class:`torch.nn.MultiheadAttention` uses the opposite convention for its boolean masks;
* a **float** mask is added to the logits (use ``-inf`` or a large negative number to remove a key);
* ``bias`` is an extra float tensor added to the logits (Swin's relative position bias, for example);
* ``is_causal=True`` lets query ``i`` see only keys ``j <= i``.

A query whose keys are *all* masked has nothing to attend to. Plain softmax would divide 0 by 0 and
return NaN; here such a row gets **all-zero weights and a zero output vector**, so that a padded
sequence cannot poison a batch with NaN.

The softmax subtracts each row's maximum before exponentiating, so logits of 1e4 do not overflow.

Two functions compute the formula:

* :func:`scaled_dot_product_attention` is the book's: the formula written out, one step per line,
  built from :func:`attention_logits`, :func:`combine_masks` and :func:`masked_softmax`;
* :func:`fast_attention`, at the end of this module, returns the same output faster (torch's fused
  kernel and two smaller tricks, documented there). The models call it; the tests check that both
  equal ``torch.nn.functional.scaled_dot_product_attention``.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "scaled_dot_product_attention",
    "attention_logits",
    "masked_softmax",
    "combine_masks",
    "fast_attention",
    "fused_attention",
    "fused_attention_enabled",
]


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    if q.dim() < 2 or k.dim() < 2 or v.dim() < 2:
        raise ValueError(
            f"q, k and v need at least 2 dimensions (..., tokens, features); got shapes "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"query dimension d_k={q.shape[-1]} does not match key dimension {k.shape[-1]} "
            f"(q {tuple(q.shape)}, k {tuple(k.shape)})"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k has {k.shape[-2]} tokens but v has {v.shape[-2]}: every key needs a value "
            f"(k {tuple(k.shape)}, v {tuple(v.shape)})"
        )
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"the leading (batch, head...) dimensions of q {tuple(q.shape)}, k {tuple(k.shape)} and "
            f"v {tuple(v.shape)} do not broadcast"
        ) from None


def combine_masks(
    n_q: int,
    n_k: int,
    mask: Optional[Tensor] = None,
    bias: Optional[Tensor] = None,
    is_causal: bool = False,
    dtype: torch.dtype = torch.float32,
    device: Optional[torch.device] = None,
) -> Optional[Tensor]:
    """Fold a boolean/float ``mask``, an additive ``bias`` and causality into one additive tensor.

    Returns ``None`` when there is nothing to add, else a float tensor broadcastable to
    ``(..., n_q, n_k)`` holding ``-inf`` at removed positions.
    """
    total: Optional[Tensor] = None
    for term in (mask, bias):
        if term is None:
            continue
        if not _broadcasts(tuple(term.shape[-2:]), (n_q, n_k)):
            raise ValueError(
                f"mask/bias of shape {tuple(term.shape)} does not broadcast to (..., {n_q}, {n_k}) "
                f"(queries x keys)"
            )
        if term.dtype == torch.bool:
            term = torch.zeros(term.shape, dtype=dtype, device=term.device).masked_fill(~term, -math.inf)
        elif not term.is_floating_point():
            raise ValueError(f"a mask must be bool or float, got {term.dtype}")
        else:
            term = term.to(dtype)
        total = term if total is None else total + term
    if is_causal:
        allowed = torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril()
        causal = torch.zeros(n_q, n_k, dtype=dtype, device=device).masked_fill(~allowed, -math.inf)
        total = causal if total is None else total + causal
    return total


def _broadcasts(shape: tuple, target: tuple) -> bool:
    try:
        return tuple(torch.broadcast_shapes(shape, target)) == tuple(target)
    except RuntimeError:
        return False


def attention_logits(q: Tensor, k: Tensor, scale: Optional[float] = None) -> Tensor:
    """``Q K^T * scale`` with ``scale = 1/sqrt(d_k)`` by default: ``(..., N_q, N_k)``.

    Entry ``[i, j]`` is how well query ``i`` matches key ``j``.
    """
    if scale is None:
        scale = q.shape[-1] ** -0.5
    return (q * scale) @ k.transpose(-2, -1)


def masked_softmax(logits: Tensor, additive: Optional[Tensor] = None) -> Tensor:
    """Row-wise softmax over the last dimension, stable for large logits.

    ``additive`` (``-inf`` = removed) is added first. A row with every entry removed returns
    zeros instead of NaN.
    """
    if additive is not None:
        logits = logits + additive
    row_max = logits.amax(dim=-1, keepdim=True)
    # A fully removed row has max -inf; use 0 so that exp(-inf - 0) = 0 instead of NaN.
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    e = torch.exp(logits - row_max)
    total = e.sum(dim=-1, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Optional[Tensor] = None,
    bias: Optional[Tensor] = None,
    *,
    is_causal: bool = False,
    scale: Optional[float] = None,
    dropout_p: float = 0.0,
    need_weights: bool = False,
) -> tuple[Tensor, Optional[Tensor]]:
    """``softmax(q k^T * scale + bias + mask) v``: the book's formula, one step per line.

    Args:
        q: queries ``(..., N_q, d_k)``.
        k: keys ``(..., N_k, d_k)``.
        v: values ``(..., N_k, d_v)``.
        mask: boolean (``True`` = may attend) or additive float, broadcastable to ``(..., N_q, N_k)``.
        bias: additive float logits bias, broadcastable to ``(..., N_q, N_k)``.
        is_causal: query ``i`` sees keys ``0..i`` only.
        scale: logit scale; ``1/sqrt(d_k)`` by default.
        dropout_p: dropout on the attention weights (pass 0 in eval mode).
        need_weights: also return the weights ``(..., N_q, N_k)``.

    Returns:
        ``(output, weights)``: output ``(..., N_q, d_v)``; weights ``(..., N_q, N_k)`` or ``None``.
        A query whose keys are all masked gets zero weights and a zero output.

    The models call :func:`fast_attention`, which returns the same output faster.
    """
    _check_inputs(q, k, v, mask, bias, dropout_p)
    if scale is None:
        scale = q.shape[-1] ** -0.5  # 1 / sqrt(d_k)
    logits = attention_logits(q, k, scale)  # (..., N_q, N_k): how well query i matches key j
    additive = combine_masks(q.shape[-2], k.shape[-2], mask, bias, is_causal, dtype=q.dtype, device=q.device)
    weights = masked_softmax(logits, additive)  # each row sums to 1 (or is all 0: nothing to attend to)
    attn = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return attn @ v, (weights if need_weights else None)  # (..., N_q, d_v): weighted average of values


def _check_inputs(
    q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor], bias: Optional[Tensor], dropout_p: float
) -> None:
    """Shapes that fit together, a mask and a bias that broadcast to the logits, a dropout rate in [0, 1)."""
    _check_qkv(q, k, v)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p={dropout_p} must be in [0, 1)")
    logits_shape = tuple(torch.broadcast_shapes(q.shape[:-2], k.shape[:-2])) + (q.shape[-2], k.shape[-2])
    for name, term in (("mask", mask), ("bias", bias)):
        if term is not None and not _broadcasts(tuple(term.shape), logits_shape):
            raise ValueError(
                f"{name} of shape {tuple(term.shape)} does not broadcast to the attention logits "
                f"{logits_shape} (..., queries, keys)"
            )


# ---- the fast path ----------------------------------------------------------------------------------
# Everything below computes what scaled_dot_product_attention computes, only faster. The models
# (MultiHeadAttention, Swin's WindowAttention) call fast_attention; bench/bench_models.py measures it.

_FUSED = True


def fused_attention_enabled() -> bool:
    """Whether :func:`fast_attention` may call torch's fused kernel."""
    return _FUSED


@contextmanager
def fused_attention(enabled: bool) -> Iterator[None]:
    """Turn torch's fused attention kernel on or off inside a ``with`` block.

    The fused kernel is faster, but ``torch.utils.flop_counter.FlopCounterMode`` counts *zero* FLOPs
    for it on the CPU, so FLOP measurements run with ``fused_attention(False)``.
    """
    global _FUSED
    previous, _FUSED = _FUSED, bool(enabled)
    try:
        yield
    finally:
        _FUSED = previous


def fast_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Optional[Tensor] = None,
    bias: Optional[Tensor] = None,
    *,
    is_causal: bool = False,
    scale: Optional[float] = None,
    dropout_p: float = 0.0,
) -> Tensor:
    """The output of :func:`scaled_dot_product_attention` (same arguments, no weights), computed fast.

    Three tricks, in this order:

    1. **torch's fused kernel** (``F.scaled_dot_product_attention``) does the whole formula in one call,
       without storing the ``(N_q, N_k)`` weights; mask and bias are folded into one additive tensor
       first, and more than two leading dimensions are folded into ``(batch, heads)``, the layout of
       the kernel's fast paths. Rows whose keys are all masked are set to zero afterwards (kernels
       disagree there: NaN or zeros). :func:`fused_attention` turns this off (for FLOP counting).
    2. **the CPU-autograd case**: a bias that needs a gradient (Swin's learned relative position bias,
       in training) sends torch's CPU kernel to a slow reference path; the explicit formula is faster.
    3. **the explicit formula, lean**: the mask is added to the logits *in place* (the matmul's
       backward needs ``q`` and ``k``, not its output; this saves a logits-sized allocation, which is
       ``B * windows * heads * N * N`` floats in Swin) and ``torch.softmax`` does the stable softmax in
       one pass. Fully masked rows go to :func:`masked_softmax` instead.
    """
    _check_inputs(q, k, v, mask, bias, dropout_p)
    if scale is None:
        scale = q.shape[-1] ** -0.5
    if _FUSED and mask is None and bias is None:  # 1, nothing to combine: causality goes to the kernel
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=is_causal, scale=scale)
    additive = combine_masks(q.shape[-2], k.shape[-2], mask, bias, is_causal, dtype=q.dtype, device=q.device)
    empty_rows = _empty_rows(additive)
    cpu_autograd = (
        q.device.type == "cpu" and additive is not None and additive.requires_grad and torch.is_grad_enabled()
    )
    if _FUSED and not cpu_autograd:  # 1
        out = _fused(q, k, v, additive, dropout_p, scale)
        return out if empty_rows is None else out.masked_fill(empty_rows, 0.0)
    logits = attention_logits(q, k, scale)  # 2 and 3
    if empty_rows is not None:
        weights = masked_softmax(logits, additive)  # zeros, not 0/0, and finite gradients
    else:
        if additive is not None and torch.broadcast_shapes(logits.shape, additive.shape) == logits.shape:
            logits = logits.add_(additive)
        elif additive is not None:
            logits = logits + additive
        weights = torch.softmax(logits, dim=-1)
    attn = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return attn @ v


def _empty_rows(additive: Optional[Tensor]) -> Optional[Tensor]:
    """Where every key of a query is removed (``-inf``): ``(..., N_q, 1)`` bool, or ``None`` if nowhere.

    Computed on the (usually small, unbroadcast) mask, not on the logits. On a GPU the answer is not
    checked with ``.any()``, which would wait for the device.
    """
    if additive is None:
        return None
    empty = torch.isneginf(additive).all(dim=-1, keepdim=True)
    if empty.device.type == "cpu" and not bool(empty.any()):
        return None
    return empty


def _fused(
    q: Tensor, k: Tensor, v: Tensor, additive: Optional[Tensor], dropout_p: float, scale: float
) -> Tensor:
    """``F.scaled_dot_product_attention`` on 4-D views.

    The fast kernels take ``(batch, heads, tokens, dim)``; with more leading dimensions (Swin passes
    ``(B, windows, heads, ...)`` so that a per-window mask broadcasts without a copy) torch falls
    back to its slow reference path, so the leading dimensions are folded into the batch here.
    """
    lead = tuple(torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2]))
    if len(lead) <= 2:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=additive, dropout_p=dropout_p, scale=scale)
    n_q, n_k = q.shape[-2], k.shape[-2]

    def fold(t: Tensor, rows: int) -> Tensor:
        return t.expand(*lead, rows, t.shape[-1]).reshape(-1, lead[-1], rows, t.shape[-1])

    mask4 = None
    if additive is not None:
        mask4 = additive.expand(*lead, n_q, n_k).reshape(-1, lead[-1], n_q, n_k)
    out = F.scaled_dot_product_attention(
        fold(q, n_q), fold(k, n_k), fold(v, n_k), attn_mask=mask4, dropout_p=dropout_p, scale=scale
    )
    return out.view(*lead, n_q, v.shape[-1])
