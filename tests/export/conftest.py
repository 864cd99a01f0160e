"""Fixtures of the export and predict tests: a two-class subset of the demo dataset and a tiny
SoftPool model trained on it with the real VideoClassifier and UCF101DataModule, saved as an
ordinary Lightning checkpoint. Session-scoped: the data is written and the model trained once
however many modules use them."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

# Two demo classes a tiny network separates within a few dozen steps.
CLASSES = ("MoveUp", "Grow")
SAMPLING = {"clip_len": 8, "frame_interval": 2, "test_clips": 2}
TRANSFORMS = {"crop_size": 48, "resize_short": 48, "train_crop": "centre", "flip": False, "test_crops": 1}
TRAIN_STEPS = 100
SEED = 0
LR = 0.004  # the demo config's AdamW rate; 0.01 sometimes diverges within 100 steps

@dataclass(frozen=True)
class TrainedRun:
    checkpoint: Path
    data_root: Path
    test_videos: list[tuple[Path, str]]  # (video, true class) from the held-out groups
    test_metrics: dict[str, float]  # trainer.test of the checkpoint, as the benchmark records it


def _two_class_root(full: Path, root: Path) -> Path:
    """UCF-101 layout holding only CLASSES, relabelled 1..2 (videos symlinked, not copied)."""
    (root / "UCF-101").mkdir(parents=True)
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    for name in CLASSES:
        (root / "UCF-101" / name).symlink_to((full / "UCF-101" / name).resolve(), target_is_directory=True)
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(CLASSES)))
    train, test = [], []
    for line in (full / "ucfTrainTestlist" / "trainlist01.txt").read_text().split():
        if "/" in line and line.split("/")[0] in CLASSES:
            train.append(f"{line} {CLASSES.index(line.split('/')[0]) + 1}\n")
    for line in (full / "ucfTrainTestlist" / "testlist01.txt").read_text().split():
        if line.split("/")[0] in CLASSES:
            test.append(line + "\n")
    (lists / "trainlist01.txt").write_text("".join(train))
    (lists / "testlist01.txt").write_text("".join(test))
    return root


@pytest.fixture(scope="session")
def run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import ModelCheckpoint

    from softpool_video.datamodules import UCF101DataModule, make_demo_dataset
    from softpool_video.training import VideoClassifier

    base = tmp_path_factory.mktemp("export_run")
    full = make_demo_dataset(base / "demo", seed=0, groups=22, clips_per_group=1, width=64, height=48)
    root = _two_class_root(full, base / "two_class")
    dm = UCF101DataModule(str(root), split=1, sampling=SAMPLING, transforms=TRANSFORMS,
                          loading={"batch_size": 8, "num_workers": 0}, seed=0)
    ckpt_dir = base / "checkpoints"
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=TRAIN_STEPS, limit_val_batches=0,
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[ModelCheckpoint(dirpath=ckpt_dir, save_last=True)])
    with torch.random.fork_rng():
        pl.seed_everything(SEED, workers=True, verbose=False)  # the initial weights too
        model = VideoClassifier(num_classes=dm.num_classes, class_names=dm.class_names, arch="r2plus1d_tiny",
                                pooling="softpool", optimisation={"optimizer": "adamw", "lr": LR, "weight_decay": 0.0},
                                schedule={"name": "constant"})
        trainer.fit(model, datamodule=dm)
        tested = trainer.test(model, datamodule=dm, verbose=False)
    checkpoint = ckpt_dir / "last.ckpt"
    metrics = {k: float(v) for k, v in tested[0].items()}
    # where the study grid keeps the test result of a run's checkpoint
    (base / "result.json").write_text(json.dumps({"best_checkpoint": str(checkpoint), "metrics": metrics}))
    tests = []
    for line in (root / "ucfTrainTestlist" / "testlist01.txt").read_text().split():
        tests.append((root / "UCF-101" / line, line.split("/")[0]))
    return TrainedRun(checkpoint, root, tests, metrics)


@pytest.fixture(scope="module")
def model(run: TrainedRun):
    from softpool_video.checkpoint import load_checkpoint
    return load_checkpoint(run.checkpoint)
