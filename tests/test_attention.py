"""Scaled dot-product attention against torch's own kernel and against the formula written out here.

References: ``torch.nn.functional.scaled_dot_product_attention`` and
``softmax(Q K^T / sqrt(d) + mask) V`` (Vaswani et al. 2017, Eq. 1), computed in the tests with
``torch.softmax`` only. Both implementations are checked: the book's ``scaled_dot_product_attention``
and ``fast_attention``, which the models call.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tol
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from course_lib.attention import (
    attention_logits,
    fast_attention,
    fused_attention,
    fused_attention_enabled,
    masked_softmax,
    scaled_dot_product_attention,
)

B, H, NQ, NK, D, DV = 2, 3, 5, 7, 8, 6
MASK_KINDS = ["none", "bool", "float", "causal", "causal_square"]
IMPLS = ["book", "fast"]


def attend(impl: str, q, k, v, *args, **kwargs) -> torch.Tensor:
    """The output of the book's function or of the models' fast path (same arguments)."""
    if impl == "fast":
        return fast_attention(q, k, v, *args, **kwargs)
    return scaled_dot_product_attention(q, k, v, *args, **kwargs)[0]


def _qkv(dtype: torch.dtype, nq: int = NQ, nk: int = NK):
    return (
        torch.randn(B, H, nq, D, dtype=dtype),
        torch.randn(B, H, nk, D, dtype=dtype),
        torch.randn(B, H, nk, DV, dtype=dtype),
    )


def _mask(kind: str, nq: int, nk: int, dtype: torch.dtype):
    """(our kwargs, torch SDPA kwargs, independent additive term for the softmax reference)."""
    if kind == "none":
        return {}, {}, torch.zeros(nq, nk, dtype=dtype)
    if kind == "bool":
        allowed = torch.rand(B, 1, nq, nk) > 0.4
        allowed[..., 0] = True  # no fully masked row here (see the dedicated test)
        additive = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, -math.inf)
        return {"mask": allowed}, {"attn_mask": allowed}, additive
    if kind == "float":
        m = torch.randn(nq, nk, dtype=dtype)
        return {"mask": m}, {"attn_mask": m}, m
    if kind.startswith("causal"):
        # torch's documented causal mask: query i sees keys j <= i (top-left aligned).
        additive = torch.tensor(
            [[0.0 if j <= i else -math.inf for j in range(nk)] for i in range(nq)], dtype=dtype
        )
        return {"is_causal": True}, {"is_causal": True}, additive
    raise AssertionError(kind)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", MASK_KINDS)
def test_equals_torch_sdpa(dtype: torch.dtype, impl: str, kind: str) -> None:
    nq, nk = (NK, NK) if kind == "causal_square" else (NQ, NK)
    q, k, v = _qkv(dtype, nq, nk)
    ours_kw, torch_kw, additive = _mask(kind, nq, nk, dtype)
    expected = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, **torch_kw)
    torch.testing.assert_close(attend(impl, q, k, v, **ours_kw), expected, **tol(dtype))
    with fused_attention(False):  # the fast path's explicit branch
        torch.testing.assert_close(attend(impl, q, k, v, **ours_kw), expected, **tol(dtype))

    if impl == "book":
        assert scaled_dot_product_attention(q, k, v, **ours_kw)[1] is None
        out_w, weights = scaled_dot_product_attention(q, k, v, need_weights=True, **ours_kw)
        reference = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(D) + additive, dim=-1)
        torch.testing.assert_close(weights, reference, **tol(dtype))
        torch.testing.assert_close(out_w, reference @ v, **tol(dtype))


@pytest.mark.parametrize("impl", IMPLS)
def test_custom_scale_and_bias(impl: str) -> None:
    q, k, v = _qkv(torch.float64)
    bias = torch.randn(H, NQ, NK, dtype=torch.float64)
    allowed = torch.rand(NQ, NK) > 0.3
    allowed[:, -1] = True
    out = attend(impl, q, k, v, allowed, bias, scale=0.3)
    additive = bias + torch.zeros(NQ, NK, dtype=torch.float64).masked_fill(~allowed, -math.inf)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=additive, scale=0.3)
    torch.testing.assert_close(out, expected, **tol(torch.float64))


@pytest.mark.parametrize("fused", [True, False])
def test_fast_path_on_leading_dims_and_a_learned_bias(fused: bool) -> None:
    """Swin's case: (batch, windows, heads, tokens, d) with a per-window bias that needs a gradient
    (on the CPU the fast path then takes its explicit branch). Values and gradients equal torch's."""
    q, k, v = (torch.randn(2, 4, 3, 6, 8, requires_grad=True) for _ in range(3))
    bias = torch.randn(4, 3, 6, 6, requires_grad=True)
    with fused_attention(fused):
        out = fast_attention(q, k, v, bias=bias)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    torch.testing.assert_close(out, expected, **tol(torch.float32))
    grads = torch.autograd.grad(out.square().sum(), (q, k, v, bias))
    expected_grads = torch.autograd.grad(expected.square().sum(), (q, k, v, bias))
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("how", ["bool", "float", "bias"])
def test_fully_masked_row_gives_zero_weights_and_output(impl: str, how: str) -> None:
    q, k, v = _qkv(torch.float32)
    q.requires_grad_(True)
    allowed = torch.ones(NQ, NK, dtype=torch.bool)
    allowed[2] = False
    allowed[4, 1:] = False
    additive = torch.zeros(NQ, NK).masked_fill(~allowed, -math.inf)
    kwargs = {"bool": {"mask": allowed}, "float": {"mask": additive}, "bias": {"bias": additive}}[how]

    out = attend(impl, q, k, v, **kwargs)
    assert torch.isfinite(out).all()
    assert torch.equal(out[:, :, 2], torch.zeros(B, H, DV))
    # The other rows are ordinary attention.
    keep = [0, 1, 3, 4]
    expected = F.scaled_dot_product_attention(q[:, :, keep], k, v, attn_mask=allowed[keep])
    torch.testing.assert_close(out[:, :, keep], expected, **tol(torch.float32))
    out.sum().backward()
    assert torch.isfinite(q.grad).all()

    if impl == "book":
        _, weights = scaled_dot_product_attention(q, k, v, need_weights=True, **kwargs)
        assert torch.isfinite(weights).all()
        assert torch.equal(weights[:, :, 2], torch.zeros(B, H, NK))
        torch.testing.assert_close(weights[:, :, 4, 0], torch.ones(B, H))


