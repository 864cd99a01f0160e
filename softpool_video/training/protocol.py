"""The evaluation protocol: the list that reports a result never chooses the checkpoint.

A checkpoint monitored on validation (ModelCheckpoint or EarlyStopping with a `monitor`)
is chosen by the validation list. When that list is the one `test` reports (UCF-101 or
HMDB-51 with `val_source: test`, Kinetics with `val_source: val` while its val CSV is the
test set) the reported accuracy is optimistically biased, and more so for methods whose
accuracy varies more between epochs, which is exactly what a pooling comparison must not
reward. `SelectionProtocol` refuses such a fit before it starts, unless the datamodule
says `allow_test_selection: true` (to reproduce papers that selected on test); then every
result of the run is marked (`selected_on_test`).
"""
from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint

log = logging.getLogger(__name__)

SELECTED_ON_TEST_NOTE = "checkpoint selected on the reported test list (allow_test_selection): optimistic"


def monitored_metrics(trainer: pl.Trainer) -> list[str]:
    """The metrics that choose a checkpoint or stop training: what validation decides."""
    return [cb.monitor for cb in trainer.callbacks
            if isinstance(cb, (ModelCheckpoint, EarlyStopping)) and getattr(cb, "monitor", None)]


def selection_protocol(trainer: pl.Trainer, datamodule: Any) -> dict[str, Any]:
    """What chooses the checkpoint and whether that leaks the reported test list.

    Raises ValueError for a leaking fit that the datamodule does not explicitly allow.
    """
    describe = getattr(datamodule, "protocol", None)
    protocol: dict[str, Any] = dict(describe()) if callable(describe) else {}
    monitors = monitored_metrics(trainer)
    protocol["monitor"] = monitors[0] if monitors else None
    leaks = bool(monitors) and bool(protocol.get("validates_on_test"))
    protocol["selected_on_test"] = leaks
    if leaks and not getattr(datamodule, "allow_test_selection", False):
        raise ValueError(
            f"data.init_args.val_source={protocol.get('val_source')!r} validates on the list that `test` "
            f"reports ({protocol.get('test_subset')!r}), and checkpoint.monitor={monitors[0]!r} would choose "
            f"the checkpoint on it: the test list would pick its own model, an optimistic result. Use "
            f"val_source='holdout' (the default: held-out training groups), or checkpoint.monitor=null (keep "
            f"the last epoch), or, to reproduce a paper that selected on test, "
            f"--data.init_args.allow_test_selection true (every result is then marked as selected on test)")
    return protocol


class SelectionProtocol(Callback):
    """Checks the protocol when a fit starts. The module keeps it (`selection_protocol`) and
    saves it in its checkpoints, so a later `test` of such a checkpoint is marked too."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        protocol = selection_protocol(trainer, trainer.datamodule)
        pl_module.selection_protocol = protocol
        if protocol["selected_on_test"]:
            log.warning("%s; every result of this run is marked selected_on_test", SELECTED_ON_TEST_NOTE)
