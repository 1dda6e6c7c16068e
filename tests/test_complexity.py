"""Analytic multiply-add counts against FlopCounterMode (2 FLOPs per multiply-add) and the papers."""

from __future__ import annotations

import math

import pytest
import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

from course_lib.complexity import (
    attention_macs,
    conv2d_macs,
    count_parameters,
    linear_macs,
    measure_flop_breakdown,
    measure_flops,
    msa_macs,
    peak_memory,
    swin_macs,
    vit_macs,
    wmsa_macs,
)
from course_lib.convert import vit_from_timm
from course_lib.swin import create_swin
from course_lib.vit import create_vit


def _counted(fn, *args) -> int:
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops()


def test_building_blocks_against_flop_counter() -> None:
    x = torch.randn(1, 5, 9, 11)
    for k, stride, pad in [(3, 1, None), (4, 4, 0), (5, 2, 1)]:
        conv = torch.nn.Conv2d(5, 7, k, stride=stride, padding=k // 2 if pad is None else pad)
        assert _counted(conv, x) == 2 * conv2d_macs(9, 11, 5, 7, k, stride, pad)
    assert _counted(torch.nn.Linear(6, 4), torch.randn(10, 6)) == 2 * linear_macs(10, 6, 4)
    q, k = torch.randn(1, 12, 8), torch.randn(1, 20, 8)
    assert _counted(
        lambda: (q @ k.transpose(1, 2)).softmax(-1) @ torch.randn(1, 20, 3)
    ) == 2 * attention_macs(12, 8, 20, 3)


def test_swin_paper_equations() -> None:
    """Swin Eq. (1)-(2) on stage 1 of Swin-T (h = w = 56, C = 96, M = 7)."""
    h = w = 56
    C, M = 96, 7
    assert msa_macs(h, w, C) == 4 * h * w * C**2 + 2 * (h * w) ** 2 * C
    assert wmsa_macs(h, w, C, M) == 4 * h * w * C**2 + 2 * M**2 * h * w * C
    assert msa_macs(h, w, C) - 4 * h * w * C**2 == pytest.approx(1.89e9, rel=1e-3)
    assert wmsa_macs(h, w, C, M) - 4 * h * w * C**2 == pytest.approx(2.95e7, rel=1e-3)
    # Eq. (2) is (hw/M^2) windows, each global attention of M^2 tokens
    assert wmsa_macs(h, w, C, M) == (h * w // M**2) * msa_macs(M, M, C)


ALL = [
    "vit_tiny_patch16_224",
    "vit_small_patch16_224",
    "vit_base_patch16_224",
    "vit_base_patch32_224",
    "vit_large_patch16_224",
    "vit_digits",
    "vit_cifar",
    "swin_tiny_patch4_window7_224",
    "swin_small_patch4_window7_224",
    "swin_base_patch4_window7_224",
    "swin_cifar",
    "swin_digits",
]


@pytest.mark.parametrize("name", ALL)
def test_analytic_equals_measured(name: str) -> None:
    """On the meta device (no memory, no arithmetic) FlopCounterMode still sees every operator."""
    create, macs = (create_vit, vit_macs) if name.startswith("vit") else (create_swin, swin_macs)
    with torch.device("meta"):
        model = create(name)
        c = model.config
        x = torch.randn(2, c.in_chans, c.img_size, c.img_size)
        assert measure_flops(model, x) == 2 * 2 * macs(model).total  # batch 2, 2 FLOPs per MAC


def test_timm_measured_equals_analytic_and_fused_undercounts() -> None:
    """The reference counts (timm 1.0.31, batch 1): ViT-B/16 35.128 GFLOPs, Swin-T 8.981 GFLOPs.
    With the fused kernel on, the CPU count misses exactly the attention products."""
    x = torch.randn(1, 3, 224, 224)
    vit = timm.create_model("vit_base_patch16_224", pretrained=False).eval()
    swin = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False).eval()
    cost = vit_macs("vit_base_patch16_224")
    assert measure_flops(vit, x) == cost.flops == 35_127_656_448
    assert measure_flops(swin, x) == swin_macs("swin_tiny_patch4_window7_224").flops == 8_981_133_312
    # the mistake a measurement can make, caught: timm's ViT and ours with fused attention on the CPU
    ours = vit_from_timm(vit)
    for model in (vit, ours):
        fused = measure_flops(model, x, fused=True)
        assert fused < cost.flops
        assert cost.flops - fused == 2 * cost.macs["attention"]
    assert "aten.bmm" in measure_flop_breakdown(ours, x) and "aten.bmm" not in measure_flop_breakdown(
        ours, x, fused=True
    )


@pytest.mark.parametrize(
    "name, printed",
    [
        ("vit_small_patch16_224", 4.6),
        ("swin_tiny_patch4_window7_224", 4.5),
        ("swin_small_patch4_window7_224", 8.7),
        ("swin_base_patch4_window7_224", 15.4),
    ],
)
def test_papers_gflops(name: str, printed: float) -> None:
    """Swin Table 1 (and DeiT's 4.6G for DeiT-S = ViT-S/16), one decimal, multiply-adds."""
    cost = (vit_macs if name.startswith("vit") else swin_macs)(name)
    assert round(cost.total / 1e9, 1) == printed


def test_vit_base_gflops_both_papers() -> None:
    """17.56 G multiply-adds: DeiT prints 17.6G (rounded), the Swin paper's Table 1 17.5G (truncated)."""
    total = vit_macs("vit_base_patch16_224").total / 1e9
    assert round(total, 1) == 17.6
    assert math.floor(total * 10) / 10 == 17.5


def test_left_out_operations_are_reported() -> None:
    for cost in (vit_macs("vit_small_patch16_224"), swin_macs("swin_tiny_patch4_window7_224")):
        assert {"softmax", "layernorm", "gelu", "add (residual)"} <= set(cost.left_out)
        assert cost.flops == 2 * cost.total
        assert "total" in str(cost)
    # softmax over 6 heads x 197 x 197 logits in each of 12 blocks
    assert vit_macs("vit_small_patch16_224").left_out["softmax"] == 12 * 6 * 197 * 197


def test_attention_is_quadratic_windows_linear() -> None:
    """Doubling the side quadruples the tokens: global attention grows 16x, windows and convs 4x."""
    C = 96
    g = [msa_macs(s, s, C) - 4 * s * s * C**2 for s in (28, 56)]
    wnd = [wmsa_macs(s, s, C, 7) - 4 * s * s * C**2 for s in (28, 56)]
    conv = [conv2d_macs(s, s, C, C, 3) for s in (28, 56)]
    assert g[1] == 16 * g[0] and wnd[1] == 4 * wnd[0] and conv[1] == 4 * conv[0]


def test_count_parameters_counts_shared_once() -> None:
    lin = torch.nn.Linear(3, 4)
    model = torch.nn.Sequential(lin, torch.nn.ReLU(), lin)
    assert count_parameters(model) == 16
    lin.bias.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 12


def test_peak_memory_sees_the_attention_matrix_and_the_fused_kernel_avoids_it() -> None:
    assert peak_memory(torch.empty, 1000) == 1000 * 4                     # float32: exactly what was asked
    heads, n, d = 2, 1024, 32
    q, k, v = torch.randn(3, 1, heads, n, d).unbind(0)
    matrix = heads * n * n * 4                                            # one (heads, n, n) float32 tensor
    with torch.no_grad():
        explicit = peak_memory(lambda: (q @ k.transpose(-2, -1) * d**-0.5).softmax(-1) @ v)
        fused = peak_memory(torch.nn.functional.scaled_dot_product_attention, q, k, v)
    assert explicit >= 2 * matrix                                         # logits and weights live together
    assert fused < matrix / 4                                             # the fused kernel never builds it