@pytest.mark.parametrize("impl", IMPLS)
def test_large_logits_are_stable(impl: str) -> None:
    # Integer q, k with d = 4 make every logit an exactly representable number ~1e4 in float32,
    # so the float32 result must equal the float64 one; duplicated keys create exact ties.
    g = torch.Generator().manual_seed(1)
    q = torch.randint(-100, 101, (2, 6, 4), generator=g).float()
    k = torch.randint(-100, 101, (2, 8, 4), generator=g).float()
    k[:, 5] = k[:, 2]
    q[:, 0] = k[:, 2]  # query 0 matches keys 2 and 5 best, equally
    v = torch.randn(2, 8, 3, generator=g)
    logits = attention_logits(q, k)
    assert logits.abs().max() > 5e3
    naive = torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True)
    assert not torch.isfinite(naive).all()  # what a textbook softmax would do

    out = attend(impl, q, k, v)
    ref_w = torch.softmax(q.double() @ k.double().transpose(-2, -1) / 2.0, dim=-1)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, (ref_w @ v.double()).float(), **tol(torch.float32))
    if impl == "book":
        _, w = scaled_dot_product_attention(q, k, v, need_weights=True)
        torch.testing.assert_close(w, ref_w.float(), **tol(torch.float32))
        torch.testing.assert_close(w[:, 0, 2], torch.full((2,), 0.5))


def test_masked_softmax_equals_torch_softmax() -> None:
    logits = torch.randn(3, 4, 9, dtype=torch.float64) * 30
    additive = torch.randn(4, 9, dtype=torch.float64)
    torch.testing.assert_close(masked_softmax(logits, additive), torch.softmax(logits + additive, -1))


# ---------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------


@given(
    batch=st.integers(1, 3),
    nq=st.integers(1, 9),
    nk=st.integers(1, 9),
    d=st.integers(1, 16),
    seed=st.integers(0, 2**31 - 1),
    use_mask=st.booleans(),
)
def test_weights_are_a_distribution_and_masked_keys_get_zero(batch, nq, nk, d, seed, use_mask) -> None:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, nq, d, generator=g) * 3
    k = torch.randn(batch, nk, d, generator=g) * 3
    v = torch.randn(batch, nk, 2, generator=g)
    allowed = torch.rand(batch, nq, nk, generator=g) > 0.5 if use_mask else None
    _, w = scaled_dot_product_attention(q, k, v, allowed, need_weights=True)
    assert w.shape == (batch, nq, nk)
    assert (w >= 0).all()
    sums = w.sum(-1)
    if allowed is None:
        torch.testing.assert_close(sums, torch.ones_like(sums))
    else:
        assert torch.equal(w[~allowed], torch.zeros_like(w[~allowed]))
        has_key = allowed.any(-1)
        torch.testing.assert_close(sums[has_key], torch.ones_like(sums[has_key]))
        assert torch.equal(sums[~has_key], torch.zeros_like(sums[~has_key]))


