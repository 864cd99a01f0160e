"""Bytes autograd keeps for backward, in total and per pooling layer.

A `SavedTensorCounter` installs `torch.autograd.graph.saved_tensors_hooks` while it is
active. Every tensor autograd saves is keyed by its storage, so a storage saved by two
ops (a ReLU's output that the next pool saves as its input) counts once in the total.
Parameters and buffers are not activations and are left out. While a pooling layer
runs (forward pre-hook to forward hook), what is saved is also credited to that layer:
a layer's figure is every storage it asks autograd to keep, its input included.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


def pooling_layers(model: nn.Module, include_global: bool = False) -> dict[str, nn.Module]:
    """{module path: module} of the model's pooling layers (windowed ones unless include_global)."""
    from softpool_video.models.pool_sites import pool_sites

    return {site.name: model.get_submodule(site.name) for site in pool_sites(model)
            if include_global or not site.adaptive}


def _storage_key(t: torch.Tensor) -> tuple[str, int]:
    storage = t.untyped_storage()
    return str(t.device), storage.data_ptr()


class SavedTensorCounter:
    """Counts saved-for-backward bytes while entered; re-entrant across steps.

    Args:
        model: whose parameters and buffers are excluded (their storages are not activations);
            they are looked up on the first `start()`, so move the model to its device first.
        layers: {name: module} to credit separately, e.g. `pooling_layers(model)`.
    """

    def __init__(self, model: nn.Module | None = None, layers: dict[str, nn.Module] | None = None) -> None:
        self.model = model
        self.layers = dict(layers or {})
        self.total_bytes = 0
        self.layer_bytes: dict[str, int] = {name: 0 for name in self.layers}
        self._storages: dict[tuple[str, int], int] = {}
        self._layer_storages: dict[str, dict[tuple[str, int], int]] = {}
        self._excluded: set[tuple[str, int]] | None = None
        self._active: list[str] = []
        self._handles: list[Any] = []
        self._context: Any = None

    # context management -------------------------------------------------------------------------------------
    def __enter__(self) -> "SavedTensorCounter":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        """Begins a fresh count (one step's worth)."""
        if self._context is not None:
            raise RuntimeError("SavedTensorCounter.start: already counting; call stop() first")
        self._storages, self._layer_storages, self._active = {}, {name: {} for name in self.layers}, []
        if self._excluded is None:  # once: parameters keep their storages between steps
            tensors = [] if self.model is None else [*self.model.parameters(), *self.model.buffers()]
            if any(nn.parameter.is_lazy(t) for t in tensors):
                raise ValueError("SavedTensorCounter: the model has lazy parameters (lip, adapool): run one forward "
                                 "before counting, so parameters can be told apart from activations")
            self._excluded = {_storage_key(t) for t in tensors}
        for name, module in self.layers.items():
            self._handles.append(module.register_forward_pre_hook(self._enter_layer(name)))
            self._handles.append(module.register_forward_hook(self._leave_layer(name), always_call=True))
        self._context = torch.autograd.graph.saved_tensors_hooks(self._pack, _unpack)
        self._context.__enter__()

    def stop(self) -> None:
        """Ends the count; `total_bytes` and `layer_bytes` hold its result."""
        if self._context is None:
            return
        self._context.__exit__(None, None, None)
        self._context = None
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.total_bytes = sum(self._storages.values())
        self.layer_bytes = {name: sum(s.values()) for name, s in self._layer_storages.items()}
        self._storages, self._layer_storages = {}, {}

    # hooks ----------------------------------------------------------------------------------------------------
    def _enter_layer(self, name: str):
        def hook(module: nn.Module, args: Any) -> None:
            self._active.append(name)
        return hook

    def _leave_layer(self, name: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if self._active and self._active[-1] == name:
                self._active.pop()
        return hook

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        key = _storage_key(t)
        if key in self._excluded:
            return t
        nbytes = t.untyped_storage().nbytes()
        self._storages[key] = max(self._storages.get(key, 0), nbytes)
        for name in self._active:  # nested pools credit every enclosing one
            layer = self._layer_storages[name]
            layer[key] = max(layer.get(key, 0), nbytes)
        # detached (same storage and version counter): an op's own output, kept with its grad_fn,
        # would close a cycle node -> saved tensor -> node that gc cannot see, and a graph never
        # run backward (a counting forward) would then hold its activations, and this counter, forever
        return t.detach()


def _unpack(t: torch.Tensor) -> torch.Tensor:
    return t
