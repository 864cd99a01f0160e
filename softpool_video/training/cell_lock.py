"""One process per benchmark cell: an exclusive lock file beside the cell's folder.

`run_cell` holds `<out>/cells/<cell>.lock` (an flock, released by the kernel when the process
dies, so a killed run never leaves a stale lock) for as long as it trains and tests the cell.
A second process, under any launcher, that reaches the same cell gets `CellBusy` instead of
a second run writing into the same folder. The lock file holds who runs the cell, for
`benchmark --status`.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

from .requeue import slurm_job_id


class CellBusy(RuntimeError):
    """Another process is running this cell now."""


def _describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another process"
    job = f", SLURM job {holder['job']}" if holder.get("job") else ""
    return f"pid {holder.get('pid')} on {holder.get('host')}{job}, since {holder.get('started')}"


class CellLock:
    def __init__(self, path: Path, name: str) -> None:
        self.path, self.name = Path(path), name
        self._file: Any = None

    def __enter__(self) -> CellLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise CellBusy(f"cell {self.name} is running in {_describe(lock_holder(self.path))}; "
                           "one process per cell (see `softpool-video benchmark --status`)") from None
        handle.seek(0)
        handle.truncate()
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "job": slurm_job_id(),
                   "started": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")}, handle)
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, *_: Any) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the flock
            self._file = None


def lock_holder(path: Path) -> dict[str, Any] | None:
    """Who holds the cell's lock now (its record), or None when nobody does."""
    if not Path(path).is_file():
        return None
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return json.loads(handle.read() or "{}")
            except ValueError:
                return {}
        return None
