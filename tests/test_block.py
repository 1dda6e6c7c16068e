"""The encoder block against timm's ViT ``Block`` and ``nn.TransformerEncoderLayer``; MLP and drop path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import tol
from timm.layers import Mlp as TimmMlp
from timm.layers import drop_path as timm_drop_path
from timm.models.vision_transformer import Block as TimmBlock
from torch import nn

from course_lib.block import DropPath, Mlp, TransformerBlock, drop_path

DIM, HEADS = 32, 4


def _randomize(module: nn.Module) -> nn.Module:
    """LayerNorms start at weight 1 / bias 0 and biases at 0 in places: make every parameter matter."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return module


@pytest.mark.parametrize("qkv_bias", [True, False])
@pytest.mark.parametrize("mlp_ratio", [4.0, 2.5])
def test_pre_norm_block_equals_timm(qkv_bias: bool, mlp_ratio: float) -> None:
    ours = _randomize(TransformerBlock(DIM, HEADS, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias)).eval()
    timm_block = TimmBlock(DIM, HEADS, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias).eval()
    timm_block.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(3, 10, DIM)
    torch.testing.assert_close(ours(x), timm_block(x), **tol(torch.float32))

    # And the other way round, from a (randomised) timm block.
    _randomize(timm_block)
    ours.load_state_dict(timm_block.state_dict(), strict=True)
    torch.testing.assert_close(ours(x), timm_block(x), **tol(torch.float32))

    # A boolean mask means the same thing in both (True = may attend, torch's SDPA convention).
    allowed = torch.rand(3, 1, 10, 10) > 0.3
    allowed[..., 0] = True
    torch.testing.assert_close(ours(x, mask=allowed), timm_block(x, attn_mask=allowed), **tol(torch.float32))


def _copy_to_torch_layer(ours: TransformerBlock, layer: nn.TransformerEncoderLayer) -> None:
    with torch.no_grad():
        mha = ours.attn.to_torch(batch_first=True)
        layer.self_attn.load_state_dict(mha.state_dict())
        layer.linear1.load_state_dict(ours.mlp.fc1.state_dict())
        layer.linear2.load_state_dict(ours.mlp.fc2.state_dict())
        layer.norm1.load_state_dict(ours.norm1.state_dict())
        layer.norm2.load_state_dict(ours.norm2.state_dict())


@pytest.mark.parametrize("pre_norm", [True, False])
def test_block_equals_torch_encoder_layer(pre_norm: bool) -> None:
    ours = _randomize(TransformerBlock(DIM, HEADS, norm_eps=1e-5, pre_norm=pre_norm)).double().eval()
    layer = (
        nn.TransformerEncoderLayer(
            DIM,
            HEADS,
            dim_feedforward=4 * DIM,
            dropout=0.0,
            activation="gelu",
            layer_norm_eps=1e-5,
            batch_first=True,
            norm_first=pre_norm,
        )
        .double()
        .eval()
    )
    _copy_to_torch_layer(ours, layer)
    x = torch.randn(2, 7, DIM, dtype=torch.float64)
    torch.testing.assert_close(ours(x), layer(x), **tol(torch.float64))


def test_post_norm_block_equals_hand_formula() -> None:
    # x' = LN1(x + MHA(x)); y = LN2(x' + fc2(gelu(fc1(x'))))   (Vaswani et al. 2017, Fig. 1)
    ours = _randomize(TransformerBlock(DIM, HEADS, pre_norm=False)).eval()
    mha = ours.attn.to_torch(batch_first=True).eval()
    x = torch.randn(2, 9, DIM)

    def ln(t, norm):
        return F.layer_norm(t, (DIM,), norm.weight, norm.bias, eps=1e-6)

    a, _ = mha(x, x, x, need_weights=False)
    h = ln(x + a, ours.norm1)
    y = ln(
        h
        + F.linear(
            F.gelu(F.linear(h, ours.mlp.fc1.weight, ours.mlp.fc1.bias)),
            ours.mlp.fc2.weight,
            ours.mlp.fc2.bias,
        ),
        ours.norm2,
    )
    torch.testing.assert_close(ours(x), y, **tol(torch.float32))


def test_need_weights_returns_attention_of_the_block() -> None:
    block = TransformerBlock(DIM, HEADS).eval()
    x = torch.randn(2, 6, DIM)
    y, w = block(x, need_weights=True)
    torch.testing.assert_close(y, block(x))
    _, expected = block.attn(block.norm1(x), need_weights=True)
    assert w.shape == (2, HEADS, 6, 6)
    torch.testing.assert_close(w, expected)


def test_padding_tokens_do_not_change_the_others() -> None:
    block = _randomize(TransformerBlock(DIM, HEADS)).eval()
    x = torch.randn(1, 8, DIM)
    allowed = torch.ones(1, 1, 1, 8, dtype=torch.bool)
    allowed[..., 5:] = False  # the last 3 tokens are padding
    y = block(x, mask=allowed)
    x2 = x.clone()
    x2[:, 5:] = torch.randn(1, 3, DIM) * 100
    torch.testing.assert_close(block(x2, mask=allowed)[:, :5], y[:, :5], **tol(torch.float32))


