"""`make gpu-check`: everything that needs a CUDA GPU, in one run of under 5 minutes.

On a machine with a CUDA GPU, in order, each stage under its own timeout (together within
--budget-s, 280 s by default; a stage that would start with too little time left is
reported as skipped):

1. build: the extension for this GPU (TORCH_CUDA_ARCH_LIST from
   torch.cuda.get_device_capability, `pip install --no-build-isolation --no-deps -e .` with
   this Python, MAX_JOBS = CPU count);
2. tests: `pytest -m cuda tests/ops/test_softpool_op.py` (CUDA kernels against the float64
   reference in fp32/fp16/bf16, fp64 gradcheck, layouts incl. channels_last and the
   grid-stride loop, 64-bit indexing when the memory allows, determinism);
3. bench: SoftPool3d against torch's max_pool3d and avg_pool3d on (8, 64, 16, 56, 56) fp32,
   k2s2 and k3s2p1: forward, backward and both, medians of CUDA-event timings, the ratio
   to max_pool3d and the achieved memory bandwidth as a share of the device's peak (see
   `bench` for the bytes counted and how the peak is found);
4. profile: `softpool-video profile` of I3D and R(2+1)D-50 with max, avg and softpool
   (latency and CUDA peak memory);
5. fit: `softpool-video fit` of the demo config for one short epoch with
   --trainer.precision 16-mixed --trainer.accelerator gpu on freshly written demo data.

Writes <device>.md (tables) and <device>.json under benchmarks/results/gpu/ (or --out),
the device name in both, and exits non-zero when any stage failed, timed out or was
skipped. Without a CUDA GPU it prints one line saying so, writes nothing and exits 0.

    python scripts/gpu_check.py [--out DIR] [--budget-s 280]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "gpu"

BENCH_SHAPE = (8, 64, 16, 56, 56)
BENCH_GEOMETRIES = {"k2s2": (2, 2, 0), "k3s2p1": (3, 2, 1)}  # kernel, stride, padding
PROFILE_MODELS = ("i3d", "r2plus1d_50")
PROFILE_INPUT = "4,3,16,112,112"

# Stage: (longest it may take, fewest seconds worth starting it with).
STAGE_LIMITS = {
    "build": (170, 60),
    "tests": (90, 20),
    "bench": (45, 15),
    "profile i3d": (40, 15),
    "profile r2plus1d_50": (40, 15),
    "fit": (60, 25),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="folder for <device>.md and <device>.json")
    parser.add_argument("--budget-s", type=float, default=280.0, help="time for all stages together")
    parser.add_argument("--stage", choices=["bench"], help=argparse.SUPPRESS)  # internal: one stage in a child
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    if args.stage == "bench":
        Path(args.json).write_text(json.dumps(bench("cuda"), indent=1) + "\n")
        return 0
    with warnings.catch_warnings():  # a driver without a device warns; the one line below says it
        warnings.simplefilter("ignore")
        available = torch.cuda.is_available()
    if not available:
        print("gpu-check: no CUDA GPU on this machine (torch.cuda.is_available() is False); nothing checked, "
              "nothing written")
        return 0
    return run_all(Path(args.out), args.budget_s)


# --------------------------------------------------------------------------- stages


class Stages:
    """Runs commands under one overall deadline; records each stage's outcome."""

    def __init__(self, budget_s: float, log_dir: Path) -> None:
        self.start = time.monotonic()
        self.deadline = self.start + budget_s
        self.log_dir = log_dir
        self.results: list[dict[str, Any]] = []

    def run(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> bool:
        longest, fewest = STAGE_LIMITS[name]
        left = self.deadline - time.monotonic()
        timeout = min(longest, left)
        log_path = self.log_dir / (re.sub(r"\W+", "_", name) + ".log")
        record: dict[str, Any] = {"stage": name, "command": " ".join(cmd), "timeout_s": round(timeout, 1)}
        if timeout < fewest:
            record.update(status="skipped", seconds=0.0, detail=f"out of time ({left:.0f} s left of the budget)")
            self.results.append(record)
            print(f"gpu-check: {name}: skipped, out of time", flush=True)
            return False
        print(f"gpu-check: {name} (timeout {timeout:.0f} s) ...", flush=True)
        t0 = time.monotonic()
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # its own group: a timeout ends nvcc, workers too
            try:
                rc: int | None = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                rc = None
        seconds = time.monotonic() - t0
        tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
        if rc == 0:
            record.update(status="ok", seconds=round(seconds, 1), detail=_summary_line(name, tail))
        else:
            status = "timeout" if rc is None else "failed"
            record.update(status=status, seconds=round(seconds, 1),
                          detail=(f"timed out after {seconds:.0f} s" if rc is None else f"exit code {rc}"),
                          log_tail=tail)
        self.results.append(record)
        print(f"gpu-check: {name}: {record['status']} in {seconds:.0f} s", flush=True)
        return rc == 0

    def note(self, name: str, **fields: Any) -> None:
        for record in self.results:
            if record["stage"] == name:
                record.update(fields)

    def fail(self, name: str, detail: str) -> None:
        self.note(name, status="failed", detail=detail)

    @property
    def ok(self) -> bool:
        return all(r["status"] == "ok" for r in self.results)


def _summary_line(name: str, tail: list[str]) -> str:
    if name == "tests":  # pytest's last line: "N passed, M skipped in 12.3s"
        for line in reversed(tail):
            if re.search(r"\d+ (passed|failed|skipped)", line):
                return line.strip("= ")
    return ""


def _tool(name: str) -> list[str]:
    """The venv's console script beside this Python, else `python -m softpool_video.cli`."""
    script = Path(sys.executable).with_name(name)
    return [str(script)] if script.exists() else [sys.executable, "-m", "softpool_video.cli"]


def run_all(out_dir: Path, budget_s: float) -> int:
    import torch

    props = torch.cuda.get_device_properties(0)
    major, minor = torch.cuda.get_device_capability(0)
    device = {
        "name": props.name,
        "capability": f"{major}.{minor}",
        "sm_count": props.multi_processor_count,
        "memory_gib": round(props.total_memory / 2**30, 1),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    peak = peak_bandwidth(props)
    report: dict[str, Any] = {"device": device, "peak_bandwidth": peak, "budget_s": budget_s}
    cli = _tool("softpool-video")
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        tmp_dir = Path(tmp)
        stages = Stages(budget_s, tmp_dir)
        env = dict(os.environ, TORCH_CUDA_ARCH_LIST=f"{major}.{minor}", MAX_JOBS=str(os.cpu_count() or 4),
                   PYTHONUNBUFFERED="1")
        built = stages.run("build", [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps",
                                     "-e", str(ROOT)], env=env)
        if built:  # the fresh build must load and have its CUDA kernels (checked in a child: new .so)
            check = subprocess.run([sys.executable, "-c", "import softpool_video as s; print(s.extension_status())"],
                                   cwd=ROOT, capture_output=True, text=True, check=False,
                                   timeout=max(5.0, min(60.0, stages.deadline - time.monotonic())))
            status = check.stdout.strip()
            stages.note("build", detail=f"arch {major}.{minor}; {status or check.stderr.strip()[-300:]}")
            if "CUDA kernels" not in status:
                stages.fail("build", f"the built extension has no CUDA kernels: {status or check.stderr[-300:]}")
        stages.run("tests", [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                             "tests/ops/test_softpool_op.py"])

        bench_json = tmp_dir / "bench.json"
        if stages.run("bench", [sys.executable, str(Path(__file__).resolve()), "--stage", "bench",
                                "--json", str(bench_json)]):
            report["bench"] = json.loads(bench_json.read_text())

        report["profiles"] = {}
        for model in PROFILE_MODELS:
            prof_dir = tmp_dir / f"profile_{model}"
            name = f"profile {model}"
            if stages.run(name, [*cli, "profile", "--model", model, "--pooling", "max,avg,softpool",
                                 "--device", "cuda", "--input", PROFILE_INPUT, "--warmup", "2",
                                 "--repeats", "5", "--out", str(prof_dir)]):
                try:
                    report["profiles"][model] = json.loads((prof_dir / "profile.json").read_text())["results"]
                except (OSError, ValueError, KeyError) as err:
                    stages.fail(name, f"no profile.json: {err}")

        data_dir, run_dir = tmp_dir / "demo_data", tmp_dir / "fit"
        fit_cmd = [*cli, "fit", "--config", "demo", "--data.init_args.root", str(data_dir),
                   "--trainer.accelerator", "gpu", "--trainer.devices", "1",
                   "--trainer.precision", "16-mixed", "--trainer.max_epochs", "1",
                   "--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "2",
                   "--trainer.default_root_dir", str(run_dir), "--model.pooling", "softpool"]
        # one stage: the demo data, then the fit
        script = (f"{_quote([*cli, 'make-demo-data', '--groups', '22', '--clips-per-group', '1', str(data_dir)])}"
                  f" && {_quote(fit_cmd)}")
        stages.run("fit", ["bash", "-c", script])
        report["stages"] = stages.results
        report["total_s"] = round(time.monotonic() - stages.start, 1)
        report["ok"] = stages.ok
        # stage logs of failures travel in the JSON (log_tail); the rest is discarded with tmp

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^a-z0-9]+", "_", device["name"].lower()).strip("_") or "gpu"
    md_path, json_path = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    _write(json_path, json.dumps(report, indent=1) + "\n")
    _write(md_path, markdown(report))
    print(f"gpu-check: {'all stages ok' if report['ok'] else 'FAILED'} in {report['total_s']:.0f} s; "
          f"wrote {md_path.relative_to(ROOT) if md_path.is_relative_to(ROOT) else md_path} and .json", flush=True)
    return 0 if report["ok"] else 1


def _quote(cmd: list[str]) -> str:
    import shlex
    return " ".join(shlex.quote(c) for c in cmd)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- bandwidth


def peak_bandwidth(props: Any) -> dict[str, Any]:
    """The device's theoretical memory bandwidth: 2 transfers per memory clock (DDR/HBM) x
    bus width. The clock (kHz) and bus width (bits) come from
    torch.cuda.get_device_properties; where torch reports no clock, nvidia-smi's maximum
    memory clock is used. None where neither is known."""
    clock_khz = getattr(props, "memory_clock_rate", 0) or 0
    bus_bits = getattr(props, "memory_bus_width", 0) or 0
    source = "torch.cuda.get_device_properties (memory_clock_rate, memory_bus_width)"
    if not clock_khz and shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=clocks.max.memory", "--format=csv,noheader,nounits",
                                  "-i", "0"], capture_output=True, text=True, timeout=20, check=False).stdout
            clock_khz = int(float(out.strip().splitlines()[0]) * 1000)
            source = "nvidia-smi clocks.max.memory, torch memory_bus_width"
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            clock_khz = 0
    if not clock_khz or not bus_bits:
        return {"gb_per_s": None, "how": "unknown: no memory clock or bus width reported"}
    gbps = 2 * clock_khz * 1e3 * (bus_bits / 8) / 1e9
    return {"gb_per_s": round(gbps, 1), "memory_clock_mhz": clock_khz / 1e3, "bus_width_bits": bus_bits,
            "how": f"2 x memory clock x bus width / 8, from {source}"}