@given(d=st.sampled_from([1, 4, 16, 64, 256]), seed=st.integers(0, 2**31 - 1))
def test_scaling_keeps_logit_variance_near_one(d: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    n = 16384  # relative std of the variance estimate <= sqrt(8 / n) ~ 0.022
    q = torch.randn(n, 1, d, generator=g)
    k = torch.randn(n, 1, d, generator=g)
    scaled = attention_logits(q, k).flatten()
    unscaled = attention_logits(q, k, scale=1.0).flatten()
    assert 0.8 <= scaled.var().item() <= 1.25
    assert 0.8 * d <= unscaled.var().item() <= 1.25 * d


# ---------------------------------------------------------------------------------------------------
# Dropout and the fused-kernel switch
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_dropout_keeps_the_expectation(impl: str) -> None:
    q, k, v = torch.randn(1, 4, 8), torch.randn(1, 6, 8), torch.randn(1, 6, 3)
    clean = attend(impl, q, k, v)
    # 3000 independent draws at once: dropout masks are drawn per element, so per batch entry.
    reps = (3000, 1, 1)
    draws = attend(impl, q.repeat(reps), k.repeat(reps), v.repeat(reps), dropout_p=0.3)
    assert not torch.allclose(draws[0], clean)
    # A draw is sum_j w_j (m_j / 0.7) v_j with m_j ~ Bernoulli(0.7): its std is at most
    # sqrt(0.3 / 0.7) max|v| < 2, so the mean of 3000 draws has std < 0.037 and 0.15 is a 4-sigma bound.
    assert v.abs().max() < 3.0
    torch.testing.assert_close(draws.mean(0), clean[0], atol=0.15, rtol=0)


def test_fused_attention_switch_and_flop_count() -> None:
    q, k, v = torch.randn(2, 3, 10, 8), torch.randn(2, 3, 12, 8), torch.randn(2, 3, 12, 4)
    assert fused_attention_enabled()
    with fused_attention(False):
        assert not fused_attention_enabled()
        with FlopCounterMode(display=False) as counter:
            fast_attention(q, k, v)
    assert fused_attention_enabled()
    # Q K^T: 2*3*10*12*8 multiply-adds; weights @ V: 2*3*10*12*4; FlopCounterMode counts 2 per MAC.
    assert counter.get_total_flops() == 2 * (2 * 3 * 10 * 12 * 8 + 2 * 3 * 10 * 12 * 4)


def test_fused_attention_restores_on_error() -> None:
    with pytest.raises(RuntimeError), fused_attention(False):
        raise RuntimeError("boom")
    assert fused_attention_enabled()


# ---------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_bad_inputs_raise_value_error(impl: str) -> None:
    q, k, v = torch.randn(2, 5, 8), torch.randn(2, 7, 8), torch.randn(2, 7, 6)
    scaled_dot_product_attention = functools.partial(attend, impl)
    with pytest.raises(ValueError, match=r"query dimension d_k=8 does not match key dimension 4"):
        scaled_dot_product_attention(q, torch.randn(2, 7, 4), v)
    with pytest.raises(ValueError, match=r"k has 7 tokens but v has 6"):
        scaled_dot_product_attention(q, k, torch.randn(2, 6, 6))
    with pytest.raises(ValueError, match=r"at least 2 dimensions"):
        scaled_dot_product_attention(torch.randn(8), k, v)
    with pytest.raises(ValueError, match=r"leading .* do not broadcast"):
        scaled_dot_product_attention(q, torch.randn(3, 7, 8), torch.randn(3, 7, 6))
    with pytest.raises(ValueError, match=r"mask of shape \(5, 6\) does not broadcast to the attention"):
        scaled_dot_product_attention(q, k, v, torch.ones(5, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask of shape \(3, 5, 7\) does not broadcast .* \(2, 5, 7\)"):
        scaled_dot_product_attention(q, k, v, torch.ones(3, 5, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"bias of shape \(4, 1, 1\) does not broadcast"):
        scaled_dot_product_attention(q, k, v, bias=torch.zeros(4, 1, 1))
    with pytest.raises(ValueError, match=r"a mask must be bool or float, got torch.int64"):
        scaled_dot_product_attention(q, k, v, torch.ones(5, 7, dtype=torch.long))
    for p in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=rf"dropout_p={p} must be in \[0, 1\)"):
            scaled_dot_product_attention(q, k, v, dropout_p=p)
