"""`study --launcher local|slurm` without a cluster: the local launcher's cells equal the
inline ones, --status reads a folder, bad input is one line naming the option, a cell runs in
one process at a time. The SLURM runs themselves are in test_slurm_launcher.py."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from lock_holder import hold_lock
from run_args import tiny_cell_args

from softpool_video.commands import study as study_command
from softpool_video.studies.grid import Cell, cell_lock_path, run_grid
from softpool_video.studies.grid_status import grid_status
from softpool_video.studies.local_launcher import available_cores, clamp_parallel, core_shares, gpu_shares
from softpool_video.studies.slurm_launcher import SlurmOptions
from softpool_video.training.run_lock import RunBusy, RunLock, lock_holder


def _metrics(out: Path, name: str) -> dict:
    return json.loads((out / "cells" / name / "result.json").read_text())["metrics"]


@pytest.mark.slow
def test_local_launcher_runs_cells_side_by_side_with_the_inline_numbers(demo_root, tmp_path):
    args = [*tiny_cell_args(demo_root), "--trainer.deterministic", "true"]
    inline = tmp_path / "inline"
    run_grid("demo", ["max", "avg"], [], [0], inline, args)  # this process: one thread (conftest)
    local = tmp_path / "local"
    cores = len(available_cores())  # one core, so one thread, per cell: the inline run's arithmetic
    code = study_command.main(["--config", "demo", "--pooling", "max,avg", "--out", str(local),
                                   "--launcher", "local", "--parallel", str(cores), "--", *args])
    assert code == 0
    for name in ("max-seed0", "avg-seed0"):
        assert _metrics(local, name) == _metrics(inline, name)
        assert (local / "logs" / f"{name}.log").stat().st_size > 0
    assert (local / "results.md").is_file()
    states = {row.cell: row.state for row in grid_status(local)}
    assert states == {"max-seed0": "done", "avg-seed0": "done"}


def test_gpus_are_shared_out_like_the_cores(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    assert gpu_shares(4) == [["0"], ["1"], ["2"], ["3"]]
    assert gpu_shares(2) == [["0", "2"], ["1", "3"]]
    assert gpu_shares(6)[4:] == [["0"], ["1"]]  # more cells than GPUs: they share
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu_shares(2) == [[], []]


def test_parallel_is_clamped_to_the_cores_and_shares_them_out(caplog):
    cores = len(available_cores())
    assert clamp_parallel(cores + 3) == cores
    assert "more than the" in caplog.text
    shares = core_shares(min(2, cores))
    assert sorted(c for share in shares for c in share) == available_cores()
    with pytest.raises(ValueError, match="--parallel: expected a number of cells at once >= 1"):
        clamp_parallel(0)


@pytest.mark.parametrize(("argv", "message"), [
    (["--launcher", "cloud"], "--launcher: expected one of inline, local, slurm, got 'cloud'"),
    (["--parallel", "2"], "--parallel: only with --launcher local"),
    (["--wait"], "--wait and --slurm.*: only with --launcher slurm"),
    (["--launcher", "local", "--slurm.partition", "gpu"], "--wait and --slurm.*: only with --launcher slurm"),
    (["--launcher", "slurm", "--slurm.time", "soon"], "--slurm.time: expected MM, MM:SS, HH:MM:SS"),
])
def test_bad_launcher_options_name_the_option(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch: the message must be about the option itself
    if "--slurm.time" in argv:
        (tmp_path / "sbatch").write_text("#!/bin/sh\nexit 1\n")
        (tmp_path / "sbatch").chmod(0o755)
    code = study_command.main(["--config", "demo", "--out", str(tmp_path / "out"), *argv])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_slurm_launcher_without_sbatch_names_the_local_launcher(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert study_command.main(["--config", "demo", "--out", str(tmp_path / "out"), "--launcher", "slurm"]) == 2
    err = capsys.readouterr().err
    assert "--launcher slurm: no `sbatch` on PATH" in err and "use --launcher local" in err
    assert not (tmp_path / "out").exists()  # nothing written


def test_slurm_options_become_sbatch_parameters():
    options = SlurmOptions(partition="gpu", account="lab", qos="high", time="1-02:30", nodes=2, gpus_per_node=4,
                           cpus_per_task=8, mem="64G", constraint="h100", sbatch=["exclusive", "mail-type=END"])
    parameters = options.executor_parameters("softpool-demo")
    assert parameters["timeout_min"] == 24 * 60 + 2 * 60 + 30
    assert (parameters["nodes"], parameters["tasks_per_node"], parameters["gpus_per_node"]) == (2, 4, 4)
    assert parameters["slurm_partition"] == "gpu" and parameters["slurm_mem"] == "64G"
    assert parameters["slurm_additional_parameters"] == {"requeue": True, "exclusive": True, "mail_type": "END"}
    assert options.cell_args() == ["--trainer.accelerator", "gpu", "--trainer.devices", "4", "--trainer.num_nodes", "2"]
    assert options.devices == 8
    assert [SlurmOptions(time=t).minutes() for t in ("30", "90:30", "2:00:00", "1-0")] == [30, 91, 120, 1440]
    assert SlurmOptions().cell_args() == [] and SlurmOptions().tasks_per_node == 1


def test_a_cell_runs_in_one_process_at_a_time(demo_root, tmp_path, capsys):
    out = tmp_path / "out"
    cell = Cell("max", None, 0)
    path = cell_lock_path(out, cell)
    holder = hold_lock(path, "cell max-seed0")  # another process holds the cell
    try:
        assert lock_holder(path)["pid"] == holder.pid
        with pytest.raises(RunBusy, match=f"cell max-seed0 is running in pid {holder.pid} on {socket.gethostname()}"), \
                RunLock(path, "cell max-seed0"):
            pass
        code = study_command.main(["--config", "demo", "--pooling", "max", "--out", str(out),
                                       "--launcher", "local", "--", *tiny_cell_args(demo_root)])
        assert code == 2
        err = capsys.readouterr().err
        assert "cells still queued or running under another submission: max-seed0 (a local process)" in err
        assert [(row.cell, row.state) for row in grid_status(out)] == [("max-seed0", "running")]
    finally:
        holder.kill()
        holder.wait()
    assert lock_holder(path) is None  # the kernel released it with the process


def test_status_names_failed_cells_with_the_last_line_of_their_log(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "cells" / "max-seed0").mkdir(parents=True)
    (out / "cells" / "max-seed0" / "result.json").write_text(json.dumps(
        {"status": "finished", "fit_seconds": 65.0, "metrics": {"test/video_acc1": 0.625}}))
    (out / "cells" / "avg-seed0").mkdir()
    (out / "cells" / "avg-seed0" / "cell.json").write_text("{}")
    (out / "logs").mkdir()
    (out / "logs" / "avg-seed0.log").write_text("Traceback ...\nRuntimeError: out of memory\n\n")
    (out / "grid.json").write_text(json.dumps({"cells": ["max-seed0", "avg-seed0", "softpool-seed0"]}))
    rows = {row.cell: row for row in grid_status(out)}
    assert (rows["max-seed0"].state, rows["max-seed0"].elapsed, rows["max-seed0"].metric) == \
        ("done", "0:01:05", "test/video_acc1 62.5%")
    assert (rows["avg-seed0"].state, rows["avg-seed0"].last_line) == ("failed", "RuntimeError: out of memory")
    assert rows["avg-seed0"].log == str(out / "logs" / "avg-seed0.log")
    assert rows["softpool-seed0"].state == "missing"
    assert study_command.main(["--status", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 done, 1 failed, 1 missing" in printed and "RuntimeError: out of memory" in printed
    assert study_command.main(["--status", str(tmp_path / "nothing")]) == 2
    assert "holds no study grid" in capsys.readouterr().err


def test_the_job_function_leaves_the_warning_signals_to_the_run(monkeypatch):
    """SIGUSR1's default action ends the process; in a job it must only raise the flag."""
    import signal

    from softpool_video.training import requeue
    previous = {s: signal.getsignal(s) for s in requeue.WARNING_SIGNALS}
    try:
        requeue.install_signal_handlers()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert requeue._requested == [signal.SIGUSR1]
    finally:
        requeue._requested.clear()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
