"""swap_pooling: put any registered pooling method into any network.

Walks a model (ours, torchvision's, pytorchvideo's), replaces nn.MaxPool{1,2,3}d
and nn.AvgPool{1,2,3}d (and, when `kinds` has "adaptive", nn.Adaptive{Max,Avg}Pool{1,2,3}d)
by the chosen method at the same geometry, and reports what it replaced. The
output shape of every replaced pool, and so of the model, is unchanged.

A geometry the zoo cannot represent (dilation != 1, return_indices=True,
divisor_override) raises a ValueError naming the module. One difference is not
an error but is noted in the report: the zoo never counts padding, so an
AvgPool with count_include_pad=True and padding > 0 changes at the borders.
"""
from __future__ import annotations

import fnmatch
import logging
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from .registry import build_adaptive_pool, build_pool, check_method

log = logging.getLogger(__name__)

_KINDS = ("max", "avg", "adaptive")
_MAX = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_AVG = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_ADAPTIVE = (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
             nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
_DIMS = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3, nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool3d: 3,
         nn.AdaptiveMaxPool1d: 1, nn.AdaptiveMaxPool2d: 2, nn.AdaptiveMaxPool3d: 3,
         nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveAvgPool3d: 3}


class Swap(NamedTuple):
    """One replaced pool: its qualified module name, the old module and the new one."""
    name: str
    old: nn.Module
    new: nn.Module

    @property
    def note(self) -> str:
        """What the swap changes besides the method (empty when nothing)."""
        old = self.old
        if isinstance(old, _AVG) and old.count_include_pad and any(p > 0 for p in _as_tuple(old.padding, 3)):
            return "count_include_pad=True: padding no longer counts"
        return ""


def _kind(module: nn.Module) -> str | None:
    if isinstance(module, _MAX):
        return "max"
    if isinstance(module, _AVG):
        return "avg"
    if isinstance(module, _ADAPTIVE):
        return "adaptive"
    return None


def _dims(module: nn.Module) -> int:
    for cls in type(module).__mro__:
        if cls in _DIMS:
            return _DIMS[cls]
    raise AssertionError(type(module))


def _as_tuple(value, dims: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims


def _matches(name: str, patterns: Sequence[str] | None) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns or ())


def _replacement(name: str, old: nn.Module, method: str, method_args: dict) -> nn.Module:
    dims = _dims(old)
    if getattr(old, "return_indices", False):
        raise ValueError(f"cannot swap pooling module {name!r} ({old}) for {method!r}: it returns indices "
                         f"(return_indices=True), which the pooling zoo does not produce")
    if isinstance(old, _ADAPTIVE):
        return build_adaptive_pool(method, dims, old.output_size, **method_args)
    if isinstance(old, _MAX) and any(d != 1 for d in _as_tuple(old.dilation, dims)):
        raise ValueError(f"cannot swap pooling module {name!r} ({old}) for {method!r}: dilation={old.dilation} "
                         f"is not supported by the pooling zoo (dilation must be 1)")
    if isinstance(old, _AVG) and old.divisor_override is not None:
        raise ValueError(f"cannot swap pooling module {name!r} ({old}) for {method!r}: "
                         f"divisor_override={old.divisor_override} has no equivalent in the pooling zoo")
    return build_pool(method, dims, _as_tuple(old.kernel_size, dims), _as_tuple(old.stride, dims),
                      _as_tuple(old.padding, dims), bool(old.ceil_mode), **method_args)


def _place_like(new: nn.Module, model: nn.Module) -> nn.Module:
    """Moves new parameters to the model's device and floating dtype."""
    ref = next(iter(model.parameters()), None)
    if ref is None:
        return new
    if ref.is_floating_point():
        return new.to(device=ref.device, dtype=ref.dtype)
    return new.to(device=ref.device)


def swap_pooling(model: nn.Module, method: str, include: Sequence[str] | None = None,
                 exclude: Sequence[str] | None = None, kinds: Sequence[str] = ("max", "avg"),
                 **method_args) -> list[Swap]:
    """Replaces the pools of `model` in place by `method`; returns what was replaced.

    include / exclude: fnmatch patterns on qualified module names ("features.*",
    "*.branch3.0"); include=None takes every pool, exclude wins over include.
    kinds: which torch pools to replace, any of "max", "avg", "adaptive".
    method_args go to build_pool / build_adaptive_pool (learnable methods get
    fresh parameters per replaced pool).
    """
    check_method(method)
    if isinstance(kinds, str):
        kinds = (kinds,)
    unknown = [k for k in kinds if k not in _KINDS]
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {_KINDS}, got {tuple(kinds)!r}")
    if isinstance(include, str) or isinstance(exclude, str):
        raise ValueError("include and exclude take a sequence of patterns, e.g. ['features.*']")

    targets = []
    for name, module in model.named_modules():
        kind = _kind(module)
        if kind is None or kind not in kinds:
            continue
        if include is not None and not _matches(name, include):
            continue
        if _matches(name, exclude):
            continue
        targets.append((name, module))

    report: list[Swap] = []
    for name, old in targets:
        if not name:
            raise ValueError(f"the model itself is a pooling module ({old}); build the pool with build_pool")
        try:
            new = _replacement(name, old, method, method_args)
        except ValueError as err:
            if name in str(err):
                raise
            raise ValueError(f"cannot swap pooling module {name!r} ({old}) for {method!r}: {err}") from err
        new.train(old.training)
        new = _place_like(new, model)
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, new)
        report.append(Swap(name, old, new))
        log.debug("swapped %s: %s -> %s", name, old, new)
    return report


def format_report(report: Sequence[Swap]) -> str:
    """A markdown table of a swap report."""
    lines = ["| module | old | new | note |", "|---|---|---|---|"]
    for s in report:
        lines.append(f"| {s.name} | {s.old} | {s.new} | {s.note} |".replace("\n", " "))
    return "\n".join(lines)


@torch.no_grad()
def materialize(model: nn.Module, example: torch.Tensor) -> None:
    """One forward pass in eval mode so lazy pooling parameters take their shapes."""
    was_training = model.training
    model.eval()
    try:
        model(example)
    finally:
        model.train(was_training)
