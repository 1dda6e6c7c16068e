"""A small convolutional network: the baseline the Transformers of the course are compared with.

A VGG-style stack, the simplest CNN that still has the two things a ViT lacks by construction:

* **locality** - every 3x3 convolution mixes only neighbouring pixels, with the same weights everywhere
  (translation equivariance);
* **hierarchy** - max pooling halves the resolution between stages while the channels grow, so later layers
  see larger regions.

Layout for ``channels=(c1, c2, c3)`` on an ``H x W`` image::

    stage 1: [conv3x3 -> BatchNorm -> ReLU] x 2 at H x W,       c1 channels, then MaxPool 2x2
    stage 2: [conv3x3 -> BatchNorm -> ReLU] x 2 at H/2 x W/2,   c2 channels, then MaxPool 2x2
    stage 3: [conv3x3 -> BatchNorm -> ReLU] x 2 at H/4 x W/4,   c3 channels
    head:    global average pool -> Linear(c3, num_classes)

Global average pooling makes the same network work on 8x8 digits and 32x32 CIFAR-10 images.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

__all__ = ["ConvBNAct", "SmallCNN"]


class ConvBNAct(nn.Sequential):
    """``conv3x3 (padding 1, no bias) -> BatchNorm2d -> ReLU``: ``(B, C_in, H, W) -> (B, C_out, H, W)``.

    No bias in the convolution: the BatchNorm's shift makes it redundant.
    """

    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__(
            nn.Conv2d(in_chans, out_chans, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_chans),
            nn.ReLU(inplace=True),
        )


class SmallCNN(nn.Module):
    """A small CNN classifier ``(B, in_chans, H, W) -> (B, num_classes)`` logits.

    Args:
        in_chans: image channels (1 for the digits, 3 for CIFAR-10).
        num_classes: output classes.
        channels: width of each stage; every stage but the last ends with a 2x2 max pool, so the image
            side must be divisible by ``2 ** (len(channels) - 1)``.
        convs_per_stage: 3x3 convolutions in each stage.
        drop: dropout before the classifier.

    The defaults, ``channels=(32, 48, 64)`` with two convolutions per stage, give 109,802 parameters for
    1-channel 10-class input, between the course's ``swin_digits`` (93,590) and ``vit_digits`` (136,138):
    the comparison of chapter 7 is about architecture, not size. For CIFAR-10 use
    ``SmallCNN(3, channels=(48, 96, 192))`` (0.65M, next to ``vit_cifar``'s 0.81M and ``swin_cifar``'s 0.88M).
    """

    def __init__(
        self,
        in_chans: int = 1,
        num_classes: int = 10,
        channels: Sequence[int] = (32, 48, 64),
        convs_per_stage: int = 2,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        if len(channels) < 1 or convs_per_stage < 1:
            raise ValueError(
                f"need at least one stage and one conv per stage, got {channels}, {convs_per_stage}"
            )
        self.in_chans = in_chans
        self.num_stages = len(channels)
        layers: list[nn.Module] = []
        prev = in_chans
        for s, width in enumerate(channels):
            for _ in range(convs_per_stage):
                layers.append(ConvBNAct(prev, width))
                prev = width
            if s < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(drop)
        self.head = nn.Linear(prev, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, in_chans, H, W) -> (B, channels[-1], H / 2^(S-1), W / 2^(S-1))`` feature maps."""
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected images (B, {self.in_chans}, H, W), got shape {tuple(x.shape)}")
        factor = 2 ** (self.num_stages - 1)
        h, w = x.shape[-2:]
        if h % factor or w % factor:
            raise ValueError(
                f"image size {h}x{w} is not divisible by {factor} (the {self.num_stages - 1} pooling steps)"
            )
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_chans, H, W) -> (B, num_classes)`` logits."""
        x = self.pool(self.forward_features(x)).flatten(1)
        return self.head(self.drop(x))