# ---------------------------------------------------------------------------------------------------
# MLP
# ---------------------------------------------------------------------------------------------------


def test_mlp_is_fc2_gelu_fc1() -> None:
    mlp = _randomize(Mlp(DIM, 3 * DIM, 20)).double().eval()
    x = torch.randn(4, 5, DIM, dtype=torch.float64)
    h = F.linear(x, mlp.fc1.weight, mlp.fc1.bias)
    h = h * 0.5 * (1 + torch.erf(h / 2**0.5))  # exact GELU, x * Phi(x)
    expected = F.linear(h, mlp.fc2.weight, mlp.fc2.bias)
    torch.testing.assert_close(mlp(x), expected, **tol(torch.float64))

    timm_mlp = TimmMlp(DIM, 3 * DIM, 20).double().eval()
    timm_mlp.load_state_dict(mlp.state_dict(), strict=True)
    torch.testing.assert_close(mlp(x), timm_mlp(x), **tol(torch.float64))


# ---------------------------------------------------------------------------------------------------
# Drop path (stochastic depth)
# ---------------------------------------------------------------------------------------------------


def test_drop_path_is_identity_in_eval() -> None:
    block = TransformerBlock(DIM, HEADS, drop_path=0.5).eval()
    plain = TransformerBlock(DIM, HEADS).eval()
    plain.load_state_dict(block.state_dict())
    x = torch.randn(4, 6, DIM)
    torch.testing.assert_close(block(x), plain(x), rtol=0, atol=0)
    assert torch.equal(DropPath(0.7).eval()(x), x)
    assert torch.equal(drop_path(x, 0.7, training=False), x)


def test_drop_path_drops_whole_samples_at_the_right_rate() -> None:
    p, n = 0.25, 40000
    x = torch.ones(n, 3, 4)
    y = DropPath(p).train()(x)
    per_sample = y.flatten(1)
    # Every sample is either entirely dropped or entirely kept and scaled by 1/(1-p).
    dropped = (per_sample == 0).all(1)
    kept = (per_sample == 1 / (1 - p)).all(1)
    assert torch.equal(dropped | kept, torch.ones(n, dtype=torch.bool))
    sigma = (p * (1 - p) / n) ** 0.5  # binomial standard error of the dropped fraction
    assert abs(dropped.float().mean().item() - p) < 5 * sigma
    # The expectation is unchanged: E[y] = x.
    assert abs(y.mean().item() - 1.0) < 5 * sigma / (1 - p)


def test_drop_path_equals_timm_with_the_same_random_numbers() -> None:
    x = torch.randn(64, 5, 8)
    torch.manual_seed(3)
    ours = drop_path(x, 0.3, training=True)
    torch.manual_seed(3)
    theirs = timm_drop_path(x, 0.3, training=True)
    torch.testing.assert_close(ours, theirs, **tol(torch.float32))


def test_block_in_train_mode_keeps_or_drops_each_branch() -> None:
    # With drop_path close to 1 most samples skip both branches: the block is the identity for them.
    block = TransformerBlock(DIM, HEADS, drop_path=0.99).train()
    x = torch.randn(200, 4, DIM)
    y = block(x)
    unchanged = (y == x).flatten(1).all(1)
    assert unchanged.float().mean().item() > 0.9


# ---------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------


def test_bad_inputs_raise_value_error() -> None:
    with pytest.raises(ValueError, match=r"embed_dim=100 is not divisible by num_heads=3"):
        TransformerBlock(100, 3)
    with pytest.raises(ValueError, match=r"mlp_ratio=0 must be positive"):
        TransformerBlock(DIM, HEADS, mlp_ratio=0)
    for p in (-0.1, 1.0):
        with pytest.raises(ValueError, match=rf"drop path probability {p} must be in \[0, 1\)"):
            DropPath(p)
        with pytest.raises(ValueError, match=rf"drop path probability {p} must be in \[0, 1\)"):
            drop_path(torch.ones(2, 3), p, training=True)
        with pytest.raises(ValueError, match=rf"drop path probability {p}"):
            TransformerBlock(DIM, HEADS, drop_path=p)
    with pytest.raises(ValueError, match=r"dropout probability has to be between 0 and 1"):
        Mlp(DIM, drop=1.5)
    with pytest.raises(ValueError, match=r"attn_drop=2.0 must be in \[0, 1\)"):
        TransformerBlock(DIM, HEADS, attn_drop=2.0)
    with pytest.raises(ValueError, match=r"input has 16 features but the layer expects embed_dim=32"):
        TransformerBlock(DIM, HEADS, pre_norm=False)(torch.randn(1, 3, 16))
