"""The windows of a pooling geometry, shared by the window-formula methods of the zoo.

Two geometries present the same interface:

- `FixedWindows`: kernel_size / stride / padding / ceil_mode, as nn.MaxPool{1,2,3}d.
- `AdaptiveWindows`: an output size, with nn.AdaptiveAvgPool's window rule
  (window i of an axis of length L pooled to O spans [floor(i*L/O), ceil((i+1)*L/O))).

Either way a method sees the windows as the trailing dims of a
(N, C, *pooled, *window) tensor plus a validity mask, so each method writes its
formula once and gets both the fixed and the adaptive (global) pool. Positions
outside the input (padding, the tail of a ceil_mode window, the unused tail of
a short adaptive window) are invalid: they take no part in any method.

`WindowPool` is the base module: it holds the geometry, checks the input, adds
and removes the batch dim, and calls `pool(x, windows)` of the subclass.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .arguments import PoolArgs, check_input, pooled_size

# An adaptive output size: one int per spatial dim; None keeps that dim's input size.
OutputSize = tuple[int | None, ...]

_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_ADAPTIVE_AVG = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
_ADAPTIVE_MAX = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp64 stays fp64; every other float type is computed in fp32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def output_size_tuple(dims: int, output_size: int | Sequence[int | None] | None) -> OutputSize:
    """Validates an adaptive output size as nn.AdaptiveAvgPool{dims}d takes it."""
    if dims not in (1, 2, 3):
        raise ValueError(f"dims must be 1, 2 or 3, got {dims!r}")
    if output_size is None or isinstance(output_size, int):
        values = (output_size,) * dims
    else:
        values = tuple(output_size)
        if len(values) == 1:
            values = values * dims
    if len(values) != dims or not all(v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0)
                                      for v in values):
        raise ValueError(f"output_size must be a positive int, None, or a sequence of {dims} of them, "
                         f"got {output_size!r}")
    return values


def _outer(vectors: Sequence[torch.Tensor], pairs: bool) -> torch.Tensor:
    """Product of per-dim tensors broadcast into one grid.

    With pairs=False each tensor is (out_i,) and the result is (*out). With
    pairs=True each is (out_i, k_i) and the result is (*out, *k).
    """
    dims = len(vectors)
    result = None
    for i, v in enumerate(vectors):
        shape = [1] * (2 * dims if pairs else dims)
        shape[i] = v.shape[0]
        if pairs:
            shape[dims + i] = v.shape[1]
        v = v.reshape(shape)
        result = v if result is None else result * v
    return result


class Windows:
    """Interface of a window geometry over the spatial dims of a (N, C, *spatial) tensor.

    Subclasses implement `stack`, `max`, and `sum` or `mean` (each defaults to the other).
    """

    dims: int
    spatial: tuple[int, ...]
    out_size: tuple[int, ...]
    window_size: tuple[int, ...]  # kernel (fixed) or the longest window per dim (adaptive)
    # Per dim, per output: (first input index of the window, may be < 0, and its input positions [lo, hi)).
    _axis_windows: list[list[tuple[int, int, int]]]

    @property
    def window_dims(self) -> tuple[int, ...]:
        """The dims of a `stack` that run over one window."""
        return tuple(range(-self.dims, 0))

    @property
    def all_valid(self) -> bool:
        """True when every window lies wholly inside the input (plain Python, no tensor sync)."""
        return all(lo == start and hi == start + k
                   for axis, k in zip(self._axis_windows, self.window_size) for start, lo, hi in axis)

    def _axis_valid(self, i: int) -> torch.Tensor:
        k = self.window_size[i]
        return torch.tensor([[lo <= start + j < hi for j in range(k)] for start, lo, hi in self._axis_windows[i]],
                            dtype=torch.bool)

    def valid(self, device: torch.device) -> torch.Tensor:
        """(*out, *window) bool mask of the positions inside the input."""
        return _outer([self._axis_valid(i).to(device) for i in range(self.dims)], pairs=True).bool()

    def count(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """(*out) number of input positions in each window."""
        counts = [torch.tensor([hi - lo for _, lo, hi in axis], dtype=dtype, device=device)
                  for axis in self._axis_windows]
        return _outer(counts, pairs=False)

    def stack(self, x: torch.Tensor, fill: float) -> torch.Tensor:
        """(N, C, *out, *window); positions outside the input hold `fill`."""
        raise NotImplementedError

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of each window over its input positions."""
        return self.sum(x) / self.count(x.device, x.dtype)

    def max(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        return self.mean(x) * self.count(x.device, x.dtype)

    def soft_pool(self, x: torch.Tensor) -> torch.Tensor:
        """SoftPool of each window: sum softmax(a) * a."""
        return soft_pool_windows(self, x)


class FixedWindows(Windows):
    """Windows of a kernel_size/stride/padding/ceil_mode geometry (dilation 1)."""

    def __init__(self, spatial: Sequence[int], args: PoolArgs) -> None:
        if any(d != 1 for d in args.dilation):
            raise ValueError(f"the pooling zoo supports dilation 1 only, got dilation={args.dilation}")
        self.args = args
        self.dims = args.dims
        self.spatial = tuple(int(s) for s in spatial)
        self.out_size = tuple(pooled_size(self.spatial[i], args.kernel_size[i], args.stride[i], args.padding[i],
                                          1, args.ceil_mode) for i in range(self.dims))
        self.window_size = args.kernel_size
        self._axis_windows = []
        for size, out, k, s, p in zip(self.spatial, self.out_size, args.kernel_size, args.stride, args.padding):
            starts = [o * s - p for o in range(out)]
            self._axis_windows.append([(a, max(a, 0), min(a + k, size)) for a in starts])

    def padding_pairs(self) -> list[int]:
        """F.pad amounts (last dim first) that make every window lie in the padded tensor."""
        pad: list[int] = []
        for i in reversed(range(self.dims)):
            needed = (self.out_size[i] - 1) * self.args.stride[i] + self.args.kernel_size[i]
            right = max(0, needed - self.spatial[i] - self.args.padding[i])
            pad += [self.args.padding[i], right]
        return pad

    def pad(self, x: torch.Tensor, fill: float) -> torch.Tensor:
        pad = self.padding_pairs()
        return F.pad(x, pad, value=fill) if any(pad) else x

    def _crop(self, y: torch.Tensor) -> torch.Tensor:
        return y[(slice(None), slice(None)) + tuple(slice(0, o) for o in self.out_size)]

    def stack(self, x: torch.Tensor, fill: float) -> torch.Tensor:
        # unfold makes strided views: no copy until a method computes on them.
        out = self.pad(x, fill)
        for i in range(self.dims):
            out = out.unfold(2 + i, self.args.kernel_size[i], self.args.stride[i])
        return self._crop(out)

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        # Explicit zero padding, then an unpadded avg_pool: torch's avg_pool refuses inputs
        # smaller than the kernel even when padding covers them (max_pool does not).
        a = self.args
        kernel = math.prod(a.kernel_size)
        avg = _AVG[self.dims](self.pad(x, 0.0), a.kernel_size, a.stride, 0)
        return self._crop(avg) * kernel

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        if self.all_valid:
            a = self.args
            return self._crop(_AVG[self.dims](x, a.kernel_size, a.stride, 0))
        return self.sum(x) / self.count(x.device, x.dtype)

    def max(self, x: torch.Tensor) -> torch.Tensor:
        a = self.args
        return _MAX[self.dims](x, a.kernel_size, a.stride, a.padding, ceil_mode=a.ceil_mode)

    def soft_pool(self, x: torch.Tensor) -> torch.Tensor:
        from .functional import soft_pool
        return soft_pool(x, self.args)


class AdaptiveWindows(Windows):
    """Windows of an adaptive pool, with torch's adaptive window rule."""

    def __init__(self, spatial: Sequence[int], output_size: OutputSize) -> None:
        self.dims = len(output_size)
        self.spatial = tuple(int(s) for s in spatial)
        self.out_size = tuple(size if o is None else o for size, o in zip(self.spatial, output_size))
        self._axis_windows = []
        window = []
        for size, out in zip(self.spatial, self.out_size):
            bounds = [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]
            self._axis_windows.append([(lo, lo, hi) for lo, hi in bounds])
            window.append(max(hi - lo for lo, hi in bounds))
        self.window_size = tuple(window)

    def _axis_index(self, i: int) -> torch.Tensor:
        """(out_i, k_i) input index of each window position (0 where outside the window)."""
        k = self.window_size[i]
        return torch.tensor([[lo + j if lo + j < hi else 0 for j in range(k)] for _, lo, hi in self._axis_windows[i]])

    def as_fixed(self) -> PoolArgs | None:
        """The equivalent fixed geometry when every dim divides evenly, else None."""
        if any(size % out for size, out in zip(self.spatial, self.out_size)):
            return None
        k = tuple(size // out for size, out in zip(self.spatial, self.out_size))
        return PoolArgs(k, k, (0,) * self.dims, (1,) * self.dims, False)

    def stack(self, x: torch.Tensor, fill: float) -> torch.Tensor:
        dims = self.dims
        index: list = [slice(None), slice(None)]
        for i in range(dims):
            idx = self._axis_index(i)
            shape = [1] * (2 * dims)
            shape[i], shape[dims + i] = idx.shape
            index.append(idx.to(x.device).reshape(shape))
        win = x[tuple(index)]
        if self.all_valid:
            return win
        return win.masked_fill(~self.valid(x.device), fill)

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        return _ADAPTIVE_AVG[self.dims](x, self.out_size)

    def max(self, x: torch.Tensor) -> torch.Tensor:
        return _ADAPTIVE_MAX[self.dims](x, self.out_size)

    def soft_pool(self, x: torch.Tensor) -> torch.Tensor:
        fixed = self.as_fixed()
        if fixed is not None:  # the compiled op covers evenly dividing sizes (and global pooling)
            from .functional import soft_pool
            return soft_pool(x, fixed)
        return soft_pool_windows(self, x)


def soft_pool_windows(windows: Windows, x: torch.Tensor) -> torch.Tensor:
    """SoftPool by its formula on explicit windows (stable: shifted by the window max)."""
    acc = accumulation_dtype(x.dtype)
    win = windows.stack(x.to(acc), float("-inf"))
    dims = windows.window_dims
    m = win.amax(dim=dims, keepdim=True)
    e = torch.exp(win - m)  # invalid positions: exp(-inf) = 0
    finite = torch.where(torch.isfinite(win), win, torch.zeros_like(win))
    out = (e * finite).sum(dim=dims) / e.sum(dim=dims)
    return out.to(x.dtype)


def make_windows(x: torch.Tensor, geometry: PoolArgs | OutputSize) -> Windows:
    """Windows over the spatial dims of a batched (N, C, *spatial) tensor."""
    if isinstance(geometry, PoolArgs):
        return FixedWindows(x.shape[2:], geometry)
    return AdaptiveWindows(x.shape[2:], geometry)


class WindowPool(nn.Module):
    """Base of the zoo's pools: a fixed (PoolArgs) or adaptive (output size) geometry.

    Subclasses implement `pool(x, windows)` for a batched input; this class
    validates the input like the SoftPool op does and handles unbatched inputs.
    Subclasses that have no adaptive form set `adaptive_ok = False`.
    """

    method: str = ""
    adaptive_ok: bool = True

    def __init__(self, dims: int, geometry: PoolArgs | OutputSize) -> None:
        super().__init__()
        if dims not in (1, 2, 3):
            raise ValueError(f"dims must be 1, 2 or 3, got {dims!r}")
        self.dims = dims
        self.adaptive = not isinstance(geometry, PoolArgs)
        if self.adaptive and not self.adaptive_ok:
            raise ValueError(f"pooling method {self.method!r} has no adaptive (global) form")
        if not self.adaptive and any(d != 1 for d in geometry.dilation):
            raise ValueError(f"pooling method {self.method!r} supports dilation 1 only, "
                             f"got dilation={geometry.dilation}")
        self.geometry = geometry

    @property
    def kernel_numel(self) -> int:
        if self.adaptive:
            raise ValueError(f"pooling method {self.method!r}: an adaptive pool has no fixed kernel")
        return math.prod(self.geometry.kernel_size)

    def batched(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """x as (N, C, *spatial), after the same checks as the SoftPool op."""
        if self.adaptive:
            if not isinstance(x, torch.Tensor) or x.dim() not in (self.dims + 1, self.dims + 2):
                shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
                raise ValueError(f"input of an adaptive {self.dims}-d pool must have shape "
                                 f"(N, C, *{self.dims} spatial dims) or (C, *{self.dims} spatial dims), "
                                 f"got {shape}")
            if not x.is_floating_point():
                raise ValueError(f"input dtype must be a floating point type, got {x.dtype}")
            unbatched = x.dim() == self.dims + 1
            return (x.unsqueeze(0) if unbatched else x), unbatched
        return check_input(x, self.geometry)

    def channels_of(self, x: torch.Tensor) -> int:
        """Channel count of a batched or unbatched input."""
        return int(x.shape[-self.dims - 1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x4, unbatched = self.batched(x)
        out = self.pool(x4, make_windows(x4, self.geometry))
        return out.squeeze(0) if unbatched else out

    def pool(self, x: torch.Tensor, windows: Windows) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        if self.adaptive:
            return f"output_size={self.geometry}"
        g = self.geometry
        return f"kernel_size={g.kernel_size}, stride={g.stride}, padding={g.padding}, ceil_mode={g.ceil_mode}"
