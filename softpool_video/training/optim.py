"""Optimizers and learning-rate schedules: SGD or AdamW, linear warmup, then cosine or multistep.

Schedules are stepped every optimizer step; the step counts come from the Trainer, so
the same config works for any dataset size, batch size or `limit_train_batches`.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    SequentialLR,
)

OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")
SCHEDULES: tuple[str, ...] = ("cosine", "multistep", "constant")


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{option}={value!r} is not supported; choose one of {', '.join(allowed)}")
    return value


def check_optimizer(name: str) -> str:
    return _choice("model.optimisation.optimizer", name, OPTIMIZERS)


def check_schedule(name: str) -> str:
    return _choice("model.schedule.name", name, SCHEDULES)


def check_backbone_lr_scale(scale: float) -> float:
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"model.optimisation.backbone_lr_scale must be in (0, 1] (1.0: one lr for the whole net), got {scale!r}")
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
        raise ValueError(f"model.optimisation.backbone_lr_scale: found no classifier layer with {num_classes} outputs in "
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
    so the schedule's warmup and decay scale both alike.
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
        raise ValueError(f"model.optimisation.lr must be positive, got {lr}")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0,
                               weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def lr_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, steps_per_epoch: float,
                 kind: str = "cosine", warmup_epochs: float = 0.0, milestones: Iterable[float] = (),
                 gamma: float = 0.1, min_lr_ratio: float = 0.0) -> LRScheduler:
    """torch's schedulers, stepped every optimizer step: linear warmup over `warmup_epochs`
    (LinearLR from lr/W up to lr), then cosine to `min_lr_ratio` x lr at `total_steps`
    (CosineAnnealingLR), x `gamma` at each of `milestones` epochs (MultiStepLR), or constant.
    Epochs may be fractions. Every parameter group keeps its own lr (backbone_lr_scale).

    Plain torch schedulers rather than a LambdaLR function: their state_dict is all the state,
    so a resumed run continues on the same curve (a LambdaLR lambda has to be picklable data).
    """
    check_schedule(kind)
    if warmup_epochs < 0:
        raise ValueError(f"model.schedule.warmup_epochs must be >= 0, got {warmup_epochs}")
    warmup = min(round(warmup_epochs * steps_per_epoch), max(total_steps - 1, 0))
    if kind == "cosine":
        eta_min = min_lr_ratio * optimizer.param_groups[0]["lr"]
        if min_lr_ratio and len({group["lr"] for group in optimizer.param_groups}) > 1:
            # torch's CosineAnnealingLR has one floor for all groups, not one per group's lr
            raise ValueError("model.schedule.min_lr_ratio: a cosine floor needs one lr for the whole net; "
                             "with backbone_lr_scale < 1 use min_lr_ratio 0")
        main: LRScheduler = CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup, 1), eta_min=eta_min)
    elif kind == "multistep":
        # milestones count optimizer steps from the start of training, not from the end of warmup
        steps = sorted(round(m * steps_per_epoch) - warmup for m in milestones)
        main = MultiStepLR(optimizer, milestones=[max(s, 0) for s in steps], gamma=gamma)
    else:
        main = ConstantLR(optimizer, factor=1.0, total_iters=0)
    if warmup == 0:
        return main
    # step k of warmup: lr * (k + 1) / warmup (a one-step warmup is one step at lr)
    ramp = LinearLR(optimizer, start_factor=1.0 / warmup, end_factor=1.0, total_iters=warmup - 1) \
        if warmup > 1 else ConstantLR(optimizer, factor=1.0, total_iters=0)
    return SequentialLR(optimizer, [ramp, main], milestones=[warmup])