def min_bytes(method: str, phase: str, n_in: int, n_out: int, elem: int = 4) -> int:
    """Bytes a pass must at least read and write (each tensor once).

    softpool forward: read x, write out and the fp32 lse; backward: read x, grad_out, out,
    lse, write grad_in. max_pool3d forward (input requiring grad): read x, write out and the
    int64 indices; backward: read grad_out and indices, write grad_in. avg_pool3d forward:
    read x, write out; backward: read grad_out, write grad_in. "both" is their sum.
    """
    table = {
        ("softpool", "forward"): n_in * elem + n_out * (elem + 4),
        ("softpool", "backward"): 2 * n_in * elem + n_out * (2 * elem + 4),
        ("max", "forward"): n_in * elem + n_out * (elem + 8),
        ("max", "backward"): n_in * elem + n_out * (elem + 8),
        ("avg", "forward"): n_in * elem + n_out * elem,
        ("avg", "backward"): n_in * elem + n_out * elem,
    }
    if phase == "both":
        return table[(method, "forward")] + table[(method, "backward")]
    return table[(method, phase)]


# --------------------------------------------------------------------------- bench


def _median_ms(fn, device: str, repeats: int, warmup: int) -> float:
    # the one timer every benchmark uses (torch.utils.benchmark.Timer, CUDA-synchronised)
    from softpool_video.measure import time_callable

    return time_callable(fn, repeats=repeats, warmup=warmup).median_ms


