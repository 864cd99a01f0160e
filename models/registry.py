"""Models by name: create_model(name, num_classes, pooling="max", **kwargs).

Each family module registers its builders with `register_model`; a builder takes
`num_classes`, `pooling` and keyword arguments and returns an nn.Module mapping a
(B, 3, T, H, W) float clip to (B, num_classes) logits.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from softpool_video.pooling.registry import check_method

ModelBuilder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    description: str
    builder: ModelBuilder


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, family: str, description: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator: registers `builder(num_classes, pooling, **kwargs)` under `name`."""
    def wrap(builder: ModelBuilder) -> ModelBuilder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = ModelEntry(name, family, description, builder)
        return builder
    return wrap


def list_models(pattern: str | None = None, family: str | None = None) -> list[str]:
    """Sorted model names, optionally filtered by a glob `pattern` and a `family`."""
    names = sorted(_MODELS)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    if family is not None:
        names = [n for n in names if _MODELS[n].family == family]
    return names


class UnknownModelError(ValueError):
    """A model name the registry does not have; the message lists the ones it has."""


def check_model(name: str, option: str | None = None) -> str:
    """`name`, checked against the registry: the one check of a model name. `option` is the
    argument as the user spelled it (`--model`, `model.arch`), put first in the error."""
    if name not in _MODELS:
        prefix = f"{option}: " if option else ""
        raise UnknownModelError(f"{prefix}unknown model {name!r}; available: {', '.join(sorted(_MODELS))}")
    return name


def model_entry(name: str) -> ModelEntry:
    """The registry entry of `name` (UnknownModelError listing the available models if unknown)."""
    return _MODELS[check_model(name)]


def create_model(name: str, num_classes: int, pooling: str = "max", *, weights: str | Path | None = None,
                 **kwargs: Any) -> nn.Module:
    """Builds model `name` with every pooling site using `pooling`.

    kwargs go to the family's builder (e.g. `pool_args`, `stem_pool`, `base_width`,
    `layers`, `dropout`). `weights` is an optional local weights file (.safetensors,
    or a torch.save'd state dict / checkpoint) loaded after the model is built.
    """
    entry = model_entry(name)
    check_method(pooling)
    model = entry.builder(num_classes=num_classes, pooling=pooling, **kwargs)
    if weights is not None:
        from .weights import load_weights
        load_weights(model, weights)
    return model
