"""I3D: Inception-v1 inflated to 3D (Carreira & Zisserman, CVPR 2017), pools from the registry.

Layout (output of each stage for a 16x112x112 clip in brackets):

    conv1a 7x7x7 /2            [64 x 8x56x56]
    pool2a (1,3,3) /(1,2,2)    [64 x 8x28x28]
    conv2b 1x1x1, conv2c 3x3x3 [192 x 8x28x28]
    pool3a (1,3,3) /(1,2,2)    [192 x 8x14x14]
    mixed3b, mixed3c           [480]
    pool4a (3,3,3) /2          [480 x 4x7x7]
    mixed4b..mixed4f           [832]
    pool5a (2,2,2) /2          [832 x 2x4x4]
    mixed5b, mixed5c           [1024 x 2x4x4]
    head (below)               [num_classes]

Heads (`head`):
- "original" (default), as the published model (kinetics-i3d, pytorch-i3d): average
  pool 2x7x7 at stride 1 with no padding, dropout, 1x1x1 conv logits at every
  remaining position, then the mean of the logits over those positions (over time:
  for a 224 crop the map is 7x7 and one spatial position is left; for larger crops,
  over space too). The window is clipped to the feature map in each dim (a 112 crop
  gives a 4x4 map, 16 frames a 2-frame one: the window is then 2x4x4, one position), so
  any input size works. In eval mode the logits equal the logits of the mean pooled
  feature (the logits conv is linear), but that mean weights the map's edges less than
  a global average when the map exceeds the window (e.g. 64 frames: 8 -> 7 positions).
- "global": global pool (adaptive), dropout, 1x1x1 conv logits.
`head_pooling` is the method of the head pool: any method with an adaptive form for
"global", any parameter-free method for "original" (default "avg" for both). The head
pool is not a swap site.

Each Inception module has a stride-1 3x3x3 pool branch. That is 13 pooling sites, all
made by the registry with the chosen method.

TensorFlow's SAME padding is expressed with the pools' own padding and ceil_mode, so
every output size is SAME's ceil(n / stride) for any input size:
- k=3, s=2: padding 1 (floor); SAME pads (0, 1) for even n and (1, 1) for odd n, we
  pad (1, 1): identical sizes, windows shifted by one for even n;
- k=2, s=2: padding 0 with ceil_mode (the last window runs past the edge for odd n);
- k=3, s=1: padding 1.
Padding never takes part in a window, whatever the method (max, avg with
count_include_pad=False, SoftPool), as SAME's implicit padding does not.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .layers import (
    ClippedWindowHeadPool,
    ConvBnReLU,
    check_model_args,
    init_weights,
    make_head_pool,
    make_pool,
    same_geometry,
    scaled,
    triple,
)
from .registry import register_model

_BN_EPS = 1e-3  # as the original TensorFlow model
ORIGINAL_HEAD_WINDOW = (2, 7, 7)  # the published head's average pool, stride 1, VALID
HEADS = ("original", "global")

# (branch0 1x1, branch1 1x1 -> 3x3, branch2 1x1 -> 3x3, branch3 pool -> 1x1) output widths
_MIXED: dict[str, tuple[int, int, int, int, int, int]] = {
    "mixed3b": (64, 96, 128, 16, 32, 32),
    "mixed3c": (128, 128, 192, 32, 96, 64),
    "mixed4b": (192, 96, 208, 16, 48, 64),
    "mixed4c": (160, 112, 224, 24, 64, 64),
    "mixed4d": (128, 128, 256, 24, 64, 64),
    "mixed4e": (112, 144, 288, 32, 64, 64),
    "mixed4f": (256, 160, 320, 32, 128, 128),
    "mixed5b": (256, 160, 320, 32, 128, 128),
    "mixed5c": (384, 192, 384, 48, 128, 128),
}


def _same_pool(pooling: str, kernel_size: int | Sequence[int], stride: int | Sequence[int],
               pool_args: Mapping[str, Any] | None) -> nn.Module:
    """A registry pool with SAME output size ceil(n / stride)."""
    kernel, strides = triple(kernel_size, "kernel_size"), triple(stride, "stride")
    padding, ceil_mode = same_geometry(kernel, strides)
    return make_pool(pooling, kernel, strides, padding, ceil_mode, pool_args=pool_args)


class InceptionModule(nn.Module):
    """Four parallel branches concatenated along channels."""

    def __init__(self, in_channels: int, widths: Sequence[int], pooling: str,
                 pool_args: Mapping[str, Any] | None) -> None:
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = widths
        self.branch0 = ConvBnReLU(in_channels, b0, 1, bn_eps=_BN_EPS)
        self.branch1 = nn.Sequential(ConvBnReLU(in_channels, b1a, 1, bn_eps=_BN_EPS),
                                     ConvBnReLU(b1a, b1b, 3, padding=1, bn_eps=_BN_EPS))
        self.branch2 = nn.Sequential(ConvBnReLU(in_channels, b2a, 1, bn_eps=_BN_EPS),
                                     ConvBnReLU(b2a, b2b, 3, padding=1, bn_eps=_BN_EPS))
        self.branch3 = nn.Sequential(_same_pool(pooling, 3, 1, pool_args),
                                     ConvBnReLU(in_channels, b3, 1, bn_eps=_BN_EPS))
        self.out_channels = b0 + b1b + b2b + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)


class I3D(nn.Module):
    """Inflated Inception-v1. `width` scales every channel count (1.0 is the published net);
    `head` is "original" (2x7x7 window average, logits averaged over time) or "global"."""

    def __init__(self, num_classes: int, pooling: str = "max", pool_args: Mapping[str, Any] | None = None,
                 width: float = 1.0, dropout: float = 0.5, in_channels: int = 3, head_pooling: str = "avg",
                 head: str = "original") -> None:
        super().__init__()
        check_model_args(num_classes, pooling, pool_args)
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(map(repr, HEADS))}, got {head!r}")
        if not width > 0:
            raise ValueError(f"width must be > 0, got {width!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.pooling = pooling
        self.head = head

        def c(channels: int) -> int:
            return scaled(channels, width)

        self.conv1a = ConvBnReLU(in_channels, c(64), 7, stride=2, padding=3, bn_eps=_BN_EPS)
        self.pool2a = _same_pool(pooling, (1, 3, 3), (1, 2, 2), pool_args)
        self.conv2b = ConvBnReLU(c(64), c(64), 1, bn_eps=_BN_EPS)
        self.conv2c = ConvBnReLU(c(64), c(192), 3, padding=1, bn_eps=_BN_EPS)
        self.pool3a = _same_pool(pooling, (1, 3, 3), (1, 2, 2), pool_args)
        channels = c(192)
        for name in ("mixed3b", "mixed3c"):
            channels = self._mixed(name, channels, c, pooling, pool_args)
        self.pool4a = _same_pool(pooling, 3, 2, pool_args)
        for name in ("mixed4b", "mixed4c", "mixed4d", "mixed4e", "mixed4f"):
            channels = self._mixed(name, channels, c, pooling, pool_args)
        self.pool5a = _same_pool(pooling, 2, 2, pool_args)
        for name in ("mixed5b", "mixed5c"):
            channels = self._mixed(name, channels, c, pooling, pool_args)

        if head == "original":
            self.head_pool: nn.Module = ClippedWindowHeadPool(head_pooling, ORIGINAL_HEAD_WINDOW)
        else:
            self.head_pool = make_head_pool(head_pooling)
        self.dropout = nn.Dropout(dropout)
        self.logits = nn.Conv3d(channels, num_classes, 1, bias=True)
        self.num_features = channels
        init_weights(self)
        if not self.logits.weight.is_meta:
            nn.init.normal_(self.logits.weight, 0, 0.01)  # small logits at the start, as a linear head

    def _mixed(self, name: str, in_channels: int, c, pooling: str, pool_args) -> int:
        module = InceptionModule(in_channels, [c(w) for w in _MIXED[name]], pooling, pool_args)
        self.add_module(name, module)
        return module.out_channels

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool2a(self.conv1a(x))
        x = self.pool3a(self.conv2c(self.conv2b(x)))
        x = self.mixed3c(self.mixed3b(x))
        x = self.pool4a(x)
        for name in ("mixed4b", "mixed4c", "mixed4d", "mixed4e", "mixed4f"):
            x = getattr(self, name)(x)
        x = self.pool5a(x)
        return self.mixed5c(self.mixed5b(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, num_classes) logits of a (B, C, T, H, W) feature map."""
        x = self.logits(self.dropout(self.head_pool(features)))
        if self.head == "original":  # mean of the per-position logits (over time, as published)
            return x.mean(dim=(2, 3, 4))
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model("i3d", "i3d", "I3D: Inception-v1 inflated, 13 pooling sites")
def i3d(num_classes: int, pooling: str = "max", **kwargs: Any) -> I3D:
    return I3D(num_classes, pooling, **kwargs)


@register_model("i3d_tiny", "i3d", "I3D at 1/8 width (CPU demo size), 13 pooling sites")
def i3d_tiny(num_classes: int, pooling: str = "max", **kwargs: Any) -> I3D:
    return I3D(num_classes, pooling, **{"width": 0.125, "dropout": 0.0, **kwargs})
