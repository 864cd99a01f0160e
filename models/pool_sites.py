"""Where a model's pooling layers are, and which method each one is."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from torch import nn
from torch.nn.modules import pooling as torch_pooling

from softpool_video.pooling.arguments import PoolArgs
from softpool_video.pooling.registry import adaptive_pools, available_pools, build_adaptive_pool, build_pool

# torch's own pooling families (fixed-window and adaptive)
_TORCH_WINDOWED = (torch_pooling._MaxPoolNd, torch_pooling._AvgPoolNd, torch_pooling._LPPoolNd,
                   nn.FractionalMaxPool2d, nn.FractionalMaxPool3d)
_TORCH_ADAPTIVE = (torch_pooling._AdaptiveAvgPoolNd, torch_pooling._AdaptiveMaxPoolNd)


@dataclass(frozen=True)
class PoolSite:
    """One pooling layer: its module path, method and geometry."""

    name: str
    method: str  # registry name(s) ("max", "softpool"), else the class name ("MaxPool3d")
    type_name: str
    kernel_size: Any = None
    stride: Any = None
    padding: Any = None
    ceil_mode: bool | None = None
    adaptive: bool = False  # a global/adaptive (head) pool: not a swap site

    def geometry(self) -> str:
        if self.adaptive:
            return "global"
        parts = [f"k={_fmt(self.kernel_size)}", f"s={_fmt(self.stride)}"]
        if self.padding not in (None, 0, (0, 0, 0), [0, 0, 0]):
            parts.append(f"p={_fmt(self.padding)}")
        if self.ceil_mode:
            parts.append("ceil")
        return " ".join(parts)


def _fmt(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "x".join(str(int(v)) for v in value)
    return str(value)


def registry_classes() -> dict[type, str]:
    """Module class -> the registry method name(s) that build it, fixed or adaptive
    (probed at dims 1-3 with default method arguments)."""
    found: dict[type, list[str]] = {}

    def add(name: str, build) -> None:
        try:
            cls = type(build())
        except (TypeError, ValueError):  # a method that needs arguments of its own
            return
        if name not in found.setdefault(cls, []):
            found[cls].append(name)

    for dims in (1, 2, 3):
        for name in available_pools():
            add(name, partial(build_pool, name, dims, 2))
        for name in adaptive_pools():
            add(name, partial(build_adaptive_pool, name, dims, 1))
    return {cls: "|".join(names) for cls, names in found.items()}


def _is_pool(module: nn.Module, classes: dict[type, str]) -> bool:
    return (type(module) in classes or isinstance(module, _TORCH_WINDOWED + _TORCH_ADAPTIVE)
            or isinstance(getattr(module, "geometry", None), PoolArgs))  # a zoo pool built with arguments


def _site(name: str, module: nn.Module, classes: dict[type, str]) -> PoolSite:
    adaptive = isinstance(module, _TORCH_ADAPTIVE) or getattr(module, "adaptive", False) is True
    geometry = getattr(module, "geometry", None)
    source = geometry if isinstance(geometry, PoolArgs) else module
    return PoolSite(name=name, method=classes.get(type(module), type(module).__name__),
                    type_name=type(module).__name__, kernel_size=getattr(source, "kernel_size", None),
                    stride=getattr(source, "stride", None), padding=getattr(source, "padding", None),
                    ceil_mode=getattr(source, "ceil_mode", None), adaptive=adaptive)


def pool_sites(model: nn.Module) -> list[PoolSite]:
    """Every pooling layer of `model` in module order; a pool's own sub-modules are not listed."""
    classes = registry_classes()
    sites: list[PoolSite] = []
    inside: tuple[str, ...] = ()
    for name, module in model.named_modules():
        if inside and name.startswith(inside):
            continue
        if _is_pool(module, classes):
            sites.append(_site(name, module, classes))
            inside += (name + ".",)
    return sites
