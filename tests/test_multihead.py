"""Multi-head attention against ``torch.nn.MultiheadAttention`` with the same weights, plus its symmetries."""

from __future__ import annotations

import pytest
import torch
from conftest import tol
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

from course_lib.multihead import MultiHeadAttention, merge_heads, split_heads
from course_lib.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding

E, HEADS, BATCH, N, M = 24, 4, 3, 5, 7


def _torch_mha(bias: bool, batch_first: bool, dtype=torch.float32) -> nn.MultiheadAttention:
    mha = nn.MultiheadAttention(E, HEADS, bias=bias, batch_first=batch_first).to(dtype).eval()
    if bias:  # torch initialises the biases to zero; make them matter
        with torch.no_grad():
            mha.in_proj_bias.normal_()
            mha.out_proj.bias.normal_()
    return mha


def _run_torch(mha: nn.MultiheadAttention, x, ctx, batch_first: bool, **kw):
    """Call nn.MHA on batch-first tensors whatever its layout; return batch-first results."""
    if not batch_first:
        x, ctx = x.transpose(0, 1), ctx.transpose(0, 1)
    out, w = mha(x, ctx, ctx, **kw)
    return (out if batch_first else out.transpose(0, 1)), w


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("padding", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equals_torch_multihead_attention(batch_first, bias, cross, padding, dtype) -> None:
    mha = _torch_mha(bias, batch_first, dtype)
    ours = MultiHeadAttention.from_torch(mha).eval()
    assert ours.qkv.weight.dtype == dtype
    x = torch.randn(BATCH, N, E, dtype=dtype)
    ctx = torch.randn(BATCH, M, E, dtype=dtype) if cross else x
    n_keys = ctx.shape[1]
    torch_kw, our_mask = {}, None
    if padding:
        ignore = torch.zeros(BATCH, n_keys, dtype=torch.bool)  # nn.MHA: True = ignore this key
        ignore[0, -2:] = True
        ignore[2, 1] = True
        torch_kw["key_padding_mask"] = ignore
        our_mask = ~ignore[:, None, None, :]  # ours: True = may attend, (B, 1, 1, M)

    expected, expected_w = _run_torch(mha, x, ctx, batch_first, need_weights=True, **torch_kw)
    context = ctx if cross else None
    out, w = ours(x, context, mask=our_mask, need_weights=True, average_weights=True)
    torch.testing.assert_close(out, expected, **tol(dtype))
    torch.testing.assert_close(w, expected_w, **tol(dtype))

    fused_out, none = ours(x, context, mask=our_mask)  # the fused path, no weights
    assert none is None
    torch.testing.assert_close(fused_out, expected, **tol(dtype))

    _, per_head = ours(x, context, mask=our_mask, need_weights=True)
    _, expected_per_head = _run_torch(
        mha, x, ctx, batch_first, need_weights=True, average_attn_weights=False, **torch_kw
    )
    assert per_head.shape == (BATCH, HEADS, N, n_keys)
    torch.testing.assert_close(per_head, expected_per_head, **tol(dtype))


def test_causal_equals_torch_attn_mask() -> None:
    mha = _torch_mha(True, True)
    ours = MultiHeadAttention.from_torch(mha).eval()
    x = torch.randn(BATCH, N, E)
    future = torch.ones(N, N, dtype=torch.bool).triu(1)  # nn.MHA: True = not allowed
    expected, _ = mha(x, x, x, attn_mask=future, need_weights=False)
    out, _ = ours(x, is_causal=True)
    torch.testing.assert_close(out, expected, **tol(torch.float32))


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("qkv_bias", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_to_torch_round_trip(batch_first: bool, qkv_bias: bool, dtype: torch.dtype) -> None:
    ours = MultiHeadAttention(E, HEADS, qkv_bias=qkv_bias).to(dtype).eval()
    with torch.no_grad():
        ours.proj.bias.normal_()  # a ViT with qkv_bias=False still has a projection bias
    mha = ours.to_torch(batch_first=batch_first).eval()
    assert mha.batch_first == batch_first
    assert mha.in_proj_weight.dtype == dtype
    x, ctx = torch.randn(BATCH, N, E, dtype=dtype), torch.randn(BATCH, M, E, dtype=dtype)
    for context in (None, ctx):
        expected, _ = _run_torch(mha, x, x if context is None else context, batch_first, need_weights=False)
        torch.testing.assert_close(ours(x, context)[0], expected, **tol(dtype))

    back = MultiHeadAttention.from_torch(mha)
    torch.testing.assert_close(back.qkv.weight, ours.qkv.weight, rtol=0, atol=0)
    torch.testing.assert_close(back.proj.weight, ours.proj.weight, rtol=0, atol=0)
    torch.testing.assert_close(back.proj.bias, ours.proj.bias, rtol=0, atol=0)
    if qkv_bias:
        torch.testing.assert_close(back.qkv.bias, ours.qkv.bias, rtol=0, atol=0)


def test_split_and_merge_heads() -> None:
    x = torch.randn(2, 5, 12)
    heads = split_heads(x, 3)
    assert heads.shape == (2, 3, 5, 4)
    for h in range(3):
        assert torch.equal(heads[:, h], x[..., 4 * h : 4 * (h + 1)])
    assert torch.equal(merge_heads(heads), x)


# ---------------------------------------------------------------------------------------------------
# Symmetry: attention alone does not know the order of its tokens
# ---------------------------------------------------------------------------------------------------


@given(
    batch=st.integers(1, 3),
    n=st.integers(2, 10),
    heads=st.sampled_from([1, 2, 4]),
    head_dim=st.sampled_from([2, 4, 8]),
    seed=st.integers(0, 2**31 - 1),
)
def test_self_attention_is_permutation_equivariant(batch, n, heads, head_dim, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    dim = heads * head_dim
    mha = MultiHeadAttention(dim, heads).double().eval()
    x = torch.randn(batch, n, dim, generator=g, dtype=torch.float64)
    perm = torch.randperm(n, generator=g)
    out, w = mha(x, need_weights=True)
    out_p, w_p = mha(x[:, perm], need_weights=True)
    torch.testing.assert_close(out_p, out[:, perm], **tol(torch.float64))  # f(Px) = P f(x)
    torch.testing.assert_close(w_p, w[:, :, perm][:, :, :, perm], **tol(torch.float64))


@given(
    n=st.integers(2, 10),
    kind=st.sampled_from(["sinusoidal", "learned"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_positional_encoding_breaks_permutation_equivariance(n, kind, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    dim, heads = 16, 2
    perm = torch.randperm(n, generator=g)
    assume(not torch.equal(perm, torch.arange(n)))
    mha = MultiHeadAttention(dim, heads).double().eval()
    if kind == "sinusoidal":
        pos = SinusoidalPositionalEncoding(dim, max_len=16).double()
    else:
        pos = LearnedPositionalEmbedding(16, dim).double()

    def f(x):
        return mha(pos(x))[0]

    x = torch.randn(2, n, dim, generator=g, dtype=torch.float64)
    gap = (f(x[:, perm]) - f(x)[:, perm]).abs().max().item()
    assert gap > 1e-6  # far above float64 round-off (the equivariant case agrees to ~1e-15)


# ---------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------


def test_bad_inputs_raise_value_error() -> None:
    with pytest.raises(ValueError, match=r"^embed_dim=100 is not divisible by num_heads=3$"):
        MultiHeadAttention(100, 3)
    with pytest.raises(ValueError, match=r"must be positive"):
        MultiHeadAttention(0, 2)
    with pytest.raises(ValueError, match=r"attn_drop=1.5 must be in \[0, 1\)"):
        MultiHeadAttention(8, 2, attn_drop=1.5)
    with pytest.raises(ValueError, match=r"embed_dim=10 is not divisible by num_heads=4"):
        split_heads(torch.randn(1, 2, 10), 4)
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"input has 6 features but the layer expects embed_dim=8"):
        mha(torch.randn(2, 3, 6))
    with pytest.raises(ValueError, match=r"expected x of shape \(B, N, D\), got \(3, 8\)"):
        mha(torch.randn(3, 8))
    with pytest.raises(ValueError, match=r"context of shape \(2, 4, 6\) does not fit x of shape \(2, 3, 8\)"):
        mha(torch.randn(2, 3, 8), torch.randn(2, 4, 6))
    with pytest.raises(ValueError, match=r"context of shape \(4, 8\)"):
        mha(torch.randn(2, 3, 8), torch.randn(4, 8))
    with pytest.raises(ValueError, match=r"does not broadcast"):
        mha(torch.randn(2, 3, 8), mask=torch.ones(2, 3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"kdim == vdim == embed_dim"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2, kdim=4, vdim=4))
    with pytest.raises(ValueError, match=r"add_bias_kv=True"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2, add_bias_kv=True))