def bench(device: str = "cuda", shape: tuple[int, ...] = BENCH_SHAPE, repeats: int = 20, warmup: int = 5
          ) -> dict[str, Any]:
    """SoftPool3d vs max_pool3d and avg_pool3d: forward, backward (the gradient of one
    retained graph, torch.autograd.grad, so nothing accumulates) and both, per geometry."""
    import torch
    import torch.nn.functional as F

    import softpool_video
    from softpool_video import SoftPool3d

    torch.manual_seed(0)
    x = torch.randn(*shape, device=device, requires_grad=True)
    peak = peak_bandwidth(torch.cuda.get_device_properties(0)) if device == "cuda" else {"gb_per_s": None}
    # A plain copy of the input: the bandwidth a streaming kernel reaches in practice.
    copy_ms = _median_ms(lambda: x.detach().clone(), device, repeats, warmup)
    copy_gbps = 2 * x.numel() * x.element_size() / copy_ms / 1e6
    rows = []
    for geometry, (k, s, p) in BENCH_GEOMETRIES.items():
        pools = {
            "max": lambda t, k=k, s=s, p=p: F.max_pool3d(t, k, s, p),
            "avg": lambda t, k=k, s=s, p=p: F.avg_pool3d(t, k, s, p),
            "softpool": SoftPool3d(k, s, p),
        }
        times: dict[tuple[str, str], float] = {}
        n_out = 0
        for method, pool in pools.items():
            y = pool(x)
            n_out = y.numel()
            g = torch.randn_like(y)

            def forward(pool=pool):
                return pool(x)

            def backward(y=y, g=g):
                return torch.autograd.grad(y, x, g, retain_graph=True)

            def both(pool=pool, g=g):
                return torch.autograd.grad(pool(x), x, g)

            for phase, fn in (("forward", forward), ("backward", backward), ("both", both)):
                times[(method, phase)] = _median_ms(fn, device, repeats, warmup)
            del y, g
        for method in pools:
            for phase in ("forward", "backward", "both"):
                ms = times[(method, phase)]
                moved = min_bytes(method, phase, x.numel(), n_out)
                gbps = moved / ms / 1e6
                rows.append({
                    "geometry": geometry, "method": method, "pass": phase, "median_ms": round(ms, 4),
                    "vs_max_pool3d": round(ms / times[("max", phase)], 3), "min_bytes": moved,
                    "gb_per_s": round(gbps, 1),
                    "pct_of_peak": round(100 * gbps / peak["gb_per_s"], 1) if peak.get("gb_per_s") else None,
                    "pct_of_copy": round(100 * gbps / copy_gbps, 1),
                })
    return {"shape": list(shape), "dtype": "float32", "repeats": repeats, "warmup": warmup,
            "extension": softpool_video.extension_status(), "copy_gb_per_s": round(copy_gbps, 1),
            "peak_bandwidth": peak, "rows": rows}


