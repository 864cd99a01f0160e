"""Measuring: timers, the one quantile definition, peak memory, saved-tensor bytes, environment.

Every command, callback and benchmark measures through this module, so a figure called
"median" or "p90" means the same thing wherever it is printed.

- `time_callable`: a self-contained callable timed by `torch.utils.benchmark.Timer`: host wall
  time of synchronised calls (launch and synchronisation overhead included), threads pinned to
  torch's current setting. For whole steps, not for kernels of microseconds.
- `time_back_to_back`: many back-to-back calls between two CUDA events (`perf_counter` on the
  CPU), per-call time; how kernels are timed.
- `Marks` / `timed_call`: named timestamps for work that cannot be re-run at will (a phase
  of a training step inside a running fit, a forward whose output the backward needs):
  CUDA events on a GPU, read without stalling it; `perf_counter` on the CPU.
- `quantile` / `median` / `spread` / `median_iqr`: linear interpolation between order statistics
  (numpy's default, `statistics.quantiles(method="inclusive")`).
- `peak_rss_bytes`, `rss_bytes`, `reset_peak_rss`, `CudaPeak`: process and GPU memory peaks.
- `SavedTensorCounter` / `saved_tensor_bytes`: bytes autograd keeps for backward.
- `environment`: what a measurement ran on, recorded with every result.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

# --- statistics ------------------------------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0 <= q <= 1) by linear interpolation between order statistics."""
    if not values:
        raise ValueError("quantile of an empty sample")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return quantile(values, 0.5)


