"""The VideoClassifier's training arguments in four groups: how weights are updated
(`Optimisation`), how the learning rate moves over the run (`Schedule`), how training
batches are mixed (`Mixing`) and how the classifier head is trained and read out (`Head`).

As the datamodule's groups (datamodules/options.py, softpool_video/option_groups.py): each
group is a frozen dataclass that checks its values when built and names the option in its
errors ("model.optimisation.lr must be a positive number, got 0"). On the command line and
in configs a group is a nested option or mapping:

    --model.optimisation.lr 0.1 --model.schedule.name multistep --model.mixing.mixup_alpha 0.2

    model:
      arch: r2plus1d_tiny
      pooling: softpool
      optimisation: {optimizer: adamw, lr: 0.01, weight_decay: 0.05}
      schedule: {name: cosine, warmup_epochs: 1}
      head: {label_smoothing: 0.1}

Checkpoints written before the grouping hold these arguments flat (`lr`, `schedule: cosine`);
`group_model_arguments` moves them into their groups.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from softpool_video import option_groups
from softpool_video.evaluation.aggregation import AGGREGATIONS

from .mixing import check_mixing
from .optim import check_backbone_lr_scale, check_optimizer, check_schedule


def _number(option: str, value: Any, *, positive: bool = False) -> None:
    """A real number (>= 0, or > 0 when `positive`); bools and NaN are refused."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)
    if not ok or value < 0 or (positive and value == 0):
        bound = "a positive number" if positive else "a number >= 0"
        raise ValueError(f"{option} must be {bound}, got {value!r}")


@dataclass(frozen=True)
class Optimisation:
    """How the weights are updated.

    Args:
        optimizer: 'sgd' or 'adamw'.
        lr: the peak learning rate (after warmup).
        weight_decay: decoupled for AdamW, L2 for SGD; never on norms and biases.
        momentum, nesterov: SGD only.
        backbone_lr_scale: every parameter outside the classifier head trains at lr x this,
            in (0, 1] (1.0: one lr for the whole net; e.g. 0.1 when fine-tuning).
    """

    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.01
    weight_decay: float = 1e-4
    momentum: float = 0.9
    nesterov: bool = True
    backbone_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        check_optimizer(self.optimizer)
        _number("model.optimisation.lr", self.lr, positive=True)
        _number("model.optimisation.weight_decay", self.weight_decay)
        _number("model.optimisation.momentum", self.momentum)
        check_backbone_lr_scale(self.backbone_lr_scale)


@dataclass(frozen=True)
class Schedule:
    """How the learning rate moves over the run, stepped every optimizer step.

    Args:
        name: 'cosine', 'multistep' or 'constant', after `warmup_epochs` of linear warmup.
        warmup_epochs: epochs of linear warmup from lr / W (fractions allowed).
        milestones, gamma: multistep's epochs (fractions allowed) and decay factor.
        min_lr_ratio: cosine's floor as a fraction of lr.
    """

    name: Literal["cosine", "multistep", "constant"] = "cosine"
    warmup_epochs: float = 0.0
    milestones: tuple[float, ...] = ()
    gamma: float = 0.1
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        check_schedule(self.name)
        _number("model.schedule.warmup_epochs", self.warmup_epochs)
        # frozen: YAML lists become tuples; checkpoints before the grouping wrote None for none
        object.__setattr__(self, "milestones", tuple(self.milestones or ()))
        for milestone in self.milestones:
            _number("model.schedule.milestones", milestone, positive=True)
        _number("model.schedule.gamma", self.gamma, positive=True)
        _number("model.schedule.min_lr_ratio", self.min_lr_ratio)


@dataclass(frozen=True)
class Mixing:
    """MixUp and CutMix on training batches.

    Args:
        mixup_alpha, cutmix_alpha: Beta(alpha, alpha) of MixUp / CutMix (0: off).
        mix_prob: fraction of training batches mixed (MixUp or CutMix, evenly, when both are on).
    """

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0

    def __post_init__(self) -> None:
        check_mixing(self.mixup_alpha, self.cutmix_alpha, self.mix_prob)


@dataclass(frozen=True)
class Head:
    """How the classifier head is trained and how its scores for one video are combined.

    Args:
        label_smoothing: cross-entropy label smoothing, in [0, 1).
        aggregation: how the views of a video are combined: 'mean_softmax', 'mean_logits' or 'max'.
    """

    label_smoothing: float = 0.0
    aggregation: Literal["mean_softmax", "mean_logits", "max"] = "mean_softmax"

    def __post_init__(self) -> None:
        if not (isinstance(self.label_smoothing, int | float) and 0.0 <= self.label_smoothing < 1.0):
            raise ValueError(f"model.head.label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"model.head.aggregation={self.aggregation!r} is not supported; choose one of "
                             f"{', '.join(AGGREGATIONS)}")


# The VideoClassifier argument each group is passed as.
MODEL_GROUPS: dict[str, type] = {"optimisation": Optimisation, "schedule": Schedule, "mixing": Mixing,
                                 "head": Head}
# the flat argument of checkpoints before the grouping that has another name in its group
_RENAMED = {"schedule": ("schedule", "name")}


def group_model_arguments(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """A VideoClassifier's hyper-parameters in the grouped form, from either form (checkpoints
    written before the grouping hold `lr`, `schedule: cosine`, ... flat)."""
    return option_groups.group_arguments(hparams, MODEL_GROUPS, _RENAMED)


# --model.<field> of the flat options before the grouping -> its grouped name (not `schedule`:
# --model.schedule names the group now)
_FLAT_OPTIONS = {name: f"{group}.{name}" for name, group in option_groups.fields_by_group(MODEL_GROUPS).items()
                 if name != "name"}


def refuse_flat_options(args: list[str]) -> None:
    """A command line still using a flat model option (`--model.lr`) gets one error naming
    the grouped one (`--model.optimisation.lr`), not the parser's "unrecognized arguments"."""
    for arg in args:
        key = arg.split("=", 1)[0]
        flat = key.removeprefix("--model.")
        if key.startswith("--model.") and flat in _FLAT_OPTIONS:
            raise ValueError(f"{key} is now --model.{_FLAT_OPTIONS[flat]}: the model's training options "
                             f"come in groups ({', '.join(MODEL_GROUPS)})")
