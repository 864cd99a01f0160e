"""adaPool (Stergiou & Poppe, IEEE TIP 2022): a learned fusion of two exponential poolings.

What is implemented, per channel and per window R (input positions only):

    mean    a_bar = mean_{i in R} a_i
    DSC_i   = 2 a_i a_bar / (a_i^2 + a_bar^2)      (1 when a_i = a_bar = 0)
    eDSCW   = sum_i exp(DSC_i) a_i / sum_i exp(DSC_i)
    eM      = sum_i exp(a_i) a_i / sum_i exp(a_i)     (SoftPool; the compiled op)
    y       = beta * eDSCW + (1 - beta) * eM,   beta = sigmoid(theta), theta learned

DSC_i is the Dice-Sorensen coefficient of the scalars a_i and a_bar, the real-valued
form 2<u,v>/(|u|^2 + |v|^2), so it lies in [-1, 1] and is 1 exactly when a_i equals
the window mean: eDSCW weights each activation by how close it is to its
window's mean, eM by its magnitude. exp(DSC) lies in [1/e, e], so eDSCW never
overflows; eM is the stable SoftPool.

beta (initially 0.5) is, by `beta`:
- "position": one value per pooled position, shared by channels (the paper's
  region-specific mask). Its shape is the pooled size: given by `output_size`
  for an adaptive pool, otherwise inferred from the first input; later inputs
  must pool to the same size.
- "channel": one value per channel (`channels`, or inferred from the first input).
- "layer": one value.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

from .arguments import PoolArgs, check_input, pooled_size
from .windows import OutputSize, WindowPool, Windows, accumulation_dtype

_BETA_KINDS = ("position", "channel", "layer")


def dice_weighted_pool(x: torch.Tensor, windows: Windows) -> torch.Tensor:
    """eDSCW of each window of a batched input (computed in x's dtype)."""
    win = windows.stack(x, 0.0)
    dims = windows.window_dims
    mean = windows.mean(x).view(x.shape[:2] + windows.out_size + (1,) * windows.dims)
    den = win * win + mean * mean
    nonzero = den > 0
    dsc = torch.where(nonzero, 2 * win * mean / torch.where(nonzero, den, torch.ones_like(den)),
                      torch.ones_like(den))
    weight = torch.exp(dsc)
    if not windows.all_valid:
        weight = weight * windows.valid(x.device)
    return (weight * win).sum(dim=dims) / weight.sum(dim=dims)


class AdaPool(LazyModuleMixin, WindowPool):
    method = "adapool"

    def __init__(self, dims: int, geometry: PoolArgs | OutputSize, beta: str = "position",
                 channels: int | None = None) -> None:
        super().__init__(dims, geometry)
        if beta not in _BETA_KINDS:
            raise ValueError(f"adapool beta must be one of {_BETA_KINDS}, got beta={beta!r}")
        if channels is not None and (isinstance(channels, bool) or not isinstance(channels, int) or channels <= 0):
            raise ValueError(f"adapool channels must be a positive int or None, got {channels!r}")
        if channels is not None and beta != "channel":
            raise ValueError(f"adapool channels applies to beta='channel' only, got beta={beta!r}")
        self.beta_kind = beta
        shape = self._known_shape(channels)
        if shape is None:
            self.theta = UninitializedParameter()
        else:
            self.theta = nn.Parameter(torch.zeros(shape))

    def _known_shape(self, channels: int | None) -> tuple[int, ...] | None:
        if self.beta_kind == "layer":
            return ()
        if self.beta_kind == "channel":
            return None if channels is None else (channels,)
        if self.adaptive and all(o is not None for o in self.geometry):
            return tuple(self.geometry)
        return None

    def _pooled_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        spatial = x.shape[-self.dims:]
        if self.adaptive:
            return tuple(s if o is None else o for s, o in zip(spatial, self.geometry))
        g = self.geometry
        return tuple(pooled_size(spatial[i], g.kernel_size[i], g.stride[i], g.padding[i], 1, g.ceil_mode)
                     for i in range(self.dims))

    def initialize_parameters(self, x: torch.Tensor) -> None:
        if not self.has_uninitialized_params():
            return
        if not self.adaptive:
            check_input(x, self.geometry)  # a clear error before inferring a shape from a bad input
        shape = (self.channels_of(x),) if self.beta_kind == "channel" else self._pooled_shape(x)
        with torch.no_grad():
            self.theta.materialize(shape)
            self.theta.zero_()

    @property
    def beta(self) -> torch.Tensor:
        return torch.sigmoid(self.theta)

    def _beta_for(self, x: torch.Tensor, windows: Windows, acc: torch.dtype) -> torch.Tensor:
        beta = self.beta.to(acc)
        if self.beta_kind == "channel":
            if beta.shape[0] != x.shape[1]:
                raise ValueError(f"adapool was built for {beta.shape[0]} channels, got {x.shape[1]} "
                                 f"(input shape {tuple(x.shape)})")
            return beta.view((1, -1) + (1,) * self.dims)
        if self.beta_kind == "position" and tuple(beta.shape) != tuple(windows.out_size):
            raise ValueError(f"adapool beta='position' has a weight per pooled position for pooled size "
                             f"{tuple(beta.shape)}; this input pools to {tuple(windows.out_size)} (shape "
                             f"{tuple(x.shape)}). Use beta='channel' or 'layer' for varying input sizes")
        return beta

    def pool(self, x: torch.Tensor, windows: Windows) -> torch.Tensor:
        acc = accumulation_dtype(x.dtype)
        xa = x.to(acc)
        beta = self._beta_for(x, windows, acc)
        return (beta * dice_weighted_pool(xa, windows) + (1 - beta) * windows.soft_pool(xa)).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, beta={self.beta_kind!r}"
