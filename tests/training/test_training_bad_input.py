"""Bad input at the training CLI: a short message naming the key or the models, exit code 2."""
from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from run_args import tiny_args

from softpool_video import cli
from softpool_video.training import VideoClassifier


def fails(argv: list[str], capsys, subcommand: str = "fit") -> str:
    assert cli.main([subcommand, *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) <= 12, err  # a message, not the usage of every option
    return err


@pytest.mark.parametrize("yaml_text,names", [
    ("model:\n  archh: r3d_tiny\n", ["model.archh"]),  # unknown key
    ("trainer:\n  max_epochs: lots\n", ["trainer.max_epochs", "lots"]),  # wrong type
    ("data:\n  init_args:\n    loading:\n      batch_size: two\n", ["batch_size", "two"]),  # wrong type, nested
    ("data:\n  init_args:\n    batch_size: 4\n", ["batch_size"]),  # a data option outside its group
])
def test_bad_config_file_names_the_key(demo_root, tmp_path, capsys, yaml_text, names):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    err = fails([*tiny_args(demo_root, tmp_path), "--config", str(config)], capsys)
    for name in names:
        assert name in err
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("flag,value,message", [
    ("--data.init_args.loading.batch_size", "0", "loading.batch_size must be a positive integer, got 0"),
    ("--data.init_args.val_source", "bogus", "val_source='bogus' is not supported for UCF-101"),
])
def test_a_value_the_datamodule_refuses_is_one_line(demo_root, tmp_path, capsys, flag, value, message):
    err = fails([*tiny_args(demo_root, tmp_path), flag, value], capsys)
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_unknown_command_line_key_is_named(demo_root, tmp_path, capsys):
    err = fails([*tiny_args(demo_root, tmp_path), "--trainer.max_epocs", "3"], capsys)
    assert "--trainer.max_epocs" in err


def save_checkpoint_of(arch: str, path: Path, num_classes: int = 6, **hparams) -> Path:
    """A checkpoint as a VideoClassifier fit writes it (weights, hyperparameters, version)."""
    model = VideoClassifier(num_classes, arch=arch, **hparams)
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "pytorch-lightning_version": pl.__version__, "epoch": 0, "global_step": 0}, path)
    return path


def test_checkpoint_of_another_model_names_both(demo_root, tmp_path, capsys):
    ckpt = save_checkpoint_of("r3d_tiny", tmp_path / "r3d.ckpt")
    err = fails([*tiny_args(demo_root, tmp_path), "--ckpt_path", str(ckpt)], capsys, "test")
    assert "r3d_tiny" in err and "r2plus1d_tiny" in err and "differing: arch" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_checkpoint_with_other_classes_is_refused(demo_root, tmp_path, capsys):
    ckpt = save_checkpoint_of("r2plus1d_tiny", tmp_path / "ten.ckpt", num_classes=10)
    err = fails([*tiny_args(demo_root, tmp_path), "--ckpt_path", str(ckpt)], capsys, "test")
    assert "10 classes" in err and "6 classes" in err and "num_classes" in err


def test_foreign_weights_without_hyperparameters_are_summarised(demo_root, tmp_path, capsys):
    ckpt = save_checkpoint_of("i3d_tiny", tmp_path / "i3d.ckpt")
    checkpoint = torch.load(ckpt, weights_only=False)
    del checkpoint["hyper_parameters"]
    torch.save(checkpoint, ckpt)
    err = fails([*tiny_args(demo_root, tmp_path), "--ckpt_path", str(ckpt)], capsys, "test")
    assert "do not fit model.arch='r2plus1d_tiny'" in err and "missing" in err and "unexpected" in err
    assert len(err.strip().splitlines()) == 1


def test_a_file_that_is_not_a_checkpoint(demo_root, tmp_path, capsys):
    bad = tmp_path / "last.ckpt"
    bad.write_bytes(b"\x00" * 100)
    err = fails([*tiny_args(demo_root, tmp_path), "--ckpt_path", str(bad)], capsys, "test")
    assert "not a readable checkpoint" in err and "last.ckpt" in err


@pytest.mark.parametrize("flag,value,grouped", [
    ("--model.lr", "0.1", "--model.optimisation.lr"),
    ("--model.mixup_alpha=0.2", None, "--model.mixing.mixup_alpha"),
    ("--model.label_smoothing", "0.1", "--model.head.label_smoothing"),
])
def test_a_flat_model_option_names_its_group(demo_root, tmp_path, capsys, flag, value, grouped):
    err = fails([*tiny_args(demo_root, tmp_path), flag, *([value] if value else [])], capsys)
    assert f"{flag.split('=')[0]} is now {grouped}" in err and len(err.strip().splitlines()) == 1, err


def test_a_grouped_option_in_a_config_file_reaches_the_model(demo_root, tmp_path):
    config = tmp_path / "extra.yaml"
    config.write_text("model:\n  optimisation: {lr: 0.003}\n  schedule: {name: constant}\n"
                      "  head: {aggregation: max}\n")
    assert cli.main(["fit", *tiny_args(demo_root, tmp_path), "--config", str(config)]) == 0
    ckpt = torch.load(next((tmp_path).rglob("last.ckpt")), weights_only=False)
    hparams = ckpt["hyper_parameters"]
    # demo.yaml's adamw and weight decay stay; the extra file overrides field by field
    assert hparams["optimisation"] == {"optimizer": "adamw", "lr": 0.003, "weight_decay": 0.05, "momentum": 0.9,
                                       "nesterov": True, "backbone_lr_scale": 1.0}
    assert hparams["schedule"]["name"] == "constant" and hparams["schedule"]["warmup_epochs"] == 1
    assert hparams["head"] == {"label_smoothing": 0.1, "aggregation": "max"}
