"""MemoryProfiler: what a training step holds in memory.

- On CUDA, the peak allocated and reserved memory of each phase of a step: forward
  (batch start to `on_before_backward`), backward (to `on_after_backward`) and optimizer
  (to the batch end), via `reset_peak_memory_stats` / `max_memory_allocated`. These are
  allocator counters read on the host: no synchronisation.
- Bytes autograd saves for backward, in total and per pooling layer
  (`SavedTensorCounter`), counted on `saved_tensor_steps` steps after `warmup_steps`: the
  count has a Python hook per saved tensor, so it is not left on for the whole run, and by
  default it runs on the first two steps, the LatencyProfiler's default warm-up.
- The process peak RSS (CPU memory; it only ever grows, so it includes whatever ran
  before in the same process).
- Optionally a CUDA memory snapshot (`torch.cuda.memory._dump_snapshot`) of the first
  steps, for https://pytorch.org/memory_viz.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from softpool_video.measure import SavedTensorCounter, environment, peak_rss_bytes

from ._common import log_scalars, summary_path, write_json
from .layers import pooling_layers

log = logging.getLogger(__name__)

MIB = 2**20
GPU_PHASES = ("forward", "backward", "optimizer")


class MemoryProfiler(Callback):
    """Peak memory per phase, saved-activation bytes and peak RSS; a JSON summary per run.

    Args:
        warmup_steps: steps before the saved-tensor count starts (the memory peaks cover every step).
            The count adds a Python hook per saved tensor, so by default it runs on the first
            steps, which the LatencyProfiler leaves out as its warm-up: it never slows a timed step.
        saved_tensor_steps: how many steps to count saved tensors on (0: never, -1: every step).
        cuda_snapshot: file name (in the log folder) or path of a CUDA memory snapshot
            (.pickle) of the first `snapshot_steps` steps; ignored without CUDA.
        snapshot_steps: steps recorded in the snapshot.
        filename, dirpath: the JSON summary's name and folder (default: the trainer's log folder).
        enabled: False makes every hook return at once.
    """

    def __init__(self, warmup_steps: int = 0, saved_tensor_steps: int = 2, cuda_snapshot: str | None = None,
                 snapshot_steps: int = 3, filename: str = "memory_profile.json", dirpath: str | None = None,
                 enabled: bool = True) -> None:
        if warmup_steps < 0:
            raise ValueError(f"MemoryProfiler.warmup_steps must be >= 0, got {warmup_steps}")
        if saved_tensor_steps < -1:
            raise ValueError(f"MemoryProfiler.saved_tensor_steps must be >= -1 (-1: every step), "
                             f"got {saved_tensor_steps}")
        if snapshot_steps < 1:
            raise ValueError(f"MemoryProfiler.snapshot_steps must be >= 1, got {snapshot_steps}")
        self.warmup_steps = warmup_steps
        self.saved_tensor_steps = saved_tensor_steps
        self.cuda_snapshot = cuda_snapshot
        self.snapshot_steps = snapshot_steps
        self.filename = filename
        self.dirpath = dirpath
        self.enabled = enabled
        self.summary: dict[str, Any] = {}
        self.path: Path | None = None
        self.snapshot_path: Path | None = None
        self._reset()

    def _reset(self) -> None:
        self._cuda = False
        self._device: torch.device | None = None
        self._steps = 0
        self._counted = 0
        self._counter: SavedTensorCounter | None = None
        self._counting = False
        self._saved_total = 0
        self._saved_layers: dict[str, int] = {}
        self._peaks = {phase: [0, 0] for phase in GPU_PHASES}  # [allocated, reserved] bytes, max over steps
        self._step_start_allocated = 0
        self._rss_start = 0
        self._recording = False

    # lifecycle ------------------------------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled:
            return
        self._reset()
        self._device = pl_module.device
        self._cuda = self._device.type == "cuda"
        self._rss_start = peak_rss_bytes()
        self._counter = SavedTensorCounter(pl_module, pooling_layers(pl_module))
        if self.cuda_snapshot:
            if self._cuda:
                torch.cuda.memory._record_memory_history(max_entries=200_000)
                self._recording = True
            else:
                log.warning("MemoryProfiler.cuda_snapshot=%r ignored: the model is on %s, not CUDA",
                            self.cuda_snapshot, self._device)

    def _count_this_step(self) -> bool:
        if self.saved_tensor_steps == 0 or self._steps < self.warmup_steps:
            return False
        return self.saved_tensor_steps < 0 or self._counted < self.saved_tensor_steps

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if not self.enabled:
            return
        if self._cuda:
            torch.cuda.reset_peak_memory_stats(self._device)
        if self._count_this_step() and self._counter is not None:
            try:
                self._counter.start()
            except ValueError as err:  # lazy parameters not yet materialised: count on a later step
                log.debug("saved tensors not counted on step %d: %s", self._steps, err)
                return
            self._counting = True

    def _phase_peak(self, phase: str) -> None:
        if self._cuda:
            peak = self._peaks[phase]
            peak[0] = max(peak[0], torch.cuda.max_memory_allocated(self._device))
            peak[1] = max(peak[1], torch.cuda.max_memory_reserved(self._device))
            torch.cuda.reset_peak_memory_stats(self._device)

    def _stop_counting(self) -> None:
        if self._counting and self._counter is not None:
            self._counter.stop()
            self._counting = False
            self._counted += 1
            self._saved_total = max(self._saved_total, self._counter.total_bytes)
            for name, nbytes in self._counter.layer_bytes.items():
                self._saved_layers[name] = max(self._saved_layers.get(name, 0), nbytes)

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        if self.enabled:
            self._stop_counting()  # the graph is complete: everything it saves has been packed
            self._phase_peak("forward")

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.enabled:
            self._phase_peak("backward")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not self.enabled:
            return
        self._stop_counting()  # a step that returned no loss
        self._phase_peak("optimizer")
        self._steps += 1
        if self._recording and self._steps >= self.snapshot_steps:
            self._dump_snapshot(trainer)

    def _dump_snapshot(self, trainer: pl.Trainer) -> None:
        path = Path(self.cuda_snapshot)
        if not path.is_absolute() and path.parent == Path("."):
            path = summary_path(trainer, self.dirpath, path.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.cuda.memory._dump_snapshot(str(path))
        torch.cuda.memory._record_memory_history(enabled=None)
        self._recording = False
        self.snapshot_path = path
        log.info("CUDA memory snapshot written to %s (open it at https://pytorch.org/memory_viz)", path)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self._counting and self._counter is not None:
            self._counter.stop()
            self._counting = False
        if self._recording:
            torch.cuda.memory._record_memory_history(enabled=None)
            self._recording = False

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled:
            return
        if self._recording:
            self._dump_snapshot(trainer)
        self.summary = self._summarize(pl_module)
        scalars = {f"profile/{k}": float(v) for k, v in self.summary.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        log_scalars(trainer, scalars, trainer.global_step)
        self.path = summary_path(trainer, self.dirpath, self.filename)
        if trainer.is_global_zero:
            write_json(self.path, self.summary)
            log.info("memory profile written to %s", self.path)

    def _summarize(self, pl_module: pl.LightningModule) -> dict[str, Any]:
        rss = peak_rss_bytes()
        summary: dict[str, Any] = {
            "kind": "memory", "steps": self._steps, "saved_tensor_steps_counted": self._counted,
            "saved_bytes": self._saved_total if self._counted else None,
            "saved_mib": self._saved_total / MIB if self._counted else None,
            "pool_saved_bytes": sum(self._saved_layers.values()) if self._counted else None,
            "saved_bytes_per_layer": dict(self._saved_layers),
            "peak_rss_mib": rss / MIB, "peak_rss_increase_mib": max(0, rss - self._rss_start) / MIB,
        }
        if self._cuda:
            for phase, (allocated, reserved) in self._peaks.items():
                summary[f"{phase}_peak_allocated_mib"] = allocated / MIB
                summary[f"{phase}_peak_reserved_mib"] = reserved / MIB
            summary["peak_allocated_mib"] = max(a for a, _ in self._peaks.values()) / MIB
            summary["peak_reserved_mib"] = max(r for _, r in self._peaks.values()) / MIB
        if self.snapshot_path is not None:
            summary["cuda_snapshot"] = str(self.snapshot_path)
        param = next(pl_module.parameters(), None)
        summary["environment"] = environment(pl_module.device, None if param is None else param.dtype)
        return summary
