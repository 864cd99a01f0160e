"""Profiling benchmark: the callbacks' overhead, SoftPool vs max in a training step, and
whether `softpool-video profile` agrees with the callbacks.

    python -m benchmarks.bench_profiling [--quick] [--threads N]

1. Overhead: the same short fits of a tiny R(2+1)D with no profiling callbacks, with the
   callbacks constructed but disabled, enabled, and enabled with per-layer timing. Step
   time comes from an independent timer callback present in every run; the
   configurations take turns over several rounds so drift on a shared machine hits all
   alike. Also the time spent inside the callbacks' own hooks per step, which noise
   does not blur.
2. SoftPool in place of max pooling on R(2+1)D-50 and I3D: training-step time (the two
   methods alternate step by step), bytes saved for backward, and the process peak RSS
   of a fresh subprocess per method (the CPU's honest peak: in one process it only grows).
3. Agreement: `softpool-video profile`'s measurement (model_profile.MethodRun) against
   LatencyProfiler/MemoryProfiler in a Lightning fit of the same model, batch and
   optimizer, the two interleaved step by step; and, for comparison, run one after the other.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from softpool_video.measure import Marks, SavedTensorCounter, median, timed_call
from softpool_video.profiling import LatencyProfiler, MemoryProfiler, pooling_layers
from softpool_video.studies.model_profile import (
    MethodProfile,
    MethodRun,
    TrainStep,
    build,
    make_batch,
    profile_method,
)

INPUTS = ("quick", "threads")  # run()'s keys saying what was measured


class _Classifier(pl.LightningModule):
    def __init__(self, arch: str, pooling: str, num_classes: int = 10) -> None:
        super().__init__()
        self.net = build(arch, pooling, num_classes, seed=0)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-4, momentum=0.9)  # as model_profile's TrainStep


class _StepTimer(pl.Callback):
    """Batch start to batch end: wall time (perf_counter; CPU work is synchronous) and the
    process's CPU time, which time-slicing on a busy machine does not inflate."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.cpu_times: list[float] = []

    def on_train_batch_start(self, *args: Any) -> None:
        self._marks = Marks(cuda=False, cpu_time=True)
        self._marks.mark("start")

    def on_train_batch_end(self, *args: Any) -> None:
        self._marks.mark("end")
        self.times.append(self._marks.ms("start", "end"))
        self.cpu_times.append(self._marks.cpu_ms("start", "end"))


class _HookTime:
    """Wraps a callback's hook methods and adds up the wall time spent inside them."""

    HOOKS = ("on_train_batch_start", "on_before_backward", "on_after_backward", "on_train_batch_end")

    def __init__(self, callback: pl.Callback) -> None:
        self.seconds = 0.0
        for name in self.HOOKS:
            setattr(callback, name, self._wrap(getattr(callback, name)))

    def _wrap(self, fn):
        def timed(*args, **kwargs):
            result, ms = timed_call(lambda: fn(*args, **kwargs), torch.device("cpu"))
            self.seconds += ms / 1e3
            return result
        return timed


def _fit(arch: str, pooling: str, shape: tuple[int, ...], steps: int, callbacks: list[pl.Callback],
         batch: tuple[torch.Tensor, torch.Tensor] | None = None, logger: pl.loggers.Logger | bool = False) -> None:
    """`steps` training steps of a fresh model; on `batch` (clips, labels) every step if given."""
    if batch is not None:
        data = TensorDataset(batch[0].repeat(steps, 1, 1, 1, 1), batch[1].repeat(steps))
    else:
        gen = torch.Generator().manual_seed(0)
        data = TensorDataset(torch.randn(shape[0] * steps, *shape[1:], generator=gen),
                             torch.randint(0, 10, (shape[0] * steps,), generator=gen))
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", devices=1, callbacks=callbacks, logger=logger,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         default_root_dir="runs/bench_profiling")
    trainer.fit(_Classifier(arch, pooling), DataLoader(data, batch_size=shape[0]))


