"""Tests of course_lib.analysis against cases computed by hand and independent implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib.analysis import (
    attention_rollout,
    mass_inside_mask,
    mean_attention_distance,
    patch_coverage,
    position_similarity,
    principal_filters,
    swin_stage_maps,
    timm_vit,
    uniform_attention_distance,
)


def test_rollout_on_a_hand_computed_two_token_case():
    # Two layers, one head, two tokens. With residual 0.5: A' = 0.5 A + 0.5 I (rows already sum to 1).
    a1 = torch.tensor([[[[0.5, 0.5], [0.0, 1.0]]]])
    a2 = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
    # A1' = [[0.75, 0.25], [0, 1]];  A2' = [[0.5, 0.5], [0.5, 0.5]]
    # A2' @ A1' = [[0.375, 0.625], [0.375, 0.625]]
    r = attention_rollout([a1, a2])
    assert torch.allclose(r, torch.tensor([[[0.375, 0.625], [0.375, 0.625]]]))
    # One layer only: just A1'.
    assert torch.allclose(attention_rollout([a1])[0], torch.tensor([[0.75, 0.25], [0.0, 1.0]]))


def test_rollout_averages_heads_and_keeps_rows_stochastic():
    torch.manual_seed(0)
    layers = [torch.softmax(torch.randn(3, 4, 5, 5), -1) for _ in range(3)]
    r = attention_rollout(layers, residual=0.0)
    # residual 0: the plain product of head-averaged attention, first layer on the right.
    m = [a.mean(1) for a in layers]
    assert torch.allclose(r, m[2] @ m[1] @ m[0], atol=1e-6)
    assert torch.allclose(attention_rollout(layers).sum(-1), torch.ones(3, 5), atol=1e-6)
    with pytest.raises(ValueError, match="at least one layer"):
        attention_rollout([])


def test_mass_inside_mask():
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[:, :4, :4] = True  # the top-left patch of a 2x2 grid of 4-pixel patches: a quarter of the image
    assert patch_coverage(masks, 4).tolist() == [[1.0, 0.0, 0.0, 0.0]] * 2
    maps = torch.tensor([[1.0, 1.0, 1.0, 1.0], [3.0, 1.0, 0.0, 0.0]])
    inside, area = mass_inside_mask(maps, masks, 4)
    assert area.tolist() == [0.25, 0.25]
    assert inside.tolist() == pytest.approx([0.25, 0.75])  # uniform attention: inside = area
    # A patch half covered counts half.
    masks2 = torch.zeros(1, 8, 8, dtype=torch.bool)
    masks2[0, :2, :4] = True
    inside2, _ = mass_inside_mask(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), masks2, 4)
    assert inside2.item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="patch grid"):
        mass_inside_mask(torch.ones(2, 5), masks, 4)


def _brute_force_distance(attn, patch, prefix):
    # Independent loop: pixel centres from the definition, CLS dropped, rows re-normalised.
    B, H, T, _ = attn.shape
    n = T - prefix
    g = int(math.isqrt(n))
    out = np.zeros(H)
    for h in range(H):
        total = 0.0
        for b in range(B):
            for q in range(n):
                w = attn[b, h, prefix + q, prefix:].double()
                w = w / w.sum()
                qy, qx = (q // g) * patch + (patch - 1) / 2, (q % g) * patch + (patch - 1) / 2
                for k in range(n):
                    ky, kx = (k // g) * patch + (patch - 1) / 2, (k % g) * patch + (patch - 1) / 2
                    total += w[k].item() * math.hypot(qy - ky, qx - kx)
        out[h] = total / (B * n)
    return out


def test_mean_attention_distance_against_a_loop():
    torch.manual_seed(1)
    attn = torch.softmax(torch.randn(2, 3, 1 + 9, 1 + 9), -1)
    ours = mean_attention_distance(attn, patch_size=4)
    assert ours.numpy() == pytest.approx(_brute_force_distance(attn, 4, 1), rel=1e-9)
    # Attention to itself only: distance 0. Uniform attention: the uniform reference.
    eye = torch.eye(10).expand(1, 2, 10, 10)
    assert mean_attention_distance(eye, 4).tolist() == [0.0, 0.0]
    uni = torch.full((1, 1, 10, 10), 0.1)
    assert mean_attention_distance(uni, 4).item() == pytest.approx(uniform_attention_distance(3, 4))
    # Neighbours only, on a 2x2 grid with 4-px patches: every key at 4 px or 4*sqrt(2) px.
    assert uniform_attention_distance(2, 4) == pytest.approx((0 + 4 + 4 + 4 * math.sqrt(2)) / 4)


def test_position_similarity_matches_torch_cosine():
    torch.manual_seed(2)
    pos = torch.randn(1, 1 + 16, 8)
    sim = position_similarity(pos)
    assert sim.shape == (16, 16)
    for i in (0, 5, 15):
        for j in (0, 3, 15):
            ref = torch.nn.functional.cosine_similarity(pos[0, 1 + i], pos[0, 1 + j], dim=0)
            assert sim[i, j].item() == pytest.approx(ref.item(), abs=1e-6)


def test_principal_filters_match_sklearn_pca():
    from sklearn.decomposition import PCA

    torch.manual_seed(3)
    w = torch.randn(40, 3, 4, 4) @ torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.5]))  # some structure
    comps, explained = principal_filters(w, k=5)
    assert comps.shape == (5, 3, 4, 4) and explained.shape == (5,)
    pca = PCA(n_components=5).fit(w.reshape(40, -1).numpy())
    ref = torch.from_numpy(pca.components_).float()
    dots = (comps.reshape(5, -1) * ref).sum(-1).abs()  # equal up to sign
    assert torch.allclose(dots, torch.ones(5), atol=1e-4)
    assert explained.numpy() == pytest.approx(pca.explained_variance_ratio_, rel=1e-4)


def test_swin_stage_maps_end_in_the_models_features():
    from course_lib.swin import create_swin

    torch.manual_seed(0)
    model = create_swin(
        "swin_cifar", patch_size=4, embed_dim=16, depths=(2, 2), num_heads=(2, 4), window_size=4
    ).eval()
    x = torch.randn(2, 3, 32, 32)
    maps = swin_stage_maps(model, x)
    assert [tuple(m.shape) for m in maps] == [(2, 8, 8, 16), (2, 8, 8, 16), (2, 4, 4, 32)]
    with torch.no_grad():
        assert torch.allclose(model.norm(maps[-1]), model.forward_features(x), atol=1e-6)


def test_timm_vit_offline_path_with_random_weights(monkeypatch):
    # The Colab section's code path, offline: a randomly initialised timm DeiT-Ti converted to course_lib,
    # its attention maps and rollout on the sample photo; the converted model equals timm's.
    import socket

    import timm

    from course_lib.data import sample_image

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    torch.manual_seed(0)
    model, mean, std = timm_vit("deit_tiny_patch16_224", pretrained=False)
    x = ((sample_image(224) - mean) / std)[None]
    torch.manual_seed(0)
    reference = timm.create_model("deit_tiny_patch16_224", pretrained=False).eval()
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x), atol=1e-4)
    maps = model.attention_maps(x)
    assert len(maps) == 12 and maps[0].shape == (1, 3, 197, 197)
    r = attention_rollout(maps)
    assert r.shape == (1, 197, 197) and torch.allclose(r.sum(-1), torch.ones(1, 197), atol=1e-5)
    assert mean.shape == (3, 1, 1) and torch.allclose(mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))


def test_timm_vit_pretrained_offline_says_so(monkeypatch, capsys):
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert timm_vit("deit_tiny_patch16_224", pretrained=True) is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "not available" in out