def median_iqr(values: Sequence[float]) -> tuple[float, float]:
    """(median, interquartile range) of a non-empty sample."""
    return quantile(values, 0.5), quantile(values, 0.75) - quantile(values, 0.25)


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median and spread of a sample (an empty sample: an empty dict)."""
    if not values:
        return {}
    return {"median": quantile(values, 0.5), "mean": statistics.fmean(values), "min": min(values),
            "max": max(values), "p10": quantile(values, 0.1), "p90": quantile(values, 0.9),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}


# --- timers ----------------------------------------------------------------------------------------------------


@dataclass
class Timing:
    """Milliseconds of each measured run of a callable."""

    times_ms: list[float]

    @property
    def median_ms(self) -> float:
        return quantile(self.times_ms, 0.5)

    def as_dict(self) -> dict[str, float]:
        return {"median_ms": self.median_ms, "min_ms": min(self.times_ms), "max_ms": max(self.times_ms)}


def time_callable(fn: Callable[[], object], repeats: int | None = 7, warmup: int = 2,
                  min_run_time: float = 0.2) -> Timing:
    """Host wall time of `fn()` by `torch.utils.benchmark.Timer`, after `warmup` calls.

    repeats: that many single calls, one time each; None: `blocked_autorange(min_run_time)`,
    whose blocks of calls give one (per-call) time each. The timer synchronises CUDA before
    and after each timed block, so a single call's time includes its launch overhead and one
    synchronisation: right for a training step, too coarse for a kernel of microseconds (use
    `time_back_to_back`). It runs with torch's current thread count (its own default would pin
    one thread).
    """
    from torch.utils.benchmark import Timer

    for _ in range(warmup):
        fn()
    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    if repeats is None:
        times = timer.blocked_autorange(min_run_time=min_run_time).times
    else:
        times = [timer.timeit(1).times[0] for _ in range(repeats)]
    return Timing([t * 1e3 for t in times])


def time_back_to_back(fn: Callable[[], object], device: torch.device | str, calls: int = 20, repeats: int = 7,
                      warmup: int = 3) -> Timing:
    """Per-call milliseconds of `calls` back-to-back calls of `fn`, measured `repeats` times after
    `warmup` calls.

    On CUDA each measurement is a pair of events (`Marks`) around the calls: the device's own
    clock, the next launch queued while the previous kernel runs, one synchronisation per
    measurement. On the CPU it is `perf_counter`. Inputs larger than the GPU's L2 keep the
    time one of memory, not of the cache.
    """
    if calls < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"calls and repeats must be >= 1 and warmup >= 0, got calls={calls}, repeats={repeats}, "
                         f"warmup={warmup}")
    cuda = torch.device(device).type == "cuda"
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        marks = Marks(cuda)
        marks.mark("start")
        for _ in range(calls):
            fn()
        marks.mark("end")
        times.append(marks.ms("start", "end") / calls)
    return Timing(times)


class Marks:
    """Named timestamps of one step (or one layer call), for work timed where it runs.

    On CUDA a mark records an event on the current stream; the marks are read once the last
    event has completed (`ready`), so timing forces no synchronisation the training loop would
    not do anyway. On the CPU a mark is `time.perf_counter()`: CPU ops run synchronously.
    With `cpu_time`, each mark also reads the process's CPU time (`cpu_ms`), which
    time-slicing on a busy machine does not inflate.
    """

    def __init__(self, cuda: bool = False, cpu_time: bool = False) -> None:
        self.cuda = cuda
        self.points: dict[str, Any] = {}
        self.cpu_points: dict[str, float] | None = {} if cpu_time else None

    def mark(self, name: str) -> None:
        if self.cpu_points is not None:
            self.cpu_points[name] = time.process_time()
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.points[name] = event
        else:
            self.points[name] = time.perf_counter()

    def ready(self) -> bool:
        """Whether every recorded event has completed (always on the CPU)."""
        return not self.cuda or all(e.query() for e in self.points.values())

    def ms(self, start: str, end: str) -> float | None:
        """Milliseconds from mark `start` to mark `end`, None if either is missing."""
        a, b = self.points.get(start), self.points.get(end)
        if a is None or b is None:
            return None
        if self.cuda:
            b.synchronize()
            return a.elapsed_time(b)
        return (b - a) * 1e3

    def cpu_ms(self, start: str, end: str) -> float | None:
        """Process CPU milliseconds from `start` to `end` (None without cpu_time or a mark)."""
        points = self.cpu_points or {}
        a, b = points.get(start), points.get(end)
        return None if a is None or b is None else (b - a) * 1e3


def timed_call(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    """(fn(), its milliseconds): one call timed where it runs, for calls that cannot be repeated
    independently (a backward needs the forward's output)."""
    marks = Marks(device.type == "cuda")
    marks.mark("start")
    result = fn()
    marks.mark("end")
    return result, marks.ms("start", "end")


# --- memory ----------------------------------------------------------------------------------------------------


def peak_rss_bytes() -> int:
    """The process's peak resident set: Linux's VmHWM (which `reset_peak_rss` can reset),
    else getrusage's ru_maxrss (which never goes down, and on Linux even carries over
    from the parent across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss if sys.platform == "darwin" else rss * 1024


def rss_bytes() -> int | None:
    """The current resident set (Linux), None elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:
        return None


def reset_peak_rss() -> bool:
    """Resets the process peak RSS to the current RSS (Linux /proc/self/clear_refs), so the
    next `peak_rss_bytes()` is the peak since now. False where the OS does not allow it;
    the peak is then the lifetime peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class CudaPeak:
    """Peak CUDA memory above what was allocated on entry, over the `with` block.

    After the block: `allocated` (max_memory_allocated minus the baseline) and `reserved`
    (max_memory_reserved, the allocator's whole pool).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.base = self.allocated = self.reserved = 0

    def __enter__(self) -> CudaPeak:
        torch.cuda.synchronize(self.device)
        self.base = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc: Any) -> None:
        torch.cuda.synchronize(self.device)
        self.allocated = torch.cuda.max_memory_allocated(self.device) - self.base
        self.reserved = torch.cuda.max_memory_reserved(self.device)


# --- bytes saved for backward ----------------------------------------------------------------------------------


def _storage_key(t: torch.Tensor) -> tuple[str, int]:
    return str(t.device), t.untyped_storage().data_ptr()


class SavedTensorCounter:
    """Counts the bytes autograd saves for backward while entered; re-entrant across steps.

    Every saved tensor is keyed by its storage, so a storage saved by two ops (a ReLU's output
    that the next pool saves as its input) counts once in the total. Parameters and buffers are
    not activations and are left out. While one of `layers` runs (forward pre-hook to forward
    hook), what is saved is also credited to it, its input included.

    Args:
        model: whose parameters and buffers are excluded; looked up on the first `start()`,
            so move the model to its device first. None: nothing is excluded.
        layers: {name: module} to credit separately (e.g. profiling.pooling_layers(model)).
    """

    def __init__(self, model: nn.Module | None = None, layers: dict[str, nn.Module] | None = None) -> None:
        self.model = model
        self.layers = dict(layers or {})
        self.total_bytes = 0
        self.layer_bytes: dict[str, int] = {name: 0 for name in self.layers}
        self._storages: dict[tuple[str, int], int] = {}
        self._layer_storages: dict[str, dict[tuple[str, int], int]] = {}
        self._excluded: set[tuple[str, int]] | None = None
        self._active: list[str] = []
        self._handles: list[Any] = []
        self._context: Any = None

    def __enter__(self) -> SavedTensorCounter:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        """Begins a fresh count (one step's worth)."""
        if self._context is not None:
            raise RuntimeError("SavedTensorCounter.start: already counting; call stop() first")
        self._storages, self._layer_storages, self._active = {}, {name: {} for name in self.layers}, []
        if self._excluded is None:  # once: parameters keep their storages between steps
            tensors = [] if self.model is None else [*self.model.parameters(), *self.model.buffers()]
            if any(nn.parameter.is_lazy(t) for t in tensors):
                raise ValueError("SavedTensorCounter: the model has lazy parameters (lip, adapool): run one forward "
                                 "before counting, so parameters can be told apart from activations")
            self._excluded = {_storage_key(t) for t in tensors}
        for name, module in self.layers.items():
            self._handles.append(module.register_forward_pre_hook(self._enter_layer(name)))
            self._handles.append(module.register_forward_hook(self._leave_layer(name), always_call=True))
        self._context = torch.autograd.graph.saved_tensors_hooks(self._pack, _unpack)
        self._context.__enter__()

    def stop(self) -> None:
        """Ends the count; `total_bytes` and `layer_bytes` hold its result."""
        if self._context is None:
            return
        self._context.__exit__(None, None, None)
        self._context = None
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.total_bytes = sum(self._storages.values())
        self.layer_bytes = {name: sum(s.values()) for name, s in self._layer_storages.items()}
        self._storages, self._layer_storages = {}, {}

    def _enter_layer(self, name: str):
        def hook(module: nn.Module, args: Any) -> None:
            self._active.append(name)
        return hook

    def _leave_layer(self, name: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if self._active and self._active[-1] == name:
                self._active.pop()
        return hook

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        key = _storage_key(t)
        if key in self._excluded:
            return t
        nbytes = t.untyped_storage().nbytes()
        self._storages[key] = max(self._storages.get(key, 0), nbytes)
        for name in self._active:  # nested layers credit every enclosing one
            layer = self._layer_storages[name]
            layer[key] = max(layer.get(key, 0), nbytes)
        # detached (same storage and version counter): an op's own output, kept with its grad_fn,
        # would close a cycle node -> saved tensor -> node that gc cannot see, and a graph never
        # run backward (a counting forward) would then hold its activations, and this counter, forever
        return t.detach()


def _unpack(t: torch.Tensor) -> torch.Tensor:
    return t


def saved_tensor_bytes(fn: Callable[[], Any]) -> tuple[Any, int]:
    """(fn(), bytes of the unique storages autograd saved while it ran)."""
    with SavedTensorCounter() as counter:
        out = fn()
    return out, counter.total_bytes


# --- environment -----------------------------------------------------------------------------------------------


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


def environment(device: torch.device | str = "cpu", dtype: torch.dtype | None = None,
                amp: bool | None = None) -> dict[str, Any]:
    """Device, processor, versions and threads: recorded with every result."""
    import torchvision  # its own __version__ carries the build (+cu130), the package metadata does not

    info: dict[str, Any] = {
        "device": device_name(device), "torch": torch.__version__, "torchvision": torchvision.__version__,
        # versions from package metadata: this bottom module imports nothing above torch
        "pytorch_lightning": _package_version("pytorch-lightning"),
        "softpool_video": _package_version("softpool-video"),
        "python": platform.python_version(), "machine": platform.machine(), "processor": cpu_name(),
        "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if dtype is not None:
        info["dtype"] = str(dtype).replace("torch.", "")
    if amp is not None:
        info["amp"] = amp
    return info
