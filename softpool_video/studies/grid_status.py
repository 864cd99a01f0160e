"""`study --status OUT`: where every cell of a grid stands, under any launcher.

Read from the output folder alone (and `squeue` when cells were submitted to SLURM):
`grid.json` (the cells the last `study` command asked for), each cell's `result.json`
(done), its lock (running in some process), its latest SLURM job in the queue (pending,
running, requeued), `cell.json` or a submitted job without a result (failed), else missing.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from softpool_video.reporting import write_json_atomic
from softpool_video.training.requeue import REQUEUES_FILE
from softpool_video.training.run_lock import lock_holder

from .cell_progress import PROGRESS_FILE
from .grid import CELL_FILE, RESULT_FILE, read_json

GRID_FILE = "grid.json"
# the metric a status row shows, first found: the cell's own test, then its validation, then its loss
_SHOWN = ("test/video_acc1", "val/video_acc1", "val/clip_acc1", "train/loss")


@dataclass
class CellStatus:
    cell: str
    state: str  # pending / running / requeued / done / failed / missing
    job: str = ""
    elapsed: str = ""
    metric: str = ""
    last_line: str = ""
    log: str = ""


def write_grid(out: Path, config: str, names: list[str], launcher: str) -> None:
    write_json_atomic(Path(out) / GRID_FILE, {"config": config, "cells": names, "launcher": launcher}, indent=1)


def _since(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        started = dt.datetime.fromisoformat(iso)
    except ValueError:
        return ""
    return _duration((dt.datetime.now(dt.UTC) - started).total_seconds())


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _metric(metrics: dict[str, float] | None, where: str = "") -> str:
    for key in _SHOWN:
        if metrics and key in metrics:
            value = metrics[key]
            shown = f"{100 * value:.1f}%" if "acc" in key else f"{value:.4g}"
            return f"{key} {shown}{where}"
    return ""


def grid_status(out: Path) -> list[CellStatus]:
    """One row per cell of the folder's grid (and any other cell folder found there)."""
    from .local_launcher import cell_log, last_line
    from .slurm_launcher import QUEUED_STATES, latest_jobs, queue_states

    out = Path(out)
    grid = read_json(out / GRID_FILE)
    if grid is None and not (out / "cells").is_dir():
        raise FileNotFoundError(f"--status: {out} holds no study grid (no {GRID_FILE} and no cells/ folder)")
    names = list((grid or {}).get("cells", []))
    if (out / "cells").is_dir():
        found = {p.name if p.is_dir() else p.stem for p in (out / "cells").iterdir()
                 if p.is_dir() or p.suffix == ".lock"}
        names += sorted(found - set(names))
    jobs = latest_jobs(out)
    queue = queue_states() if jobs else {}
    rows = []
    for name in names:
        folder = out / "cells" / name
        job, logs = jobs.get(name, ("", {}))
        row = CellStatus(name, "missing", job=job)
        result = read_json(folder / RESULT_FILE)
        progress = read_json(folder / PROGRESS_FILE) or {}
        where = f" (epoch {progress.get('epoch')}, step {progress.get('step')})" if progress else ""
        state, elapsed, _reason = queue.get(job, ("", "", ""))
        holder = lock_holder(out / "cells" / f"{name}.lock")
        if result and result.get("status") == "finished":
            row.state, row.elapsed = "done", _duration(result.get("fit_seconds"))
            row.metric = _metric(result.get("metrics"))
        elif state in QUEUED_STATES:
            requeues = read_json(folder / REQUEUES_FILE) or []
            requeued = any(event.get("job") == job for event in requeues)
            row.state = "running" if state in ("RUNNING", "COMPLETING", "CONFIGURING") else \
                ("requeued" if requeued else "pending")
            row.elapsed, row.metric = elapsed, _metric(progress.get("metrics"), where)
        elif holder is not None:
            row.state, row.job = "running", row.job or str(holder.get("job") or f"pid {holder.get('pid')}")
            row.elapsed, row.metric = _since(holder.get("started")), _metric(progress.get("metrics"), where)
        elif job or (folder / CELL_FILE).exists() or cell_log(out, name).exists():
            row.state = "failed"
            row.log = logs.get("stderr") or str(cell_log(out, name))
            row.last_line = last_line(Path(row.log))
            row.metric = _metric(progress.get("metrics"), where)
        rows.append(row)
    return rows