def _callbacks(config: str, root: str) -> list[pl.Callback]:
    if config == "none":
        return []
    enabled = config != "disabled"
    return [LatencyProfiler(warmup_steps=1, layer_timing=config == "enabled+layers", dirpath=root, enabled=enabled),
            MemoryProfiler(warmup_steps=1, dirpath=root, enabled=enabled)]


class _Alternate(pl.Callback):
    """Switches the profilers on for even steps and off for odd ones (at batch end, so every
    step runs wholly in one state): adjacent steps form pairs that drift on a busy machine
    barely separates. Placed after the profilers and the step timer."""

    def __init__(self, profilers: list[pl.Callback], timer: _StepTimer) -> None:
        self.profilers, self.timer = profilers, timer
        self.states: list[bool] = []

    def on_train_batch_end(self, *args: Any) -> None:
        self.states.append(self.profilers[0].enabled)
        for profiler in self.profilers:
            profiler.enabled = len(self.states) % 2 == 0


def paired_overhead(quick: bool, costliest: bool) -> dict[str, Any]:
    """One fit whose steps alternate profiling on and off; median ratio of each on step to the
    mean of its off neighbours. `costliest`: per-layer timing and saved tensors counted on
    every step (off steps still pass through the idle layer hooks); else the defaults."""
    shape = (2, 3, 8, 32, 32) if quick else (2, 3, 8, 64, 64)
    steps = 20 if quick else 60
    with tempfile.TemporaryDirectory() as root:
        profilers = [LatencyProfiler(layer_timing=costliest, dirpath=root),
                     MemoryProfiler(saved_tensor_steps=-1 if costliest else 2, dirpath=root)]
        timer = _StepTimer()
        alternate = _Alternate(profilers, timer)
        _fit("r2plus1d_tiny", "softpool", shape, steps, [*profilers, timer, alternate])
    wall, cpu, states = timer.times, timer.cpu_times, alternate.states
    ratios: dict[str, list[float]] = {"wall": [], "cpu": []}
    for i in range(4, len(states) - 1):  # the first steps warm up
        if states[i] and not states[i - 1] and not states[i + 1]:
            for kind, series in (("wall", wall), ("cpu", cpu)):
                ratios[kind].append(series[i] / ((series[i - 1] + series[i + 1]) / 2))
    on = [t for t, s in zip(wall[4:], states[4:], strict=False) if s]
    off = [t for t, s in zip(wall[4:], states[4:], strict=False) if not s]
    return {"settings": "layer timing, saved tensors every step" if costliest else "defaults",
            "pairs": len(ratios["wall"]), "overhead_wall": median(ratios["wall"]) - 1.0,
            "overhead_cpu": median(ratios["cpu"]) - 1.0, "on_median_ms": median(on),
            "off_median_ms": median(off)}


