"""What a model costs: parameters, and compute counted on paper and measured.

**Convention.** The ViT, DeiT and Swin papers report "FLOPs" that are in fact *multiply-adds* (MACs):
one multiplication plus one addition counts once. ``torch.utils.flop_counter.FlopCounterMode`` counts
a multiply-add as **2** FLOPs. So ``measure_flops(model, x) == 2 * macs`` (up to the operations below).
Everything named ``*_macs`` here returns multiply-adds, in the papers' convention.

**What the papers (and FlopCounterMode) leave out.** Only matrix products and convolutions are
counted: the linear layers (``qkv``, ``proj``, MLP, patch merging, head), the two attention products
``Q K^T`` and ``A V``, and the patch-embedding convolution. Softmax, LayerNorm, GELU, the residual and
bias additions, the position embedding and the final average pooling are not. They are cheap in
multiplications but not free in time (they are memory-bound); :func:`vit_macs` and :func:`swin_macs`
count them separately, in ``Cost.left_out`` (elements processed by each kind of operation).

**Beware the fused kernel.** On the CPU, FlopCounterMode counts *zero* for the fused
``torch.nn.functional.scaled_dot_product_attention``. :func:`measure_flops` therefore runs with
:func:`course_lib.attention.fused_attention` off, and switches timm's attention modules to their
unfused path as well (the same as ``TIMM_FUSED_ATTN=0``); ``fused=True`` shows the undercount.

The analytic counts reproduce the papers (224x224, batch 1): ViT-S/16 4.60G and ViT-B/16 17.56G
(the Swin paper's Table 1 prints 4.6G for DeiT-S and 17.5G for DeiT-B; DeiT's own Table 1 lists no FLOPs),
Swin-T 4.49G, Swin-S 8.74G, Swin-B 15.43G (Swin Table 1: 4.5G, 8.7G, 15.4G).

Attention versus convolution as the image grows (chapters 4-6): with ``n = h*w`` tokens of width
``C``, global attention costs ``2 n^2 C`` (quadratic in the number of pixels), windowed attention
``2 M^2 n C`` (linear), a ``k x k`` convolution ``k^2 n C^2`` (linear). All functions take sizes, so
they can be evaluated on a range of resolutions.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from .attention import fused_attention

__all__ = [
    "count_parameters",
    "linear_macs",
    "conv2d_macs",
    "attention_macs",
    "msa_macs",
    "wmsa_macs",
    "Cost",
    "vit_macs",
    "swin_macs",
    "measure_flops",
    "measure_flop_breakdown",
    "unfused_attention",
    "peak_memory",
]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (each shared tensor once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


# ---- building blocks --------------------------------------------------------------------------
def linear_macs(tokens: int, in_features: int, out_features: int) -> int:
    """``tokens`` vectors through a ``Linear(in, out)``: ``tokens * in * out`` (bias adds not counted)."""
    return tokens * in_features * out_features


def conv2d_macs(
    h: int,
    w: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    padding: Optional[int] = None,
    groups: int = 1,
) -> int:
    """A ``Conv2d`` on an ``h x w`` input: ``h_out * w_out * k^2 * C_in/groups * C_out``.

    ``padding=None`` means 'same' (``k // 2``). The patch embedding of ViT is the case
    ``kernel_size = stride = P``, ``padding=0``.
    """
    if padding is None:
        padding = kernel_size // 2
    h_out = (h + 2 * padding - kernel_size) // stride + 1
    w_out = (w + 2 * padding - kernel_size) // stride + 1
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"channels {in_channels} -> {out_channels} are not divisible by groups={groups}")
    return h_out * w_out * kernel_size**2 * (in_channels // groups) * out_channels


def attention_macs(n: int, d: int, n_kv: Optional[int] = None, d_v: Optional[int] = None) -> int:
    """The two products of attention for ``n`` queries and ``n_kv`` keys (default ``n``):
    ``Q K^T`` (``n * n_kv * d``) plus ``A V`` (``n * n_kv * d_v``). Summed over heads, ``d`` is the
    model width. Softmax and scaling are not counted (see the module docstring)."""
    n_kv = n if n_kv is None else n_kv
    d_v = d if d_v is None else d_v
    return n * n_kv * d + n * n_kv * d_v


def msa_macs(h: int, w: int, C: int) -> int:
    """Swin paper Eq. (1), global multi-head self-attention on an ``h x w`` map of width ``C``:
    ``4 h w C^2 + 2 (h w)^2 C`` (q, k, v and output projections, then the two attention products)."""
    return 4 * h * w * C**2 + 2 * (h * w) ** 2 * C


def wmsa_macs(h: int, w: int, C: int, M: int) -> int:
    """Swin paper Eq. (2), attention inside ``M x M`` windows: ``4 h w C^2 + 2 M^2 h w C``."""
    return 4 * h * w * C**2 + 2 * M**2 * h * w * C


# ---- whole models -----------------------------------------------------------------------------
@dataclass
class Cost:
    """Multiply-adds of a model by part (``macs``), and the element-wise work the papers leave out
    (``left_out``: elements through softmax, LayerNorm, GELU and additions). ``total`` is the papers'
    "FLOPs"; ``2 * total`` is what FlopCounterMode measures."""

    macs: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, int] = field(default_factory=dict)

    def add(self, part: str, macs: int) -> None:
        self.macs[part] = self.macs.get(part, 0) + int(macs)

    def skip(self, op: str, elements: int) -> None:
        self.left_out[op] = self.left_out.get(op, 0) + int(elements)

    @property
    def total(self) -> int:
        return sum(self.macs.values())

    @property
    def flops(self) -> int:
        """FLOPs in FlopCounterMode's convention (2 per multiply-add)."""
        return 2 * self.total

    def __str__(self) -> str:
        lines = [f"{'part':20s} {'GMACs':>10s}"]
        lines += [f"{k:20s} {v / 1e9:10.4f}" for k, v in self.macs.items()]
        lines.append(f"{'total':20s} {self.total / 1e9:10.4f}")
        lines += [f"(not counted) {k:20s} {v / 1e6:10.2f} M elements" for k, v in self.left_out.items()]
        return "\n".join(lines)


def _config(model_or_config, kind: str):
    if isinstance(model_or_config, str):
        if kind == "vit":
            from .vit import vit_config

            return vit_config(model_or_config)
        from .swin import swin_config

        return swin_config(model_or_config)
    return getattr(model_or_config, "config", model_or_config)


def vit_macs(config, img_size: Optional[int] = None) -> Cost:
    """Analytic cost of one image through a ViT: a :class:`~course_lib.vit.ViTConfig`, a model, or a
    name (``'vit_base_patch16_224'``). ``img_size`` overrides the configured size.

    Per block with ``T = N + 1`` tokens of width ``D`` and MLP width ``4D``: ``qkv`` ``3 T D^2``,
    attention ``2 T^2 D``, ``proj`` ``T D^2``, MLP ``8 T D^2``.
    """
    c = _config(config, "vit")
    S = img_size or c.img_size
    P, D, C_in = c.patch_size, c.embed_dim, c.in_chans
    if S % P:
        raise ValueError(f"image size {S} is not divisible by patch size {P}")
    N = (S // P) ** 2
    T = N + int(c.class_token)
    hidden = int(D * c.mlp_ratio)
    cost = Cost()
    cost.add("patch_embed", conv2d_macs(S, S, C_in, D, P, stride=P, padding=0))
    cost.skip("add (position)", T * D)
    for _ in range(c.depth):
        cost.add("qkv", linear_macs(T, D, 3 * D))
        cost.add("attention", attention_macs(T, D))
        cost.add("proj", linear_macs(T, D, D))
        cost.add("mlp", linear_macs(T, D, hidden) + linear_macs(T, hidden, D))
        cost.skip("softmax", c.num_heads * T * T)
        cost.skip("layernorm", 2 * T * D)
        cost.skip("gelu", T * hidden)
        cost.skip("add (residual)", 2 * T * D)
    cost.skip("layernorm", (T if c.global_pool == "token" else 1) * D)
    if c.num_classes:
        cost.add("head", linear_macs(1, D, c.num_classes))
    return cost


def swin_macs(config, img_size: Optional[int] = None) -> Cost:
    """Analytic cost of one image through a Swin Transformer (a :class:`~course_lib.swin.SwinConfig`,
    a model or a name). Per block on an ``h x w`` map of width ``C`` with windows ``M``: Eq. (2)'s
    ``4 h w C^2 + 2 M^2 h w C`` plus the MLP ``8 h w C^2``; patch merging ``(h/2)(w/2) 4C 2C``."""
    c = _config(config, "swin")
    S = img_size or c.img_size
    P = c.patch_size
    if S % P:
        raise ValueError(f"image size {S} is not divisible by patch size {P}")
    r = S // P
    dims = [c.embed_dim * 2**i for i in range(len(c.depths))]
    cost = Cost()
    cost.add("patch_embed", conv2d_macs(S, S, c.in_chans, dims[0], P, stride=P, padding=0))
    cost.skip("layernorm", r * r * dims[0])
    for s, (depth, heads) in enumerate(zip(c.depths, c.num_heads)):
        C = dims[s]
        if s > 0:
            cost.skip("layernorm", r * r * dims[s - 1])  # merging's norm over 4C at (r/2)^2 positions
            r //= 2
            cost.add("patch_merging", linear_macs(r * r, 4 * dims[s - 1], C))
        M = min(c.window_size, r)
        hw, hidden = r * r, int(C * c.mlp_ratio)
        for _ in range(depth):
            cost.add("qkv", linear_macs(hw, C, 3 * C))
            cost.add("attention", 2 * M * M * hw * C)  # = (hw / M^2) windows x attention_macs(M^2, C)
            cost.add("proj", linear_macs(hw, C, C))
            cost.add("mlp", linear_macs(hw, C, hidden) + linear_macs(hw, hidden, C))
            cost.skip("softmax", heads * hw * M * M)
            cost.skip("add (bias, mask)", heads * hw * M * M)
            cost.skip("layernorm", 2 * hw * C)
            cost.skip("gelu", hw * hidden)
            cost.skip("add (residual)", 2 * hw * C)
    cost.skip("layernorm", r * r * dims[-1])
    cost.skip("mean (pool)", r * r * dims[-1])
    if c.num_classes:
        cost.add("head", linear_macs(1, dims[-1], c.num_classes))
    return cost


# ---- measured ---------------------------------------------------------------------------------
@contextmanager
def unfused_attention(model: nn.Module) -> Iterator[None]:
    """Turn off fused attention for course_lib (:func:`~course_lib.attention.fused_attention`) and for
    any module with a ``fused_attn`` flag (timm's attention layers), restoring them afterwards."""
    flagged = [m for m in model.modules() if isinstance(getattr(m, "fused_attn", None), bool)]
    saved = [m.fused_attn for m in flagged]
    with ExitStack() as stack:
        stack.enter_context(fused_attention(False))
        for m in flagged:
            m.fused_attn = False
        try:
            yield
        finally:
            for m, v in zip(flagged, saved):
                m.fused_attn = v


def _run_counted(model: nn.Module, inputs: tuple[Tensor, ...], fused: bool) -> FlopCounterMode:
    counter = FlopCounterMode(display=False)
    with ExitStack() as stack:
        if not fused:
            stack.enter_context(unfused_attention(model))
        stack.enter_context(torch.no_grad())
        stack.enter_context(counter)
        model(*inputs)
    return counter


def measure_flops(model: nn.Module, *inputs: Tensor, fused: bool = False) -> int:
    """FLOPs of ``model(*inputs)`` counted by ``torch.utils.flop_counter.FlopCounterMode``
    (2 per multiply-add, for the whole batch).

    ``fused=False`` (default) runs the attention unfused so that its matrix products are counted;
    ``fused=True`` leaves the fused kernel on and, on the CPU, undercounts (the kernel counts 0).
    """
    return int(_run_counted(model, inputs, fused).get_total_flops())


def measure_flop_breakdown(model: nn.Module, *inputs: Tensor, fused: bool = False) -> dict[str, int]:
    """FLOPs by operator (``'aten.addmm'``, ``'aten.bmm'``, ``'aten.convolution'``...), whole model."""
    counts = _run_counted(model, inputs, fused).get_flop_counts().get("Global", {})
    return {str(op): int(n) for op, n in counts.items()}


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence what native code writes to file descriptor 2 (the profiler's C++ start/stop log lines,
    which a notebook would otherwise show as output). Python exceptions are unaffected."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (embedded interpreters): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory(fn: Callable[..., object], *args: object, **kwargs: object) -> int:
    """Peak bytes allocated on the CPU while ``fn(*args, **kwargs)`` runs, above what was allocated before.

    Memory held before the call (the weights, the inputs) is not counted; everything ``fn`` allocates
    is, including tensors it frees again (the attention matrix of an unfused attention). Measured with
    ``torch.profiler`` (``profile_memory=True``): the allocation and free events, summed in time order.
    CPU allocations only; on a GPU use ``torch.cuda.max_memory_allocated``.
    """
    from torch.profiler import ProfilerActivity, profile

    with _quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn(*args, **kwargs)
    cpu = torch.autograd.DeviceType.CPU
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == cpu]
    current = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        current += event.nbytes()
        peak = max(peak, current)
    return peak
