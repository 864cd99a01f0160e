"""LatencyProfiler: where a training step's time goes.

Per step, after `warmup_steps`: data wait (end of the previous step to the start of this
one: fetching, collating and moving the batch), forward (batch start to
`on_before_backward`: the training step, the loss and zero_grad, which Lightning's
automatic optimisation runs just before backward), backward (`on_before_backward` to
`on_after_backward`), optimizer (`on_after_backward` to the end of the optimizer's step,
from an optimizer step post-hook: gradient clipping and the step) and after_step (from
there to the batch end: Lightning's bookkeeping; without the post-hook, e.g. in manual
optimisation, optimizer runs to the batch end). Lightning's bookkeeping before the
training step falls in the forward phase: a tenth of a millisecond or so per step on a
CPU, which a bare training step (`softpool-video profile`) does not have. On CUDA the compute phases are timed with CUDA events
read after the fact (no extra synchronisation); on the CPU with perf_counter.

With `layer_timing`, each pooling layer also gets forward and backward times through
module hooks (forward pre/post hooks, full backward pre/post hooks). Those hooks cost
a little, so they are off by default. With `enabled=False` no hook does anything.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch import nn

from softpool_video.measure import Marks, environment, spread

from ._common import batch_size, log_scalars, summary_path, write_json
from .layers import pooling_layers

log = logging.getLogger(__name__)

PHASES = ("data_wait", "forward", "backward", "optimizer", "after_step")


class _LayerTimer:
    """Forward and backward time of one module per step, from hooks."""

    def __init__(self, module: nn.Module, cuda: bool, owner: LatencyProfiler) -> None:
        self.cuda = cuda
        self.owner = owner  # its `enabled` switches the hooks off without removing them
        self.calls: list[Marks] = []
        self._pending: list[list[Marks]] = []
        self.forward_ms: list[float] = []
        self.backward_ms: list[float] = []
        self._handles = [
            module.register_forward_pre_hook(self._forward_start),
            module.register_forward_hook(self._forward_end),
            module.register_full_backward_pre_hook(self._backward_start),
            module.register_full_backward_hook(self._backward_end),
        ]

    def _forward_start(self, module: nn.Module, args: Any) -> None:
        if not self.owner.enabled:
            return
        self.calls.append(Marks(self.cuda))
        self.calls[-1].mark("forward_start")

    def _forward_end(self, module: nn.Module, args: Any, output: Any) -> None:
        if self.owner.enabled and self.calls:
            self.calls[-1].mark("forward_end")

    def _backward_start(self, module: nn.Module, grad_output: Any) -> None:
        # backward runs the calls in reverse: credit the latest call that has no backward yet
        if not self.owner.enabled:
            return
        for marks in reversed(self.calls):
            if "backward_start" not in marks.points:
                marks.mark("backward_start")
                break

    def _backward_end(self, module: nn.Module, grad_input: Any, grad_output: Any) -> None:
        if not self.owner.enabled:
            return
        for marks in reversed(self.calls):
            if "backward_start" in marks.points and "backward_end" not in marks.points:
                marks.mark("backward_end")
                break

    def end_step(self, keep: bool) -> None:
        """Closes the step: keeps its calls' marks for `collect` if `keep`, else forgets them."""
        if keep and self.calls:
            self._pending.append(self.calls)
        self.calls = []

    def collect(self, wait: bool) -> None:
        """Adds the (summed) times of kept steps whose marks are readable (all of them if `wait`)."""
        while self._pending and (wait or all(m.ready() for m in self._pending[0])):
            calls = self._pending.pop(0)
            forward = [m.ms("forward_start", "forward_end") for m in calls]
            backward = [m.ms("backward_start", "backward_end") for m in calls]
            self.forward_ms.append(sum(v for v in forward if v is not None))
            if any(v is not None for v in backward):
                self.backward_ms.append(sum(v for v in backward if v is not None))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


