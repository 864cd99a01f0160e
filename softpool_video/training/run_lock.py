"""One process per run folder: an exclusive lock file in the folder it writes.

`fit` holds `<run>/run.lock` and each study cell `<out>/cells/<cell>.lock` (an flock,
released by the kernel when the process dies) for as long as it writes there. A second
process, under any launcher, that reaches the same folder gets `RunBusy`, naming the
holder's pid and host, instead of a second run writing into the same checkpoints. The lock
file holds who runs there (for the message and `study --status`); a clean release
empties it, so a record found in a free lock file was left by a process that died (killed,
node lost): the lock is taken over with a warning naming it.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from .requeue import slurm_job_id

log = logging.getLogger(__name__)


class RunBusy(RuntimeError):
    """Another live process holds this run folder (or study cell)."""


def _describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another process"
    job = f", SLURM job {holder['job']}" if holder.get("job") else ""
    return f"pid {holder.get('pid')} on {holder.get('host')}{job}, since {holder.get('started')}"


def _record(handle: Any) -> dict[str, Any]:
    handle.seek(0)
    try:
        return json.loads(handle.read() or "{}")
    except ValueError:
        return {}


class RunLock:
    """`with RunLock(path, "cell max-seed0"):` holds `path` or raises RunBusy; `what` names
    the run in messages."""

    def __init__(self, path: Path, what: str, hint: str = "") -> None:
        self.path, self.what, self.hint = Path(path), what, hint
        self._file: Any = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RunBusy(f"{self.what} is running in {_describe(lock_holder(self.path))}; "
                          f"one process per run folder{self.hint}") from None
        stale = _record(handle)
        if stale:
            log.warning("%s: taking over the lock %s left by %s, which ended without releasing it",
                        self.what, self.path, _describe(stale))
        handle.seek(0)
        handle.truncate()
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "job": slurm_job_id(),
                   "started": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")}, handle)
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, *_: Any) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):  # a full disk must not hide the run's own error
                self._file.truncate(0)  # released cleanly: no record is left to take for stale
            self._file.close()  # closing the descriptor releases the flock
            self._file = None


def lock_holder(path: Path) -> dict[str, Any] | None:
    """Who holds the lock now (its record), or None when nobody does."""
    if not Path(path).is_file():
        return None
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _record(handle)
        return None
