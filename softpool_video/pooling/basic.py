"""Sum pooling, the SoftPool forms the plain op does not cover (temperature, adaptive), checked max/avg.

SoftPool with temperature T > 0:

    y = sum_i softmax(a / T)_i * a_i = T * softpool(a / T)

(the weights of softpool(a/T) are softmax(a/T), and sum w_i (a_i/T) times T is
sum w_i a_i), so it runs on the compiled op. T -> 0 tends to max pooling,
T -> inf to average pooling; T = 1 is plain SoftPool. With `learnable=True`, T is one
trained parameter per layer, kept positive as T = exp(log_t) and starting at `temperature`.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .arguments import PoolArgs, check_input, pool_args
from .windows import FixedWindows, OutputSize, WindowPool, Windows, accumulation_dtype, output_size_tuple


def check_temperature(temperature: float) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"softpool temperature must be a finite number > 0, got temperature={temperature!r}")
    return float(temperature)


class SumPool(WindowPool):
    """Sum over the input positions of each window."""

    method = "sum"

    def pool(self, x: torch.Tensor, windows: Windows) -> torch.Tensor:
        return windows.sum(x.to(accumulation_dtype(x.dtype))).to(x.dtype)


class WindowSoftPool(WindowPool):
    """SoftPool with a temperature, fixed or adaptive geometry (compiled op where it applies)."""

    method = "softpool"

    def __init__(self, dims: int, geometry: PoolArgs | OutputSize, temperature: float = 1.0,
                 learnable: bool = False) -> None:
        super().__init__(dims, geometry)
        self.temperature = check_temperature(temperature)
        self.learnable = bool(learnable)
        if self.learnable:
            self.log_temperature = nn.Parameter(torch.tensor(math.log(self.temperature)))

    def pool(self, x: torch.Tensor, windows: Windows) -> torch.Tensor:
        if self.learnable:
            t = self.log_temperature.exp().to(x.dtype)
            return windows.soft_pool(x / t) * t
        t = self.temperature
        if t == 1.0:
            return windows.soft_pool(x)
        return windows.soft_pool(x / t) * t

    def extra_repr(self) -> str:
        learnable = ", learnable=True" if self.learnable else ""
        return f"{super().extra_repr()}, temperature={self.temperature}{learnable}"


class _AdaptiveSoftPoolNd(WindowSoftPool):
    dims_fixed = 0

    def __init__(self, output_size: int | tuple[int | None, ...] | None, temperature: float = 1.0,
                 learnable: bool = False) -> None:
        super().__init__(self.dims_fixed, output_size_tuple(self.dims_fixed, output_size), temperature, learnable)


class AdaptiveSoftPool1d(_AdaptiveSoftPoolNd):
    """SoftPool to a fixed output size (as nn.AdaptiveAvgPool1d); output_size=1 is global SoftPool."""
    dims_fixed = 1


class AdaptiveSoftPool2d(_AdaptiveSoftPoolNd):
    """SoftPool to a fixed output size (as nn.AdaptiveAvgPool2d); output_size=1 is global SoftPool."""
    dims_fixed = 2


class AdaptiveSoftPool3d(_AdaptiveSoftPoolNd):
    """SoftPool to a fixed output size (as nn.AdaptiveAvgPool3d); output_size=1 is global SoftPool."""
    dims_fixed = 3


def _checked_torch_pool(base: type[nn.Module], dims: int, kind: str) -> type[nn.Module]:
    """nn.{Max,Avg}Pool{dims}d that checks its input like the SoftPool op (clear errors).

    The avg form also pools inputs smaller than the kernel when padding covers them
    (torch's avg_pool refuses those; its max_pool accepts them).
    """
    class Pool(base):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            kernel = _tuple(self.kernel_size, dims)
            args = pool_args(dims, kernel, self.stride, self.padding, getattr(self, "dilation", 1), self.ceil_mode)
            x4, unbatched = check_input(x, args)
            if kind == "max" or all(size >= k for size, k in zip(x4.shape[2:], kernel)):
                return super().forward(x)
            out = FixedWindows(x4.shape[2:], args).mean(x4)
            return out.squeeze(0) if unbatched else out

    Pool.__name__ = Pool.__qualname__ = base.__name__
    Pool.__doc__ = base.__doc__
    return Pool


def _tuple(value, dims: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims


MaxPool1d = _checked_torch_pool(nn.MaxPool1d, 1, "max")
MaxPool2d = _checked_torch_pool(nn.MaxPool2d, 2, "max")
MaxPool3d = _checked_torch_pool(nn.MaxPool3d, 3, "max")
AvgPool1d = _checked_torch_pool(nn.AvgPool1d, 1, "avg")
AvgPool2d = _checked_torch_pool(nn.AvgPool2d, 2, "avg")
AvgPool3d = _checked_torch_pool(nn.AvgPool3d, 3, "avg")
