"""Pooling methods by name: build_pool(method, dims, kernel_size, ...) -> nn.Module.

Models never construct pooling layers directly; they ask this registry, so the
pooling method is one constructor argument of every model.

Methods and their `method_args` (all methods work in 1d, 2d and 3d; padded and
past-the-edge positions take no part in any method):

| method     | method_args                                                                 |
|------------|-----------------------------------------------------------------------------|
| max        | -                                                                           |
| avg        | -                                                                           |
| sum        | -                                                                           |
| power      | p=2.0 (> 0), learnable=False, channels=None (per-channel p), mean=True      |
| stochastic | seed=None, generator=None                                                   |
| s3         | grid_size=1, seed=None, generator=None (CPU); no adaptive form              |
| mixed      | channels=None (None: one alpha per layer), alpha=0.5                        |
| gated      | channels=None (None: one gate mask per layer); no adaptive form             |
| lip        | channels=None (lazy), logit="full"|"depthwise", logit_kernel=3,             |
|            | max_logit=12.0, logit_module=None                                           |
| softpool   | temperature=1.0 (> 0), learnable=False (True: T trained, from temperature)  |
| adapool    | beta="position"|"channel"|"layer", channels=None (lazy)                     |

Learnable methods: power and softpool with learnable=True, mixed, gated, lip, adapool. Those
whose parameter shapes depend on the input (lip and adapool without channels,
adapool with beta="position") are lazy modules: run one forward before building
the optimizer. Random methods (stochastic, s3) draw from `seed` or `generator`
and are deterministic given either; in eval mode they are deterministic anyway.

`build_adaptive_pool(method, dims, output_size, **method_args)` gives the
adaptive (global) form for the heads of models.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from .arguments import IntOrTuple, pool_args
from .windows import output_size_tuple


@dataclass(frozen=True)
class PoolMethod:
    name: str
    description: str
    # factory(dims, kernel_size, stride, padding, ceil_mode, **method_args) -> nn.Module
    factory: Callable[..., nn.Module]
    # method_args it takes, for humans (the factory's signature is the contract)
    args: str = ""
    # adaptive_factory(dims, output_size, **method_args) -> nn.Module; None: no adaptive form
    adaptive_factory: Callable[..., nn.Module] | None = None


_METHODS: dict[str, PoolMethod] = {}


def register_pool(name: str, description: str, args: str = ""):
    """Decorator: registers `factory` under `name`."""
    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _METHODS:
            raise ValueError(f"pooling method {name!r} is already registered")
        _METHODS[name] = PoolMethod(name, description, factory, args)
        return factory
    return wrap


def register_adaptive_pool(name: str):
    """Decorator: registers the adaptive form of an already registered method."""
    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        check_method(name)
        _METHODS[name] = replace(_METHODS[name], adaptive_factory=factory)
        return factory
    return wrap


def available_pools() -> dict[str, str]:
    """Method name -> one-line description."""
    return {name: m.description for name, m in sorted(_METHODS.items())}


def pool_method(method: str) -> PoolMethod:
    """The registry entry of a method (description, method_args, factories)."""
    return _METHODS[check_method(method)]


def adaptive_pools() -> list[str]:
    """Methods that have an adaptive (global) form."""
    return sorted(name for name, m in _METHODS.items() if m.adaptive_factory is not None)


class UnknownPoolingError(ValueError):
    """Pooling method names the registry does not have; the message lists the ones it has."""


def check_methods(methods: str | Sequence[str], option: str | None = None) -> list[str]:
    """The names of `methods` (a comma-separated string or a sequence), each checked against
    the registry: the one check of a pooling name. `option` is the argument as the user spelled
    it (`--pooling`, `model.pooling`), put first in the error."""
    names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else list(methods)
    names = [name for name in names if name]
    unknown = [name for name in names if name not in _METHODS]
    prefix = f"{option}: " if option else ""
    available = f"available: {', '.join(sorted(_METHODS))}"
    if not names:
        raise UnknownPoolingError(f"{prefix}give at least one pooling method; {available}")
    if unknown:
        what = f"method {unknown[0]!r}" if len(unknown) == 1 else f"methods {', '.join(map(repr, unknown))}"
        raise UnknownPoolingError(f"{prefix}unknown pooling {what}; {available}")
    return names


def check_method(method: str, option: str | None = None) -> str:
    """One pooling method name, checked (see check_methods)."""
    return check_methods([method], option)[0]


def _bind(method: str, factory: Callable[..., nn.Module], args: tuple, method_args: dict) -> None:
    """A clear error for method_args the method does not take."""
    try:
        inspect.signature(factory).bind(*args, **method_args)
    except TypeError:
        params = [p for p in inspect.signature(factory).parameters.values()][len(args):]
        accepted = ", ".join(p.name for p in params) or "none"
        unknown = sorted(set(method_args) - {p.name for p in params})
        raise ValueError(f"pooling method {method!r} does not take method_args {unknown}; "
                         f"it takes: {accepted}") from None


# Salt of the pools' own random streams (any constant: it only keeps a pool's stream apart
# from the numbers the next layer draws from the same global state).
_POOL_STREAM = 0x5EED_B001


def _built_apart(factory: Callable[..., nn.Module], *args: Any, **kwargs: Any) -> nn.Module:
    """`factory(*args, **kwargs)` without moving torch's global (CPU) random state.

    A method that draws its initial parameters (gated) would otherwise shift every later
    layer's initialisation, so that `max` and it would differ in more than the pooling under
    one seed. The pool draws from a stream seeded off the global state instead: deterministic
    for a given seed and model, and the global state is left where it was.
    """
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return factory(*args, **kwargs)  # a pool built while tracing (a head fitted to its input)
    with torch.random.fork_rng(devices=[]):
        # drawn on the CPU: also under a meta default device
        torch.manual_seed(int(torch.randint(0, 2**62, (), device="cpu")) ^ _POOL_STREAM)
        return factory(*args, **kwargs)


def _check_frozen(method: str, module: nn.Module) -> None:
    if any(p.requires_grad for p in module.parameters()):
        raise ValueError(f"pooling method {method!r} has learnable parameters, so it cannot be built for a "
                         f"frozen-graph export (frozen=True): nothing would train them. Export a trained "
                         f"model instead, or choose a method without parameters")


def build_pool(method: str, dims: int, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0, ceil_mode: bool = False, frozen: bool = False,
               **method_args) -> nn.Module:
    """A `dims`-d pooling layer of the named method with the given geometry.

    frozen=True is for building a graph that will not be trained (e.g. an
    export of an untrained pool): learnable methods are refused.
    """
    entry = pool_method(method)
    args = pool_args(dims, kernel_size, stride, padding, 1, ceil_mode)  # validates the geometry
    geometry = (dims, args.kernel_size, args.stride, args.padding, args.ceil_mode)
    _bind(method, entry.factory, geometry, method_args)
    module = _built_apart(entry.factory, *geometry, **method_args)
    if frozen:
        _check_frozen(method, module)
    return module


def build_adaptive_pool(method: str, dims: int, output_size: int | Sequence[int | None] | None,
                        frozen: bool = False, **method_args) -> nn.Module:
    """A `dims`-d adaptive pool (as nn.AdaptiveAvgPool{dims}d) of the named method.

    output_size=1 gives global pooling, the usual head of a video model.
    """
    entry = pool_method(method)
    if entry.adaptive_factory is None:
        raise ValueError(f"pooling method {method!r} has no adaptive (global) form; methods with one: "
                         f"{', '.join(adaptive_pools())}")
    size = output_size_tuple(dims, output_size)
    _bind(method, entry.adaptive_factory, (dims, size), method_args)
    module = _built_apart(entry.adaptive_factory, dims, size, **method_args)
    if frozen:
        _check_frozen(method, module)
    return module


# --- the methods ------------------------------------------------------------------------------

_TORCH_ADAPTIVE_MAX = {1: nn.AdaptiveMaxPool1d, 2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d}
_TORCH_ADAPTIVE_AVG = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}


def _fixed(dims, kernel_size, stride, padding, ceil_mode):
    return pool_args(dims, kernel_size, stride, padding, 1, ceil_mode)


@register_pool("max", "max of each window (torch max_pool)")
def _max(dims, kernel_size, stride, padding, ceil_mode):
    from .basic import MaxPool1d, MaxPool2d, MaxPool3d  # nn.MaxPoolNd with the op's input checks
    return {1: MaxPool1d, 2: MaxPool2d, 3: MaxPool3d}[dims](kernel_size, stride, padding, ceil_mode=ceil_mode)


@register_adaptive_pool("max")
def _adaptive_max(dims, output_size):
    return _TORCH_ADAPTIVE_MAX[dims](output_size)


@register_pool("avg", "mean of each window; padding excluded from the mean (torch avg_pool)")
def _avg(dims, kernel_size, stride, padding, ceil_mode):
    from .basic import AvgPool1d, AvgPool2d, AvgPool3d  # checked, and takes inputs < kernel with padding
    return {1: AvgPool1d, 2: AvgPool2d, 3: AvgPool3d}[dims](kernel_size, stride, padding, ceil_mode=ceil_mode,
                                                            count_include_pad=False)


@register_adaptive_pool("avg")
def _adaptive_avg(dims, output_size):
    return _TORCH_ADAPTIVE_AVG[dims](output_size)


@register_pool("softpool", "softmax-weighted mean of each window (SoftPool, compiled op); optional temperature",
               "temperature=1.0 (> 0): y = sum softmax(a/T) a = T * softpool(a/T); learnable=False "
               "(True: T is trained, starting at temperature)")
def _softpool(dims, kernel_size, stride, padding, ceil_mode, temperature: float = 1.0, learnable: bool = False):
    from .basic import WindowSoftPool, check_temperature
    if check_temperature(temperature) != 1.0 or learnable:
        return WindowSoftPool(dims, _fixed(dims, kernel_size, stride, padding, ceil_mode), temperature,
                              learnable)
    from .softpool import SoftPool1d, SoftPool2d, SoftPool3d
    return {1: SoftPool1d, 2: SoftPool2d, 3: SoftPool3d}[dims](kernel_size, stride, padding,
                                                              ceil_mode=ceil_mode)


@register_adaptive_pool("softpool")
def _adaptive_softpool(dims, output_size, temperature: float = 1.0, learnable: bool = False):
    from .basic import WindowSoftPool
    return WindowSoftPool(dims, output_size, temperature, learnable)


def _register_window_method(name: str, description: str, args: str, load: Callable[[], type]) -> None:
    """Registers a WindowPool subclass: one class gives the fixed and the adaptive form."""
    def fixed(dims, kernel_size, stride, padding, ceil_mode, **method_args):
        return load()(dims, _fixed(dims, kernel_size, stride, padding, ceil_mode), **method_args)

    def adaptive(dims, output_size, **method_args):
        return load()(dims, output_size, **method_args)

    cls = load()
    params = list(inspect.signature(cls.__init__).parameters.values())[3:]  # after self, dims, geometry
    for f in (fixed, adaptive):
        base = list(inspect.signature(f).parameters.values())[:-1]
        f.__signature__ = inspect.Signature(base + params)
    register_pool(name, description, args)(fixed)
    if cls.adaptive_ok:
        register_adaptive_pool(name)(adaptive)


def _load(module: str, cls: str) -> Callable[[], type]:
    def load() -> type:
        import importlib
        return getattr(importlib.import_module(f"{__package__}.{module}"), cls)
    return load


_register_window_method("sum", "sum of each window over its input positions", "-", _load("basic", "SumPool"))
_register_window_method(
    "power", "power average (Lp): (mean |a|^p)^(1/p), fixed or learnable p",
    "p=2.0 (> 0), learnable=False, channels=None (per-channel learnable p), mean=True (False: LPPool's sum)",
    _load("power", "PowerPool"))
_register_window_method(
    "stochastic", "stochastic pooling (Zeiler & Fergus): sample by normalised activation; weighted mean in eval",
    "seed=None, generator=None", _load("stochastic", "StochasticPool"))
_register_window_method(
    "s3", "S3Pool (Zhai et al.): stride-1 max, then random rows/cols/frames per grid; block mean in eval",
    "grid_size=1 (outputs per sampling block), seed=None, generator=None (CPU)", _load("s3", "S3Pool"))
_register_window_method(
    "mixed", "mixed max-average (Lee et al.): alpha*max + (1-alpha)*mean, learned alpha",
    "channels=None (None: one alpha per layer), alpha=0.5 (initial)", _load("mixed", "MixedPool"))
_register_window_method(
    "gated", "gated max-average (Lee et al.): learned gate sigmoid(w . region) mixes max and mean",
    "channels=None (None: one gate mask per layer)", _load("mixed", "GatedPool"))
_register_window_method(
    "lip", "LIP (Gao et al.): mean weighted by exp of a learned logit module",
    "channels=None (lazy), logit='full'|'depthwise', logit_kernel=3, max_logit=12.0, logit_module=None",
    _load("lip", "LIPPool"))
_register_window_method(
    "adapool", "adaPool (Stergiou & Poppe): learned mix of Dice-weighted (eDSCW) and SoftPool (eM) means",
    "beta='position'|'channel'|'layer', channels=None (lazy; beta='channel')", _load("adapool", "AdaPool"))
