"""`softpool-video profile`: what each pooling method costs in a whole network.

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

The phases are cut where the LatencyProfiler callback cuts them, so the two agree for
the same model and input.
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .clock import Marks
from .saved_tensors import SavedTensorCounter, pooling_layers
from .system import environment, peak_rss_bytes, reset_peak_rss, rss_bytes

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}
DEFAULT_METHODS = ("max", "avg", "softpool")


@dataclass
class MethodProfile:
    model: str
    method: str
    input_shape: str
    forward_ms: float
    forward_iqr_ms: float
    backward_ms: float
    backward_iqr_ms: float
    optimizer_ms: float
    step_ms: float
    step_iqr_ms: float
    step_min_ms: float
    clips_per_s: float
    saved_bytes: int
    pool_saved_bytes: int
    peak_allocated_bytes: int | None  # CUDA only
    peak_reserved_bytes: int | None  # CUDA only
    peak_rss_bytes: int | None  # CPU only: process peak RSS over the timed steps
    peak_rss_since_reset: bool | None  # CPU only: False when the peak is the process's lifetime peak
    peak_rss_increase_bytes: int | None  # CPU only: peak RSS over the timed steps minus the RSS before them
    params: int
    gflops: float
    warmup: int
    repeats: int


def _median_iqr(values: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(values)
    n = len(ordered)

    def q(p: float) -> float:  # linear interpolation between order statistics
        pos = p * (n - 1)
        lo = int(pos)
        hi = min(lo + 1, n - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    return q(0.5), q(0.75) - q(0.25)


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
    """One SGD training step on a fixed batch, timed in phases like the LatencyProfiler cuts them."""

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
        marks.mark("start")
        loss = self.forward_loss()
        marks.mark("forward_end")
        (self.scaler.scale(loss) if self.scaler else loss).backward()
        marks.mark("backward_end")
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        marks.mark("end")
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return marks


@dataclass
class _Prepared:
    method: str
    step: TrainStep
    saved: int
    pool_saved: int
    params: int
    gflops: float
    times: dict[str, list[float]]
    peak_allocated: int = 0
    peak_reserved: int = 0
    peak_rss: int = 0
    rss_rise: int = 0


def _prepare(model_name: str, method: str, x: torch.Tensor, labels: torch.Tensor, dtype: torch.dtype, amp: bool,
             num_classes: int, seed: int, model_kwargs: dict[str, Any] | None) -> _Prepared:
    from softpool_video.models.flops import count_parameters

    model = build(model_name, method, num_classes, seed, model_kwargs).to(device=x.device, dtype=dtype).eval()
    with torch.no_grad():  # materialises lazy pooling parameters before counting or optimizing
        model(x[:1])
    model.train()
    step = TrainStep(model, x, labels, amp)
    counter = SavedTensorCounter(model, pooling_layers(model))
    with counter:
        loss = step.forward_loss()
    del loss
    return _Prepared(method, step, counter.total_bytes, sum(counter.layer_bytes.values()), count_parameters(model),
                     count_gflops(model, x), {"forward": [], "backward": [], "optimizer": [], "step": []})


def _timed_step(p: _Prepared) -> None:
    """One step of p, its phase times and memory peaks recorded."""
    device = p.step.device
    rss_before = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        rss_before = rss_bytes() if reset_peak_rss() else None
    marks = p.step()
    p.times["forward"].append(marks.ms("start", "forward_end"))
    p.times["backward"].append(marks.ms("forward_end", "backward_end"))
    p.times["optimizer"].append(marks.ms("backward_end", "end"))
    p.times["step"].append(marks.ms("start", "end"))
    if device.type == "cuda":
        p.peak_allocated = max(p.peak_allocated, torch.cuda.max_memory_allocated(device))
        p.peak_reserved = max(p.peak_reserved, torch.cuda.max_memory_reserved(device))
    else:
        peak = peak_rss_bytes()
        p.peak_rss = max(p.peak_rss, peak)
        if rss_before is not None:
            p.rss_rise = max(p.rss_rise, peak - rss_before)


def profile_model(model_name: str, methods: Sequence[str], shape: Sequence[int], device: str | torch.device = "cpu",
                  dtype: torch.dtype = torch.float32, amp: bool = False, warmup: int = 2, repeats: int = 5,
                  num_classes: int = 10, seed: int = 0, model_kwargs: dict[str, Any] | None = None
                  ) -> tuple[list[MethodProfile], dict[str, Any]]:
    """Every method on the same input in this process; (results, environment).

    All the models are built first; then the methods take turns step by step (and the
    order rotates each round), so a slow spell of a shared machine hits them alike.
    """
    device = torch.device(device)
    if len(shape) != 5:
        raise ValueError(f"input shape must be N,C,T,H,W (5 numbers), got {tuple(shape)}")
    if warmup < 0 or repeats < 1:
        raise ValueError(f"warmup must be >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(tuple(shape), generator=gen).to(device=device, dtype=dtype)
    labels = torch.randint(0, num_classes, (shape[0],), generator=gen).to(device)
    prepared = []
    for method in methods:
        log.info("building %s with %s pooling", model_name, method)
        prepared.append(_prepare(model_name, method, x, labels, dtype, amp, num_classes, seed, model_kwargs))
    rss_resettable = device.type != "cuda" and reset_peak_rss()
    for _ in range(warmup):
        for p in prepared:
            p.step()
    for i in range(repeats):
        k = i % len(prepared)
        for p in prepared[k:] + prepared[:k]:
            _timed_step(p)
    results = []
    for p in prepared:
        fwd, fwd_iqr = _median_iqr(p.times["forward"])
        bwd, bwd_iqr = _median_iqr(p.times["backward"])
        opt, _ = _median_iqr(p.times["optimizer"])
        step_ms, step_iqr = _median_iqr(p.times["step"])
        cuda = device.type == "cuda"
        results.append(MethodProfile(
            model=model_name, method=p.method, input_shape="x".join(str(s) for s in shape), forward_ms=fwd,
            forward_iqr_ms=fwd_iqr, backward_ms=bwd, backward_iqr_ms=bwd_iqr, optimizer_ms=opt, step_ms=step_ms,
            step_iqr_ms=step_iqr, step_min_ms=min(p.times["step"]),
            clips_per_s=shape[0] / step_ms * 1e3 if step_ms > 0 else 0.0, saved_bytes=p.saved,
            pool_saved_bytes=p.pool_saved, peak_allocated_bytes=p.peak_allocated if cuda else None,
            peak_reserved_bytes=p.peak_reserved if cuda else None, peak_rss_bytes=None if cuda else p.peak_rss,
            peak_rss_since_reset=None if cuda else rss_resettable,
            peak_rss_increase_bytes=None if cuda else p.rss_rise, params=p.params, gflops=p.gflops,
            warmup=warmup, repeats=repeats))
    del prepared
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
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


# --- command line ----------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="softpool-video profile",
                                description="Latency, throughput and memory of a model, per pooling method.")
    p.add_argument("--model", default="r2plus1d_tiny", help="model name (softpool-video models lists them)")
    p.add_argument("--pooling", default=",".join(DEFAULT_METHODS), help="comma-separated pooling methods")
    p.add_argument("--input", default="2,3,8,112,112", help="input shape N,C,T,H,W")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    p.add_argument("--amp", action="store_true", help="autocast the forward (float16 on CUDA, bfloat16 on CPU)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model-args", default="{}", help='JSON keyword arguments for the model, e.g. \'{"base_width": 32}\'')
    p.add_argument("--out", default="runs/profile", help="folder for profile.md/.csv/.json/.png")
    return p


def _shape(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--input must be comma-separated integers N,C,T,H,W, got {text!r}") from None
    if len(values) != 5 or any(v <= 0 for v in values):
        raise ValueError(f"--input must be 5 positive integers N,C,T,H,W, got {text!r}")
    return values


def parse_options(args: argparse.Namespace) -> dict[str, Any]:
    """Checks the parsed options; ValueError naming the option, the value and what is allowed."""
    from softpool_video.models import list_models
    from softpool_video.pooling import available_pools

    if args.model not in list_models():
        raise ValueError(f"--model: unknown model {args.model!r}; available: {', '.join(list_models())}")
    methods = [m.strip() for m in args.pooling.split(",") if m.strip()]
    unknown = [m for m in methods if m not in available_pools()]
    if unknown or not methods:
        raise ValueError(f"--pooling: unknown method(s) {unknown or args.pooling!r}; "
                         f"available: {', '.join(available_pools())}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device!r}: CUDA is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu, cuda or cuda:N, got {args.device!r}")
    if args.warmup < 0 or args.repeats < 1:
        raise ValueError(f"--warmup must be >= 0 and --repeats >= 1, got {args.warmup} and {args.repeats}")
    if args.num_classes < 2:
        raise ValueError(f"--num-classes must be >= 2, got {args.num_classes}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    try:
        model_kwargs = json.loads(args.model_args)
    except json.JSONDecodeError as err:
        raise ValueError(f"--model-args must be a JSON object, got {args.model_args!r} ({err})") from None
    if not isinstance(model_kwargs, dict):
        raise ValueError(f"--model-args must be a JSON object, got {args.model_args!r}")
    return {"model_name": args.model, "methods": methods, "shape": _shape(args.input), "device": device,
            "dtype": DTYPES[args.dtype], "amp": args.amp, "warmup": args.warmup, "repeats": args.repeats,
            "num_classes": args.num_classes, "seed": args.seed, "model_kwargs": model_kwargs}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rich.console import Console

    from .report import markdown_table, write_outputs

    console = Console()
    try:
        options = parse_options(args)
    except ValueError as err:
        console.print(f"[red]profile: {err}", soft_wrap=True)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    results, env = profile_model(**options)
    files = write_outputs(results, env, Path(args.out))
    console.print(markdown_table(results, env), markup=False, highlight=False, soft_wrap=True)
    console.print(f"wrote {', '.join(str(f) for f in files)}", soft_wrap=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
