"""Interactive explorers for the book: attention weights, position encodings, patches, windows.

Each explorer is a function that returns an :mod:`ipywidgets` box (controls above a picture) and is
backed by a *pure* drawing function ``draw_...(...) -> matplotlib.figure.Figure``. The chapters show
the drawing function's figure next to each widget, so that the HTML book is useful without a kernel.

The picture is an :class:`ipywidgets.Image` holding PNG bytes re-rendered on every change: unlike an
``Output`` widget it needs no running kernel to show its current state, so the state that
``nbconvert --execute`` embeds in the notebook renders as a picture in the built book.

The drawing functions create their figure with ``pyplot`` (so that Jupyter's inline backend is active
and knows how to show a returned figure) and close it before returning it: a closed figure is shown
once, as the cell's value, and never a second time when the inline backend flushes open figures.
"""

from __future__ import annotations

import io
from typing import Optional, Sequence, Union

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

__all__ = [
    "figure_to_png",
    "draw_attention",
    "attention_explorer",
    "draw_positional_encoding",
    "positional_encoding_explorer",
    "draw_patches",
    "patchify_explorer",
    "draw_shifted_windows",
    "shifted_window_explorer",
]

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]


def figure_to_png(fig: Figure, dpi: int = 80) -> bytes:
    """Render a figure to PNG bytes (what an :class:`ipywidgets.Image` shows)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _new_figure(figsize: tuple[float, float]) -> Figure:
    fig = plt.figure(figsize=figsize, layout="constrained")
    plt.close(fig)  # shown as a cell's value or turned into PNG bytes, never by pyplot
    return fig


def _image_widget(fig: Figure) -> W.Image:
    return W.Image(value=figure_to_png(fig), format="png", layout=W.Layout(max_width="100%"))


# ---------------------------------------------------------------------------------------------------
# Attention weights (chapters 1 and 2)
# ---------------------------------------------------------------------------------------------------


def _check_attention(tokens: Sequence[str], weights: ArrayLike) -> np.ndarray:
    w = _to_numpy(weights)
    if w.ndim == 2:
        w = w[None]
    if w.ndim != 3 or w.shape[-1] != w.shape[-2]:
        raise ValueError(
            f"attention weights must be (N, N) or (H, N, N) (queries x keys), got shape {tuple(w.shape)}"
        )
    if len(tokens) != w.shape[-1]:
        raise ValueError(f"got {len(tokens)} tokens for attention weights over {w.shape[-1]} tokens")
    if not np.all(np.isfinite(w)) or (w < 0).any():
        raise ValueError("attention weights must be finite and non-negative (softmax outputs)")
    return w


def draw_attention(
    tokens: Sequence[str],
    weights: ArrayLike,
    query: Optional[int] = None,
    head: int = 0,
) -> Figure:
    """Heat map of the attention weights, and the weights of one query as bars.

    Args:
        tokens: the ``N`` token labels.
        weights: ``(N, N)`` or ``(H, N, N)`` attention weights, row ``i`` = query ``i``.
        query: the query whose weights are drawn as bars (its row is outlined); ``None``: map only.
        head: which head to draw when ``weights`` has a head dimension.
    """
    w = _check_attention(tokens, weights)
    if not 0 <= head < w.shape[0]:
        raise ValueError(f"head {head} out of range: the weights have {w.shape[0]} head(s)")
    n = w.shape[-1]
    if query is not None and not 0 <= query < n:
        raise ValueError(f"query {query} out of range for {n} tokens")
    a = w[head]
    ncols = 1 if query is None else 2
    fig = _new_figure((4.6 * ncols, 4.0))
    ax = fig.add_subplot(1, ncols, 1)
    im = ax.imshow(a, cmap="viridis", vmin=0.0, vmax=max(float(a.max()), 1e-6))
    ax.set_xticks(range(n), tokens, rotation=60)
    ax.set_yticks(range(n), tokens)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    title = "attention weights" if w.shape[0] == 1 else f"attention weights, head {head}"
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8, label="weight")
    if query is not None:
        ax.add_patch(Rectangle((-0.5, query - 0.5), n, 1, fill=False, edgecolor="red", linewidth=2))
        bx = fig.add_subplot(1, ncols, 2)
        bx.bar(range(n), a[query], color="tab:blue")
        bx.set_xticks(range(n), tokens, rotation=60)
        bx.set_ylim(0, 1)
        bx.set_xlabel("key")
        bx.set_ylabel("weight (row sums to 1)")
        bx.set_title(f"query {query} ({tokens[query]!r})")
    return fig


def attention_explorer(tokens: Sequence[str], weights: ArrayLike) -> W.VBox:
    """Pick a query token (and a head) and see whom it attends to.

    ``weights`` is ``(N, N)`` or ``(H, N, N)``; returns a ``VBox`` of a query dropdown, a head
    slider (when ``H > 1``) and the picture of :func:`draw_attention`.
    """
    tokens = [str(t) for t in tokens]
    w = _check_attention(tokens, weights)
    query = W.Dropdown(options=[(f"{i}: {t}", i) for i, t in enumerate(tokens)], value=0, description="query")
    head = W.IntSlider(value=0, min=0, max=w.shape[0] - 1, description="head")
    image = _image_widget(draw_attention(tokens, w, query.value, head.value))

    def redraw(_change: object = None) -> None:
        image.value = figure_to_png(draw_attention(tokens, w, query.value, head.value))

    query.observe(redraw, names="value")
    head.observe(redraw, names="value")
    controls = [query] + ([head] if w.shape[0] > 1 else [])
    return W.VBox([W.HBox(controls), image])


# ---------------------------------------------------------------------------------------------------
# Sinusoidal position encodings (chapter 3)
# ---------------------------------------------------------------------------------------------------


def _check_pe(num_positions: int, dim: int, base: float, position: int) -> None:
    if num_positions < 2:
        raise ValueError(f"num_positions={num_positions} must be at least 2")
    if dim < 2 or dim % 2:
        raise ValueError(f"dim={dim} must be a positive even number (sin/cos pairs)")
    if base <= 1:
        raise ValueError(f"base={base} must be > 1")
    if not 0 <= position < num_positions:
        raise ValueError(f"position {position} out of range for {num_positions} positions")


def draw_positional_encoding(
    num_positions: int = 64,
    dim: int = 64,
    base: float = 10000.0,
    position: int = 10,
) -> Figure:
    """The sinusoidal encoding ``(num_positions, dim)`` as a heat map, a few of its dimensions as
    curves, and the dot product of one ``position``'s encoding with every other position's."""
    from .positional import sinusoidal_encoding

    _check_pe(num_positions, dim, base, position)
    pe = sinusoidal_encoding(num_positions, dim, base=base).cpu().numpy()
    fig = _new_figure((13, 3.6))
    ax1, ax2, ax3 = fig.subplots(1, 3)
    im = ax1.imshow(pe.T, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, origin="lower")
    ax1.axvline(position, color="black", linewidth=1)
    ax1.set_xlabel("position")
    ax1.set_ylabel("encoding dimension")
    ax1.set_title(f"PE, dim={dim}, base={base:g}")
    fig.colorbar(im, ax=ax1, shrink=0.8, label="value")
    pos = np.arange(num_positions)
    for i in sorted({0, 2 * (dim // 20), 2 * (dim // 8), 2 * (dim // 4)}):
        ax2.plot(pos, pe[:, i], label=f"dim {i} (sin)")
    ax2.axvline(position, color="black", linewidth=1)
    ax2.set_xlabel("position")
    ax2.set_ylabel("value")
    ax2.set_title("some dimensions: fast to slow")
    ax2.legend(fontsize=7, loc="lower left")
    sim = pe @ pe[position]
    ax3.plot(pos, sim, marker=".")
    ax3.axvline(position, color="black", linewidth=1)
    ax3.set_xlabel("position")
    ax3.set_ylabel(f"PE(p) . PE({position})")
    ax3.set_title(f"similarity to position {position}")
    return fig


def positional_encoding_explorer(num_positions: int = 64, dim: int = 64, base: float = 10000.0) -> W.VBox:
    """Sliders for the encoding size, the base of the wavelengths and one position.

    Returns a ``VBox`` of the sliders and the picture of :func:`draw_positional_encoding`.
    """
    _check_pe(num_positions, dim, base, 0)
    dim_s = W.IntSlider(value=dim, min=2, max=max(256, dim), step=2, description="dim")
    pos_s = W.IntSlider(
        value=min(10, num_positions - 1), min=0, max=num_positions - 1, description="position"
    )
    base_s = W.FloatLogSlider(value=base, base=10, min=1, max=6, step=0.5, description="base")

    def draw() -> Figure:
        return draw_positional_encoding(num_positions, dim_s.value, base_s.value, pos_s.value)

    image = _image_widget(draw())

    def redraw(_change: object = None) -> None:
        image.value = figure_to_png(draw())

    for s in (dim_s, pos_s, base_s):
        s.observe(redraw, names="value")
    return W.VBox([W.HBox([dim_s, pos_s, base_s]), image])


# ---------------------------------------------------------------------------------------------------
# Patches (chapter 5)
# ---------------------------------------------------------------------------------------------------


def _image_chw(image: ArrayLike) -> torch.Tensor:
    """An image as a float ``(C, H, W)`` tensor, from ``(C, H, W)`` or ``(H, W, C)`` (C = 1 or 3)."""
    if isinstance(image, torch.Tensor):
        x = image.detach().float().cpu()
    else:
        x = torch.as_tensor(np.asarray(image)).float()
    if x.dim() == 2:
        x = x[None]
    if x.dim() != 3:
        raise ValueError(f"expected an image of shape (C, H, W) or (H, W, C), got {tuple(x.shape)}")
    if x.shape[0] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.permute(2, 0, 1)
    if x.shape[0] not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels, got an image of shape {tuple(x.shape)}")
    return x


def _check_patch_size(shape: tuple[int, int], patch_size: int) -> None:
    H, W = shape
    if patch_size <= 0:
        raise ValueError(f"patch size {patch_size} must be positive")
    if H % patch_size or W % patch_size:
        raise ValueError(f"image size {H}x{W} is not divisible by patch size {patch_size}")


def _show(ax, chw: torch.Tensor) -> None:
    img = chw.permute(1, 2, 0).clamp(0, 1).numpy()
    ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)


def draw_patches(image: ArrayLike, patch_size: int = 16, gap: Optional[int] = None) -> Figure:
    """The image with its ``patch_size`` grid, and the same patches pulled apart as ViT sees them:
    ``N = (H/P)(W/P)`` separate tokens of ``P*P*C`` numbers each (cut by :func:`course_lib.vit.patchify`).

    ``image`` is ``(C, H, W)`` or ``(H, W, C)`` with values in ``[0, 1]``; ``H`` and ``W`` must be
    divisible by ``patch_size``.
    """
    from .vit import patchify

    x = _image_chw(image)
    C, H, W = x.shape
    _check_patch_size((H, W), patch_size)
    P = patch_size
    gh, gw = H // P, W // P
    n = gh * gw
    patches = patchify(x[None], P)[0].view(n, P, P, C)  # (N, P, P, C), raster order
    gap = max(1, P // 8) if gap is None else gap
    canvas = torch.ones(gh * (P + gap) - gap, gw * (P + gap) - gap, C)
    for i in range(n):
        r, c = divmod(i, gw)
        canvas[r * (P + gap) : r * (P + gap) + P, c * (P + gap) : c * (P + gap) + P] = patches[i]

    fig = _new_figure((10, 4.6))
    ax1, ax2 = fig.subplots(1, 2)
    _show(ax1, x)
    for k in range(1, gh):
        ax1.axhline(k * P - 0.5, color="white", linewidth=0.8)
    for k in range(1, gw):
        ax1.axvline(k * P - 0.5, color="white", linewidth=0.8)
    ax1.set_title(f"{H}x{W} image, {P}x{P} patches")
    ax1.set_xlabel("x (pixels)")
    ax1.set_ylabel("y (pixels)")
    _show(ax2, canvas.permute(2, 0, 1))
    ax2.set_axis_off()
    ax2.set_title(
        f"{n} tokens of {P}*{P}*{C} = {P * P * C} numbers\nattention matrix {n}x{n} = {n * n:,} entries"
    )
    return fig


def patchify_explorer(image: ArrayLike, patch_sizes: Sequence[int] = (8, 14, 16, 28, 32, 56)) -> W.VBox:
    """A patch-size slider over ``patch_sizes`` (each must divide the image's height and width), the
    picture of :func:`draw_patches`, and a line with the token count and the attention cost.
    """
    x = _image_chw(image)
    H, W_ = x.shape[1:]
    sizes = sorted({int(p) for p in patch_sizes})
    if not sizes:
        raise ValueError("patch_sizes is empty")
    for p in sizes:
        _check_patch_size((H, W_), p)
    start = 16 if 16 in sizes else sizes[len(sizes) // 2]
    slider = W.SelectionSlider(options=sizes, value=start, description="patch size")

    def summary(p: int) -> str:
        n = (H // p) * (W_ // p)
        pixels = H * W_
        return (
            f"<b>{p}x{p} patches</b>: {n} tokens (vs {pixels:,} pixels); attention matrix {n * n:,} entries, "
            f"{pixels * pixels / (n * n):,.0f}x fewer than attention over pixels"
        )

    label = W.HTML(summary(start))
    image_w = _image_widget(draw_patches(x, start))

    def redraw(_change: object = None) -> None:
        image_w.value = figure_to_png(draw_patches(x, slider.value))
        label.value = summary(slider.value)

    slider.observe(redraw, names="value")
    return W.VBox([slider, label, image_w])


# ---------------------------------------------------------------------------------------------------
# Shifted windows (chapter 6)
# ---------------------------------------------------------------------------------------------------


def _effective_window(resolution: int, window: int, shift: bool) -> tuple[int, int]:
    """Swin's rule: a map no larger than the window is one window, and is not shifted."""
    if resolution <= 0 or window <= 0:
        raise ValueError(f"resolution {resolution} and window size {window} must be positive")
    if resolution <= window:
        return resolution, 0
    if resolution % window:
        raise ValueError(f"resolution {resolution} is not divisible by window size {window}")
    return window, (window // 2 if shift else 0)


def draw_shifted_windows(
    resolution: int = 8, window: int = 4, shift: bool = True, window_index: int = 0
) -> Figure:
    """Swin's (shifted) windows on a ``resolution x resolution`` token map, three panels:

    1. every token coloured by the window it attends in (:func:`course_lib.swin.window_ids`), the
       chosen window highlighted, in image coordinates;
    2. the map after the cyclic roll by ``-window//2`` (what is actually cut into windows), coloured by
       the regions of :func:`course_lib.swin.region_ids`;
    3. the attention mask of the chosen window (:func:`course_lib.swin.shifted_window_mask`):
       which of its ``M*M`` tokens may attend to which.

    ``window_index`` counts windows row by row in the rolled map (the numbering of the mask).
    """
    from .swin import region_ids, shifted_window_mask, window_ids

    M, s = _effective_window(resolution, window, shift)
    R = resolution
    nw = (R // M) ** 2
    if not 0 <= window_index < nw:
        raise ValueError(
            f"window_index {window_index} out of range: a {R}x{R} map has {nw} windows of {M}x{M}"
        )
    ids = window_ids(R, R, M, s).numpy()
    regions = region_ids(R, R, M, s).numpy()
    mask = shifted_window_mask(R, R, M, s)[window_index].numpy()

    fig = _new_figure((13, 4.6))
    fig.get_layout_engine().set(h_pad=0.08)  # room between the figure title and the panels' titles
    fig.suptitle(f"Swin windows: {R}x{R} tokens, {M}x{M} windows, shift {s}")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    cmap = "tab20"
    alpha = np.where(ids == window_index, 1.0, 0.35)
    ax1.imshow(ids % 20, cmap=cmap, vmin=0, vmax=19, alpha=alpha)
    for (r, c), k in np.ndenumerate(ids):
        if R <= 16:
            ax1.text(c, r, str(k), ha="center", va="center", fontsize=7)
    for (r, c), k in np.ndenumerate(ids):
        if k == window_index:
            ax1.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.2))
    ax1.set_title(f"window of each token (shift {s})")
    ax1.set_xlabel("token column")
    ax1.set_ylabel("token row")

    ax2.imshow(regions, cmap="Set3", vmin=0, vmax=11)
    for k in range(1, R // M):
        ax2.axhline(k * M - 0.5, color="black", linewidth=1.2)
        ax2.axvline(k * M - 0.5, color="black", linewidth=1.2)
    wr, wc = divmod(window_index, R // M)
    ax2.add_patch(Rectangle((wc * M - 0.5, wr * M - 0.5), M, M, fill=False, edgecolor="red", linewidth=2.5))
    ax2.set_title(f"rolled by -{s}: windows, regions" if s else "no shift: regular windows")
    ax2.set_xlabel("column after the roll")
    ax2.set_ylabel("row after the roll")

    ax3.imshow(mask, cmap=ListedColormap(["lightgray", "tab:green"]), vmin=0, vmax=1)
    ax3.set_title(f"mask of window {window_index}: {int(mask.sum())}/{mask.size} allowed (green)")
    ax3.set_xlabel(f"key token in the window (0..{M * M - 1})")
    ax3.set_ylabel("query token in the window")
    for ax in (ax1, ax2, ax3):  # tokens are whole numbers
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def shifted_window_explorer(resolutions: Sequence[int] = (56, 28, 14, 7), window: int = 7) -> W.VBox:
    """Stage (one resolution per stage, Swin-T at 224 by default), shift on/off and window index ->
    the picture of :func:`draw_shifted_windows`.
    """
    resolutions = [int(r) for r in resolutions]
    if not resolutions:
        raise ValueError("resolutions is empty")
    for r in resolutions:
        _effective_window(r, window, True)
    stage = W.Dropdown(
        options=[(f"stage {i + 1}: {r}x{r}", r) for i, r in enumerate(resolutions)],
        value=resolutions[0],
        description="stage",
    )
    shift = W.Checkbox(value=True, description="shifted windows")

    def num_windows() -> int:
        M, _ = _effective_window(stage.value, window, shift.value)
        return (stage.value // M) ** 2

    index = W.IntSlider(value=0, min=0, max=num_windows() - 1, description="window")
    image = _image_widget(draw_shifted_windows(stage.value, window, shift.value, index.value))

    def redraw(_change: object = None) -> None:
        index.max = num_windows() - 1  # clamps index.value when the stage has fewer windows
        image.value = figure_to_png(draw_shifted_windows(stage.value, window, shift.value, index.value))

    for control in (stage, shift, index):
        control.observe(redraw, names="value")
    return W.VBox([W.HBox([stage, shift, index]), image])
