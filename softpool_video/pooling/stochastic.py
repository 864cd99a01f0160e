"""Stochastic pooling (Zeiler & Fergus, ICLR 2013).

Each window is a multinomial over its positions with probabilities proportional
to the (rectified) activations, p_i = relu(a_i) / sum_j relu(a_j):

- training: the output is a_l for one index l drawn from p (the gradient goes to
  that position only, as with max pooling);
- evaluation: the probability-weighted average sum_i p_i a_i
  = sum relu(a)^2 / sum relu(a).

Zeiler & Fergus pool non-negative (post-ReLU) activations. Here negative values
get probability 0, and a window with no positive value is uniform over its
input positions (so evaluation gives its mean). Padded and past-the-edge
positions have probability 0.
"""
from __future__ import annotations

import torch

from .arguments import PoolArgs
from .rng import RandomSource
from .windows import OutputSize, WindowPool, Windows, accumulation_dtype


class StochasticPool(WindowPool):
    method = "stochastic"

    def __init__(self, dims: int, geometry: PoolArgs | OutputSize, seed: int | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(dims, geometry)
        self.random = RandomSource(seed, generator)

    def pool(self, x: torch.Tensor, windows: Windows) -> torch.Tensor:
        if self.training:
            return self.sample(x, windows)
        return self.expectation(x, windows)

    def expectation(self, x: torch.Tensor, windows: Windows) -> torch.Tensor:
        acc = accumulation_dtype(x.dtype)
        xa = x.to(acc)
        positive = torch.relu(xa)
        den = windows.mean(positive)
        num = windows.mean(positive * positive)
        has_positive = den > 0
        weighted = num / torch.where(has_positive, den, torch.ones_like(den))
        return torch.where(has_positive, weighted, windows.mean(xa)).to(x.dtype)

    def sample(self, x: torch.Tensor, windows: Windows) -> torch.Tensor:
        acc = accumulation_dtype(x.dtype)
        win = windows.stack(x.to(acc), 0.0).flatten(-self.dims)  # (N, C, *out, K)
        weight = torch.relu(win.detach())
        valid = windows.valid(x.device).flatten(-self.dims)
        if not windows.all_valid:
            weight = weight * valid
        total = weight.sum(-1, keepdim=True)
        # Windows with nothing positive: uniform over the input positions.
        weight = torch.where(total > 0, weight, valid.to(acc).expand_as(weight))
        cdf = weight.cumsum(-1)
        u = self.random.rand(cdf.shape[:-1], x.device, acc).unsqueeze(-1) * cdf[..., -1:]
        index = torch.searchsorted(cdf.contiguous(), u.contiguous(), right=True)
        # Rounding can put u at the very top of the cdf: stay on the last position with weight.
        positions = torch.arange(weight.shape[-1], device=x.device)
        last = torch.where(weight > 0, positions, torch.zeros_like(positions)).amax(-1, keepdim=True)
        index = torch.minimum(index, last)
        return win.gather(-1, index).squeeze(-1).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, random={self.random!r}"