# --------------------------------------------------------------------------- report


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if math.isfinite(v) else str(v)
    return str(v)


def markdown(report: dict[str, Any]) -> str:
    d = report["device"]
    peak = report["peak_bandwidth"]
    lines = [
        f"# make gpu-check: {d['name']}",
        "",
        (f"Device: {d['name']} (compute capability {d['capability']}, {d['sm_count']} SMs, {d['memory_gib']} GiB); "
         f"torch {d['torch']}, CUDA {d['cuda']}; {d['date']}; {report['total_s']:.0f} s of a "
         f"{report['budget_s']:.0f} s budget; {'all stages ok' if report['ok'] else 'FAILED'}."),
        "",
        "| stage | status | seconds | detail |",
        "| --- | --- | ---: | --- |",
    ]
    for r in report["stages"]:
        detail = r.get("detail", "")
        if r.get("log_tail"):
            detail += ": " + " / ".join(r["log_tail"][-3:])
        lines.append(f"| {r['stage']} | {r['status']} | {r['seconds']:.1f} | {detail.replace('|', '/')} |")
    bench_result = report.get("bench")
    if bench_result:
        lines += [
            "",
            f"SoftPool3d vs torch pooling, input {tuple(bench_result['shape'])} fp32, CUDA-event medians of "
            f"{bench_result['repeats']} runs. Bandwidth = minimum bytes each pass must read and write "
            "(softpool: x, out, fp32 lse; backward x, grad_out, out, lse, grad_in; max_pool3d: with int64 "
            "indices) / time; peak = " + (f"{peak['gb_per_s']:.0f} GB/s ({peak['how']})" if peak.get("gb_per_s")
                                          else peak["how"])
            + f"; a plain copy of the input reaches {bench_result['copy_gb_per_s']:.0f} GB/s.",
            "",
            "| geometry | method | pass | median ms | vs max_pool3d | GB/s | % of peak | % of copy |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in bench_result["rows"]:
            lines.append(f"| {r['geometry']} | {r['method']} | {r['pass']} | {_fmt(r['median_ms'], 3)} | "
                         f"{_fmt(r['vs_max_pool3d'])} | {_fmt(r['gb_per_s'], 0)} | {_fmt(r['pct_of_peak'], 1)} | "
                         f"{_fmt(r['pct_of_copy'], 1)} |")
    if report.get("profiles"):
        lines += [
            "",
            (f"Whole networks (`softpool-video profile`, input {PROFILE_INPUT}, fp32): medians, CUDA peak memory "
             "(max_memory_allocated over the timed steps)."),
            "",
            "| model | method | forward ms | backward ms | step ms | clips/s | peak allocated MiB |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for model, rows in report["profiles"].items():
            for r in rows:
                peak_mib = r["peak_allocated_bytes"] / 2**20 if r.get("peak_allocated_bytes") else None
                lines.append(f"| {model} | {r['method']} | {_fmt(r.get('forward_ms'))} | {_fmt(r.get('backward_ms'))} "
                             f"| {_fmt(r.get('step_ms'))} | {_fmt(r.get('clips_per_s'), 1)} | {_fmt(peak_mib, 0)} |"
                             + ("" if r.get("status", "ok") == "ok" else f" {r['status']}"))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
