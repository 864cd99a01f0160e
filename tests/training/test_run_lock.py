"""One run per folder: a second `fit` into the folder of a live one is refused, naming the
holder's pid and host; a lock left by a process that died is taken over with a warning.
(`study` cells: test_launchers.py::test_a_cell_runs_in_one_process_at_a_time.)"""
from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys

import pytest
from lock_holder import hold_lock
from run_args import tiny_args

from softpool_video.commands import fit
from softpool_video.training.cli import RUN_LOCK
from softpool_video.training.run_lock import RunBusy, RunLock, lock_holder


def _ended() -> int:
    """The pid of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_fit_into_a_live_runs_folder_is_refused(demo_root, tmp_path, capsys):
    out = tmp_path / "run"
    holder = hold_lock(out / RUN_LOCK, "a fit")
    try:
        assert fit.main(tiny_args(demo_root, out)) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("softpool-video fit: error: ")
    assert f"is running in pid {holder.pid} on {socket.gethostname()}" in err[0]
    assert not (out / "checkpoints").exists() and not (out / "logs").exists()  # nothing written


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(demo_root, tmp_path, caplog):
    out = tmp_path / "run"
    out.mkdir()
    dead = _ended()
    (out / RUN_LOCK).write_text(json.dumps({"pid": dead, "host": "node7", "started": "yesterday"}))
    with caplog.at_level(logging.WARNING, logger="softpool_video.training.run_lock"):
        assert fit.main(tiny_args(demo_root, out)) == 0
    assert f"taking over the lock {out / RUN_LOCK} left by pid {dead} on node7" in caplog.text
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert lock_holder(out / RUN_LOCK) is None and (out / RUN_LOCK).read_text() == ""  # released cleanly


def test_the_lock_names_its_holder_and_a_clean_release_leaves_no_stale_record(tmp_path, caplog):
    path = tmp_path / "cells" / "max-seed0.lock"
    with RunLock(path, "cell max-seed0"):
        assert lock_holder(path)["pid"] > 0
    assert path.read_text() == ""
    with caplog.at_level(logging.WARNING), RunLock(path, "cell max-seed0"):
        pass
    assert "taking over" not in caplog.text
    holder = hold_lock(path, "a fit")
    try:
        with pytest.raises(RunBusy, match=f"pid {holder.pid} on {socket.gethostname()}"), RunLock(path, "cell x"):
            pass
    finally:
        holder.kill()
        holder.wait()
    # killed without releasing: the kernel freed the flock, the record stays and is taken over
    with caplog.at_level(logging.WARNING), RunLock(path, "cell max-seed0"):
        pass
    assert f"left by pid {holder.pid}" in caplog.text
