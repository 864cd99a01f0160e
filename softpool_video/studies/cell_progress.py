"""Where a running study cell is: `progress.json` in its folder, for `study --status`."""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from softpool_video.reporting import write_json_atomic

PROGRESS_FILE = "progress.json"


class CellProgress(pl.Callback):
    """Writes the stage, epoch, step and the last logged metrics (rank 0): when training
    starts, at most every `every_s` seconds during it, and after every validation."""

    def __init__(self, cell_dir: Path, every_s: float = 10.0) -> None:
        self.path = Path(cell_dir) / PROGRESS_FILE
        self.every_s = every_s
        self._written = 0.0

    def _write(self, trainer: pl.Trainer, stage: str) -> None:
        if not trainer.is_global_zero:
            return
        metrics: dict[str, Any] = {}
        for key, value in trainer.callback_metrics.items():
            try:
                metrics[key] = float(value)
            except (TypeError, ValueError):
                continue
        write_json_atomic(self.path, {
            "stage": stage, "epoch": trainer.current_epoch, "step": trainer.global_step,
            "max_epochs": trainer.max_epochs, "metrics": metrics,
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}, indent=1)
        self._written = time.monotonic()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, "training")

    def on_train_batch_end(self, trainer: pl.Trainer, *_: Any) -> None:
        if time.monotonic() - self._written >= self.every_s:
            self._write(trainer, "training")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._write(trainer, "training")

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, "testing")
