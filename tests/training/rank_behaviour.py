"""Callbacks for tests/training/test_ddp_faults.py, set by environment variables (a DDP run
starts its other ranks as fresh processes, which read the same environment):

- SOFTPOOL_TEST_HANG_RANK=r: rank r sleeps in its second training step, a rank that hangs
  while the others wait for it in the gradient all-reduce;
- SOFTPOOL_TEST_STEP_MARKER=path: each rank touches `path.<rank>` after every training step,
  and steps take at least 0.2 s, so a test can signal a run that is surely training."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl


class HangRank(pl.Callback):
    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_rank == int(os.environ["SOFTPOOL_TEST_HANG_RANK"]) and trainer.global_step == 1:
            time.sleep(600)


class MarkSteps(pl.Callback):
    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        time.sleep(0.2)
        Path(f"{os.environ['SOFTPOOL_TEST_STEP_MARKER']}.{trainer.global_rank}").touch()
