"""LIP: local importance-based pooling (Gao, Wang & Wu, ICCV 2019).

    y = sum_{i in R} w_i a_i / sum_{i in R} w_i,   w = exp(G(x))

G is a learned logit module producing one logit per input element. The default
G follows the paper's simplified LIP: a same-padded convolution (kernel
`logit_kernel`, C -> C, or one filter per channel with logit="depthwise"),
instance norm with affine parameters, then `max_logit * sigmoid`, which bounds
the logits to (0, max_logit) so exp stays finite (the paper uses 12). The
convolution starts at zero, so an untrained LIP is average pooling. Any module
mapping (N, C, *spatial) to logits of the same shape can be passed as
`logit_module`.

Only input positions take part: with sums over the input positions, padding
and past-the-edge positions have weight 0. `channels` may be left out; the
logit module then infers it from the first input (a lazy module: run one
forward before building the optimizer).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

from .arguments import PoolArgs
from .windows import OutputSize, WindowPool, Windows, accumulation_dtype

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_LOGIT_KINDS = ("full", "depthwise")


class LIPLogit(LazyModuleMixin, nn.Module):
    """conv -> instance norm (affine) -> max_logit * sigmoid; channels inferred when None."""

    def __init__(self, dims: int, channels: int | None = None, kind: str = "full", kernel_size: int = 3,
                 max_logit: float = 12.0) -> None:
        super().__init__()
        if kind not in _LOGIT_KINDS:
            raise ValueError(f"lip logit must be one of {_LOGIT_KINDS}, got logit={kind!r}")
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 \
                or kernel_size % 2 == 0:
            raise ValueError(f"lip logit_kernel must be an odd int >= 1 (same padding), got {kernel_size!r}")
        if not max_logit > 0:
            raise ValueError(f"lip max_logit must be > 0, got {max_logit!r}")
        if channels is not None and (isinstance(channels, bool) or not isinstance(channels, int) or channels <= 0):
            raise ValueError(f"lip pooling: channels must be a positive int or None, got {channels!r}")
        self.dims, self.kind, self.kernel_size, self.max_logit = dims, kind, kernel_size, float(max_logit)
        self.channels = channels
        if channels is None:
            self.conv_weight = UninitializedParameter()
            self.norm_weight = UninitializedParameter()
            self.norm_bias = UninitializedParameter()
        else:
            self.conv_weight = nn.Parameter(torch.empty(self._conv_shape(channels)))
            self.norm_weight = nn.Parameter(torch.empty(channels))
            self.norm_bias = nn.Parameter(torch.empty(channels))
            self.reset_parameters()

    def _conv_shape(self, channels: int) -> tuple[int, ...]:
        per_group = 1 if self.kind == "depthwise" else channels
        return (channels, per_group) + (self.kernel_size,) * self.dims

    def reset_parameters(self) -> None:
        if self.has_uninitialized_params():
            return
        with torch.no_grad():
            self.conv_weight.zero_()  # untrained LIP = average pooling
            self.norm_weight.fill_(1.0)
            self.norm_bias.zero_()

    def initialize_parameters(self, x: torch.Tensor) -> None:
        if self.has_uninitialized_params():
            channels = int(x.shape[1])
            self.channels = channels
            with torch.no_grad():
                self.conv_weight.materialize(self._conv_shape(channels))
                self.norm_weight.materialize((channels,))
                self.norm_bias.materialize((channels,))
            self.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.conv_weight.shape[0]:
            raise ValueError(f"lip pooling was built for {self.conv_weight.shape[0]} channels, got an input "
                             f"with {x.shape[1]} channels (shape {tuple(x.shape)})")
        groups = x.shape[1] if self.kind == "depthwise" else 1
        z = _CONV[self.dims](x, self.conv_weight.to(x.dtype), padding=self.kernel_size // 2, groups=groups)
        weight, bias = self.norm_weight.to(x.dtype), self.norm_bias.to(x.dtype)
        if z[0, 0].numel() > 1:
            z = F.instance_norm(z, weight=weight, bias=bias)
        else:  # one position (e.g. a global head on a 1x1x1 map): normalised value 0, as for a constant map
            z = (z * 0 + bias.view((1, -1) + (1,) * self.dims))
        return self.max_logit * torch.sigmoid(z)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, kind={self.kind!r}, kernel_size={self.kernel_size}, "
                f"max_logit={self.max_logit}")


class LIPPool(WindowPool):
    method = "lip"

    def __init__(self, dims: int, geometry: PoolArgs | OutputSize, channels: int | None = None,
                 logit: str = "full", logit_kernel: int = 3, max_logit: float = 12.0,
                 logit_module: nn.Module | None = None) -> None:
        super().__init__(dims, geometry)
        if logit_module is not None and not isinstance(logit_module, nn.Module):
            raise ValueError(f"lip logit_module must be an nn.Module, got {type(logit_module).__name__}")
        self.logit = logit_module if logit_module is not None else LIPLogit(dims, channels, logit, logit_kernel,
                                                                            max_logit)

    def pool(self, x: torch.Tensor, windows: Windows) -> torch.Tensor:
        acc = accumulation_dtype(x.dtype)
        xa = x.to(acc)
        logits = self.logit(xa).to(acc)
        if logits.shape != xa.shape:
            raise ValueError(f"lip logit module must return logits shaped like its input {tuple(xa.shape)}, "
                             f"got {tuple(logits.shape)}")
        weight = torch.exp(logits)
        # Means over the input positions of each window: the counts cancel in the ratio.
        return (windows.mean(xa * weight) / windows.mean(weight)).to(x.dtype)
