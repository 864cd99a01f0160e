"""The benchmark grid under each launcher, side by side in one run: `demo_hard`, 2 methods x 2
seeds (4 cells), on the data `make-demo-data --variant hard --clips-per-group 2` writes.

- inline: the cells one after another in one process (the default launcher);
- local: `--launcher local --parallel 2` (2 cells at once, each pinned to its share of the
  cores): wall time against inline (issue target: at most 0.6x);
- slurm: `--launcher slurm --wait` on a real SLURM (the one SLURM_CONF names, else a
  single-node cluster started for the run with scripts/slurm/local_cluster.sh, which needs
  root), one cell at a time (`--slurm.cpus_per_task` = all cores, so each cell has the
  threads an inline cell has): submission-to-start latency per cell and the grid's overhead
  against inline, per cell (target: under 10 s per cell).

    python -m benchmarks.bench_launchers            # the config's epochs (~10 min on 2 cores)
    python -m benchmarks.bench_launchers --quick    # 2 epochs
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

INPUTS = ("grid", "epochs", "cores")  # run()'s keys saying what was measured
REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "scripts" / "slurm" / "local_cluster.sh"
GRID = ["--config", "demo_hard", "--pooling", "max,softpool", "--seeds", "0,1"]
ONE_SEED = ["--seeds", "0"]  # given after GRID, it wins: 2 cells instead of 4 (the smoke test)


def _benchmark(out: Path, data: Path, *options: str, epochs: int | None, seeds: list[str]) -> float:
    extra = ["--trainer.max_epochs", str(epochs)] if epochs else []
    command = [sys.executable, "-m", "softpool_video.cli", "study", *GRID, *seeds, "--out", str(out), *options,
               "--", "--data.init_args.root", str(data), *extra]
    tic = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    seconds = time.perf_counter() - tic
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(options) or 'inline'} failed: {done.stderr.strip()[-2000:]}")
    return seconds


def _video_top1(out: Path) -> dict[str, float]:
    cells = sorted((out / "cells").glob("*/result.json"))
    return {p.parent.name: json.loads(p.read_text())["metrics"]["test/video_acc1"] for p in cells}


def _slurm_answers() -> bool:
    try:
        return subprocess.run(["sinfo", "--noheader"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _start_latencies(out: Path) -> list[float]:
    """Per cell, in start order: seconds from the moment it could start (the submission for the
    first, the previous cell's result for the others, one cell fitting at a time) to its start
    in its job (the job's Python up and the cell's lock taken)."""
    from softpool_video.studies.slurm_launcher import read_submissions
    (submission,) = read_submissions(out)
    free = dt.datetime.fromisoformat(submission.time).timestamp()
    starts = sorted((dt.datetime.fromisoformat(json.loads((out / "cells" / f"{name}.lock").read_text())["started"])
                     .timestamp(), name) for name in submission.jobs)
    latencies = []
    for started, name in starts:
        latencies.append(started - free)
        free = (out / "cells" / name / "result.json").stat().st_mtime
    return latencies


def _run_slurm(root: Path, data: Path, inline_s: float, epochs: int | None, seeds: list[str]) -> dict[str, Any]:
    cluster = None
    if not _slurm_answers():
        if os.geteuid() != 0:
            return {"skipped": "no SLURM answers here and starting one needs root"}
        cluster = root / "cluster"
        subprocess.run([str(CLUSTER), "up", str(cluster)], check=True, capture_output=True, text=True)
        os.environ["SLURM_CONF"] = str(cluster / "slurm.conf")
    try:
        cores = len(os.sched_getaffinity(0))
        out = root / "slurm"
        seconds = _benchmark(out, data, "--launcher", "slurm", "--wait", "--slurm.time", "60",
                             "--slurm.cpus_per_task", str(cores), epochs=epochs, seeds=seeds)
        latencies = _start_latencies(out)
        cells = len(latencies)
        return {"seconds": seconds, "overhead_per_cell_s": (seconds - inline_s) / cells,
                "start_latency_s": latencies, "cpus_per_task": cores, "video_top1": _video_top1(out),
                "cluster": "started for this run" if cluster else os.environ.get("SLURM_CONF", "system")}
    finally:
        if cluster is not None:
            subprocess.run([str(CLUSTER), "down", str(cluster)], capture_output=True)
            os.environ.pop("SLURM_CONF", None)


def _config_epochs() -> int:
    import yaml

    from softpool_video.training.configs import resolve_config

    return int(yaml.safe_load(resolve_config("demo_hard").read_text())["trainer"]["max_epochs"])


def run(quick: bool = False, slurm: bool = True, epochs: int | None = None, one_seed: bool = False) -> dict[str, Any]:
    """Inline and local (and, with `slurm`, a SLURM grid) on the same cells, for `epochs` (default:
    2 when quick, else the config's); `one_seed`: 2 cells instead of 4."""
    epochs = epochs or (2 if quick else None)
    seeds = ONE_SEED if one_seed else []
    root = Path(tempfile.mkdtemp(prefix="bench_launchers_"))
    try:
        data = root / "data"
        # 2 clips per group (216 training videos) keeps the grid a few minutes: this times launchers, not methods
        subprocess.run([sys.executable, "-m", "softpool_video.cli", "make-demo-data", str(data), "--variant", "hard",
                        "--clips-per-group", "2"],
                       check=True, capture_output=True)
        inline_s = _benchmark(root / "inline", data, epochs=epochs, seeds=seeds)
        local_s = _benchmark(root / "local", data, "--launcher", "local", "--parallel", "2", epochs=epochs, seeds=seeds)
        result = {
            "grid": " ".join([*GRID, *seeds]), "epochs": epochs or _config_epochs(), "cores": len(os.sched_getaffinity(0)),
            "inline_s": inline_s, "local_parallel2_s": local_s, "local_over_inline": local_s / inline_s,
            "video_top1": {"inline": _video_top1(root / "inline"), "local": _video_top1(root / "local")},
        }
        result["slurm"] = _run_slurm(root, data, inline_s, epochs, seeds) if slurm else {"skipped": "not asked for"}
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


def markdown(result: dict[str, Any]) -> str:
    lines = [f"### Benchmark launchers ({result['grid']}, {result['epochs']} epochs, {result['cores']} cores)", "",
             "| launcher | wall time | against inline |", "|---|---:|---:|",
             f"| inline | {result['inline_s']:.1f} s | 1.00x |",
             f"| local --parallel 2 | {result['local_parallel2_s']:.1f} s | {result['local_over_inline']:.2f}x |"]
    slurm = result["slurm"]
    if "skipped" in slurm:
        lines += ["", f"slurm: skipped ({slurm['skipped']})"]
    else:
        lines.append(f"| slurm --wait, one cell at a time ({slurm['cpus_per_task']} CPUs per cell) | "
                     f"{slurm['seconds']:.1f} s | {slurm['seconds'] / result['inline_s']:.2f}x |")
        latency = ", ".join(f"{s:.1f}" for s in slurm["start_latency_s"])
        lines += ["", f"SLURM overhead against inline: {slurm['overhead_per_cell_s']:+.1f} s per cell; from "
                      f"submission (or the previous cell's end) to the cell's start in its job: {latency} s."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 epochs per cell instead of the config's")
    args = parser.parse_args(argv)
    from benchmarks.run import bench_module
    print(bench_module("launchers", args.quick))  # writes benchmarks/results/launchers.json
    return 0


if __name__ == "__main__":
    sys.exit(main())