def overhead(quick: bool) -> dict[str, Any]:
    shape = (2, 3, 8, 32, 32) if quick else (2, 3, 8, 64, 64)
    rounds, steps, warm = (2, 4, 1) if quick else (3, 8, 2)
    configs = ("none", "disabled", "enabled", "enabled+layers")
    times: dict[str, list[float]] = {c: [] for c in configs}
    cpu: dict[str, list[float]] = {c: [] for c in configs}
    in_hooks: dict[str, list[float]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as root:
        for _ in range(rounds):
            for config in configs:
                timer = _StepTimer()
                callbacks = _callbacks(config, root)
                hooks = [_HookTime(c) for c in callbacks]
                _fit("r2plus1d_tiny", "softpool", shape, steps, [*callbacks, timer])
                times[config] += timer.times[warm:]
                cpu[config] += timer.cpu_times[warm:]
                in_hooks[config].append(sum(h.seconds for h in hooks) * 1e3 / steps)
    base = median(times["none"])
    base_cpu = median(cpu["none"])
    rows = []
    for config in configs:
        step_ms = median(times[config])
        median_cpu = median(cpu[config])
        rows.append({"config": config, "step_ms": step_ms, "min_step_ms": min(times[config]),
                     "overhead": step_ms / base - 1.0, "cpu_step_ms": median_cpu, "cpu_overhead": median_cpu / base_cpu - 1.0, "hook_ms_per_step": median(in_hooks[config]),
                     "hook_fraction": median(in_hooks[config]) / base, "steps": len(times[config])})
    return {"model": "r2plus1d_tiny", "pooling": "softpool", "input": list(shape), "rows": rows,
            "paired": [paired_overhead(quick, costliest) for costliest in (False, True)]}


_RSS_SCRIPT = """
import json, resource, sys, torch
torch.set_num_threads({threads})
from softpool_video.studies.model_profile import TrainStep, build
model = build({arch!r}, {method!r}, 10, 0).train()
gen = torch.Generator().manual_seed(0)
x = torch.randn({shape!r}, generator=gen)
step = TrainStep(model, x, torch.randint(0, 10, ({shape[0]},), generator=gen), False)
step()  # the first step allocates gradients and momentum: part of training, so after the reset
from softpool_video.measure import peak_rss_bytes, reset_peak_rss, rss_bytes
import gc; gc.collect()
before = rss_bytes()
reset = reset_peak_rss()
for _ in range(2):
    step()
print(json.dumps({{"before_kib": before // 1024, "peak_kib": peak_rss_bytes() // 1024, "reset": reset}}))
"""


def _subprocess_rss(arch: str, method: str, shape: tuple[int, ...]) -> dict[str, float]:
    code = _RSS_SCRIPT.format(threads=torch.get_num_threads(), arch=arch, method=method, shape=shape)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return {"peak_rss_mib": data["peak_kib"] / 1024, "step_rss_increase_mib": (data["peak_kib"] - data["before_kib"]) / 1024,
            "reset": data["reset"]}


def softpool_vs_max(quick: bool) -> list[dict[str, Any]]:
    shape = (1, 3, 8, 64, 64) if quick else (1, 3, 8, 112, 112)
    repeats, warmup = (3, 1) if quick else (9, 2)
    rows = []
    for arch in ("r2plus1d_50", "i3d"):
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(shape, generator=gen)
        y = torch.randint(0, 10, (shape[0],), generator=gen)
        steps, saved, pools = {}, {}, {}
        for method in ("max", "softpool"):
            model = build(arch, method, 10, 0).train()
            steps[method] = TrainStep(model, x, y, amp=False)
            with SavedTensorCounter(model, pooling_layers(model)) as counter:
                steps[method].forward_loss()
            saved[method], pools[method] = counter.total_bytes, sum(counter.layer_bytes.values())
        times: dict[str, list[float]] = {"max": [], "softpool": []}
        cpu: dict[str, list[float]] = {"max": [], "softpool": []}
        for i in range(warmup + repeats):
            for method in (("max", "softpool") if i % 2 == 0 else ("softpool", "max")):  # alternate the order too
                cpu_clock = Marks(cpu_time=True)
                cpu_clock.mark("start")
                marks = steps[method]()
                cpu_clock.mark("end")
                if i >= warmup:
                    times[method].append(marks.ms("start", "end"))
                    cpu[method].append(cpu_clock.cpu_ms("start", "end"))
        del steps
        rss = {method: _subprocess_rss(arch, method, shape) for method in ("max", "softpool")}
        med = {m: median(t) for m, t in times.items()}
        med_cpu = {m: median(t) for m, t in cpu.items()}
        rows.append({
            "model": arch, "input": list(shape), "repeats": repeats,
            "max_step_ms": med["max"], "softpool_step_ms": med["softpool"],
            "max_min_step_ms": min(times["max"]), "softpool_min_step_ms": min(times["softpool"]),
            "step_ratio": med["softpool"] / med["max"],
            "max_cpu_step_ms": med_cpu["max"], "softpool_cpu_step_ms": med_cpu["softpool"],
            "cpu_step_ratio": med_cpu["softpool"] / med_cpu["max"],
            "max_saved_mib": saved["max"] / 2**20, "softpool_saved_mib": saved["softpool"] / 2**20,
            "max_pool_saved_mib": pools["max"] / 2**20, "softpool_pool_saved_mib": pools["softpool"] / 2**20,
            "max_peak_rss_mib": rss["max"]["peak_rss_mib"], "softpool_peak_rss_mib": rss["softpool"]["peak_rss_mib"],
            "max_step_rss_increase_mib": rss["max"]["step_rss_increase_mib"],
            "softpool_step_rss_increase_mib": rss["softpool"]["step_rss_increase_mib"], "rss_reset": rss["max"]["reset"],
        })
    return rows


class _ProfileStepBetween(pl.Callback):
    """After every Lightning step, one step of `softpool-video profile`'s own measurement
    (model_profile.MethodRun, the code profile_model runs) on its own copy of the model:
    the two alternate step by step, so a slow spell of the shared machine hits both alike.
    Placed after the profilers, so their step has ended before this one starts."""

    def __init__(self, run: MethodRun, warmup: int) -> None:
        self.run, self.warmup = run, warmup

    def on_train_batch_end(self, *args: Any) -> None:
        if self.run.warmup_steps < self.warmup:
            self.run.warmup_step()
        else:
            self.run.timed_step()


class _StepLog(pl.loggers.Logger):
    """Keeps the LatencyProfiler's per-step phase times (logged with log_every_n_steps=1) in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[dict[str, float]] = []

    @property
    def name(self) -> str:
        return "steps"

    @property
    def version(self) -> str:
        return "0"

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if "profile/clips_per_s" in metrics:  # a step's row, not the end-of-fit summary
            self.steps.append(dict(metrics))


PHASE_KEYS = {"forward ms": ("forward", "profile/forward_ms"), "backward ms": ("backward", "profile/backward_ms"),
              "optimizer ms": ("optimizer", "profile/optimizer_ms"), "train step ms": ("step", "profile/step_ms")}

AGREEMENT_QUANTITIES = {  # row name: (MethodProfile field, callback summary key)
    "forward ms": ("forward_ms", "forward_ms"), "backward ms": ("backward_ms", "backward_ms"),
    "optimizer ms": ("optimizer_ms", "optimizer_ms"), "train step ms": ("step_ms", "step_ms"),
    "clips/s (batch / median step)": ("clips_per_s", "median_step_clips_per_s"),
    "saved for backward bytes": ("saved_bytes", "saved_bytes"),
    "pool layers' saved bytes": ("pool_saved_bytes", "pool_saved_bytes"),
}


def _interleaved_round(arch: str, pooling: str, shape: tuple[int, ...], steps: int, warmup: int
                       ) -> tuple[MethodProfile, dict[str, Any], dict[str, list[float]]]:
    """One fit with both callbacks whose steps alternate with the profile's steps;
    (profile, callbacks' summaries, {phase: callback step / its profile step - 1 for each pair})."""
    device = torch.device("cpu")
    x, y = make_batch(shape, 10, 0, device, torch.float32)
    run = MethodRun(arch, pooling, x, y, torch.float32, False, 10, 0)
    steps_log = _StepLog()
    with tempfile.TemporaryDirectory() as root:
        latency = LatencyProfiler(warmup_steps=warmup, log_every_n_steps=1, dirpath=root)
        memory = MemoryProfiler(dirpath=root)  # default: counts saved tensors on the warm-up steps
        _fit(arch, pooling, shape, steps, [latency, memory, _ProfileStepBetween(run, warmup)], batch=(x, y),
             logger=steps_log)
    pairs = {name: [c[key] / p - 1.0 for c, p in zip(steps_log.steps, run.times[phase], strict=False) if p > 0]
             for name, (phase, key) in PHASE_KEYS.items()}
    return run.result(shape, device, rss_resettable=False), {**memory.summary, **latency.summary}, pairs


def agreement(quick: bool, threads: int | None = 1) -> dict[str, Any]:
    """`softpool-video profile`'s figures against LatencyProfiler/MemoryProfiler, r2plus1d_tiny with SoftPool.

    Same model (same builder and seed), same batch, same SGD optimizer, same thread count
    (one process), same warm-up (2 steps), steps cut at the same points. Interleaved: in
    each round the two take turns step by step inside one fit; the figure is the median
    over rounds of each side's median, and the spread is the range of the per-round
    differences. Separate: the previous way, a whole profile then a whole fit, per round.

    `threads` (None: leave torch's setting): 1 by default, because on a shared 2-core
    machine two OpenMP threads wait at every parallel region for whichever one another job
    has descheduled, which multiplies the noise of both sides (not their difference).
    """
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _agreement(quick)
    finally:
        torch.set_num_threads(previous_threads)


def _agreement(quick: bool) -> dict[str, Any]:
    load_before = os.getloadavg()
    arch, pooling = "r2plus1d_tiny", "softpool"
    shape = (2, 3, 8, 32, 32) if quick else (2, 3, 8, 64, 64)
    steps, rounds, warmup = (8, 2, 2) if quick else (30, 5, 2)
    separate_rounds = 2 if quick else 3
    rounds_out = [_interleaved_round(arch, pooling, shape, steps, warmup) for _ in range(rounds)]
    separate = []
    for _ in range(separate_rounds):
        profile = profile_method(arch, pooling, shape, warmup=warmup, repeats=steps - warmup)
        with tempfile.TemporaryDirectory() as root:
            latency = LatencyProfiler(warmup_steps=warmup, dirpath=root)
            memory = MemoryProfiler(dirpath=root)
            _fit(arch, pooling, shape, steps, [latency, memory], batch=make_batch(shape, 10, 0, torch.device("cpu"),
                                                                                torch.float32))
        separate.append((profile, {**memory.summary, **latency.summary}))

    def difference(p: MethodProfile, c: dict[str, Any], field: str, key: str) -> float | None:
        a, b = getattr(p, field), c.get(key)
        return None if not a or b is None else b / a - 1.0

    rows = []
    for name, (field, key) in AGREEMENT_QUANTITIES.items():
        per_round = [difference(p, c, field, key) for p, c, _ in rounds_out]
        profile_value = median(getattr(p, field) for p, _, _ in rounds_out)
        callback_value = median(c[key] for _, c, _ in rounds_out)
        step_pairs = [d for _, _, paired in rounds_out for d in paired.get(name, [])]
        separate_diffs = [difference(p, c, field, key) for p, c in separate]
        rows.append({"quantity": name, "profile": profile_value, "callbacks": callback_value,
                     "difference": callback_value / profile_value - 1.0 if profile_value else None,
                     "round_differences": per_round,
                     "paired_step_difference": median(step_pairs) if step_pairs else None,
                     "paired_steps": len(step_pairs),
                     "separate_difference": median([d for d in separate_diffs if d is not None] or [0.0]),
                     "separate_round_differences": separate_diffs})
    return {"model": arch, "pooling": pooling, "input": list(shape), "rounds": rounds,
            "separate_rounds": separate_rounds, "steps": steps, "warmup": warmup, "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "load_average_1min": [load_before[0], os.getloadavg()[0]], "rows": rows}


def run(quick: bool = False) -> dict:
    return {"quick": quick, "threads": torch.get_num_threads(), "overhead": overhead(quick),
            "softpool_vs_max": softpool_vs_max(quick), "agreement": agreement(quick)}


def markdown(result: dict) -> str:
    o = result["overhead"]
    lines = [f"### Profiling callbacks: overhead ({o['model']} {o['pooling']}, input {tuple(o['input'])}, CPU, "
             f"{result['threads']} threads)", "",
             "| callbacks | median step ms | min step ms | vs none | median step CPU ms | vs none (CPU) "
             "| time inside the callbacks' hooks per step |",
             "|---|---|---|---|---|---|---|"]
    for r in o["rows"]:
        lines.append(f"| {r['config']} | {r['step_ms']:.1f} | {r['min_step_ms']:.1f} | {r['overhead']:+.1%} | "
                     f"{r['cpu_step_ms']:.1f} | {r['cpu_overhead']:+.1%} | "
                     f"{r['hook_ms_per_step']:.2f} ms ({r['hook_fraction']:.2%}) |")
    lines += ["", "Paired: one fit whose steps alternate both callbacks on and off (each on step against the mean of "
                  "its two off neighbours):", "",
              "| settings | pairs | median overhead, wall | median overhead, CPU time | on / off median step ms |",
              "|---|---|---|---|---|"]
    for p in o["paired"]:
        lines.append(f"| {p['settings']} | {p['pairs']} | {p['overhead_wall']:+.1%} | {p['overhead_cpu']:+.1%} | "
                     f"{p['on_median_ms']:.1f} / {p['off_median_ms']:.1f} |")
    lines += ["", "### SoftPool in place of max pooling: training step on CPU", "",
              "| model | input | max step ms | softpool step ms | softpool / max | CPU-time ratio "
              "| saved for backward MiB (max / soft) | pool layers' share MiB (max / soft) "
              "| peak RSS during steps MiB, fresh process (max / soft) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in result["softpool_vs_max"]:
        lines.append(f"| {r['model']} | {'x'.join(map(str, r['input']))} | {r['max_step_ms']:.0f} | "
                     f"{r['softpool_step_ms']:.0f} | {r['step_ratio']:.3f} | {r['cpu_step_ratio']:.3f} | {r['max_saved_mib']:.1f} / "
                     f"{r['softpool_saved_mib']:.1f} | {r['max_pool_saved_mib']:.1f} / {r['softpool_pool_saved_mib']:.1f}"
                     f" | {r['max_peak_rss_mib']:.0f} / {r['softpool_peak_rss_mib']:.0f} |")
    a = result["agreement"]
    lines += ["", f"### `softpool-video profile` vs the callbacks ({a['model']} {a['pooling']}, input "
                  f"{tuple(a['input'])}, CPU, {a['threads']} thread(s), 1-min load average "
                  f"{a['load_average_1min'][0]:.1f} -> {a['load_average_1min'][1]:.1f} on {a['cpus']} CPUs)", "",
              f"Interleaved: profile and Lightning steps alternate inside one fit, {a['rounds']} rounds of "
              f"{a['steps']} steps ({a['warmup']} warm-up); step pair: each measured Lightning step against the "
              f"profile step right after it; separate: a whole profile, then a whole fit, {a['separate_rounds']} "
              "rounds.", "",
              "| quantity | profile | callbacks | difference, interleaved | range over rounds | median step-pair "
              "difference | difference, separate | range over rounds |", "|---|---|---|---|---|---|---|---|"]

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:+.1%}"

    def span(values: list[float | None]) -> str:
        known = [v for v in values if v is not None]
        return "-" if not known else f"{min(known):+.1%} .. {max(known):+.1%}"

    for r in a["rows"]:
        lines.append(f"| {r['quantity']} | {r['profile']:.4g} | {r['callbacks']:.4g} | {pct(r['difference'])} | "
                     f"{span(r['round_differences'])} | {pct(r['paired_step_difference'])} | "
                     f"{pct(r['separate_difference'])} | "
                     f"{span(r['separate_round_differences'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write its summary here (benchmarks/summary.py's layout)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(quick=args.quick)
    if args.json:
        from benchmarks.summary import split_inputs, write_summary

        write_summary("profiling", *split_inputs(result, INPUTS), out=args.json)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
