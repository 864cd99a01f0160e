"""What each pooling method costs in a whole network (the library behind `softpool-video profile`).

For every method, in one process, on the same input, the model is built once (same
seed, so the same weights wherever the methods share parameters); then the methods take
turns step by step, so load on a shared machine hits them alike. Measured:

- forward, backward and whole training-step latency (forward + loss, backward, SGD
  step): medians and interquartile ranges over `repeats` steps after `warmup` steps;
  CUDA events on a GPU (each step synchronised), perf_counter on the CPU;
- training-step throughput in clips/s (batch size / median step time);
- peak memory: on CUDA max_memory_allocated / max_memory_reserved over the timed steps
  (parameters, gradients and optimizer state included); on the CPU the process peak RSS
  over the timed steps (reset before them through /proc/self/clear_refs where Linux
  allows, else the lifetime peak) and its rise during a step. Every model is resident
  and the allocator keeps freed memory, so the CPU figures are an indication; a fresh
  process per method (benchmarks/bench_profiling.py) is the honest CPU comparison;
- bytes saved for backward by one training forward, in total and by the pooling layers
  (the same `SavedTensorCounter` the MemoryProfiler callback uses);
- parameters and GFLOPs of one inference forward (models.flops, SoftPool op included).

A method that runs out of memory (building, warming up or measuring; GPU or CPU) is
dropped and its memory freed; it appears as "OOM" with the error's first line in every
output while the other methods are measured as usual, and the command fails only when
every method ran out of memory. Any other error stops the command.

The step runs as Lightning's automatic optimisation runs it (`optimizer.step(closure)`,
zero_grad inside the closure before backward) and its phases are cut where the
LatencyProfiler cuts them, so the two agree for the same model and input;
benchmarks/bench_profiling.py checks it, the two interleaved step by step.
"""
from __future__ import annotations

import copy
import gc
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from softpool_video.measure import (
    Marks,
    SavedTensorCounter,
    environment,
    median_iqr,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
)
from softpool_video.profiling.layers import pooling_layers

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}
DEFAULT_METHODS = ("max", "avg", "softpool")
OOM_STATUS = "OOM"
T = TypeVar("T")


@dataclass
class MethodProfile:
    """One method's figures; a method that ran out of memory has status "OOM", its error's
    first line, the phase it failed in, and None for every measured figure."""

    model: str
    method: str
    input_shape: str
    status: str  # "ok" or OOM_STATUS
    error: str | None = None  # first line of the out-of-memory error
    failed_phase: str | None = None  # "build", "warm-up" or "measure"
    forward_ms: float | None = None
    forward_iqr_ms: float | None = None
    backward_ms: float | None = None
    backward_iqr_ms: float | None = None
    optimizer_ms: float | None = None
    step_ms: float | None = None
    step_iqr_ms: float | None = None
    step_min_ms: float | None = None
    clips_per_s: float | None = None
    saved_bytes: int | None = None
    pool_saved_bytes: int | None = None
    peak_allocated_bytes: int | None = None  # CUDA only
    peak_reserved_bytes: int | None = None  # CUDA only
    peak_rss_bytes: int | None = None  # CPU only: process peak RSS over the timed steps
    peak_rss_since_reset: bool | None = None  # CPU only: False when the peak is the process's lifetime peak
    peak_rss_increase_bytes: int | None = None  # CPU only: peak RSS over the timed steps minus the RSS before them
    params: int | None = None
    gflops: float | None = None
    warmup: int = 0
    repeats: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# Messages of allocation failures that reach Python as a plain RuntimeError (the CPU
# allocator; cuDNN / cuBLAS workspaces; CUDA errors raised outside the caching allocator).
_OOM_MESSAGES = ("can't allocate memory", "not enough memory: you tried to allocate", "CUDA out of memory",
                 "CUDA error: out of memory", "CUDNN_STATUS_ALLOC_FAILED", "CUBLAS_STATUS_ALLOC_FAILED")


def is_out_of_memory(err: BaseException) -> bool:
    """Whether `err` says an allocation failed (GPU or CPU), as opposed to any other error."""
    if isinstance(err, torch.OutOfMemoryError):  # torch.cuda.OutOfMemoryError is the same class
        return True
    return isinstance(err, RuntimeError) and any(m in str(err) for m in _OOM_MESSAGES)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0].strip() if text else type(err).__name__


def _unless_out_of_memory(fn: Callable[[], T]) -> tuple[T | None, str | None]:
    """(fn(), None), or (None, the error's first line) when fn runs out of memory; other errors propagate.

    The message is taken inside the handler and nothing else is kept, so once this returns the
    traceback, and with it every frame holding the failed step's tensors, can be collected.
    """
    try:
        return fn(), None
    except RuntimeError as err:  # torch.OutOfMemoryError is a RuntimeError
        if not is_out_of_memory(err):
            raise
        return None, _first_line(err)


