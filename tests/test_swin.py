"""course_lib's Swin against timm's (same weights, same outputs and gradients), the windows and shift
masks against timm's own functions, and the papers' parameter counts."""

from __future__ import annotations

import math
import pickle

import pytest
import timm
import torch
from conftest import assert_same_function
from timm.models import swin_transformer as tsw

from course_lib.complexity import count_parameters
from course_lib.convert import swin_from_timm, swin_state_dict_from_official, swin_to_timm
from course_lib.multihead import MultiHeadAttention
from course_lib.positional import RelativePositionBias
from course_lib.swin import (
    PatchMerging,
    SwinBlock,
    SwinConfig,
    SwinTransformer,
    WindowAttention,
    create_swin,
    list_swins,
    region_ids,
    shifted_window_bias,
    shifted_window_mask,
    window_ids,
    window_partition,
    window_reverse,
)

PAPER = ["swin_tiny_patch4_window7_224", "swin_small_patch4_window7_224"]
SLOW = ["swin_base_patch4_window7_224"]
SMALL = ["swin_cifar", "swin_digits"]


def _timm_model(name: str) -> torch.nn.Module:
    if name not in SMALL:
        return timm.create_model(name, pretrained=False, drop_path_rate=0.0)
    c = create_swin(name).config
    return tsw.SwinTransformer(
        img_size=c.img_size,
        patch_size=c.patch_size,
        in_chans=c.in_chans,
        num_classes=c.num_classes,
        embed_dim=c.embed_dim,
        depths=c.depths,
        num_heads=c.num_heads,
        window_size=c.window_size,
        mlp_ratio=c.mlp_ratio,
        drop_path_rate=0.0,
    )


# ---- windows, shift, mask ---------------------------------------------------------------------------
def test_window_partition_matches_timm_and_reverses() -> None:
    x = torch.randn(2, 14, 21, 5)
    w = window_partition(x, 7)
    torch.testing.assert_close(w, tsw.window_partition(x, (7, 7)), rtol=0, atol=0)
    torch.testing.assert_close(window_reverse(w, 7, 14, 21), x, rtol=0, atol=0)


@pytest.mark.parametrize("res, window", [(56, 7), (28, 7), (8, 4), (16, 4)])
def test_shift_mask_equals_timm(res: int, window: int) -> None:
    blk = tsw.SwinTransformerBlock(dim=8, input_resolution=(res, res), num_heads=2, window_size=window,
                                   shift_size=window // 2)  # fmt: skip
    ours = shifted_window_bias(res, res, window, window // 2)
    torch.testing.assert_close(ours, blk.attn_mask, rtol=0, atol=0)
    allowed = shifted_window_mask(res, res, window, window // 2)
    assert allowed.dtype == torch.bool and torch.equal(allowed, allowed.transpose(1, 2))
    assert torch.equal(allowed, blk.attn_mask == 0)
    assert shifted_window_bias(res, res, window, 0) is None
    assert shifted_window_mask(res, res, window, 0).all()


def test_region_ids_label_nine_regions() -> None:
    ids = region_ids(8, 8, 4, 2)
    assert ids.unique().tolist() == list(range(9))
    assert ids[:4, :4].eq(0).all() and ids[6:, 6:].eq(8).all() and ids[4:6, 6:].eq(5).all()


@pytest.mark.parametrize("shift", [0, 3])
def test_window_ids_follow_the_cyclic_shift(shift: int) -> None:
    """Reference: number the tokens, roll them as the block does, cut windows with timm's function;
    each window must hold exactly the tokens window_ids assigns to it."""
    h = w = 14
    M = 7
    ids = window_ids(h, w, M, shift)
    tokens = torch.arange(h * w).view(1, h, w, 1)
    rolled = torch.roll(tokens, shifts=(-shift, -shift), dims=(1, 2))
    windows = tsw.window_partition(rolled, (M, M)).reshape(-1, M * M)
    for k, members in enumerate(windows):
        assert (ids.flatten()[members] == k).all()
    if shift == 0:
        assert ids[6, 6] == 0 and ids[7, 7] == 3
    else:  # the first 3 rows/columns wrap around into the last windows
        assert ids[0, 0] == 3 and ids[3, 3] == 0


# ---- layers -----------------------------------------------------------------------------------------
def test_patch_merging_equals_timm() -> None:
    ref = tsw.PatchMerging(dim=6)
    ours = PatchMerging(6)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 8, 8, 6)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-6, atol=1e-6)


def test_block_equals_timm_and_bias_table_gets_the_same_gradient() -> None:
    ref = tsw.SwinTransformerBlock(
        dim=32, input_resolution=(14, 14), num_heads=4, window_size=7, shift_size=3
    )
    ours = SwinBlock(32, (14, 14), 4, window_size=7, shift_size=3)
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(ref.state_dict())  # timm's names, in timm's order
    x = torch.randn(2, 14, 14, 32)
    a, b = ref(x), ours(x)
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    a.square().sum().backward()
    b.square().sum().backward()
    torch.testing.assert_close(
        ours.attn.position_bias.relative_position_bias_table.grad,
        ref.attn.relative_position_bias_table.grad,
        rtol=1e-4,
        atol=1e-5,
    )


def test_bias_follows_weight_updates() -> None:
    """An in-place change of the bias table (an optimiser step) is seen by the next forward pass."""
    ref = tsw.SwinTransformerBlock(dim=16, input_resolution=(8, 8), num_heads=2, window_size=4, shift_size=2)
    ours = SwinBlock(16, (8, 8), 2, window_size=4, shift_size=2)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(1, 8, 8, 16)
    table = ours.attn.position_bias.relative_position_bias_table
    with torch.no_grad():
        ours(x)
        ref.attn.relative_position_bias_table.add_(torch.randn_like(table))
        table.copy_(ref.attn.relative_position_bias_table)
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)


