"""Pooling methods by name: build_pool(method, dims, kernel_size, ...) -> nn.Module.

Models never construct pooling layers directly; they ask this registry, so the
pooling method is one constructor argument of every model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from .arguments import IntOrTuple, pool_args


@dataclass(frozen=True)
class PoolMethod:
    name: str
    description: str
    # factory(dims, kernel_size, stride, padding, ceil_mode, **method_args) -> nn.Module
    factory: Callable[..., nn.Module]


_METHODS: dict[str, PoolMethod] = {}


def register_pool(name: str, description: str):
    """Decorator: registers `factory` under `name`."""
    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _METHODS:
            raise ValueError(f"pooling method {name!r} is already registered")
        _METHODS[name] = PoolMethod(name, description, factory)
        return factory
    return wrap


def available_pools() -> dict[str, str]:
    """Method name -> one-line description."""
    return {name: m.description for name, m in sorted(_METHODS.items())}


def check_method(method: str) -> str:
    if method not in _METHODS:
        raise ValueError(f"unknown pooling method {method!r}; available: {', '.join(sorted(_METHODS))}")
    return method


def build_pool(method: str, dims: int, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, ceil_mode: bool = False, **method_args) -> nn.Module:
    """A `dims`-d pooling layer of the named method with the given geometry."""
    check_method(method)
    args = pool_args(dims, kernel_size, stride, padding, 1, ceil_mode)  # validates the geometry
    return _METHODS[method].factory(dims, args.kernel_size, args.stride, args.padding, args.ceil_mode,
                                    **method_args)


_TORCH_MAX = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_TORCH_AVG = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}


@register_pool("max", "max of each window (torch max_pool)")
def _max(dims, kernel_size, stride, padding, ceil_mode):
    return _TORCH_MAX[dims](kernel_size, stride, padding, ceil_mode=ceil_mode)


@register_pool("avg", "mean of each window; padding excluded from the mean (torch avg_pool)")
def _avg(dims, kernel_size, stride, padding, ceil_mode):
    return _TORCH_AVG[dims](kernel_size, stride, padding, ceil_mode=ceil_mode, count_include_pad=False)


@register_pool("softpool", "softmax-weighted mean of each window (SoftPool, compiled op)")
def _softpool(dims, kernel_size, stride, padding, ceil_mode):
    from .softpool import SoftPool1d, SoftPool2d, SoftPool3d
    return {1: SoftPool1d, 2: SoftPool2d, 3: SoftPool3d}[dims](kernel_size, stride, padding,
                                                              ceil_mode=ceil_mode)
