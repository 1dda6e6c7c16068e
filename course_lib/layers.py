"""What the Vision Transformer and the Swin Transformer share: cutting an image into patch tokens,
the stochastic-depth schedule, and the checks both run on their inputs and hyper-parameters.

* :func:`patchify` / :func:`unpatchify` and :class:`PatchEmbed` - an image as a sequence of patch
  tokens (ViT paper, Eq. 1): ``(B, C, H, W) -> (B, N, D)``;
* :func:`conv_weight_as_linear` - the patch embedding's convolution kernel as the paper's linear map;
* :func:`pair` - an ``int`` or an ``(h, w)`` pair as a pair of positive ints;
* :func:`drop_path_rates` - stochastic depth rising linearly with depth;
* :func:`check_images`, :func:`check_heads`, :func:`check_rate` - clear ``ValueError`` messages.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Size2d",
    "pair",
    "drop_path_rates",
    "check_images",
    "check_heads",
    "check_rate",
    "patchify",
    "unpatchify",
    "conv_weight_as_linear",
    "PatchEmbed",
]

Size2d = Union[int, Sequence[int]]


# ---- small helpers ----------------------------------------------------------------------------
def pair(size: Size2d, name: str = "size") -> tuple[int, int]:
    """``7 -> (7, 7)``, ``(4, 8) -> (4, 8)``; ``ValueError`` naming ``name`` unless both are positive."""
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"{name} must be a positive int or a pair (h, w) of positive ints, got {size}")
    return size


def drop_path_rates(drop_path_rate: float, num_blocks: int) -> list[float]:
    """Stochastic-depth rates rising linearly from 0 (first block) to ``drop_path_rate`` (last block),
    as in DeiT, timm and Swin. Plain Python floats, so that models can be built on the ``meta`` device."""
    check_rate("drop_path_rate", drop_path_rate)
    if num_blocks <= 1:
        return [0.0] * num_blocks
    return [drop_path_rate * i / (num_blocks - 1) for i in range(num_blocks)]


def check_rate(name: str, p: float) -> None:
    """A dropout or drop-path probability must lie in ``[0, 1)``."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{name}={p} must be in [0, 1)")


def check_heads(dim: int, num_heads: int, where: str = "") -> None:
    """Each head gets ``dim / num_heads`` features, so ``num_heads`` must divide ``dim``."""
    prefix = f"{where}: " if where else ""
    if dim <= 0 or num_heads <= 0:
        raise ValueError(f"{prefix}embed_dim={dim} and num_heads={num_heads} must be positive")
    if dim % num_heads:
        raise ValueError(f"{prefix}embed_dim={dim} is not divisible by num_heads={num_heads}")


def check_images(images: Tensor, patch_size: Size2d, in_chans: Optional[int] = None) -> None:
    """``images`` must be ``(B, C, H, W)`` with ``H`` and ``W`` divisible by the patch size."""
    if images.dim() != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")
    C, H, W = images.shape[1:]
    if in_chans is not None and C != in_chans:
        raise ValueError(f"images have {C} channels but the model expects in_chans={in_chans}")
    for name, size, p in zip(("height", "width"), (H, W), pair(patch_size, "patch_size")):
        if size % p:
            raise ValueError(f"image {name} {size} is not divisible by patch size {p}")