def test_window_attention_is_mha_plus_the_chapter_3_bias() -> None:
    """WindowAttention is made of the chapter-2 and chapter-3 modules, and saves timm's names."""
    ref = tsw.WindowAttention(dim=12, num_heads=3, window_size=(4, 4))
    ours = WindowAttention(12, 3, 4)
    assert isinstance(ours.mha, MultiHeadAttention) and isinstance(ours.position_bias, RelativePositionBias)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2 * 4, 16, 12)
    mask = shifted_window_bias(8, 8, 4, 2)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours(x, mask), ref(x, mask), rtol=1e-6, atol=1e-6)
    with pytest.raises(RuntimeError, match="relative_position_bias_table"):
        ours.load_state_dict({k: v for k, v in ref.state_dict().items() if "table" not in k})
    copy = pickle.loads(pickle.dumps(ours))  # a whole model can be saved (the hooks are plain functions)
    assert list(copy.state_dict()) == list(ref.state_dict())


# ---- whole models -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PAPER + SMALL + [pytest.param(n, marks=pytest.mark.slow) for n in SLOW])
def test_equal_to_timm(name: str) -> None:
    ref = _timm_model(name).eval()
    ours = swin_from_timm(ref)
    assert count_parameters(ours) == count_parameters(ref)
    assert count_parameters(create_swin(name)) == count_parameters(ref)
    c = ours.config
    assert_same_function(ours, ref, torch.randn(1, c.in_chans, c.img_size, c.img_size, requires_grad=True))


def test_round_trip_to_timm_and_official_layout() -> None:
    ours = create_swin("swin_cifar").eval()
    ref = swin_to_timm(ours)
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    assert_same_function(ours, ref, x)
    # An official-layout checkpoint: merging at the end of stages 0..1, head named 'head', buffers saved.
    official = {}
    for k, v in ours.state_dict().items():
        if k.startswith("layers.") and ".downsample." in k:
            s = int(k.split(".")[1])
            k = k.replace(f"layers.{s}.downsample", f"layers.{s - 1}.downsample")
        official[k.replace("head.fc.", "head.")] = v
    official["layers.0.blocks.1.attn_mask"] = torch.zeros(1)
    official["layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(1)
    # timm's own filter for official checkpoints is the reference for the renaming.
    expected = tsw.checkpoint_filter_fn(dict(official), ref)
    assert swin_state_dict_from_official(official).keys() == expected.keys()
    fresh = create_swin("swin_cifar").eval()
    fresh.load_state_dict(swin_state_dict_from_official(official), strict=True)
    assert_same_function(fresh, ref, x)


def test_parameter_counts_match_papers() -> None:
    """Swin Table 1: T 29M, S 50M, B 88M; the official repository lists Swin-T as 28M.
    28.29M rounds to 28M; the paper's 29M is the rounded-up figure (49.61 -> 50, 87.77 -> 88 either way)."""
    with torch.device("meta"):
        t, s, b = (count_parameters(create_swin(n)) for n in PAPER + SLOW)
    assert (t, s, b) == (28_288_354, 49_606_258, 87_768_224)
    assert round(t / 1e6) == 28 and math.ceil(t / 1e6) == 29
    assert round(s / 1e6) == 50 and math.ceil(s / 1e6) == 50
    assert round(b / 1e6) == 88 and math.ceil(b / 1e6) == 88


def test_small_configs_are_small() -> None:
    assert set(PAPER + SLOW + SMALL) <= set(list_swins())
    for name in SMALL:
        m = create_swin(name)
        assert count_parameters(m) < 1_000_000
        c = m.config
        assert m(torch.randn(3, c.in_chans, c.img_size, c.img_size)).shape == (3, 10)


# ---- bad input --------------------------------------------------------------------------------------
def test_bad_input_is_a_value_error_naming_the_sizes() -> None:
    with pytest.raises(ValueError, match="stage 0: resolution 64x64 is not divisible by window size 7"):
        create_swin("swin_tiny_patch4_window7_224", img_size=256)
    with pytest.raises(ValueError, match="stage 0: embed_dim=48 is not divisible by num_heads=5"):
        create_swin("swin_cifar", num_heads=(5, 6, 12))
    with pytest.raises(ValueError, match="30 is not divisible by patch size 4"):
        create_swin("swin_tiny_patch4_window7_224", img_size=30)
    m = create_swin("swin_cifar")
    with pytest.raises(ValueError, match="1 channels .* in_chans=3"):
        m(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"image size \(64, 64\) does not match"):
        m(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="resolution 14x10 is not divisible by window size 7"):
        window_partition(torch.randn(1, 14, 10, 3), 7)


def test_built_from_its_config() -> None:
    cfg = SwinConfig(img_size=16, patch_size=2, num_classes=3, embed_dim=8, depths=[2, 2], num_heads=[1, 2],
                     window_size=4)  # fmt: skip
    model = SwinTransformer(cfg)
    assert model.config is cfg and cfg.depths == (2, 2) and model.head.fc.out_features == 3
    stages = create_swin("swin_digits", drop_path_rate=0.3).layers
    rates = [b.drop_path1.p for stage in stages for b in stage.blocks]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3])
    with pytest.raises(TypeError, match="takes a SwinConfig"):
        SwinTransformer(224)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stage 2: patch merging needs an even resolution, got 3"):
        SwinConfig(img_size=24, patch_size=4, depths=(2, 2, 2), num_heads=(1, 2, 4), window_size=3)
