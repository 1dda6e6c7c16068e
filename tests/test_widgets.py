"""The book's explorers, driven without a browser: build each widget, move a control, check that the
picture (PNG bytes) and the text change, and that the drawn data equal an independent computation
(the paper's formula, image slicing, timm's Swin mask)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import ipywidgets as W  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import widgets  # noqa: E402


def _png(box: W.Widget) -> bytes:
    """The PNG bytes of the (only) Image widget inside a box."""
    found = []

    def walk(w: W.Widget) -> None:
        if isinstance(w, W.Image):
            found.append(w)
        for child in getattr(w, "children", ()):
            walk(child)

    walk(box)
    assert len(found) == 1
    value = found[0].value
    assert value[:8] == b"\x89PNG\r\n\x1a\n"
    return value


def _controls(box: W.Widget, kind: type) -> list:
    out = []

    def walk(w: W.Widget) -> None:
        if isinstance(w, kind):
            out.append(w)
        for child in getattr(w, "children", ()):
            walk(child)

    walk(box)
    return out


# ---- attention ------------------------------------------------------------------------------------
def test_attention_explorer_redraws_on_query_and_head() -> None:
    tokens = ["a", "b", "c", "d"]
    weights = torch.rand(2, 4, 4).softmax(-1)
    box = widgets.attention_explorer(tokens, weights)
    (query,) = _controls(box, W.Dropdown)
    (head,) = _controls(box, W.IntSlider)
    assert head.max == 1
    before = _png(box)
    query.value = 2
    after_query = _png(box)
    assert after_query != before
    head.value = 1
    assert _png(box) != after_query


def test_attention_explorer_single_head_has_no_head_slider() -> None:
    box = widgets.attention_explorer(["x", "y", "z"], torch.eye(3))
    assert _controls(box, W.IntSlider) == []


def test_draw_attention_bars_are_the_query_row() -> None:
    weights = torch.rand(5, 5).softmax(-1)
    fig = widgets.draw_attention(list("abcde"), weights, query=3)
    bars = [p.get_height() for p in fig.axes[-1].patches]
    np.testing.assert_allclose(bars, weights[3].numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    "tokens, weights, match",
    [
        (["a", "b"], torch.ones(3, 3) / 3, "2 tokens"),
        (["a", "b", "c"], torch.ones(3, 2), "queries x keys"),
        (["a", "b"], -torch.ones(2, 2), "non-negative"),
    ],
)
def test_attention_explorer_rejects_bad_input(tokens, weights, match) -> None:
    with pytest.raises(ValueError, match=match):
        widgets.attention_explorer(tokens, weights)


# ---- positional encoding --------------------------------------------------------------------------
def test_draw_positional_encoding_shows_the_papers_formula() -> None:
    n, d = 20, 16
    fig = widgets.draw_positional_encoding(n, d, base=10000.0, position=3)
    drawn = np.asarray(fig.axes[0].images[0].get_array())  # (dim, positions)
    pos = np.arange(n)[:, None]
    i = np.arange(d // 2)[None, :]
    expected = np.zeros((n, d))
    expected[:, 0::2] = np.sin(pos / 10000.0 ** (2 * i / d))
    expected[:, 1::2] = np.cos(pos / 10000.0 ** (2 * i / d))
    np.testing.assert_allclose(drawn, expected.T, atol=1e-5)


def test_positional_encoding_explorer_redraws() -> None:
    box = widgets.positional_encoding_explorer(num_positions=32, dim=16)
    dim_s, pos_s = _controls(box, W.IntSlider)
    (base_s,) = _controls(box, W.FloatLogSlider)
    before = _png(box)
    pos_s.value = 5
    after_pos = _png(box)
    assert after_pos != before
    base_s.value = 100.0
    after_base = _png(box)
    assert after_base != after_pos
    dim_s.value = 32
    assert _png(box) != after_base


@pytest.mark.parametrize("kwargs", [dict(dim=15), dict(base=1.0), dict(num_positions=1)])
def test_positional_encoding_explorer_rejects_bad_input(kwargs) -> None:
    with pytest.raises(ValueError):
        widgets.positional_encoding_explorer(**kwargs)


# ---- patches --------------------------------------------------------------------------------------
def test_draw_patches_pulls_apart_the_right_pixels() -> None:
    img = torch.rand(3, 32, 48)
    P, gap = 8, 2
    fig = widgets.draw_patches(img, P, gap=gap)
    canvas = np.asarray(fig.axes[1].images[0].get_array())  # (H', W', 3)
    assert canvas.shape == (4 * (P + gap) - gap, 6 * (P + gap) - gap, 3)
    for r, c in [(0, 0), (1, 4), (3, 5)]:
        block = canvas[r * (P + gap) : r * (P + gap) + P, c * (P + gap) : c * (P + gap) + P]
        expected = img[:, r * P : (r + 1) * P, c * P : (c + 1) * P].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(block, expected, atol=1e-7)
    assert "24 tokens" in fig.axes[1].get_title()


def test_patchify_explorer_redraws_and_counts_tokens() -> None:
    img = torch.rand(64, 64, 3)  # channels-last input is accepted too
    box = widgets.patchify_explorer(img, patch_sizes=(8, 16, 32))
    (slider,) = _controls(box, W.SelectionSlider)
    (label,) = _controls(box, W.HTML)
    assert slider.value == 16 and "16 tokens" in label.value
    before = _png(box)
    slider.value = 8
    assert _png(box) != before
    assert f"{(64 // 8) ** 2} tokens" in label.value
    assert f"{(64 // 8) ** 4:,} entries" in label.value


def test_patchify_explorer_rejects_bad_patch_size() -> None:
    with pytest.raises(ValueError, match="image size 30x30 is not divisible by patch size 16"):
        widgets.patchify_explorer(torch.rand(3, 30, 30), patch_sizes=(15, 16))
    with pytest.raises(ValueError, match="channels"):
        widgets.draw_patches(torch.rand(5, 16, 16), 8)


# ---- shifted windows ------------------------------------------------------------------------------
@pytest.mark.parametrize("window_index", [0, 1, 3])
def test_draw_shifted_windows_mask_equals_timm(window_index: int) -> None:
    from timm.models.swin_transformer import SwinTransformerBlock

    block = SwinTransformerBlock(dim=8, input_resolution=(8, 8), num_heads=1, window_size=4, shift_size=2)
    fig = widgets.draw_shifted_windows(resolution=8, window=4, shift=True, window_index=window_index)
    drawn = np.asarray(fig.axes[2].images[0].get_array()).astype(bool)
    np.testing.assert_array_equal(drawn, (block.attn_mask[window_index] == 0).numpy())


def test_draw_shifted_windows_panel_one_is_the_rolled_grid() -> None:
    R, M, s = 8, 4, 2
    fig = widgets.draw_shifted_windows(R, M, shift=True, window_index=0)
    ids = np.asarray(fig.axes[0].images[0].get_array())  # window id (mod 20) of every token
    # Independent: roll the map by -s, cut regular windows, read back each token's window.
    rows, cols = np.meshgrid(np.arange(R), np.arange(R), indexing="ij")
    expected = ((rows - s) % R // M) * (R // M) + ((cols - s) % R // M)
    np.testing.assert_array_equal(ids, expected % 20)


def test_shifted_window_explorer_controls() -> None:
    box = widgets.shifted_window_explorer()  # Swin-T at 224: 56, 28, 14, 7 with 7x7 windows
    (stage,) = _controls(box, W.Dropdown)
    (shift,) = _controls(box, W.Checkbox)
    (index,) = _controls(box, W.IntSlider)
    assert index.max == (56 // 7) ** 2 - 1
    before = _png(box)
    shift.value = False
    no_shift = _png(box)
    assert no_shift != before
    index.value = 9
    assert _png(box) != no_shift
    stage.value = 14
    assert index.max == 3 and index.value == 3
    stage.value = 7  # one window, and Swin does not shift it
    assert index.max == 0


def test_shifted_window_explorer_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="resolution 10 is not divisible by window size 4"):
        widgets.shifted_window_explorer(resolutions=(10,), window=4)
    with pytest.raises(ValueError, match="window_index 4 out of range"):
        widgets.draw_shifted_windows(8, 4, True, window_index=4)


def test_figure_to_png_is_png() -> None:
    fig = widgets.draw_attention(["a", "b"], torch.full((2, 2), 0.5))
    png = widgets.figure_to_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    assert math.isclose(fig.get_size_inches()[1], 4.0)
