"""Save and requeue on SLURM's warning signal, at a step boundary.

SLURM sends a job its warning signal before the time limit (`--signal=USR1@90`; submitit asks
for USR2) and on `scancel --signal=USR1`. Lightning's own handler saves a checkpoint inside
the signal handler, wherever the step happens to be; the handler here only raises a flag,
and `RequeueOnSignal` acts on it after the current training batch: every rank agrees on the
same batch, `last.ckpt` is written as a mid-epoch checkpoint (with the loader's state), rank 0
requeues the job with `scontrol requeue`, and the run stops with `Requeued`. The requeued job
runs the same cell again, which resumes from that `last.ckpt` and ends with the numbers of an
uninterrupted run.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from softpool_video.reporting import write_json_atomic

log = logging.getLogger(__name__)

WARNING_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)
REQUEUES_FILE = "requeues.json"  # in the cell's folder: how often and when it was requeued
_requested: list[int] = []  # signals received; a list so the handler needs no `global`


class Requeued(Exception):
    """The run saved its checkpoint and its job was requeued: this process should end now."""


def install_signal_handlers() -> None:
    """Catch the warning signals from now on (call it first thing in the job, before the slow
    imports: the default action of SIGUSR1 ends the process). Lightning registers no handler of
    its own for a signal that already has one."""
    for signum in WARNING_SIGNALS:
        signal.signal(signum, lambda received, _frame: _requested.append(received))


def slurm_job_id() -> str | None:
    """The id `scontrol requeue` takes: `<array>_<task>` in a job array, else the job id."""
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array:
        return f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


class RequeueOnSignal(pl.Callback):
    """After a training batch during which a warning signal arrived: checkpoint to `last`,
    requeue the job (rank 0), raise `Requeued` on every rank."""

    def __init__(self, last: Path, cell_dir: Path) -> None:
        self.last = Path(last)
        self.cell_dir = Path(cell_dir)

    def on_train_batch_end(self, trainer: pl.Trainer, *_: Any) -> None:
        # a collective every batch: ranks must stop at the same batch or DDP hangs
        if not trainer.strategy.reduce_boolean_decision(bool(_requested), all=False):
            return
        received = signal.Signals(_requested[0]).name if _requested else "a peer's signal"
        trainer.save_checkpoint(self.last, weights_only=False)  # the full state: the requeued job resumes from it
        if trainer.is_global_zero:
            job = slurm_job_id()
            log.warning("%s: saved %s at step %d; requeueing job %s", received, self.last,
                        trainer.global_step, job)
            self._record(job, received, trainer.global_step)
            if job is not None:
                subprocess.run(["scontrol", "requeue", job], check=True, timeout=60)
        raise Requeued(f"requeued at step {trainer.global_step} after {received}")

    def _record(self, job: str | None, received: str, step: int) -> None:
        path = self.cell_dir / REQUEUES_FILE
        try:
            events = json.loads(path.read_text())
        except (OSError, ValueError):
            events = []
        events.append({"job": job, "signal": received, "step": step,
                       "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
        write_json_atomic(path, events, indent=1)
