"""Latency and memory of each pooling method, side by side (`softpool-video profile-pooling`).

For every method, in one process, on the same input:

- forward and backward latency: median over `repeats` after `warmup` runs
  (measure.timed_call: CUDA events on a GPU, perf_counter on the CPU);
- bytes saved for backward: every tensor autograd saves while the pool runs
  (measure.saved_tensor_bytes), counting each storage once, the input included
  when it is saved;
- peak memory: on a GPU torch.cuda.max_memory_allocated over one forward+backward,
  minus what was allocated before; on the CPU the process peak RSS after the
  method ran, and by how much this method raised it (the peak only grows, so a
  method that needs less than an earlier one shows 0: an indication only, the
  saved-tensor bytes are the exact CPU measure).

Output: a markdown table (printed, and written), CSV, JSON and a PNG bar chart.
Every row records device, torch version, dtype and thread count.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from softpool_video.measure import CudaPeak, device_name, median, peak_rss_bytes, saved_tensor_bytes, timed_call
from softpool_video.pooling.registry import build_pool, pool_method
from softpool_video.reporting import markdown_table as render_table
from softpool_video.reporting import new_figure, save_figure, write_result_files

log = logging.getLogger(__name__)

DEFAULT_METHODS = ("max", "avg", "softpool", "sum", "power", "stochastic", "s3", "mixed", "gated", "lip",
                   "adapool")


@dataclass
class PoolProfile:
    method: str
    forward_ms: float
    backward_ms: float
    total_ms: float
    saved_bytes: int
    saved_per_input: float
    peak_bytes: int | None  # GPU: peak allocated during fwd+bwd above the baseline; CPU: None
    peak_rss_bytes: int | None  # CPU: process peak RSS after this method
    rss_increase_bytes: int | None  # CPU: how much this method raised the process peak RSS
    input_shape: str
    kernel_size: str
    stride: str
    device: str
    dtype: str
    threads: int
    torch_version: str


# Methods whose `channels` argument gives per-channel parameters without other options.
_PER_CHANNEL = ("mixed", "gated", "lip")


def default_method_args(method: str, channels: int) -> dict[str, Any]:
    """channels= where a method takes it plainly, so learnable pools start fully built."""
    pool_method(method)  # a clear error for an unknown name
    return {"channels": channels} if method in _PER_CHANNEL else {}


def profile_pool(pool: nn.Module, method: str, x: torch.Tensor, warmup: int, repeats: int) -> PoolProfile:
    """Profiles one pool on input x (its values are reused; gradients are reset each run)."""
    device = x.device
    x = x.detach().requires_grad_(True)
    pool.train()
    grad = None
    rss_before = peak_rss_bytes()

    def forward() -> torch.Tensor:
        return pool(x)

    for _ in range(warmup):  # also materialises lazy parameters
        y = forward()
        y.backward(torch.ones_like(y))
    x.grad = None
    _, saved = saved_tensor_bytes(forward)

    peak = None
    if device.type == "cuda":
        with CudaPeak(device) as cuda_peak:
            y = forward()
            y.backward(torch.ones_like(y))
            del y
        peak = cuda_peak.allocated

    fwd_times, bwd_times = [], []
    for _ in range(repeats):
        x.grad = None
        pool.zero_grad(set_to_none=True)
        y, t_fwd = timed_call(forward, device)
        if grad is None or grad.shape != y.shape:
            grad = torch.ones_like(y)
        _, t_bwd = timed_call(partial(y.backward, grad), device)
        fwd_times.append(t_fwd)
        bwd_times.append(t_bwd)
        del y
    totals = [f + b for f, b in zip(fwd_times, bwd_times, strict=True)]
    peak_rss = peak_rss_bytes() if device.type == "cpu" else None
    input_bytes = x.numel() * x.element_size()
    args = getattr(pool, "args", None) or getattr(pool, "geometry", None)
    kernel = getattr(args, "kernel_size", getattr(pool, "kernel_size", None))
    stride = getattr(args, "stride", getattr(pool, "stride", None))
    return PoolProfile(
        method=method, forward_ms=median(fwd_times), backward_ms=median(bwd_times),
        total_ms=median(totals), saved_bytes=saved, saved_per_input=saved / input_bytes,
        peak_bytes=peak, peak_rss_bytes=peak_rss,
        rss_increase_bytes=None if peak_rss is None else max(0, peak_rss - rss_before),
        input_shape="x".join(str(s) for s in x.shape), kernel_size=str(kernel), stride=str(stride),
        device=device_name(device), dtype=str(x.dtype).replace("torch.", ""), threads=torch.get_num_threads(),
        torch_version=torch.__version__)


def profile_methods(shape: Sequence[int], methods: Sequence[str] = DEFAULT_METHODS, dtype: torch.dtype = torch.float32,
                    device: str | torch.device = "cpu", kernel_size: int | Sequence[int] = 2,
                    stride: int | Sequence[int] | None = None, padding: int | Sequence[int] = 0,
                    warmup: int = 2, repeats: int = 10, seed: int = 0,
                    method_args: dict[str, dict[str, Any]] | None = None) -> list[PoolProfile]:
    """Profiles each method on the same random input of `shape` (N, C, *spatial)."""
    device = torch.device(device)
    dims = len(shape) - 2
    if dims not in (1, 2, 3):
        raise ValueError(f"input shape must be (N, C, *1-3 spatial dims), got {tuple(shape)}")
    if warmup < 0 or repeats < 1:
        raise ValueError(f"warmup must be >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(tuple(shape), generator=gen).to(device=device, dtype=dtype)
    # Prime the process (allocator, thread pool, autograd hooks) with one unrecorded run,
    # so the first method's RSS increase is its own.
    profile_pool(build_pool("max", dims, kernel_size, stride, padding).to(device), "max", x, 1, 1)
    results = []
    for method in methods:
        kwargs = default_method_args(method, shape[1])
        kwargs.update((method_args or {}).get(method, {}))
        pool = build_pool(method, dims, kernel_size, stride, padding, **kwargs).to(device)
        log.info("profiling %s", method)
        results.append(profile_pool(pool, method, x, warmup, repeats))
    return results


# --- output ----------------------------------------------------------------------------------------------------

def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.2f}"


def markdown_table(results: Sequence[PoolProfile], baseline: str = "max") -> str:
    base = next((r.total_ms for r in results if r.method == baseline), None)
    on_gpu = any(r.peak_bytes is not None for r in results)
    peak_head = ["peak alloc MiB"] if on_gpu else ["peak RSS MiB", "RSS increase MiB"]
    header = ["method", "forward ms", "backward ms", "fwd+bwd ms", f"vs {baseline}", "saved for backward MiB",
              "saved / input", *peak_head]
    rows = []
    for r in results:
        ratio = f"{r.total_ms / base:.2f}x" if base else "-"
        peak = [_mib(r.peak_bytes)] if on_gpu else [_mib(r.peak_rss_bytes), _mib(r.rss_increase_bytes)]
        rows.append([r.method, f"{r.forward_ms:.2f}", f"{r.backward_ms:.2f}", f"{r.total_ms:.2f}", ratio,
                     _mib(r.saved_bytes), f"{r.saved_per_input:.2f}", *peak])
    lines = [render_table(header, rows)]
    if results:
        r = results[0]
        lines.append("")
        lines.append(f"input {r.input_shape} {r.dtype}, kernel {r.kernel_size}, stride {r.stride}; device {r.device}, "
                     f"{r.threads} threads, torch {r.torch_version}; medians")
    return "\n".join(lines)


def write_outputs(results: Sequence[PoolProfile], out_dir: str | Path, stem: str = "profile_pooling") -> list[Path]:
    return write_result_files(results, out_dir, stem, markdown_table, plot)


def plot(results: Sequence[PoolProfile], path: str | Path) -> None:
    names = [r.method for r in results]
    pos = list(range(len(names)))
    fig = new_figure(figsize=(max(6.0, 0.8 * len(names) + 2), 6.5), layout="constrained")
    ax_t, ax_m = fig.subplots(2, 1)
    fwd = [r.forward_ms for r in results]
    bwd = [r.backward_ms for r in results]
    ax_t.bar(pos, fwd, label="forward")
    ax_t.bar(pos, bwd, bottom=fwd, label="backward")
    ax_t.set_ylabel("ms (median)")
    ax_t.set_xticks(pos, names, rotation=30, ha="right")
    ax_t.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    r0 = results[0]
    ax_t.set_title(f"pooling cost: input {r0.input_shape} {r0.dtype}, kernel {r0.kernel_size}, {r0.device}, "
                   f"{r0.threads} threads")
    on_gpu = any(r.peak_bytes is not None for r in results)
    width = 0.4
    ax_m.bar([p - width / 2 for p in pos], [r.saved_bytes / 2**20 for r in results], width,
             label="saved for backward")
    second = [(r.peak_bytes if on_gpu else r.rss_increase_bytes) or 0 for r in results]
    ax_m.bar([p + width / 2 for p in pos], [v / 2**20 for v in second], width,
             label="peak allocated" if on_gpu else "process peak RSS increase")
    ax_m.set_ylabel("MiB")
    ax_m.set_xticks(pos, names, rotation=30, ha="right")
    ax_m.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save_figure(fig, path, dpi=110)
