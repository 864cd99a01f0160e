"""The VideoClassifier's option groups (training/options.py): built from dataclasses or dicts,
kept as plain data in hyper-parameters, read back from checkpoints of either form."""
from __future__ import annotations

import pytest
import torch

from softpool_video.checkpoint import load_checkpoint
from softpool_video.training import VideoClassifier
from softpool_video.training.options import Head, Mixing, Optimisation, Schedule, group_model_arguments

# the flat hyper-parameters a checkpoint written before the grouping holds
FLAT = {"num_classes": 3, "arch": "r2plus1d_tiny", "pooling": "max", "model_kwargs": None, "class_names": None,
        "label_smoothing": 0.1, "optimizer": "adamw", "lr": 0.002, "weight_decay": 0.05, "momentum": 0.9,
        "nesterov": True, "schedule": "multistep", "warmup_epochs": 1.0, "milestones": [3, 6], "gamma": 0.5,
        "min_lr_ratio": 0.0, "aggregation": "mean_logits", "mixup_alpha": 0.2, "cutmix_alpha": 0.0,
        "mix_prob": 1.0, "backbone_lr_scale": 1.0, "clip_size": None}


def test_flat_hyperparameters_move_into_their_groups() -> None:
    grouped = group_model_arguments(FLAT)
    model = VideoClassifier(**grouped)
    assert model.optimisation == Optimisation("adamw", 0.002, 0.05)
    assert model.schedule == Schedule("multistep", 1.0, (3, 6), 0.5)
    assert model.mixing == Mixing(mixup_alpha=0.2)
    assert model.head == Head(0.1, "mean_logits")
    # already grouped: unchanged, and a grouped value wins over a stray flat one
    assert group_model_arguments({**grouped, "lr": 9.0})["optimisation"]["lr"] == 0.002


def test_groups_are_dataclasses_or_dicts_and_hparams_hold_plain_data() -> None:
    as_classes = VideoClassifier(3, optimisation=Optimisation(lr=0.5), schedule=Schedule(milestones=(2,)))
    as_dicts = VideoClassifier(3, optimisation={"lr": 0.5}, schedule={"milestones": [2]})
    assert as_classes.optimisation == as_dicts.optimisation and as_classes.schedule == as_dicts.schedule
    assert dict(as_dicts.hparams)["schedule"] == {"name": "cosine", "warmup_epochs": 0.0, "milestones": [2],
                                                   "gamma": 0.1, "min_lr_ratio": 0.0}
    assert all(type(as_classes.hparams[g]) is dict for g in ("optimisation", "schedule", "mixing", "head"))
    with pytest.raises(TypeError, match=r"model\.head must be a Head or a dict of its fields, got str"):
        VideoClassifier(3, head="max")


@pytest.mark.parametrize("form", ["grouped", "flat"])
def test_a_checkpoint_of_either_form_gives_its_aggregation(tmp_path, form) -> None:
    model = VideoClassifier(**group_model_arguments(FLAT))
    hparams = dict(model.hparams) if form == "grouped" else FLAT
    path = tmp_path / f"{form}.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams}, path)
    assert load_checkpoint(path).aggregation == "mean_logits"
