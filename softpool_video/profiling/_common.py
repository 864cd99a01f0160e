"""Small helpers the profiling callbacks share."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from softpool_video.reporting import write_json_atomic


def batch_size(batch: Any) -> int:
    """Clips in a batch: the first dimension of batch["video"], of a tensor, or of a sequence's first tensor."""
    if isinstance(batch, dict):
        value = batch.get("video", next(iter(batch.values()), None))
    elif isinstance(batch, (list, tuple)) and batch:
        value = batch[0]
    else:
        value = batch
    return int(value.shape[0]) if isinstance(value, torch.Tensor) and value.dim() > 0 else 1


def summary_path(trainer: pl.Trainer, dirpath: str | Path | None, filename: str) -> Path:
    root = Path(dirpath) if dirpath is not None else Path(trainer.log_dir or trainer.default_root_dir)
    return root / filename


def write_json(path: Path, data: dict[str, Any]) -> None:
    """A callback's summary, written atomically (a reader never sees half a file)."""
    write_json_atomic(path, data, indent=1, default=str)


def log_scalars(trainer: pl.Trainer, metrics: dict[str, float], step: int) -> None:
    """Sends scalars straight to every logger (allowed where LightningModule.log is not, e.g. on_fit_end)."""
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=step)
