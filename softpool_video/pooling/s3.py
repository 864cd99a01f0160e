"""S3Pool: pooling with stochastic spatial sampling (Zhai et al., CVPR 2017).

Pooling seen as two steps: (1) a max over each kernel window slid with stride 1,
(2) downsampling by the stride. S3Pool keeps step 1 and makes step 2 random.

Here, along each spatial dim separately, with out = the pooled size and s the stride:

- step 1: M = max over the kernel window starting at each stride-1 position j
  (padding and positions past the edge take no part);
- the candidates of output o are the positions [o*s, o*s + s) whose window
  holds an input element; `grid_size` = g groups g consecutive outputs into one
  block whose g*s candidates are shared (the paper's grid is g*s input positions);
- training: each block draws g distinct candidates uniformly, in increasing order,
  shared by the whole batch and all channels (as the authors' code); one draw
  per dim, so rows and columns (and frames) are sampled independently;
- evaluation: the mean of M over each output's candidates, the expectation of
  the training draw for g = 1 (the authors' code also averages at test time).

Draws are made on the CPU (they are a few indices per dim) from `seed` or a
CPU `generator`. There is no adaptive form.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .arguments import PoolArgs
from .rng import RandomSource
from .windows import _MAX, FixedWindows, OutputSize, WindowPool, Windows, accumulation_dtype


class S3Pool(WindowPool):
    method = "s3"
    adaptive_ok = False

    def __init__(self, dims: int, geometry: PoolArgs | OutputSize, grid_size: int = 1, seed: int | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(dims, geometry)
        if isinstance(grid_size, bool) or not isinstance(grid_size, int) or grid_size < 1:
            raise ValueError(f"s3 grid_size must be an int >= 1 (outputs per sampling block), got {grid_size!r}")
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(f"s3 draws its indices on the CPU; pass a CPU generator, got one on "
                             f"{generator.device}")
        self.grid_size = grid_size
        self.random = RandomSource(seed, generator)

    def _stride_one_max(self, x: torch.Tensor, windows: FixedWindows) -> tuple[torch.Tensor, list[int]]:
        """M over stride-1 positions 0..out*s-1 of each dim, and the number of candidates per dim."""
        g = self.geometry
        pad: list[int] = []
        limits: list[int] = []
        for i in reversed(range(self.dims)):
            size, k, s, p, out = x.shape[2 + i], g.kernel_size[i], g.stride[i], g.padding[i], windows.out_size[i]
            right = max(0, out * s + k - 1 - size - p)
            pad += [p, right]
            limits.insert(0, min(out * s, size + p))  # windows starting at or after size + p are empty
        padded = F.pad(x, pad, value=float("-inf")) if any(pad) else x
        m = _MAX[self.dims](padded, g.kernel_size, 1)
        return m[(slice(None), slice(None)) + tuple(slice(0, lim) for lim in limits)], limits

    def pool(self, x: torch.Tensor, windows: Windows) -> torch.Tensor:
        assert isinstance(windows, FixedWindows)
        return self._pool(x.to(accumulation_dtype(x.dtype)), windows).to(x.dtype)

    def _pool(self, x: torch.Tensor, windows: FixedWindows) -> torch.Tensor:
        m, limits = self._stride_one_max(x, windows)
        stride = self.geometry.stride
        if not self.training:
            blocks = PoolArgs(stride, stride, (0,) * self.dims, (1,) * self.dims, True)
            return FixedWindows(m.shape[2:], blocks).mean(m)
        for i in range(self.dims):
            index = self.sample_positions(windows.out_size[i], stride[i], limits[i]).to(x.device)
            m = m.index_select(2 + i, index)
        return m

    def sample_positions(self, out: int, stride: int, limit: int) -> torch.Tensor:
        """`out` increasing positions in [0, limit): block b gives its outputs from its g*s candidates."""
        g = self.grid_size
        blocks = -(-out // g)
        span = g * stride
        candidates = torch.arange(blocks).unsqueeze(1) * span + torch.arange(span)  # (blocks, g*s)
        scores = self.random.rand((blocks, span), torch.device("cpu"), torch.float64)
        scores = torch.where(candidates < limit, scores, torch.full_like(scores, 2.0))  # never drawn
        chosen = candidates.gather(1, scores.argsort(dim=1)[:, :g])
        # The last block may hold fewer than g outputs: keep its first draws only.
        rank = torch.arange(blocks).unsqueeze(1) * g + torch.arange(g)
        chosen = torch.where(rank < out, chosen, torch.full_like(chosen, -1))
        chosen = chosen.sort(dim=1).values.flatten()
        return chosen[chosen >= 0]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, grid_size={self.grid_size}, random={self.random!r}"
