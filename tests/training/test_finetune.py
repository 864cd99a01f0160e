"""Fine-tuning recipes: a torchvision Kinetics-400 state-dict file loads through the shipped config
(every backbone tensor unchanged, a new head for the dataset's classes), the backbone lr scale
reaches the optimizer and the warmup schedule, and the recipe fits a step in bf16-mixed."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torchvision.models.video as tv_video

from softpool_video.commands import test as test_command
from softpool_video.commands.fit import main as fit_main
from softpool_video.models import create_model
from softpool_video.training.cli import VideoCLI
from softpool_video.training.configs import expand_config_args, resolve_config
from softpool_video.training.module import VideoClassifier
from softpool_video.training.optim import classifier_head, parameter_groups

ARCHS = ("r2plus1d_18", "r3d_18", "mc3_18")
DEMO_CLASSES = 6


@pytest.fixture(scope="module")
def kinetics_files(tmp_path_factory) -> dict[str, Path]:
    """torchvision's networks with random weights, saved as its KINETICS400_V1 files are: a plain
    state dict (torch.save) of the 400-class model."""
    folder = tmp_path_factory.mktemp("kinetics_weights")
    files = {}
    for arch in ARCHS:
        torch.manual_seed(ARCHS.index(arch) + 1)
        net = getattr(tv_video, arch)(weights=None, num_classes=400)
        with torch.no_grad():  # BN statistics too, so a tensor left at its init would show
            for buffer in net.buffers():
                if buffer.is_floating_point():
                    buffer.uniform_(0.5, 1.5)
        files[arch] = folder / f"{arch}-kinetics.pth"
        torch.save(net.state_dict(), files[arch])
    return files


def data_args(root: Path) -> list[str]:
    return ["--data.class_path", "softpool_video.datamodules.UCF101DataModule", "--data.init_args.root", str(root),
            "--data.init_args.loading.num_workers", "0", "--data.init_args.sampling.clip_len", "4",
            "--data.init_args.sampling.frame_interval", "1", "--data.init_args.transforms.crop_size", "32",
            "--data.init_args.transforms.resize_short", "32", "--data.init_args.loading.batch_size", "2",
            "--data.init_args.sampling.test_clips", "1", "--data.init_args.transforms.test_crops", "1"]


@pytest.mark.filterwarnings("ignore:.*LightningCLI's args parameter")
@pytest.mark.parametrize("dataset", ["ucf101", "hmdb51"])
@pytest.mark.parametrize("arch", ARCHS)
def test_kinetics_file_loads_through_the_shipped_config(dataset, arch, kinetics_files, demo_root, tmp_path):
    name = f"{dataset}/{arch}_finetune"
    args = expand_config_args(["--config", name, "--model.model_kwargs.weights", str(kinetics_files[arch]),
                               *data_args(demo_root), "--trainer.accelerator", "cpu",
                               "--trainer.sync_batchnorm", "false", "--trainer.default_root_dir", str(tmp_path)])
    cli = VideoCLI(args=args, run=False)  # run=False: no subcommand, the fit options
    assert cli.model.hparams.arch == arch and cli.model.hparams.pooling == "softpool"
    saved = torch.load(kinetics_files[arch], weights_only=True)
    ours = cli.model.net.state_dict()
    backbone = [k for k in saved if not k.startswith("fc.")]
    assert len(backbone) > 100 and all(k in ours for k in backbone)
    for key in backbone:
        assert torch.equal(ours[key], saved[key]), key
    # the 400-class head is skipped; the new one has the demo's classes, at its fresh init
    assert ours["fc.weight"].shape == (DEMO_CLASSES, 512) and ours["fc.bias"].shape == (DEMO_CLASSES,)
    assert torch.isfinite(ours["fc.weight"]).all() and ours["fc.weight"].std() > 0
    assert classifier_head(cli.model.net, DEMO_CLASSES) is cli.model.net.fc


def test_shipped_recipes_document_the_file_and_the_command():
    for dataset in ("ucf101", "hmdb51"):
        for arch in ARCHS:
            text = resolve_config(f"{dataset}/{arch}_finetune").read_text()
            assert "--model.model_kwargs.weights" in text and f"{arch}-" in text
            assert f"--config {dataset}/{arch}_finetune" in text


def test_missing_weights_file_names_the_option(demo_root, tmp_path, capsys):
    args = ["--config", "ucf101/r3d_18_finetune", *data_args(demo_root), "--trainer.accelerator", "cpu",
            "--trainer.sync_batchnorm", "false", "--trainer.default_root_dir", str(tmp_path)]
    assert fit_main(args) == 2  # the shipped placeholder path: the user has to give the file
    assert "model_kwargs.weights" in capsys.readouterr().err


def test_backbone_lr_scale_puts_only_the_head_at_full_lr():
    net = create_model("r2plus1d_tiny", 7)
    groups = parameter_groups(net, 0.05, lr=0.1, backbone_lr_scale=0.1, num_classes=7)
    head = {id(p) for p in net.fc.parameters()}
    assert [g["lr"] for g in groups] == [0.1, 0.1, pytest.approx(0.01), pytest.approx(0.01)]
    assert {id(p) for g in groups[:2] for p in g["params"]} == head
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    # weight decay stays on conv / linear weights only, in the head and in the backbone
    for group in groups:
        assert all((p.ndim > 1) == (group["weight_decay"] > 0) for p in group["params"])
    # scale 1.0: the groups of before (no per-group lr)
    assert all("lr" not in g for g in parameter_groups(net, 0.05, lr=0.1, backbone_lr_scale=1.0, num_classes=7))


def test_classifier_head_finds_the_layer_that_outputs_the_classes():
    i3d = create_model("i3d_tiny", 9)
    assert classifier_head(i3d, 9) is i3d.logits  # a 1x1x1 conv, not a linear layer
    with pytest.raises(ValueError, match=r"model.optimisation.backbone_lr_scale: found no classifier layer with 10 outputs"):
        classifier_head(i3d, 10)


@pytest.mark.parametrize("scale", [0.0, 1.5, -1.0])
def test_bad_backbone_lr_scale_names_the_option(scale):
    with pytest.raises(ValueError, match=r"model.optimisation.backbone_lr_scale must be in \(0, 1\]"):
        VideoClassifier(num_classes=5, optimisation={"backbone_lr_scale": scale})


def test_warmup_and_cosine_scale_both_lrs_alike(demo_root, tmp_path):
    import pytorch_lightning as pl

    from softpool_video.datamodules import UCF101DataModule

    model = VideoClassifier(num_classes=DEMO_CLASSES, optimisation={"lr": 0.2, "backbone_lr_scale": 0.25, "optimizer": "sgd"},
                            schedule={"warmup_epochs": 1})
    data = UCF101DataModule(root=str(demo_root), sampling={"clip_len": 4},
                            transforms={"crop_size": 32, "resize_short": 32},
                            loading={"batch_size": 8, "num_workers": 0})
    trainer = pl.Trainer(accelerator="cpu", max_epochs=2, limit_train_batches=3, limit_val_batches=0,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    seen = []

    class Record(pl.Callback):
        def on_train_batch_start(self, trainer, *args):
            seen.append([g["lr"] for g in trainer.optimizers[0].param_groups])

    trainer.callbacks.append(Record())
    trainer.fit(model, datamodule=data)
    assert len(seen) == 6
    for lrs in seen:
        head, backbone = lrs[0], lrs[-1]
        assert math.isclose(backbone, 0.25 * head, rel_tol=1e-9)
    assert seen[0][0] == pytest.approx(0.2 / 3)  # warmup: first of 3 steps
    assert seen[2][0] == pytest.approx(0.2)  # warmup done
    assert seen[-1][0] < seen[3][0]  # cosine decay after it


@pytest.mark.slow
def test_fit_of_the_shipped_recipe_in_bf16_mixed(kinetics_files, demo_root, tmp_path):
    args = ["--config", "ucf101/r2plus1d_18_finetune", "--model.model_kwargs.weights",
            str(kinetics_files["r2plus1d_18"]), *data_args(demo_root), "--model.optimisation.backbone_lr_scale", "0.1",
            "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.sync_batchnorm", "false",
            "--trainer.precision", "bf16-mixed", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
            "--trainer.limit_val_batches", "1", "--trainer.log_every_n_steps", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path)]
    assert fit_main(args) == 0
    assert torch.backends.mkldnn.enabled  # CPUBf16Guard turned oneDNN off for the run only
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert checkpoint["global_step"] == 2
    weights = checkpoint["state_dict"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    lrs = [g["lr"] for g in checkpoint["optimizer_states"][0]["param_groups"]]
    assert lrs[0] == pytest.approx(10 * lrs[-1])  # head at lr, backbone at lr * 0.1
    # the README's test command: the same options (weights included) and --ckpt_path last
    assert test_command.main([*args, "--ckpt_path", "last", "--trainer.limit_test_batches", "1"]) == 0
