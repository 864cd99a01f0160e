"""`LoadedModel`: a trained network rebuilt without executing code from its file, with its
class names and evaluation protocol, for export and inference alike.

A Lightning checkpoint is read by `read_checkpoint` (weights_only=True: tensors and plain
data only). The network is then rebuilt from the checkpoint's hyper-parameters with
`softpool_video.models.create_model` and its weights loaded strictly, so a checkpoint whose
weights do not fit the model it names (other classes, another architecture, edited
tensors) is rejected with the keys that differ. An export folder or model card is read by
card.py, which also holds `load_model` (either kind).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from softpool_video.evaluation import EvaluationProtocol

from .reader import CheckpointError, read_checkpoint

log = logging.getLogger(__name__)

# The LightningModule keeps the network as `self.net`.
NET_PREFIX = "net."


@dataclass
class LoadedModel:
    """A rebuilt network in eval mode and everything needed to feed and describe it."""

    net: nn.Module
    arch: str
    pooling: str
    num_classes: int
    class_names: list[str]
    model_kwargs: dict[str, Any]
    data: dict[str, Any]  # the datamodule's hyper-parameters (clip length, crop, normalisation...)
    aggregation: str = "mean_softmax"
    metrics: dict[str, float] = field(default_factory=dict)
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # epoch, global_step, datamodule_class, ...

    @property
    def protocol(self) -> EvaluationProtocol:
        """The test protocol the datamodule's hyper-parameters record."""
        return EvaluationProtocol.from_hparams(self.data, self.aggregation)


def _required(hparams: Mapping[str, Any], key: str, kind: type, path: str) -> Any:
    if key not in hparams:
        raise CheckpointError(f"checkpoint={path!r}: hyper_parameters lack {key!r}; was it written by "
                              "softpool_video's VideoClassifier?")
    value = hparams[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CheckpointError(f"checkpoint={path!r}: hyper_parameters[{key!r}] must be {kind.__name__}, "
                              f"got {value!r}")
    return value


def build_network(arch: str, num_classes: int, pooling: str, model_kwargs: Mapping[str, Any],
                  source: str) -> nn.Module:
    from softpool_video.models import UnknownModelError, check_model, create_model
    from softpool_video.pooling import UnknownPoolingError, check_method

    try:
        check_model(arch, "arch")
        check_method(pooling, "pooling")
    except (UnknownModelError, UnknownPoolingError) as err:
        raise CheckpointError(f"{source}: {err}") from None
    return create_model(arch, num_classes, pooling=pooling, **dict(model_kwargs))


def load_network_state(net: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Strict load; a mismatch names the missing, unexpected and reshaped keys."""
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    reshaped = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    retyped = [f"{k}: file {state[k].dtype} vs model {own[k].dtype}"
               for k in own if k in state and state[k].is_floating_point() != own[k].is_floating_point()]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", reshaped),
                        ("wrong dtype", retyped)):
        if keys:
            more = f" (+{len(keys) - 5} more)" if len(keys) > 5 else ""
            problems.append(f"{label}: {', '.join(keys[:5])}{more}")
    if problems:
        raise CheckpointError(f"{source}: the weights do not match the model they name; " + "; ".join(problems))
    nonfinite = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if nonfinite:
        raise CheckpointError(f"{source}: weights hold NaN or inf values in {', '.join(nonfinite[:5])}")
    net.load_state_dict(state, strict=True)


def datamodule_class(ckpt: Mapping[str, Any], data: Mapping[str, Any]) -> str | None:
    """The class name of the datamodule a checkpoint was trained with, as a name only (never
    imported from here): LightningCLI records its class path in the hyper-parameters, and
    Lightning saves a stateful datamodule's state under its class name."""
    path = data.get("_class_path")
    if isinstance(path, str) and path:
        return path.rsplit(".", 1)[-1]
    named = [k for k, v in ckpt.items() if isinstance(k, str) and k.endswith("DataModule") and isinstance(v, dict)]
    return named[0] if len(named) == 1 else None


def load_checkpoint(path: str | Path) -> LoadedModel:
    """Rebuilds the network of a VideoClassifier Lightning checkpoint, in eval mode on CPU."""
    source = f"checkpoint={str(path)!r}"
    ckpt = read_checkpoint(path, mmap=False, label="checkpoint")
    hparams = ckpt.get("hyper_parameters")
    state = ckpt.get("state_dict")
    if not isinstance(hparams, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{source} is not a Lightning checkpoint of a VideoClassifier: it needs "
                              "'state_dict' and 'hyper_parameters' (saved by save_hyperparameters)")
    arch = _required(hparams, "arch", str, str(path))
    pooling = _required(hparams, "pooling", str, str(path))
    num_classes = _required(hparams, "num_classes", int, str(path))
    model_kwargs = hparams.get("model_kwargs") or {}
    class_names = hparams.get("class_names") or [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise CheckpointError(f"{source}: {len(class_names)} class_names for num_classes={num_classes}")
    net_state = {k[len(NET_PREFIX):]: v for k, v in state.items() if k.startswith(NET_PREFIX)}
    if not net_state:
        raise CheckpointError(f"{source}: state_dict has no '{NET_PREFIX}*' weights (keys start with "
                              f"{sorted({k.split('.')[0] for k in state})})")
    net = build_network(arch, num_classes, pooling, model_kwargs, source)
    load_network_state(net, net_state, source)
    net.eval()
    data = dict(ckpt.get("datamodule_hyper_parameters") or {})
    if not data:
        log.warning("%s records no datamodule hyper-parameters: clip length, crop size and normalisation "
                    "fall back to the datamodule's defaults and one view", source)
    extra = {k: ckpt.get(k) for k in ("epoch", "global_step", "pytorch-lightning_version")}
    extra["datamodule_class"] = datamodule_class(ckpt, data)
    head = hparams.get("head")  # checkpoints before the model's option groups hold it flat
    aggregation = (head if isinstance(head, dict) else hparams).get("aggregation") or "mean_softmax"
    return LoadedModel(net=net, arch=arch, pooling=pooling, num_classes=num_classes,
                       class_names=list(class_names), model_kwargs=dict(model_kwargs), data=data,
                       aggregation=str(aggregation), source=str(path),
                       extra=extra)
