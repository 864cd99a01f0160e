"""Optimizers and learning-rate schedules: SGD or AdamW, linear warmup, then cosine or multistep.

Schedules are stepped every optimizer step; the step counts come from the Trainer, so
the same config works for any dataset size, batch size or `limit_train_batches`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

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


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weights of convolutions and linear layers only; not on biases or norm scales."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim > 1 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


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
    warmup = min(int(round(warmup_epochs * steps_per_epoch)), max(total_steps - 1, 0))
    steps = tuple(int(round(m * steps_per_epoch)) for m in sorted(milestones))
    return WarmupSchedule(total_steps, warmup, kind, steps, gamma, min_lr_ratio)
