"""Where the study's cells run: `--launcher inline|local|slurm` (the command is
softpool_video/commands/study.py).

- inline (the default): one cell after another in this process (grid.run_grid).
- local: `--parallel N` cells at once on this machine, each its own process (local_launcher.py).
- slurm: each cell a SLURM job, one job array per submission (slurm_launcher.py). The command
  returns once the jobs are submitted, or with `wait` once they have left the queue. Running
  the same command again collects the finished cells, submits only the failed or missing
  ones, and writes the report when every cell is done.

Every launcher writes the same cells/<cell>/result.json and the same report, and refuses an
output folder whose cells are running elsewhere (a queued or running job, or a process
holding a cell's lock), before it starts or submits anything.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from softpool_video.training.run_lock import RunBusy, lock_holder

from .grid import (
    RESULT_FILE,
    BenchmarkResult,
    Cell,
    cell_folder,
    cell_lock_path,
    make_grid,
    read_json,
    run_grid,
    stored_result,
    write_outputs,
)
from .grid_status import grid_status, write_grid

log = logging.getLogger(__name__)

LAUNCHERS = ("inline", "local", "slurm")


class CellsFailed(RuntimeError):
    """Some cells ran and failed; the message names each with its log."""


@dataclass
class Launch:
    """What a launcher did, beyond a BenchmarkResult: the SLURM submission, if any."""
    result: BenchmarkResult
    submission: Any = None  # slurm_launcher.Submission
    waiting: int = 0  # cells submitted and not waited for


def _busy_locally(out: Path, grid: Sequence[Cell]) -> list[str]:
    return [cell.name for cell in grid if lock_holder(cell_lock_path(out, cell)) is not None]


def _refuse_busy(out: Path, busy: dict[str, str]) -> None:
    if busy:
        listed = ", ".join(f"{name} ({where})" for name, where in busy.items())
        raise RunBusy(f"--out {out}: cells still queued or running under another submission: {listed}; "
                       f"see `softpool-video study --status {out}`, or wait for them")


def _failures(out: Path, names: Sequence[str]) -> CellsFailed:
    rows = {row.cell: row for row in grid_status(out)}
    lines = [f"{name} ({rows[name].last_line or rows[name].state}; log: {rows[name].log or '-'})"
             for name in names if name in rows]
    return CellsFailed(f"{len(names)} cell(s) failed: " + "; ".join(lines))


def _report(grid: Sequence[Cell], out: Path, ran: int) -> BenchmarkResult:
    cells = [read_json(cell_folder(out, cell) / RESULT_FILE) for cell in grid]
    missing = [cell.name for cell, result in zip(grid, cells) if not result]
    if missing:
        raise _failures(out, missing)
    rows, files = write_outputs(cells, out)
    return BenchmarkResult(cells=cells, rows=rows, files=files, ran=ran, skipped=len(grid) - ran)


def launch_grid(config: str, poolings: Sequence[str], splits: Sequence[int | None], seeds: Sequence[int],
                     out: str | Path, extra_args: Sequence[str] = (), force: bool = False,
                     launcher: str = "inline", parallel: int = 1, slurm: Any = None, wait: bool = False,
                     poll_s: float = 2.0) -> Launch:
    from softpool_video.training.configs import resolve_config
    if launcher not in LAUNCHERS:
        raise ValueError(f"--launcher: expected one of {', '.join(LAUNCHERS)}, got {launcher!r}")
    config_path = resolve_config(config)
    grid = make_grid(poolings, splits, seeds)
    if launcher == "inline":
        write_grid(Path(out), config, [c.name for c in grid], launcher)
        return Launch(run_grid(config, poolings, splits, seeds, out, extra_args, force))
    out = Path(out).resolve()  # jobs and processes may start elsewhere
    base_args = ["--config", str(config_path)]
    if launcher == "local":
        from .local_launcher import clamp_parallel, run_local
        parallel = clamp_parallel(parallel)
        base_args += list(extra_args)
        # built here, so bad input fails before any process starts
        done = [cell for cell in grid if stored_result(cell, base_args, out) and not force]
        _refuse_busy(out, {name: "a local process" for name in _busy_locally(out, grid)})
        write_grid(out, config, [c.name for c in grid], launcher)
        failures = run_local(grid, base_args, out, force, parallel)
        if failures:
            raise CellsFailed(f"{len(failures)} cell(s) failed: " + "; ".join(map(str, failures)))
        return Launch(_report(grid, out, ran=len(grid) - len(done)))
    return _launch_slurm(config, grid, base_args, list(extra_args), out, force, slurm, wait, poll_s)


def _launch_slurm(config: str, grid: Sequence[Cell], base_args: list[str], extra_args: list[str], out: Path,
                  force: bool, slurm: Any, wait: bool, poll_s: float) -> Launch:
    from softpool_video.training.configs import resolve_config

    from .slurm_launcher import SlurmOptions, check_sbatch, clear_cell, queued_cells, submit
    slurm = slurm or SlurmOptions()
    check_sbatch()
    slurm.executor_parameters("check")  # bad --slurm.* values fail before anything is built
    if slurm.devices > 1 and not any("strategy" in arg for arg in extra_args):
        base_args += ["--config", str(resolve_config("strategy/ddp"))]
    base_args += [*extra_args, *slurm.cell_args()]
    # built here on this node's CPU (a login node has no GPU): bad input fails before submission
    on_cpu = ["--trainer.accelerator", "cpu"] if slurm.gpus_per_node else []
    done = {cell.name for cell in grid if not force and stored_result(cell, base_args, out, on_cpu)}
    todo = [cell for cell in grid if cell.name not in done]
    # a finished cell whose job is still winding down is not busy: it is not submitted again
    busy = {name: f"job {job}" for name, job in queued_cells(out, [c.name for c in todo]).items()}
    busy.update({name: "a local process" for name in _busy_locally(out, todo) if name not in busy})
    _refuse_busy(out, busy)
    names = [c.name for c in grid]
    if not todo:
        write_grid(out, config, names, "slurm")
        return Launch(_report(grid, out, ran=0))
    if force:
        for cell in todo:
            clear_cell(out, cell)
    submission = submit(todo, base_args, out, slurm, job_name=f"softpool-{Path(config).stem}")
    write_grid(out, config, names, "slurm")
    log.info("submitted %d cells as job array %s", len(todo), submission.array)
    if not wait:
        return Launch(BenchmarkResult(cells=[], rows=[], skipped=len(done)), submission, waiting=len(todo))
    wait_for_jobs(out, list(submission.jobs.values()), poll_s)
    return Launch(_report(grid, out, ran=len(todo)), submission)


def wait_for_jobs(out: Path, jobs: list[str], poll_s: float) -> None:
    """Until none of `jobs` is in the queue (a requeued job is still in it)."""
    from .slurm_launcher import QUEUED_STATES, queue_states
    shown = None
    while True:
        states = queue_states()
        left = {job: states[job][0] for job in jobs if job in states and states[job][0] in QUEUED_STATES}
        if not left:
            return
        summary = ", ".join(f"{sum(1 for s in left.values() if s == state)} {state.lower()}"
                            for state in sorted(set(left.values())))
        if summary != shown:
            log.warning("waiting for %d of %d jobs: %s", len(left), len(jobs), summary)
            shown = summary
        time.sleep(poll_s)
