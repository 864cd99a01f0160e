"""`study --launcher local --parallel N`: N cells at once on this machine.

Each cell runs in a fresh process (`python -m softpool_video.studies.cell_process`), pinned to
its own share of the cores (CPU affinity, inherited by its data-loading workers) with as many
intra-op threads as cores in that share, so the cells together never run more threads than
the machine has cores; on a machine with GPUs each cell also gets its share of them
(CUDA_VISIBLE_DEVICES: one GPU per cell with `--parallel` = the number of GPUs). Its output goes to `<out>/logs/<cell>.log`. A cell that fails does not
stop the others; the failures are reported together at the end.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .grid import Cell

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CellFailure:
    cell: Cell
    log: Path
    detail: str

    def __str__(self) -> str:
        return f"{self.cell.name} ({self.detail}; log: {self.log})"


def available_cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def clamp_parallel(parallel: int) -> int:
    """`--parallel` within 1..cores; above the core count it is clamped with a warning."""
    if parallel < 1:
        raise ValueError(f"--parallel: expected a number of cells at once >= 1, got {parallel}")
    cores = len(available_cores())
    if parallel > cores:
        log.warning("--parallel %d is more than the %d cores here: running %d cells at once", parallel, cores, cores)
        return cores
    return parallel


def core_shares(parallel: int) -> list[list[int]]:
    """The cores split into `parallel` disjoint shares, as equal as they go."""
    cores = available_cores()
    return [cores[i::parallel] for i in range(parallel)]


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them to its children."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip() and not gpu.strip().startswith("-")]
    import torch
    return [str(i) for i in range(torch.cuda.device_count())]


def gpu_shares(parallel: int) -> list[list[str]]:
    """The GPUs split over `parallel` cells like the cores (a GPU is shared when there are fewer
    GPUs than cells); empty lists when there is no GPU."""
    gpus = visible_gpus()
    if not gpus:
        return [[] for _ in range(parallel)]
    if parallel >= len(gpus):
        return [[gpus[i % len(gpus)]] for i in range(parallel)]
    return [gpus[i::parallel] for i in range(parallel)]


def cell_log(out: Path, name: str) -> Path:
    return Path(out) / "logs" / f"{name}.log"


def last_line(path: Path) -> str:
    """The last non-empty line of a log (its end only: logs of long runs are large)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
            lines = [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _start(cell: Cell, base_args: Sequence[str], out: Path, force: bool,
           share: tuple[list[int], list[str]]) -> subprocess.Popen:
    path = cell_log(out, cell.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = json.dumps({"cell": cell.__dict__, "base_args": list(base_args), "out": str(out), "force": force})
    cores, gpus = share
    threads = str(len(cores))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    with open(path, "ab") as log_file:
        return subprocess.Popen([sys.executable, "-m", "softpool_video.studies.cell_process", spec],
                                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                preexec_fn=lambda: os.sched_setaffinity(0, cores))


def run_local(grid: Sequence[Cell], base_args: Sequence[str], out: Path, force: bool,
              parallel: int) -> list[CellFailure]:
    """Runs every cell of `grid`, `parallel` at a time; returns the cells that failed."""
    shares = list(zip(core_shares(parallel), gpu_shares(parallel), strict=True))
    waiting, running, failures = list(grid), {}, []
    while waiting or running:
        while waiting and len(running) < parallel:
            share = shares.pop()
            cell = waiting.pop(0)
            log.info("%s: started on cores %s, GPUs %s", cell.name, *share)
            running[cell] = (_start(cell, base_args, out, force, share), share)
        time.sleep(0.2)
        for cell, (process, share) in list(running.items()):
            if process.poll() is None:
                continue
            del running[cell]
            shares.append(share)
            if process.returncode != 0:
                path = cell_log(out, cell.name)
                failures.append(CellFailure(cell, path, last_line(path) or f"exit code {process.returncode}"))
                log.warning("%s: failed (log: %s)", cell.name, path)
    return failures
