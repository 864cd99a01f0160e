"""Power-average (Lp) pooling, with a fixed or learnable exponent p.

    y = ( mean_{i in R} |a_i|^p )^(1/p)        (mean=True, the power mean)
    y = (  sum_{i in R} |a_i|^p )^(1/p)        (mean=False, as torch's LPPool)

Only positions inside the input count (the mean divides by their number).
p = 1 gives the mean (or sum) of |a|; p -> inf tends to max |a|.

Computed as m * (mean (|a|/m)^p)^(1/p) with m the window's max |a|, so large p or
large activations do not overflow. A learnable p is kept positive as
softplus(rho); with `channels` there is one p per channel, otherwise one per layer.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .arguments import PoolArgs
from .windows import OutputSize, WindowPool, Windows, accumulation_dtype


def _inverse_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))


def check_power(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or p <= 0:
        raise ValueError(f"power pooling needs a finite exponent p > 0, got p={p!r}")
    return float(p)


class PowerPool(WindowPool):
    method = "power"

    def __init__(self, dims: int, geometry: PoolArgs | OutputSize, p: float = 2.0, learnable: bool = False,
                 channels: int | None = None, mean: bool = True) -> None:
        super().__init__(dims, geometry)
        p = check_power(p)
        self.mean = bool(mean)
        self.learnable = bool(learnable)
        if channels is not None and not learnable:
            raise ValueError("power pooling: channels only applies with learnable=True (one p per channel)")
        if channels is not None and (not isinstance(channels, int) or channels <= 0):
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        self.channels = channels
        self.fixed_p = None if learnable else p
        if learnable:
            shape = () if channels is None else (channels,)
            self.rho = nn.Parameter(torch.full(shape, _inverse_softplus(p)))

    @property
    def p(self) -> torch.Tensor:
        if self.fixed_p is not None:
            return torch.tensor(self.fixed_p, dtype=torch.float64)
        return F.softplus(self.rho)

    def pool(self, x: torch.Tensor, windows: Windows) -> torch.Tensor:
        acc = accumulation_dtype(x.dtype)
        p = self.p.to(device=x.device, dtype=acc)
        if p.dim() == 1:
            if p.shape[0] != x.shape[1]:
                raise ValueError(f"power pooling was built for channels={p.shape[0]}, got an input with "
                                 f"{x.shape[1]} channels (shape {tuple(x.shape)})")
            p = p.view((1, -1) + (1,) * (2 * self.dims))  # one per channel, over (N, C, *out, *window)
        win = windows.stack(x.to(acc).abs(), 0.0)
        dims = windows.window_dims
        m = win.amax(dim=dims, keepdim=True)
        positive = m > 0
        m_safe = torch.where(positive, m, torch.ones_like(m))
        # Clamping keeps the gradient of r^p finite at r = 0 when p < 1.
        tiny = torch.finfo(acc).tiny
        powered = (win / m_safe).clamp_min(tiny).pow(p)
        if not windows.all_valid:
            powered = powered.masked_fill(~windows.valid(x.device), 0.0)
        total = powered.sum(dim=dims, keepdim=True)
        if self.mean:
            total = total / windows.count(x.device, acc).view((1, 1) + windows.out_size + (1,) * self.dims)
        out = m_safe * total.clamp_min(tiny).pow(1.0 / p)
        out = torch.where(positive, out, torch.zeros_like(out))
        return out.reshape(out.shape[: 2 + self.dims]).to(x.dtype)

    def extra_repr(self) -> str:
        p = self.p.detach()
        p_text = f"p={p.item():.4g}" if p.dim() == 0 else f"p=per-channel({p.numel()})"
        return f"{super().extra_repr()}, {p_text}, learnable={self.learnable}, mean={self.mean}"