class LatencyProfiler(Callback):
    """Per-phase training-step latency and throughput; a JSON summary per run.

    Args:
        warmup_steps: first steps left out of the statistics (allocator, cudnn autotune, caches).
        layer_timing: also time every pooling layer's forward and backward (module hooks).
        log_every_n_steps: send per-step phase times to the loggers every n measured steps (0: never;
            None: the trainer's `log_every_n_steps`).
        filename: summary file name, written in `dirpath` (default: the trainer's log folder).
        enabled: False makes every hook return at once (nothing measured, nothing written).
    """

    def __init__(self, warmup_steps: int = 2, layer_timing: bool = False, log_every_n_steps: int | None = None,
                 filename: str = "latency_profile.json", dirpath: str | None = None, enabled: bool = True) -> None:
        if warmup_steps < 0:
            raise ValueError(f"LatencyProfiler.warmup_steps must be >= 0, got {warmup_steps}")
        if log_every_n_steps is not None and log_every_n_steps < 0:
            raise ValueError(f"LatencyProfiler.log_every_n_steps must be >= 0, got {log_every_n_steps}")
        self.warmup_steps = warmup_steps
        self.layer_timing = layer_timing
        self.log_every_n_steps = log_every_n_steps
        self.filename = filename
        self.dirpath = dirpath
        self.enabled = enabled
        self.summary: dict[str, Any] = {}
        self.path = None
        self._reset()

    def _reset(self) -> None:
        self._cuda = False
        self._steps = 0
        self._marks: Marks | None = None
        self._pending: list[tuple[Marks, int, float | None]] = []  # (marks, clips, data wait ms)
        self._times: dict[str, list[float]] = {phase: [] for phase in PHASES}
        self._step_ms: list[float] = []
        self._clips = 0
        self._last_end: float | None = None
        self._layers: dict[str, _LayerTimer] = {}
        self._optimizer_hooks: list[Any] = []

    # lifecycle ------------------------------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled:
            return
        self._reset()
        self._cuda = pl_module.device.type == "cuda"
        if self.layer_timing:
            self._layers = {name: _LayerTimer(module, self._cuda, self) for name, module in pooling_layers(pl_module).items()}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.enabled:  # the optimizers exist by now
            self._optimizer_hooks = [optimizer.register_step_post_hook(self._optimizer_stepped)
                                     for optimizer in trainer.optimizers]

    def _optimizer_stepped(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self.enabled and self._marks is not None:
            self._marks.mark("optimizer_end")

    def _remove_optimizer_hooks(self) -> None:
        for handle in self._optimizer_hooks:
            handle.remove()
        self._optimizer_hooks = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.enabled:
            self._last_end = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.enabled:  # validation inside an epoch is not data wait of the next training step
            self._last_end = time.perf_counter()

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        self._data_wait = None if self._last_end is None else (now - self._last_end) * 1e3
        self._marks = Marks(self._cuda)
        self._marks.mark("start")

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        if self.enabled and self._marks is not None:
            self._marks.mark("forward_end")

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.enabled and self._marks is not None:
            self._marks.mark("backward_end")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not self.enabled or self._marks is None:
            return
        self._marks.mark("end")
        measured = self._steps >= self.warmup_steps
        if measured:
            self._pending.append((self._marks, batch_size(batch), self._data_wait))
        for layer in self._layers.values():
            layer.end_step(measured)
            layer.collect(wait=False)
        self._marks = None
        self._steps += 1
        self._collect(trainer, pl_module, wait=False)
        self._last_end = time.perf_counter()

    def _collect(self, trainer: pl.Trainer, pl_module: pl.LightningModule, wait: bool) -> None:
        """Turns finished steps' marks into times (on CUDA: those whose events completed, or all if wait)."""
        while self._pending and (wait or self._pending[0][0].ready()):
            marks, clips, data_wait = self._pending.pop(0)
            stepped = "optimizer_end" in marks.points
            phases = {"data_wait": data_wait, "forward": marks.ms("start", "forward_end"),
                      "backward": marks.ms("forward_end", "backward_end"),
                      "optimizer": marks.ms("backward_end", "optimizer_end" if stepped else "end"),
                      "after_step": marks.ms("optimizer_end", "end") if stepped else None}
            step = marks.ms("start", "end")
            if step is None:
                continue
            for phase, value in phases.items():
                if value is not None:
                    self._times[phase].append(value)
            self._step_ms.append(step)
            self._clips += clips
            every = trainer.log_every_n_steps if self.log_every_n_steps is None else self.log_every_n_steps
            if every and len(self._step_ms) % every == 0 and not wait:
                metrics = {f"profile/{k}_ms": v for k, v in phases.items() if v is not None}
                metrics["profile/step_ms"] = step
                metrics["profile/clips_per_s"] = clips / step * 1e3 if step > 0 else 0.0
                log_scalars(trainer, metrics, trainer.global_step)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled:
            self._remove_optimizer_hooks()  # switched off mid-fit: leave nothing on the optimizers
            return
        self._collect(trainer, pl_module, wait=True)
        self._remove_optimizer_hooks()
        for layer in self._layers.values():
            layer.collect(wait=True)
            layer.remove()
        self.summary = self._summarize(trainer, pl_module)
        scalars = {f"profile/{k}": v for k, v in self.summary.items() if isinstance(v, (int, float))}
        log_scalars(trainer, scalars, trainer.global_step)
        self.path = summary_path(trainer, self.dirpath, self.filename)
        if trainer.is_global_zero:
            write_json(self.path, self.summary)
            log.info("latency profile written to %s", self.path)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._remove_optimizer_hooks()
        for layer in self._layers.values():
            layer.remove()

    def _summarize(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        seconds = sum(self._step_ms) / 1e3
        with_data = seconds + sum(self._times["data_wait"]) / 1e3
        world = trainer.world_size
        median_step = spread(self._step_ms).get("median")
        summary: dict[str, Any] = {
            "kind": "latency", "steps": self._steps, "warmup_steps": self.warmup_steps,
            "measured_steps": len(self._step_ms), "measured_clips": self._clips,
            "step_ms": spread(self._step_ms).get("median"),
            # clips/s of the whole job: each rank's rate times the ranks
            "train_clips_per_s": self._clips / seconds * world if seconds > 0 else None,
            "train_clips_per_s_with_data": self._clips / with_data * world if with_data > 0 else None,
            # the mean batch over the median step: robust to a stalled step, as `softpool-video profile` reports
            "median_step_clips_per_s": (self._clips / len(self._step_ms)) / median_step * 1e3 * world
            if self._step_ms and median_step else None,
            "world_size": world, "timer": "cuda_events" if self._cuda else "perf_counter",
        }
        for phase in PHASES:
            summary[f"{phase}_ms"] = spread(self._times[phase]).get("median")
        summary["spread_ms"] = {"step": spread(self._step_ms), **{p: spread(self._times[p]) for p in PHASES}}
        if self._layers:
            summary["layers"] = {name: {"forward_ms": spread(t.forward_ms).get("median"),
                                        "backward_ms": spread(t.backward_ms).get("median")}
                                 for name, t in self._layers.items()}
            summary["pool_forward_ms"] = sum(v["forward_ms"] or 0.0 for v in summary["layers"].values())
            summary["pool_backward_ms"] = sum(v["backward_ms"] or 0.0 for v in summary["layers"].values())
        param = next(pl_module.parameters(), None)
        summary["environment"] = environment(pl_module.device, None if param is None else param.dtype)
        summary["environment"]["precision"] = str(trainer.precision)
        return summary
