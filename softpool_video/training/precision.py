"""bf16-mixed on the CPU without oneDNN's intermittent non-finite conv3d weight gradients.

On torch 2.14.1's CPU build, the bf16 weight gradient of conv3d through oneDNN is now
and then non-finite for identical inputs (seen: 11 of 100 steps of r2plus1d_tiny with max
pooling, 4-63 of 50-100 with SoftPool; always a (3, 1, 1) temporal conv; 0 of 100 with
oneDNN off), so a bf16-mixed fit on the CPU can stop with a NaN loss at step 1 or 2.
`CPUBf16Guard` turns oneDNN off for the run (torch's native kernels then compute the same
bf16 convolutions, about 10x slower on the CPU) and restores the setting afterwards. GPUs
and every other precision are untouched.
"""
from __future__ import annotations

import logging

import pytorch_lightning as pl
import torch
from pytorch_lightning.accelerators import CPUAccelerator

log = logging.getLogger(__name__)


def needs_guard(trainer: pl.Trainer) -> bool:
    return isinstance(trainer.accelerator, CPUAccelerator) and str(trainer.precision) == "bf16-mixed"


class CPUBf16Guard(pl.Callback):
    """oneDNN off during a CPU bf16-mixed run (fit, validate, test or predict), restored after it."""

    def __init__(self) -> None:
        self._saved: bool | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not needs_guard(trainer) or self._saved is not None:
            return
        self._saved = torch.backends.mkldnn.enabled
        if self._saved:
            log.warning("precision bf16-mixed on the CPU: oneDNN is off for this run (its bf16 conv3d weight "
                        "gradient is intermittently non-finite in torch %s); convolutions run slower",
                        torch.__version__)
        torch.backends.mkldnn.enabled = False

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._saved is not None:
            torch.backends.mkldnn.enabled = self._saved
            self._saved = None
