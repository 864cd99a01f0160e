"""Callbacks the SLURM tests (test_slurm_launcher.py) put into cells that run as jobs; the jobs
import them through PYTHONPATH, which sbatch passes on from the test.

SignalAtStep: in the first run of the job (not after a requeue), at training step
SOFTPOOL_TEST_SIGNAL_AT_STEP, sends the job SLURM's warning signal through `scancel
--signal=USR1`, as SLURM does before a time limit, and waits until it has arrived.
HoldCell: the cell named SOFTPOOL_TEST_HOLD_CELL waits at the start of training for as long
as the file SOFTPOOL_TEST_HOLD_FILE exists (writing `<file>.held` once it waits there).
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl


class SignalAtStep(pl.Callback):
    def on_train_batch_end(self, trainer: pl.Trainer, *_: Any) -> None:
        if os.environ.get("SLURM_RESTART_COUNT", "0") != "0":
            return
        if trainer.global_step == int(os.environ["SOFTPOOL_TEST_SIGNAL_AT_STEP"]):
            from softpool_video.training import requeue
            subprocess.run(["scancel", "--signal=USR1", requeue.slurm_job_id()], check=True)
            deadline = time.monotonic() + 30
            while not requeue._requested and time.monotonic() < deadline:
                time.sleep(0.05)


class HoldCell(pl.Callback):
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        hold = Path(os.environ.get("SOFTPOOL_TEST_HOLD_FILE", "/nonexistent"))
        if Path(trainer.default_root_dir).name != os.environ.get("SOFTPOOL_TEST_HOLD_CELL") or not hold.exists():
            return
        Path(f"{hold}.held").write_text(os.environ.get("SLURM_JOB_ID", ""))
        deadline = time.monotonic() + 300
        while hold.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