def free_memory(device: torch.device) -> None:
    """Returns what dropped references held: Python cycles, then (CUDA) the caching allocator's blocks."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def build(model_name: str, method: str, num_classes: int, seed: int, model_kwargs: dict[str, Any] | None = None
          ) -> nn.Module:
    """The model with `method` at every pooling site, its weights drawn from `seed` (global RNG untouched)."""
    from softpool_video.models import create_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return create_model(model_name, num_classes, method, **(model_kwargs or {}))


def count_gflops(model: nn.Module, x: torch.Tensor) -> float:
    """GFLOPs of one inference forward, counted on the meta device (no arithmetic run)."""
    from softpool_video.models.flops import count_flops

    meta = copy.deepcopy(model).to("meta")
    return count_flops(meta, torch.empty(x.shape, device="meta", dtype=x.dtype)) / 1e9


class TrainStep:
    """One SGD training step on a fixed batch, run and timed as Lightning runs and the LatencyProfiler times it.

    Lightning's automatic optimisation calls `optimizer.step(closure)`; the closure runs
    the training step, zero_grad and backward (`on_before_backward` ends the forward phase
    there), and the optimizer's own entry work happens before it. The step here is built
    the same way, so each phase holds the same work. With a GradScaler (AMP on CUDA), which
    takes no closure, the closure runs first and then the scaler steps, as in Lightning.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, amp: bool) -> None:
        self.model, self.x, self.labels = model, x, labels
        self.device = x.device
        self.amp = amp
        self.amp_dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        self.optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        self.scaler = torch.amp.GradScaler("cuda") if amp and self.device.type == "cuda" else None

    def forward_loss(self) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            logits = self.model(self.x)
        return F.cross_entropy(logits.float(), self.labels)

    def __call__(self) -> Marks:
        marks = Marks(self.device.type == "cuda")

        def closure() -> torch.Tensor:
            loss = self.forward_loss()
            self.optimizer.zero_grad(set_to_none=True)
            marks.mark("forward_end")
            (self.scaler.scale(loss) if self.scaler else loss).backward()
            marks.mark("backward_end")
            return loss

        marks.mark("start")
        if self.scaler:
            closure()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step(closure)
        marks.mark("end")
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return marks


class MethodRun:
    """One method's model, training step and measurements so far.

    `profile_model` interleaves several of these step by step; benchmarks/bench_profiling.py
    interleaves one with a Lightning fit, so both are measured by this same code.
    """

    def __init__(self, model_name: str, method: str, x: torch.Tensor, labels: torch.Tensor, dtype: torch.dtype,
                 amp: bool, num_classes: int, seed: int, model_kwargs: dict[str, Any] | None = None) -> None:
        from softpool_video.models.flops import count_parameters

        self.model_name, self.method = model_name, method
        model = build(model_name, method, num_classes, seed, model_kwargs).to(device=x.device, dtype=dtype).eval()
        with torch.no_grad():  # materialises lazy pooling parameters before counting or optimizing
            model(x[:1])
        model.train()
        self.step: TrainStep | None = TrainStep(model, x, labels, amp)
        counter = SavedTensorCounter(model, pooling_layers(model))
        with counter:
            loss = self.step.forward_loss()
        del loss
        self.saved, self.pool_saved = counter.total_bytes, sum(counter.layer_bytes.values())
        self.params, self.gflops = count_parameters(model), count_gflops(model, x)
        self.times: dict[str, list[float]] = {"forward": [], "backward": [], "optimizer": [], "step": []}
        self.peak_allocated = self.peak_reserved = self.peak_rss = self.rss_rise = 0
        self.warmup_steps = 0

    def warmup_step(self) -> None:
        self.step()
        self.warmup_steps += 1

    def timed_step(self) -> None:
        """One step, its phase times and memory peaks recorded."""
        device = self.step.device
        rss_before = None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        else:
            rss_before = rss_bytes() if reset_peak_rss() else None
        marks = self.step()
        self.times["forward"].append(marks.ms("start", "forward_end"))
        self.times["backward"].append(marks.ms("forward_end", "backward_end"))
        self.times["optimizer"].append(marks.ms("backward_end", "end"))
        self.times["step"].append(marks.ms("start", "end"))
        if device.type == "cuda":
            self.peak_allocated = max(self.peak_allocated, torch.cuda.max_memory_allocated(device))
            self.peak_reserved = max(self.peak_reserved, torch.cuda.max_memory_reserved(device))
        else:
            peak = peak_rss_bytes()
            self.peak_rss = max(self.peak_rss, peak)
            if rss_before is not None:
                self.rss_rise = max(self.rss_rise, peak - rss_before)

    def release(self) -> None:
        """Drops the model, its gradients and the optimizer state (the figures stay)."""
        self.step = None

    def result(self, shape: Sequence[int], device: torch.device, rss_resettable: bool) -> MethodProfile:
        if not self.times["step"]:
            raise RuntimeError(f"MethodRun.result: no timed step of {self.method!r} yet; call timed_step() first")
        fwd, fwd_iqr = median_iqr(self.times["forward"])
        bwd, bwd_iqr = median_iqr(self.times["backward"])
        opt, _ = median_iqr(self.times["optimizer"])
        step_ms, step_iqr = median_iqr(self.times["step"])
        cuda = device.type == "cuda"
        return MethodProfile(
            model=self.model_name, method=self.method, input_shape=_shape_text(shape), status="ok",
            forward_ms=fwd, forward_iqr_ms=fwd_iqr, backward_ms=bwd, backward_iqr_ms=bwd_iqr, optimizer_ms=opt,
            step_ms=step_ms, step_iqr_ms=step_iqr, step_min_ms=min(self.times["step"]),
            clips_per_s=shape[0] / step_ms * 1e3 if step_ms > 0 else 0.0, saved_bytes=self.saved,
            pool_saved_bytes=self.pool_saved, peak_allocated_bytes=self.peak_allocated if cuda else None,
            peak_reserved_bytes=self.peak_reserved if cuda else None, peak_rss_bytes=None if cuda else self.peak_rss,
            peak_rss_since_reset=None if cuda else rss_resettable,
            peak_rss_increase_bytes=None if cuda else self.rss_rise, params=self.params, gflops=self.gflops,
            warmup=self.warmup_steps, repeats=len(self.times["step"]))


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(s) for s in shape)


