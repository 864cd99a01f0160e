"""Checks and normalises the MaxPool-style arguments shared by every pool."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

IntOrTuple = int | Sequence[int]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class PoolArgs:
    """Per-dimension pool geometry, as nn.MaxPool{1,2,3}d takes it."""

    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    ceil_mode: bool

    @property
    def dims(self) -> int:
        return len(self.kernel_size)


def _tuple(name: str, value: IntOrTuple, dims: int) -> tuple[int, ...]:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an int or a sequence of {dims} ints, got {value!r}")
    if isinstance(value, int):
        return (value,) * dims
    try:
        values = tuple(value)
    except TypeError:
        raise ValueError(f"{name} must be an int or a sequence of {dims} ints, got {value!r}") from None
    if len(values) == 1:
        values = values * dims
    if len(values) != dims or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be an int or a sequence of {dims} ints, got {value!r}")
    return values


def pool_args(dims: int, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
              padding: IntOrTuple = 0, dilation: IntOrTuple = 1, ceil_mode: bool = False) -> PoolArgs:
    """Validates the geometry of a `dims`-d pool; stride defaults to kernel_size."""
    if dims not in (1, 2, 3):
        raise ValueError(f"dims must be 1, 2 or 3, got {dims!r}")
    k = _tuple("kernel_size", kernel_size, dims)
    s = k if stride is None else _tuple("stride", stride, dims)
    p = _tuple("padding", padding, dims)
    d = _tuple("dilation", dilation, dims)
    if any(v <= 0 for v in k):
        raise ValueError(f"kernel_size must be > 0 in every dim, got {kernel_size!r}")
    if any(v <= 0 for v in s):
        raise ValueError(f"stride must be > 0 in every dim, got {stride!r}")
    if any(v <= 0 for v in d):
        raise ValueError(f"dilation must be > 0 in every dim, got {dilation!r}")
    for pi, ki, di in zip(p, k, d):
        limit = (di * (ki - 1) + 1) // 2
        if pi < 0 or pi > limit:
            raise ValueError(f"padding must be between 0 and half the effective kernel size "
                             f"({limit} for kernel_size={ki}, dilation={di}), got padding={padding!r}")
    return PoolArgs(k, s, p, d, bool(ceil_mode))


def pooled_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """Output length along one dim, with max_pool's rule for the last ceil_mode window."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and out > 0 and (out - 1) * s >= size + p:
        out -= 1
    return out


def check_input(x: torch.Tensor, args: PoolArgs, name: str = "input") -> tuple[torch.Tensor, bool]:
    """Returns x as (N, C, *spatial) and whether a batch dim was added.

    Raises ValueError for a wrong rank, an integer dtype, an empty output, or a
    window that would cover only padding.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in _FLOAT_DTYPES:
        raise ValueError(f"{name} dtype must be float16, bfloat16, float32 or float64, got {x.dtype}")
    n = args.dims
    if x.dim() == n + 1:
        x, unbatched = x.unsqueeze(0), True
    elif x.dim() == n + 2:
        unbatched = False
    else:
        raise ValueError(f"{name} of a {n}-d pool must have shape (N, C, *{n} spatial dims) or "
                         f"(C, *{n} spatial dims), got shape {tuple(x.shape)}")
    for i, size in enumerate(x.shape[2:]):
        k, s, p, d = args.kernel_size[i], args.stride[i], args.padding[i], args.dilation[i]
        out = pooled_size(size, k, s, p, d, args.ceil_mode)
        if out <= 0:
            raise ValueError(f"output would be empty: {name} size {size} in spatial dim {i} is smaller "
                             f"than the effective kernel {d * (k - 1) + 1} (kernel_size={args.kernel_size}, "
                             f"dilation={args.dilation}, padding={args.padding})")
        if d == 1:
            continue  # padding <= k // 2 keeps every undilated window non-empty
        for o in range(out):
            start = o * s - p
            if not any(0 <= start + j * d < size for j in range(k)):
                raise ValueError(f"window {o} of spatial dim {i} covers only padding "
                                 f"(kernel_size={args.kernel_size}, dilation={args.dilation}, "
                                 f"padding={args.padding}); reduce padding or dilation")
    return x, unbatched
