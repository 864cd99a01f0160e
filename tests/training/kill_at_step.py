"""A callback for tests/training/test_fault_resume.py: SIGKILLs the run's whole process group
(the trainer and its loader workers) in the training step given by SOFTPOOL_TEST_KILL_AT_STEP,
like a node lost mid-epoch. In the run itself, so the kill lands where it should on a slow
or busy machine too."""
from __future__ import annotations

import os
import signal
from typing import Any

import pytorch_lightning as pl


class KillAtStep(pl.Callback):
    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step >= int(os.environ["SOFTPOOL_TEST_KILL_AT_STEP"]):
            os.killpg(0, signal.SIGKILL)