def make_batch(shape: Sequence[int], num_classes: int, seed: int, device: torch.device, dtype: torch.dtype
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The random clips and labels every method is measured on."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(tuple(shape), generator=gen).to(device=device, dtype=dtype)
    labels = torch.randint(0, num_classes, (shape[0],), generator=gen).to(device)
    return x, labels


def profile_model(model_name: str, methods: Sequence[str], shape: Sequence[int], device: str | torch.device = "cpu",
                  dtype: torch.dtype = torch.float32, amp: bool = False, warmup: int = 2, repeats: int = 5,
                  num_classes: int = 10, seed: int = 0, model_kwargs: dict[str, Any] | None = None
                  ) -> tuple[list[MethodProfile], dict[str, Any]]:
    """Every method on the same input in this process; (results in the order of `methods`, environment).

    All the models are built first; then the methods take turns step by step (and the
    order rotates each round), so a slow spell of a shared machine hits them alike. A
    method that runs out of memory (building, warming up or measuring) is dropped, its
    memory freed, and recorded with status "OOM"; the others go on. Any other error propagates.
    """
    device = torch.device(device)
    if len(shape) != 5:
        raise ValueError(f"input shape must be N,C,T,H,W (5 numbers), got {tuple(shape)}")
    if warmup < 0 or repeats < 1:
        raise ValueError(f"warmup must be >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    x, labels = make_batch(shape, num_classes, seed, device, dtype)
    runs: list[MethodRun] = []
    failed: dict[str, MethodProfile] = {}

    def fail(method: str, phase: str, error: str) -> None:
        log.warning("%s with %s pooling ran out of memory (%s): %s", model_name, method, phase, error)
        failed[method] = MethodProfile(model=model_name, method=method, input_shape=_shape_text(shape),
                                       status=OOM_STATUS, error=error, failed_phase=phase, warmup=warmup,
                                       repeats=repeats)

    for method in methods:
        log.info("building %s with %s pooling", model_name, method)
        run, error = _unless_out_of_memory(
            lambda method=method: MethodRun(model_name, method, x, labels, dtype, amp, num_classes, seed, model_kwargs))
        if run is None:
            fail(method, "build", error)
            free_memory(device)
        else:
            runs.append(run)

    def take_turns(phase: str, step: Callable[[MethodRun], None], rotate: int) -> None:
        k = rotate % len(runs) if runs else 0
        for run in runs[k:] + runs[:k]:
            _, error = _unless_out_of_memory(lambda run=run: step(run))
            if error is not None:
                fail(run.method, phase, error)
                run.release()
                runs.remove(run)
                free_memory(device)

    rss_resettable = device.type != "cuda" and reset_peak_rss()
    for _ in range(warmup):
        take_turns("warm-up", MethodRun.warmup_step, 0)
    for i in range(repeats):
        take_turns("measure", MethodRun.timed_step, i)
    measured = {run.method: run.result(shape, device, rss_resettable) for run in runs}
    results = [measured[m] if m in measured else failed[m] for m in methods]
    runs.clear()  # the models, their gradients and optimizer states go now, not at return
    free_memory(device)
    env = environment(device, dtype, amp)
    env.update(model=model_name, input=list(shape), num_classes=num_classes, seed=seed)
    return results, env


def profile_method(model_name: str, method: str, shape: Sequence[int], device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32, amp: bool = False, warmup: int = 2, repeats: int = 5,
                   num_classes: int = 10, seed: int = 0, model_kwargs: dict[str, Any] | None = None
                   ) -> MethodProfile:
    """One model with one pooling method on a random batch of `shape` (N, C, T, H, W)."""
    results, _ = profile_model(model_name, [method], shape, device, dtype, amp, warmup, repeats, num_classes, seed,
                               model_kwargs)
    return results[0]
