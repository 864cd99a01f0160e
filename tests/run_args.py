"""Command-line arguments for tiny, fast `softpool-video fit|test|predict` runs on the demo data
(the `demo_root` fixture in conftest.py), shared by the training tests."""
from __future__ import annotations

from pathlib import Path

TEST_CLIPS, TEST_CROPS, BATCH = 2, 1, 4


def tiny_args(root: Path, out: Path, epochs: int = 1) -> list[str]:
    return ["--config", "demo", "--data.init_args.root", str(root), "--data.init_args.loading.num_workers", "0",
            "--data.init_args.sampling.clip_len", "4", "--data.init_args.transforms.crop_size", "32",
            "--data.init_args.transforms.resize_short", "32", "--data.init_args.loading.batch_size", str(BATCH),
            "--data.init_args.sampling.test_clips", str(TEST_CLIPS),
            "--data.init_args.transforms.test_crops", str(TEST_CROPS),
            "--trainer.max_epochs", str(epochs), "--trainer.limit_train_batches", "2",
            "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "2",
            "--trainer.limit_predict_batches", "2", "--trainer.log_every_n_steps", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(out)]


def tiny_cell_args(root: Path) -> list[str]:
    """What `study` passes to every cell for a tiny run (the cell sets its own folder)."""
    return ["--data.init_args.root", str(root), "--data.init_args.loading.num_workers", "0",
            "--data.init_args.sampling.clip_len", "4", "--data.init_args.transforms.crop_size", "32",
            "--data.init_args.transforms.resize_short", "32", "--data.init_args.loading.batch_size", str(BATCH),
            "--data.init_args.sampling.test_clips", str(TEST_CLIPS),
            "--data.init_args.transforms.test_crops", str(TEST_CROPS),
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
            "--trainer.limit_test_batches", "2", "--trainer.enable_progress_bar", "false",
            "--trainer.logger", "false"]
