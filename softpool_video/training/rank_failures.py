"""Under DDP, a failure on one rank ends the run on every rank and says which rank failed.

Lightning re-raises a rank's exception in that rank only. Rank 0 started the other ranks
(its launcher), so when rank 0 fails they would run on until their next collective waits
out the process group's timeout; when another rank fails, Lightning's own child observer in
rank 0 stops them all. `StopAllRanks` closes the first gap: on an exception in rank 0 it
sends SIGTERM to the ranks it launched (the launcher's `kill`). A collective that is stuck
or out of step (a rank that hangs, a rank that skipped a step) fails on each waiting rank
when the strategy's `timeout` passes (configs/strategy/ddp.yaml: 10 minutes; raise it
with `--trainer.strategy.init_args.timeout h:m:s`). Each failing rank records its rank here,
so the command's one-line error names it (`failed_rank`).
"""
from __future__ import annotations

import logging
import signal
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)

_FAILED: dict[str, int] = {}  # rank and world size of this process's failed run


def failed_rank() -> dict[str, int] | None:
    """{'rank': r, 'world_size': w} when this process's distributed run failed, else None."""
    return dict(_FAILED) or None


class StopAllRanks(Callback):
    """On an exception under DDP: record this rank, and from rank 0 stop the ranks it launched."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        _FAILED.clear()  # a new run in this process (tests run several)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.world_size <= 1 or isinstance(exception, (SIGTERMException, KeyboardInterrupt)):
            return  # Lightning forwards SIGTERM and Ctrl-C to the other ranks itself
        _FAILED.update(rank=trainer.global_rank, world_size=trainer.world_size)
        log.error("rank %d of %d failed (%s); stopping the run on every rank", trainer.global_rank,
                  trainer.world_size, type(exception).__name__)
        launcher: Any = trainer.strategy.launcher
        if launcher is not None:
            launcher.kill(signal.SIGTERM)  # no-op in ranks that launched nothing
