"""Mixed and gated max-average pooling (Lee, Gallagher & Tu, AISTATS 2016).

    mixed:  y = alpha * max_R(a) + (1 - alpha) * mean_R(a),  alpha = sigmoid(theta) learned
    gated:  y = g * max_R(a) + (1 - g) * mean_R(a),          g = sigmoid(sum_{i in R} w_i a_i)

alpha is one scalar per layer, or one per channel when `channels` is given
(initial value `alpha`, 0.5 by default). The gate mask w has one weight per
kernel position, shared by all channels, or one mask per channel with
`channels`; it is initialised uniform in +-1/sqrt(K) (K = kernel positions).
The mean is over input positions only; padding and past-the-edge positions take
no part in max, mean or gate (they contribute 0 to the gate's sum).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .arguments import PoolArgs
from .windows import FixedWindows, OutputSize, WindowPool, Windows, accumulation_dtype

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _check_channels(method: str, channels: int | None) -> int | None:
    if channels is not None and (isinstance(channels, bool) or not isinstance(channels, int) or channels <= 0):
        raise ValueError(f"{method} pooling: channels must be a positive int or None, got {channels!r}")
    return channels


def _per_channel(value: torch.Tensor, dims: int) -> torch.Tensor:
    """A scalar or (C,) parameter shaped to broadcast over (N, C, *spatial)."""
    return value if value.dim() == 0 else value.view((1, -1) + (1,) * dims)


def _check_channel_count(method: str, expected: int | None, x: torch.Tensor) -> None:
    if expected is not None and x.shape[1] != expected:
        raise ValueError(f"{method} pooling was built for channels={expected}, got an input with "
                         f"{x.shape[1]} channels (shape {tuple(x.shape)})")


class MixedPool(WindowPool):
    method = "mixed"

    def __init__(self, dims: int, geometry: PoolArgs | OutputSize, channels: int | None = None,
                 alpha: float = 0.5) -> None:
        super().__init__(dims, geometry)
        self.channels = _check_channels(self.method, channels)
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"mixed pooling: alpha must be strictly between 0 and 1, got alpha={alpha!r}")
        shape = () if channels is None else (channels,)
        self.theta = nn.Parameter(torch.full(shape, math.log(alpha / (1.0 - alpha))))

    @property
    def alpha(self) -> torch.Tensor:
        return torch.sigmoid(self.theta)

    def pool(self, x: torch.Tensor, windows: Windows) -> torch.Tensor:
        _check_channel_count(self.method, self.channels, x)
        acc = accumulation_dtype(x.dtype)
        xa = x.to(acc)
        alpha = _per_channel(self.alpha.to(acc), self.dims)
        return (alpha * windows.max(xa) + (1 - alpha) * windows.mean(xa)).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, channels={self.channels}"


class GatedPool(WindowPool):
    method = "gated"
    adaptive_ok = False  # one gate weight per kernel position needs a fixed kernel

    def __init__(self, dims: int, geometry: PoolArgs | OutputSize, channels: int | None = None) -> None:
        super().__init__(dims, geometry)
        self.channels = _check_channels(self.method, channels)
        kernel = tuple(geometry.kernel_size)
        shape = (1 if channels is None else channels, 1) + kernel
        bound = 1.0 / math.sqrt(math.prod(kernel))
        self.gate_weight = nn.Parameter(torch.empty(shape).uniform_(-bound, bound))

    def gate(self, x: torch.Tensor, windows: FixedWindows) -> torch.Tensor:
        """sigmoid(sum_i w_i a_i) per window: a depthwise convolution over the zero-padded input."""
        c = x.shape[1]
        weight = self.gate_weight.to(x.dtype).expand(c, *self.gate_weight.shape[1:])
        logits = _CONV[self.dims](windows.pad(x, 0.0), weight, stride=self.geometry.stride, groups=c)
        index = (slice(None), slice(None)) + tuple(slice(0, o) for o in windows.out_size)
        return torch.sigmoid(logits[index])

    def pool(self, x: torch.Tensor, windows: Windows) -> torch.Tensor:
        assert isinstance(windows, FixedWindows)
        _check_channel_count(self.method, self.channels, x)
        acc = accumulation_dtype(x.dtype)
        xa = x.to(acc)
        g = self.gate(xa, windows)
        return (g * windows.max(xa) + (1 - g) * windows.mean(xa)).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, channels={self.channels}"
