"""`softpool-video profile-pooling`: latency and memory of each pooling method, side by side.

For every method, in one process, on the same input:

- forward and backward latency: median over `--repeats` after `--warmup` runs
  (CUDA events on a GPU, perf_counter on the CPU);
- bytes saved for backward: every tensor autograd saves while the pool runs
  (torch.autograd.graph.saved_tensors_hooks), counting each storage once, the
  input included when it is saved;
- peak memory: on a GPU torch.cuda.max_memory_allocated over one forward+backward,
  minus what was allocated before; on the CPU the process peak RSS after the
  method ran, and by how much this method raised it (the peak only grows, so a
  method that needs less than an earlier one shows 0: an indication only, the
  saved-tensor bytes are the exact CPU measure).

Output: a markdown table (printed, and written), CSV, JSON and a PNG bar chart.
Every row records device, torch version, dtype and thread count.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .outputs import write_result_files
from .registry import available_pools, build_pool, pool_method

log = logging.getLogger(__name__)

DEFAULT_METHODS = ("max", "avg", "softpool", "sum", "power", "stochastic", "s3", "mixed", "gated", "lip",
                   "adapool")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
           "float64": torch.float64}


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


def saved_tensor_bytes(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Runs fn() and returns (its output, bytes of the unique storages autograd saved)."""
    storages: dict[tuple[str, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        key = (str(t.device), storage.data_ptr())
        storages[key] = max(storages.get(key, 0), storage.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(storages.values())


def _peak_rss_bytes() -> int:
    import resource  # Unix only

    # ru_maxrss is in KiB on Linux (bytes on macOS).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


class _Timer:
    """Elapsed milliseconds of a callable: CUDA events on a GPU, perf_counter on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def __call__(self, fn: Callable[[], Any]) -> tuple[Any, float]:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            result = fn()
            end.record()
            torch.cuda.synchronize()
            return result, start.elapsed_time(end)
        tic = time.perf_counter()
        result = fn()
        return result, (time.perf_counter() - tic) * 1e3


# Methods whose `channels` argument gives per-channel parameters without other options.
_PER_CHANNEL = ("mixed", "gated", "lip")


def default_method_args(method: str, channels: int) -> dict[str, Any]:
    """channels= where a method takes it plainly, so learnable pools start fully built."""
    pool_method(method)  # a clear error for an unknown name
    return {"channels": channels} if method in _PER_CHANNEL else {}


def profile_pool(pool: nn.Module, method: str, x: torch.Tensor, warmup: int, repeats: int) -> PoolProfile:
    """Profiles one pool on input x (its values are reused; gradients are reset each run)."""
    device = x.device
    timer = _Timer(device)
    x = x.detach().requires_grad_(True)
    pool.train()
    grad = None
    rss_before = _peak_rss_bytes()

    def forward() -> torch.Tensor:
        return pool(x)

    for _ in range(warmup):  # also materialises lazy parameters
        y = forward()
        y.backward(torch.ones_like(y))
    x.grad = None
    _, saved = saved_tensor_bytes(forward)

    peak = None
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        y = forward()
        y.backward(torch.ones_like(y))
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated(device) - base
        del y

    fwd_times, bwd_times = [], []
    for _ in range(repeats):
        x.grad = None
        pool.zero_grad(set_to_none=True)
        y, t_fwd = timer(forward)
        if grad is None or grad.shape != y.shape:
            grad = torch.ones_like(y)
        _, t_bwd = timer(lambda: y.backward(grad))
        fwd_times.append(t_fwd)
        bwd_times.append(t_bwd)
        del y
    totals = [f + b for f, b in zip(fwd_times, bwd_times)]
    peak_rss = _peak_rss_bytes() if device.type == "cpu" else None
    input_bytes = x.numel() * x.element_size()
    args = getattr(pool, "args", None) or getattr(pool, "geometry", None)
    kernel = getattr(args, "kernel_size", getattr(pool, "kernel_size", None))
    stride = getattr(args, "stride", getattr(pool, "stride", None))
    return PoolProfile(
        method=method, forward_ms=statistics.median(fwd_times), backward_ms=statistics.median(bwd_times),
        total_ms=statistics.median(totals), saved_bytes=saved, saved_per_input=saved / input_bytes,
        peak_bytes=peak, peak_rss_bytes=peak_rss,
        rss_increase_bytes=None if peak_rss is None else max(0, peak_rss - rss_before),
        input_shape="x".join(str(s) for s in x.shape), kernel_size=str(kernel), stride=str(stride),
        device=_device_name(device), dtype=str(x.dtype).replace("torch.", ""), threads=torch.get_num_threads(),
        torch_version=torch.__version__)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return "cpu"


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
    peak_head = "peak alloc MiB" if on_gpu else "peak RSS MiB | RSS increase MiB"
    head = (f"| method | forward ms | backward ms | fwd+bwd ms | vs {baseline} | saved for backward MiB | "
            f"saved / input | {peak_head} |")
    cols = head.count("|") - 1
    lines = [head, "|" + "---|" * cols]
    for r in results:
        ratio = f"{r.total_ms / base:.2f}x" if base else "-"
        peak = _mib(r.peak_bytes) if on_gpu else f"{_mib(r.peak_rss_bytes)} | {_mib(r.rss_increase_bytes)}"
        lines.append(f"| {r.method} | {r.forward_ms:.2f} | {r.backward_ms:.2f} | {r.total_ms:.2f} | {ratio} | "
                     f"{_mib(r.saved_bytes)} | {r.saved_per_input:.2f} | {peak} |")
    if results:
        r = results[0]
        lines.append("")
        lines.append(f"input {r.input_shape} {r.dtype}, kernel {r.kernel_size}, stride {r.stride}; device {r.device}, "
                     f"{r.threads} threads, torch {r.torch_version}; medians")
    return "\n".join(lines)


def write_outputs(results: Sequence[PoolProfile], out_dir: str | Path, stem: str = "profile_pooling") -> list[Path]:
    return write_result_files(results, out_dir, stem, markdown_table, plot)


def plot(results: Sequence[PoolProfile], path: str | Path) -> None:
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # a Figure without pyplot: no global figure state

    names = [r.method for r in results]
    pos = list(range(len(names)))
    fig = Figure(figsize=(max(6.0, 0.8 * len(names) + 2), 6.5), layout="constrained")
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
    fig.savefig(path, dpi=110)


# --- command line ----------------------------------------------------------------------------------------------

def _int_list(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise ValueError(f"{name} must be positive integers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="softpool-video profile-pooling",
                                description="Latency and memory of each pooling method on one input.")
    p.add_argument("--input", default="2,16,8,32,32", help="input shape N,C,T,H,W (or N,C,H,W / N,C,L)")
    p.add_argument("--dtype", default="float32", choices=sorted(_DTYPES))
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help=f"comma-separated methods; available: {', '.join(available_pools())}")
    p.add_argument("--kernel", default="2", help="kernel size: one int or one per spatial dim (comma-separated)")
    p.add_argument("--stride", default=None, help="stride (default: the kernel size)")
    p.add_argument("--padding", default="0", help="padding: one int or one per spatial dim")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method-args", default="{}", help='JSON per method, e.g. \'{"power": {"p": 3}}\'')
    p.add_argument("--out", default="runs/profile-pooling", help="folder for .md/.csv/.json/.png")
    return p


def _geometry(text: str | None, name: str, dims: int, allow_zero: bool = False) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--{name} must be comma-separated integers, got {text!r}") from None
    if len(values) == 1:
        values *= dims
    if len(values) != dims or any(v < 0 or (v == 0 and not allow_zero) for v in values):
        raise ValueError(f"--{name} needs 1 or {dims} {'non-negative' if allow_zero else 'positive'} integers, "
                         f"got {text!r}")
    return tuple(values)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rich.console import Console
    console = Console()
    try:
        shape = _int_list(args.input, "--input")
        if len(shape) not in (3, 4, 5):
            raise ValueError(f"--input must be N,C,L or N,C,H,W or N,C,T,H,W, got {args.input!r}")
        dims = len(shape) - 2
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in methods if m not in available_pools()]
        if unknown or not methods:
            raise ValueError(f"unknown pooling method(s) {unknown}; available: {', '.join(available_pools())}")
        try:
            method_args = json.loads(args.method_args)
        except json.JSONDecodeError as err:
            raise ValueError(f"--method-args must be JSON, got {args.method_args!r} ({err})") from None
        if not isinstance(method_args, dict) or not all(isinstance(v, dict) for v in method_args.values()):
            raise ValueError('--method-args must map method names to objects, e.g. {"power": {"p": 3}}')
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {args.device!r}: CUDA is not available on this machine")
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"--threads must be >= 1, got {args.threads}")
            torch.set_num_threads(args.threads)
        results = profile_methods(shape, methods, _DTYPES[args.dtype], device,
                                  _geometry(args.kernel, "kernel", dims), _geometry(args.stride, "stride", dims),
                                  _geometry(args.padding, "padding", dims, allow_zero=True), args.warmup,
                                  args.repeats, args.seed, method_args)
    except ValueError as err:
        console.print(f"[red]profile-pooling: {err}")
        return 2
    files = write_outputs(results, args.out)
    console.print(markdown_table(results), markup=False, highlight=False, soft_wrap=True)
    console.print(f"wrote {', '.join(str(f) for f in files)}", soft_wrap=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
