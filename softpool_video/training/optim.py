"""Optimizers and learning-rate schedules: SGD or AdamW, linear warmup, then cosine or multistep.

Schedules are stepped every optimizer step; the step counts come from the Trainer, so
the same config works for any dataset size, batch size or `limit_train_batches`.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")
SCHEDULES: tuple[str, ...] = ("cosine", "multistep", "constant")


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{option}: unknown value {value!r}; choose one of {', '.join(allowed)}")
    return value


def check_optimizer(name: str) -> str:
    return _choice("model.optimizer", name, OPTIMIZERS)


def check_schedule(name: str) -> str:
    return _choice("model.schedule", name, SCHEDULES)


def check_backbone_lr_scale(scale: float) -> float:
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"model.backbone_lr_scale: must be in (0, 1] (1.0: one lr for the whole net), got {scale}")
    return scale


def classifier_head(model: nn.Module, num_classes: int) -> nn.Module:
    """The last linear layer (or 1x1 conv, as in I3D) mapping to `num_classes` outputs: the
    layer a fine-tuning run re-initialises, whatever the family calls it (fc, logits, proj)."""
    head = None
    for module in model.modules():
        outputs = getattr(module, "out_features", None) if isinstance(module, nn.Linear) else (
            getattr(module, "out_channels", None) if isinstance(module, nn.modules.conv._ConvNd) else None)
        if outputs == num_classes:
            head = module
    if head is None:
        raise ValueError(f"model.backbone_lr_scale: found no classifier layer with {num_classes} outputs in "
                         f"{type(model).__name__}; use backbone_lr_scale 1.0 for this model")
    return head


def _decay_split(params: Iterable[nn.Parameter], weight_decay: float, **extra: float) -> list[dict]:
    decay, no_decay = [], []
    for param in params:
        if param.requires_grad:
            (decay if param.ndim > 1 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay, **extra}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, **extra})
    return groups


def parameter_groups(model: nn.Module, weight_decay: float, lr: float | None = None,
                     backbone_lr_scale: float = 1.0, num_classes: int | None = None) -> list[dict]:
    """Weight decay on weights of convolutions and linear layers only; not on biases or norm scales.

    With `backbone_lr_scale` < 1 (fine-tuning), the classifier head's groups come first at `lr`
    and every other parameter trains at lr * backbone_lr_scale. Each group keeps its own lr,
    so LambdaLR's warmup and decay scale both alike.
    """
    check_backbone_lr_scale(backbone_lr_scale)
    if backbone_lr_scale == 1.0:
        return _decay_split(model.parameters(), weight_decay)
    if lr is None or num_classes is None:
        raise ValueError("parameter_groups: backbone_lr_scale < 1 needs lr and num_classes")
    head_ids = {id(p) for p in classifier_head(model, num_classes).parameters()}
    head = [p for p in model.parameters() if id(p) in head_ids]
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    return (_decay_split(head, weight_decay, lr=lr)
            + _decay_split(backbone, weight_decay, lr=lr * backbone_lr_scale))


def build_optimizer(params: Iterable, name: str, lr: float, weight_decay: float = 0.0,
                    momentum: float = 0.9, nesterov: bool = False) -> torch.optim.Optimizer:
    check_optimizer(name)
    if lr <= 0:
        raise ValueError(f"model.lr: must be positive, got {lr}")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0,
                               weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


@dataclass
class WarmupSchedule:
    """Multiplier of the base learning rate at an optimizer step (a LambdaLR lambda).

    A dataclass rather than a closure so LambdaLR saves it in its state_dict and a
    resumed run continues on the same curve.
    """

    total_steps: int
    warmup_steps: int = 0
    kind: str = "cosine"
    milestones: tuple[int, ...] = ()  # optimizer steps at which multistep multiplies by gamma
    gamma: float = 0.1
    min_factor: float = 0.0  # cosine floor, as a fraction of the base lr

    def __post_init__(self) -> None:
        check_schedule(self.kind)
        self.milestones = tuple(self.milestones)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return 1.0
        if self.kind == "multistep":
            return self.gamma ** sum(step >= m for m in self.milestones)
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_schedule(total_steps: int, steps_per_epoch: float, kind: str = "cosine",
                    warmup_epochs: float = 0.0, milestones: Iterable[float] = (), gamma: float = 0.1,
                    min_lr_ratio: float = 0.0) -> WarmupSchedule:
    """A WarmupSchedule with warmup and milestones given in epochs (fractions allowed)."""
    if warmup_epochs < 0:
        raise ValueError(f"model.warmup_epochs: must be >= 0, got {warmup_epochs}")
    warmup = min(round(warmup_epochs * steps_per_epoch), max(total_steps - 1, 0))
    steps = tuple(round(m * steps_per_epoch) for m in sorted(milestones))
    return WarmupSchedule(total_steps, warmup, kind, steps, gamma, min_lr_ratio)