# ---- patches ----------------------------------------------------------------------------------
def patchify(images: Tensor, patch_size: Size2d) -> Tensor:
    """Cut images into non-overlapping patches and flatten each: ``(B, C, H, W) -> (B, N, P*P*C)``.

    Patches are numbered row by row (``N = (H/P) * (W/P)``); inside a patch the values are
    ordered (row, column, channel), so ``patches[b, n].view(P, P, C)`` is patch ``n`` as a small
    ``(height, width, channel)`` image, ready for ``plt.imshow``.
    """
    ph, pw = pair(patch_size, "patch_size")
    check_images(images, (ph, pw))
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // ph, ph, W // pw, pw)
    # (B, C, gh, ph, gw, pw) -> (B, gh, gw, ph, pw, C)
    x = x.permute(0, 2, 4, 3, 5, 1)
    return x.reshape(B, (H // ph) * (W // pw), ph * pw * C)


def unpatchify(patches: Tensor, patch_size: Size2d, image_size: Size2d, in_chans: int = 3) -> Tensor:
    """The inverse of :func:`patchify`: ``(B, N, P*P*C) -> (B, C, H, W)``."""
    ph, pw = pair(patch_size, "patch_size")
    H, W = pair(image_size, "image_size")
    B, N, F_ = patches.shape
    if H % ph or W % pw:
        raise ValueError(f"image size {(H, W)} is not divisible by patch size {(ph, pw)}")
    if N != (H // ph) * (W // pw) or F_ != ph * pw * in_chans:
        raise ValueError(
            f"patches of shape {tuple(patches.shape)} do not make a {in_chans}x{H}x{W} image with "
            f"{ph}x{pw} patches (expected N={(H // ph) * (W // pw)}, features={ph * pw * in_chans})"
        )
    x = patches.reshape(B, H // ph, W // pw, ph, pw, in_chans)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(B, in_chans, H, W)


def conv_weight_as_linear(weight: Tensor) -> Tensor:
    """The patch-embedding convolution's kernel ``(D, C, P, P)`` as a linear map ``(D, P*P*C)``
    acting on :func:`patchify`'s vectors (whose features are ordered row, column, channel)."""
    D = weight.shape[0]
    return weight.permute(0, 2, 3, 1).reshape(D, -1)


class PatchEmbed(nn.Module):
    """Image to patch tokens, ``(B, C, H, W) -> (B, N, D)`` (or ``(B, H/P, W/P, D)``, ``flatten=False``).

    The same function written two ways, sharing one weight ``proj.weight`` ``(D, C, P, P)``:

    * a convolution whose kernel size and stride both equal the patch size (timm, the default), and
    * :func:`patchify` followed by one linear layer (the paper's formulation), see
      :meth:`forward_linear`; choose it for ``forward`` with ``use_conv=False``.

    Args:
        img_size: the image size the model is built for (used for ``grid_size``/``num_patches``).
        patch_size: ``P`` (an int or ``(Ph, Pw)``).
        in_chans: image channels ``C``.
        embed_dim: token width ``D``.
        norm: apply a LayerNorm to the tokens (Swin does, ViT does not).
        norm_eps: that LayerNorm's epsilon.
        flatten: return ``(B, N, D)`` (ViT); else channels-last ``(B, H/P, W/P, D)`` (Swin).
        use_conv: compute with the convolution (fast) or with patchify + linear.
    """

    def __init__(
        self,
        img_size: Size2d = 224,
        patch_size: Size2d = 16,
        *,
        in_chans: int = 3,
        embed_dim: int = 768,
        norm: bool = False,
        norm_eps: float = 1e-5,
        flatten: bool = True,
        use_conv: bool = True,
    ) -> None:
        super().__init__()
        self.img_size = pair(img_size, "img_size")
        self.patch_size = pair(patch_size, "patch_size")
        for name, size, p in zip(("height", "width"), self.img_size, self.patch_size):
            if size % p:
                raise ValueError(f"image {name} {size} is not divisible by patch size {p}")
        self.grid_size = (self.img_size[0] // self.patch_size[0], self.img_size[1] // self.patch_size[1])
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.flatten = flatten
        self.use_conv = use_conv
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=self.patch_size, stride=self.patch_size)
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps) if norm else nn.Identity()

    def forward_conv(self, x: Tensor) -> Tensor:
        """``(B, C, H, W) -> (B, H/P, W/P, D)`` with the strided convolution."""
        check_images(x, self.patch_size, self.in_chans)
        return self.proj(x).permute(0, 2, 3, 1)

    def forward_linear(self, x: Tensor) -> Tensor:
        """``(B, C, H, W) -> (B, H/P, W/P, D)`` with :func:`patchify` and a linear layer."""
        check_images(x, self.patch_size, self.in_chans)
        B, _, H, W = x.shape
        tokens = F.linear(
            patchify(x, self.patch_size), conv_weight_as_linear(self.proj.weight), self.proj.bias
        )
        return tokens.reshape(B, H // self.patch_size[0], W // self.patch_size[1], self.embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        if self.use_conv:
            check_images(x, self.patch_size, self.in_chans)
            x = self.proj(x)  # (B, D, h, w)
            # timm's exact layout: flatten(2).transpose(1, 2) for ViT, permute for Swin.
            x = x.flatten(2).transpose(1, 2) if self.flatten else x.permute(0, 2, 3, 1)
        else:
            x = self.forward_linear(x)
            if self.flatten:
                x = x.flatten(1, 2)
        return self.norm(x)
