"""SoftPool1d/2d/3d modules (Stergiou et al., ICCV 2021)."""
from __future__ import annotations

import torch
from torch import nn

from .arguments import IntOrTuple, pool_args
from .functional import soft_pool


class _SoftPoolNd(nn.Module):
    dims = 0

    def __init__(self, kernel_size: IntOrTuple, stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
                 dilation: IntOrTuple = 1, ceil_mode: bool = False) -> None:
        super().__init__()
        self.args = pool_args(self.dims, kernel_size, stride, padding, dilation, ceil_mode)
        self.kernel_size = self.args.kernel_size
        self.stride = self.args.stride
        self.padding = self.args.padding
        self.dilation = self.args.dilation
        self.ceil_mode = self.args.ceil_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return soft_pool(x, self.args)

    def extra_repr(self) -> str:
        a = self.args
        return (f"kernel_size={a.kernel_size}, stride={a.stride}, padding={a.padding}, "
                f"dilation={a.dilation}, ceil_mode={a.ceil_mode}")


class SoftPool1d(_SoftPoolNd):
    dims = 1


class SoftPool2d(_SoftPoolNd):
    dims = 2


class SoftPool3d(_SoftPoolNd):
    dims = 3
