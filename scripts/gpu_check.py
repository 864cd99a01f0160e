"""Everything that needs a CUDA GPU, in one run that fits a lent machine's single call.

Stages, in order, each under its own timeout, together within --budget-s (a stage that
would start with too little time left is recorded as skipped):

1. build: `pip install --no-index --no-build-isolation --no-deps -e .` with this Python,
   for this GPU's arch (TORCH_CUDA_ARCH_LIST from the device, MAX_JOBS = CPU count): the
   extension is built in place, and the editable install maps models/, datamodules/ and
   configs/ into the package. Then a child process checks that the extension loads with its
   CUDA kernels. --no-build skips the install (the Makefile has done it) and keeps the check.
2. tests: `pytest -m cuda` on tests/ops/test_softpool_op.py (CUDA kernels against the
   float64 reference in fp32/fp16/bf16, fp64 gradcheck, layouts, 64-bit indexing,
   determinism) and tests/profiling/test_measure.py (the event timer).
3. bench: the kernels, timed as docs/gpu.md says (`measure.time_back_to_back`: CUDA events
   around many back-to-back calls after warm-up) on inputs of a few GB in fp32, fp16 and
   bf16: the SoftPool op alone (torch.ops.softpool.forward / backward) and through autograd,
   against max_pool3d and avg_pool3d at the same shapes; the bytes each pass must move,
   against a device-to-device copy measured in the same run.
4. memory <model>: one model at a time per pooling method (`profiling.profile_method`),
   CUDA peak allocated above what was allocated before it (`measure.CudaPeak`), then freed.
5. fit: `softpool-video fit` of the demo config for a few 16-mixed steps on fresh demo data.
6. ncu (optional, last): Nsight Compute on one forward and one backward kernel
   (--clock-control none), skipped when ncu is missing or time is short.

Output, all directly under --out (at most 5 files, fixed names): gpu_check.json and
gpu_check.md, rewritten after every stage, so a run cut short still leaves what it did;
gpu_check.log, every stage's output in order; ncu.txt. Exits non-zero when a stage failed,
timed out or was skipped (the optional ncu stage aside). Without a CUDA GPU it prints one
line, writes nothing and exits 0, unless --rehearse: then every stage that can run on the CPU runs (build; tests: the op's
CPU tests and the CUDA kernels' emulated launch instead of the CUDA tests; bench and memory
at small sizes; fit in fp32) with each stage's time limit 4 times longer, and writes the
same layout, marked as a rehearsal; its figures say nothing about a GPU.

    python scripts/gpu_check.py [--out DIR] [--budget-s 420] [--no-build] [--rehearse]
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import math
import os
import re
import shlex
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
DEFAULT_OUT = ROOT / "runs" / "gpu_check"  # a run's output, not a benchmark summary
JSON_NAME, MD_NAME, LOG_NAME, NCU_NAME = "gpu_check.json", "gpu_check.md", "gpu_check.log", "ncu.txt"

# (N, C, T, H, W): 411M elements, 1.6 GB in fp32, 0.8 GB in fp16/bf16: about 30x the H200's
# 60 MB L2, so every pass streams from memory. The rehearsal's is small enough for a CPU.
BENCH_SHAPE = {"cuda": (16, 64, 32, 112, 112), "cpu": (2, 8, 8, 28, 28)}
BENCH_DTYPES = ("float32", "float16", "bfloat16")
BENCH_GEOMETRIES = {"k2s2": (2, 2, 0), "k3s2p1": (3, 2, 1)}  # kernel, stride, padding
BENCH_CALLS = {"cuda": dict(calls=20, repeats=7, warmup=3), "cpu": dict(calls=2, repeats=3, warmup=1)}
MEMORY_MODELS = ("i3d", "r2plus1d_50")
MEMORY_METHODS = ("max", "avg", "softpool")
MEMORY_INPUT = {"cuda": (4, 3, 16, 112, 112), "cpu": (2, 3, 8, 32, 32)}  # batch norm needs 2

OPTIONAL_STAGES = {"ncu"}
# Stage: (longest it may take, fewest seconds worth starting it with). A rehearsal on a CPU
# gives each stage REHEARSAL_SLOWDOWN times as long.
REHEARSAL_SLOWDOWN = 4
STAGE_LIMITS = {
    "build": (240, 60),
    "tests": (90, 20),
    "bench": (90, 30),
    "memory i3d": (45, 15),
    "memory r2plus1d_50": (45, 15),
    "fit": (60, 25),
    "ncu": (60, 40),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="folder for gpu_check.{json,md,log} (and ncu.txt)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="seconds for all stages together")
    parser.add_argument("--no-build", action="store_true", help="the extension is built already: only check it")
    parser.add_argument("--rehearse", action="store_true", help="without a GPU: run every stage the CPU can")
    parser.add_argument("--stage", choices=["bench", "memory", "ncu-target"], help=argparse.SUPPRESS)  # children
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.budget_s <= 0:
        parser.error(f"--budget-s must be > 0, got {args.budget_s}")

    import torch

    with warnings.catch_warnings():  # a driver without a device warns; the line below says it
        warnings.simplefilter("ignore")
        available = torch.cuda.is_available()
    device = "cuda" if available else "cpu"
    if args.stage:
        return run_child(args, device)
    if not available and not args.rehearse:
        print("gpu-check: no CUDA GPU on this machine (torch.cuda.is_available() is False); nothing checked, "
              "nothing written (--rehearse runs what the CPU can)")
        return 0
    return run_all(Path(args.out), args.budget_s, device, build=not args.no_build)


def run_child(args: argparse.Namespace, device: str) -> int:
    if args.stage == "bench":
        result = bench(device)
    elif args.stage == "memory":
        result = memory(args.model, device)
    else:  # ncu-target: one forward and one backward of the op, for the profiler to catch
        ncu_target()
        return 0
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


# --------------------------------------------------------------------------- stages


class Stages:
    """Runs stage commands under one deadline, appends their output to one log, and calls
    `after` once each stage's record is in `results` (the report is rewritten there)."""

    def __init__(self, budget_s: float, log_path: Path, after, slowdown: float = 1.0) -> None:
        self.slowdown = slowdown  # a rehearsal's CPU runs each stage several times slower than the GPU machine
        self.start = time.monotonic()
        self.deadline = self.start + budget_s
        self.log_path = log_path
        self.after = after
        self.results: list[dict[str, Any]] = []

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def skip(self, name: str, why: str) -> None:
        self.results.append({"stage": name, "status": "skipped", "seconds": 0.0, "detail": why})
        print(f"gpu-check: {name}: skipped, {why}", flush=True)
        self.after()

    def run(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> bool:
        longest, fewest = STAGE_LIMITS[name]
        timeout = min(longest * self.slowdown, self.left())
        if timeout < fewest:
            self.skip(name, f"out of time ({self.left():.0f} s left of the budget)")
            return False
        print(f"gpu-check: {name} (timeout {timeout:.0f} s) ...", flush=True)
        with open(self.log_path, "a") as log:
            log.write(f"\n===== {name}: {shlex.join(cmd)}\n")
            log.flush()
            offset = log.tell()
            start = time.monotonic()
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # its own group: a timeout ends nvcc, workers too
            try:
                rc: int | None = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                rc = None
            seconds = time.monotonic() - start
            log.write(f"===== {name}: {'timed out' if rc is None else f'exit code {rc}'} after {seconds:.1f} s\n")
        record: dict[str, Any] = {"stage": name, "command": shlex.join(cmd), "timeout_s": round(timeout, 1),
                                  "seconds": round(seconds, 1)}
        tail = _stage_tail(self.log_path, offset)
        if rc == 0:
            record.update(status="ok", detail=_summary_line(name, tail))
        else:
            record.update(status="timeout" if rc is None else "failed", log_tail=tail,
                          detail=f"timed out after {seconds:.0f} s" if rc is None else f"exit code {rc}")
        self.results.append(record)
        print(f"gpu-check: {name}: {record['status']} in {seconds:.0f} s", flush=True)
        self.after()
        return rc == 0

    def note(self, name: str, **fields: Any) -> None:
        for record in self.results:
            if record["stage"] == name:
                record.update(fields)
        self.after()

    @property
    def ok(self) -> bool:
        """Every stage ran and passed, OPTIONAL_STAGES aside (their outcome is reported, not judged)."""
        return all(r["status"] == "ok" or r["stage"] in OPTIONAL_STAGES for r in self.results)


def _stage_tail(log_path: Path, offset: int, lines: int = 15) -> list[str]:
    """The last lines a stage wrote to the log (from `offset`, its end marker left out)."""
    with open(log_path, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace").strip().splitlines()[:-1][-lines:]


def _summary_line(name: str, tail: list[str]) -> str:
    if name == "tests":  # pytest's last line: "N passed, M skipped in 12.3s"
        for line in reversed(tail):
            if re.search(r"\d+ (passed|failed|skipped)", line):
                return line.strip("= ")
    return ""


def _tool(name: str) -> list[str]:
    """The console script beside this Python, else `python -m softpool_video.cli`."""
    script = Path(sys.executable).with_name(name)
    return [str(script)] if script.exists() else [sys.executable, "-m", "softpool_video.cli"]


def device_record(device: str) -> dict[str, Any]:
    import platform

    import torch

    record: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
                              "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        major, minor = torch.cuda.get_device_capability(0)
        record.update(name=props.name, capability=f"{major}.{minor}", sm_count=props.multi_processor_count,
                      memory_gib=round(props.total_memory / 2**30, 1))
    else:
        record.update(name=f"CPU rehearsal ({platform.machine()}, {os.cpu_count()} CPUs): no GPU", capability=None)
    return record


def run_all(out_dir: Path, budget_s: float, device: str, build: bool = True) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (JSON_NAME, MD_NAME, LOG_NAME, NCU_NAME):  # a previous run's files would mix in
        (out_dir / name).unlink(missing_ok=True)
    report: dict[str, Any] = {"device": device_record(device), "rehearsal": device != "cuda", "budget_s": budget_s,
                              "stages": [], "profiles": {}}

    def write_report() -> None:
        report["stages"] = stages.results
        report["total_s"] = round(time.monotonic() - stages.start, 1)
        report["ok"] = stages.ok
        _write(out_dir / JSON_NAME, json.dumps(report, indent=1) + "\n")
        _write(out_dir / MD_NAME, markdown(report))

    stages = Stages(budget_s, out_dir / LOG_NAME, write_report, slowdown=1.0 if device == "cuda" else REHEARSAL_SLOWDOWN)
    write_report()
    arch = report["device"]["capability"] or os.environ.get("TORCH_CUDA_ARCH_LIST", "9.0")
    env = dict(os.environ, TORCH_CUDA_ARCH_LIST=arch, MAX_JOBS=str(os.cpu_count() or 4), PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    if build:  # editable: the extension is built in place, and models/, datamodules/ map into the package
        stages.run("build", [sys.executable, "-m", "pip", "install", "--no-index", "--no-build-isolation", "--no-deps",
                             "-e", str(ROOT)], env=env)
    else:
        stages.results.append({"stage": "build", "status": "ok", "seconds": 0.0, "detail": "built before (--no-build)"})
    check_extension(stages, env, device)

    # a rehearsal runs the op's CPU tests and the CUDA kernels' emulation instead of the CUDA tests
    tests = (["-m", "cuda"] if device == "cuda" else ["tests/ops/test_softpool_emulated.py"])
    stages.run("tests", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests,
                         "tests/ops/test_softpool_op.py", "tests/profiling/test_measure.py"], env=env)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        tmp_dir = Path(tmp)
        child = [sys.executable, str(Path(__file__).resolve())]
        if stages.run("bench", [*child, "--stage", "bench", "--json", str(tmp_dir / "bench.json")], env=env):
            report["bench"] = json.loads((tmp_dir / "bench.json").read_text())
            stages.note("bench")
        for model in MEMORY_MODELS:
            name, path = f"memory {model}", tmp_dir / f"memory_{model}.json"
            if stages.run(name, [*child, "--stage", "memory", "--model", model, "--json", str(path)], env=env):
                report["profiles"][model] = json.loads(path.read_text())
                stages.note(name)
        stages.run("fit", ["bash", "-c", fit_script(tmp_dir, device)], env=env)
    ncu_stage(stages, out_dir, env, device)
    write_report()
    print(f"gpu-check: {'all stages ok' if report['ok'] else 'FAILED'} in {report['total_s']:.0f} s; wrote "
          f"{out_dir / MD_NAME}, {JSON_NAME} and {LOG_NAME}", flush=True)
    return 0 if report["ok"] else 1


def check_extension(stages: Stages, env: dict[str, str], device: str) -> None:
    """The extension this tree now holds must load in a fresh process, with CUDA kernels on a GPU."""
    if stages.results[-1]["status"] != "ok":
        return
    try:
        check = subprocess.run([sys.executable, "-c", "import softpool_video as s; print(s.extension_status())"],
                               cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=120)
        status = check.stdout.strip() or check.stderr.strip()[-300:]
    except subprocess.TimeoutExpired:
        status = "importing softpool_video took over 120 s"
    stages.note("build", extension=status)
    if device == "cuda" and "CUDA kernels" not in status:
        stages.note("build", status="failed", detail=f"the extension has no CUDA kernels: {status}")


def fit_script(tmp_dir: Path, device: str) -> str:
    cli = _tool("softpool-video")
    data_dir, run_dir = tmp_dir / "demo_data", tmp_dir / "fit"
    accelerator, precision = ("gpu", "16-mixed") if device == "cuda" else ("cpu", "32-true")  # CPU bf16: slow
    fit = [*cli, "fit", "--config", "demo", "--data.init_args.root", str(data_dir),
           "--trainer.accelerator", accelerator, "--trainer.devices", "1", "--trainer.precision", precision,
           "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "2",
           "--trainer.default_root_dir", str(run_dir), "--model.pooling", "softpool"]
    data = [*cli, "make-demo-data", "--groups", "22", "--clips-per-group", "1", str(data_dir)]
    return f"{shlex.join(data)} && {shlex.join(fit)}"


def ncu_stage(stages: Stages, out_dir: Path, env: dict[str, str], device: str) -> None:
    ncu = shutil.which("ncu")
    if device != "cuda" or ncu is None:
        stages.skip("ncu", "no GPU" if device != "cuda" else "ncu not on PATH")
        return
    # one forward and one backward kernel; clocks left as they are (METHOD.md)
    cmd = [ncu, "--clock-control", "none", "--kernel-name", "regex:softpool|forward_kernel|backward_kernel",
           "--launch-count", "2", "--section", "SpeedOfLight", "--section", "Occupancy", "--section",
           "LaunchStats", "--log-file", str(out_dir / NCU_NAME), sys.executable, str(Path(__file__).resolve()),
           "--stage", "ncu-target"]
    stages.run("ncu", cmd, env=env)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- bench


def min_bytes(method: str, phase: str, n_in: int, n_out: int, elem: int = 4) -> int:
    """Bytes a pass must at least read and write (each tensor once).

    softpool forward: read x, write out and the fp32 lse; backward: read x, grad_out, out,
    lse, write grad_in. max_pool3d forward: read x, write out and the int64 indices (CUDA
    writes them even without autograd); backward: read grad_out and indices, write grad_in.
    avg_pool3d forward: read x, write out; backward: read grad_out, write grad_in. "both"
    is the sum.
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


def bench(device: str) -> dict[str, Any]:
    """Per dtype and geometry (`bench_geometry`), with the copy that sets the ceiling."""
    import torch

    import softpool_video
    from softpool_video.measure import time_back_to_back

    shape, how = BENCH_SHAPE[device], BENCH_CALLS[device]
    rows, copies = [], {}
    for dtype_name in BENCH_DTYPES:
        torch.manual_seed(0)
        x = (torch.randn(shape, device=device) * 3).to(getattr(torch, dtype_name))  # random, never zeros
        ms = time_back_to_back(lambda x=x: x.clone(), device, **how).median_ms
        copies[dtype_name] = 2 * x.numel() * x.element_size() / ms / 1e6  # bytes read + written
        for geometry, (k, s, p) in BENCH_GEOMETRIES.items():
            for row in bench_geometry(x, k, s, p, device, copies[dtype_name]):
                rows.append({"dtype": dtype_name, "geometry": geometry, **row})
        del x
        if device == "cuda":
            torch.cuda.empty_cache()  # the next dtype starts from a clean pool
    return {"shape": list(shape), "timing": how, "extension": softpool_video.extension_status(),
            "copy_gb_per_s": {k: round(v, 1) for k, v in copies.items()}, "rows": rows}


def bench_geometry(x, k: int, s: int, p: int, device: str, copy_gbps: float) -> list[dict[str, Any]]:
    """The op's forward and backward kernels alone (torch.ops.softpool), then softpool, max_pool3d
    and avg_pool3d forward (no autograd) and forward+backward (torch.autograd.grad)."""
    import torch
    import torch.nn.functional as F

    from softpool_video import soft_pool3d
    from softpool_video.measure import time_back_to_back

    args = ([k] * 3, [s] * 3, [p] * 3, [1] * 3, False)
    out, lse = torch.ops.softpool.forward(x, *args)
    g = torch.randn_like(out)
    xg = x.detach().requires_grad_()
    pools = {"softpool": lambda t: soft_pool3d(t, k, s, p), "max": lambda t: F.max_pool3d(t, k, s, p),
             "avg": lambda t: F.avg_pool3d(t, k, s, p)}
    cases = [("softpool", "op forward", "forward", lambda: torch.ops.softpool.forward(x, *args)),
             ("softpool", "op backward", "backward", lambda: torch.ops.softpool.backward(g, x, out, lse, *args))]
    for method, pool in pools.items():
        cases.append((method, "forward", "forward", lambda pool=pool: pool(x)))
        cases.append((method, "autograd forward+backward", "both", lambda pool=pool: torch.autograd.grad(pool(xg), xg, g)))
    rows, times = [], {}
    for method, label, phase, fn in cases:
        try:
            ms = time_back_to_back(fn, device, **BENCH_CALLS[device]).median_ms
        except NotImplementedError as err:  # the CPU has no fp16 avg_pool3d: a rehearsal notes it and goes on
            if device == "cuda":
                raise
            rows.append({"method": method, "pass": label, "median_ms": None, "error": str(err).splitlines()[0]})
            continue
        times[(method, label)] = ms
        moved = min_bytes(method, phase, x.numel(), out.numel(), x.element_size())
        gbps = moved / ms / 1e6
        rows.append({"method": method, "pass": label, "median_ms": round(ms, 5), "min_bytes": moved,
                     "gb_per_s": round(gbps, 2), "pct_of_copy": round(100 * gbps / copy_gbps, 1)})
    for row in rows:  # against the same pass of max_pool3d, where it has one
        ms, ref = times.get((row["method"], row["pass"])), times.get(("max", row["pass"]))
        row["vs_max_pool3d"] = round(ms / ref, 3) if ms and ref else None
    return rows


def memory(model: str, device: str) -> list[dict[str, Any]]:
    """Each pooling method alone: one model built, stepped and freed before the next, its
    CUDA peak taken above what was allocated before it was built."""
    import torch

    from softpool_video.measure import CudaPeak
    from softpool_video.studies.model_profile import free_memory, profile_method

    results = []
    for method in MEMORY_METHODS:
        free_memory(torch.device(device))
        if device == "cuda":
            with CudaPeak(torch.device(device)) as peak:
                profile = profile_method(model, method, MEMORY_INPUT[device], device, warmup=2, repeats=5)
            row = dataclasses.asdict(profile)
            row.update(baseline_bytes=peak.base, peak_above_baseline_bytes=peak.allocated,
                       left_allocated_bytes=torch.cuda.memory_allocated() - peak.base)
        else:
            row = dataclasses.asdict(profile_method(model, method, MEMORY_INPUT[device], device, warmup=1, repeats=2))
        results.append(row)
    return results


def ncu_target() -> None:
    import torch

    from softpool_video import soft_pool3d

    x = torch.randn(8, 64, 16, 112, 112, device="cuda", requires_grad=True)
    soft_pool3d(x, 3, 2, 1).sum().backward()
    torch.cuda.synchronize()


# --------------------------------------------------------------------------- report


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if math.isfinite(v) else str(v)
    return str(v)


def markdown(report: dict[str, Any]) -> str:
    d = report["device"]
    rehearsal = report["rehearsal"]
    lines = [
        f"# gpu_check: {d['name']}" + (" (CPU rehearsal: no GPU figures)" if rehearsal else ""),
        "",
        (f"torch {d['torch']}, CUDA {d['cuda']}, Python {d['python']}; {d['date']}; "
         f"{report['total_s']:.0f} s of a {report['budget_s']:.0f} s budget; "
         f"{'all stages ok' if report['ok'] else 'not all stages ok'}"
         + (f"; compute capability {d['capability']}, {d['sm_count']} SMs, {d['memory_gib']} GiB" if not rehearsal
            else "") + "."),
        "",
        "| stage | status | seconds | detail |",
        "| --- | --- | ---: | --- |",
    ]
    for r in report["stages"]:
        detail = r.get("detail", "") + (f" ({r['extension']})" if r.get("extension") else "")
        if r.get("log_tail"):
            detail += ": " + " / ".join(r["log_tail"][-3:])
        lines.append(f"| {r['stage']} | {r['status']} | {r['seconds']:.1f} | {detail.replace('|', '/')} |")
    bench_result = report.get("bench")
    if bench_result:
        t = bench_result["timing"]
        copies = ", ".join(f"{k} {v:.1f} GB/s" for k, v in bench_result["copy_gb_per_s"].items())
        lines += [
            "",
            (f"Kernels on input {tuple(bench_result['shape'])}: median per-call time of {t['calls']} back-to-back "
             f"calls between two {'events' if not rehearsal else 'perf_counter reads'}, {t['repeats']} times after "
             f"{t['warmup']} warm-up calls. GB/s = the bytes a pass must move (scripts/gpu_check.py min_bytes) / "
             f"time; % of copy = against a clone of the input in the same run ({copies})."),
            "",
            "| dtype | geometry | method | pass | median ms | vs max_pool3d | GB/s | % of copy |",
            "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for r in bench_result["rows"]:
            lines.append(f"| {r['dtype']} | {r['geometry']} | {r['method']} | {r['pass']} | "
                         f"{_fmt(r['median_ms'], 3) if not r.get('error') else r['error'].replace('|', '/')} "
                         f"| {_fmt(r['vs_max_pool3d'])} | {_fmt(r.get('gb_per_s'), 0)} | {_fmt(r.get('pct_of_copy'), 1)} |")
    if report.get("profiles"):
        lines += [
            "",
            ("Whole networks, one model and method at a time (profiling.profile_method, fp32, SGD step): medians; "
             "peak = CUDA max_memory_allocated above what was allocated before the model was built."),
            "",
            "| model | method | step ms | clips/s | peak above baseline MiB | left allocated MiB |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for model, rows in report["profiles"].items():
            for r in rows:
                mib = {k: r[k] / 2**20 if r.get(k) is not None else None
                       for k in ("peak_above_baseline_bytes", "left_allocated_bytes")}
                lines.append(f"| {model} | {r['method']} | {_fmt(r.get('step_ms'))} | {_fmt(r.get('clips_per_s'), 1)} "
                             f"| {_fmt(mib['peak_above_baseline_bytes'], 0)} | {_fmt(mib['left_allocated_bytes'], 0)} |"
                             + ("" if r.get("status", "ok") == "ok" else f" {r['status']}"))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
