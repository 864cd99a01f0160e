"""`study --launcher slurm` on a real single-node SLURM (the `slurm_cluster` fixture):
the grid's numbers equal the inline runner's; a cancelled cell is the only one a rerun
submits; a cell sent SLURM's warning signal checkpoints, requeues and ends with the numbers
and weights of an uninterrupted run; the example sbatch script trains with 2 CPU tasks.

Each job runs its cell with one CPU (one intra-op thread), as this test process does
(conftest.py), so the arithmetic, and with it every metric, is the same on both sides.
`make test-slurm` runs these (root: it installs and starts SLURM); `make test` leaves them out.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from run_args import tiny_cell_args

from softpool_video.commands import study as study_command
from softpool_video.studies.grid import run_grid
from softpool_video.studies.grid_status import grid_status
from softpool_video.studies.launch import wait_for_jobs
from softpool_video.studies.slurm_launcher import latest_jobs, read_submissions

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]
HERE = Path(__file__).resolve().parent
SCRIPT = HERE.parents[1] / "scripts" / "slurm" / "train_ddp.sbatch"


@pytest.fixture(autouse=True)
def _jobs_import_the_test_callbacks(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    yield
    # a failed test must not leave its jobs holding the cluster's CPUs
    jobs = [job for submission in read_submissions(tmp_path / "slurm") for job in submission.jobs.values()]
    if jobs:
        subprocess.run(["scancel", *jobs], capture_output=True)


def _slurm(out: Path, pooling: str, seeds: str, args: list[str], *extra: str) -> int:
    return study_command.main(["--config", "demo", "--pooling", pooling, "--seeds", seeds, "--out", str(out),
                                   "--launcher", "slurm", "--slurm.time", "10", "--slurm.cpus_per_task", "1",
                                   *extra, "--", *args])


def _result(out: Path, name: str) -> dict:
    return json.loads((out / "cells" / name / "result.json").read_text())


def _until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.5)


def _states(out: Path) -> dict[str, str]:
    return {row.cell: row.state for row in grid_status(out)}


def test_a_grid_on_slurm_gives_the_inline_numbers(demo_root, tmp_path, capsys):
    args = [*tiny_cell_args(demo_root), "--trainer.deterministic", "true"]
    inline = tmp_path / "inline"
    run_grid("demo", ["max", "avg"], [], [0, 1], inline, args)
    out = tmp_path / "slurm"
    assert _slurm(out, "max,avg", "0,1", args, "--wait") == 0
    (submission,) = read_submissions(out)
    assert len(submission.jobs) == 4 and all(job.startswith(f"{submission.array}_") for job in submission.jobs.values())
    for name in ("max-seed0", "max-seed1", "avg-seed0", "avg-seed1"):
        assert _result(out, name)["metrics"] == _result(inline, name)["metrics"], name
    assert set(_states(out).values()) == {"done"}
    report = (out / "results.md").read_text()
    # run again: everything is collected, nothing submitted
    capsys.readouterr()
    assert _slurm(out, "max,avg", "0,1", args) == 0
    assert len(read_submissions(out)) == 1 and "4 cells run" not in capsys.readouterr().out
    assert (out / "results.md").read_text() == report


def test_a_cancelled_cell_is_the_only_one_submitted_again(demo_root, tmp_path, monkeypatch, capsys):
    args = [*tiny_cell_args(demo_root), "--trainer.callbacks+=slurm_callbacks.HoldCell"]
    out, hold = tmp_path / "slurm", tmp_path / "hold"
    hold.write_text("")
    monkeypatch.setenv("SOFTPOOL_TEST_HOLD_CELL", "avg-seed0")
    monkeypatch.setenv("SOFTPOOL_TEST_HOLD_FILE", str(hold))
    assert _slurm(out, "max,avg", "0", args) == 0  # submits and returns
    assert "submitted 2 cells as SLURM job array" in capsys.readouterr().out
    _until(lambda: Path(f"{hold}.held").exists() and _states(out)["max-seed0"] == "done", 180,
           "avg-seed0 to hold and max-seed0 to finish")
    rows = {row.cell: row for row in grid_status(out)}
    assert rows["avg-seed0"].state == "running" and rows["avg-seed0"].job == latest_jobs(out)["avg-seed0"][0]
    # a second submission for the same folder while a cell runs: refused, nothing submitted
    assert _slurm(out, "max,avg", "0", args) == 2
    err = capsys.readouterr().err
    assert "cells still queued or running under another submission: avg-seed0 (job " in err, err
    assert len(read_submissions(out)) == 1
    subprocess.run(["scancel", rows["avg-seed0"].job], check=True)
    wait_for_jobs(out, [rows["avg-seed0"].job], poll_s=0.5)
    failed = {row.cell: row for row in grid_status(out)}["avg-seed0"]
    assert failed.state == "failed" and failed.last_line and "CANCELLED" in Path(failed.log).read_text()
    finished = (out / "cells" / "max-seed0" / "result.json").stat().st_mtime_ns
    hold.unlink()
    assert _slurm(out, "max,avg", "0", args, "--wait") == 0
    _, again = read_submissions(out)
    assert list(again.jobs) == ["avg-seed0"]
    assert (out / "cells" / "max-seed0" / "result.json").stat().st_mtime_ns == finished
    assert set(_states(out).values()) == {"done"} and (out / "results.md").is_file()


def test_the_warning_signal_requeues_a_cell_that_ends_as_if_never_stopped(demo_root, tmp_path, monkeypatch):
    args = [*tiny_cell_args(demo_root), "--trainer.deterministic", "true",
            "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "5"]
    inline = tmp_path / "inline"
    run_grid("demo", ["softpool"], [], [0], inline, args)
    out = tmp_path / "slurm"
    monkeypatch.setenv("SOFTPOOL_TEST_SIGNAL_AT_STEP", "7")  # mid-way through the second epoch
    assert _slurm(out, "softpool", "0", [*args, "--trainer.callbacks+=slurm_callbacks.SignalAtStep"]) == 0
    job = latest_jobs(out)["softpool-seed0"][0]
    requeues = out / "cells" / "softpool-seed0" / "requeues.json"
    _until(requeues.exists, 180, "the cell to checkpoint and requeue")
    (event,) = json.loads(requeues.read_text())
    assert (event["job"], event["signal"], event["step"]) == (job, "SIGUSR1", 7)
    _until(lambda: _states(out)["softpool-seed0"] in ("requeued", "running", "done"), 60, "the requeued job")
    # SLURM holds a requeued job back for a while before it may start again: let it start now
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=False, capture_output=True)
    wait_for_jobs(out, [job], poll_s=0.5)
    assert _slurm(out, "softpool", "0", args) == 0  # collects it
    slurm_result, inline_result = _result(out, "softpool-seed0"), _result(inline, "softpool-seed0")
    assert slurm_result["resumed"] and slurm_result["global_step"] == inline_result["global_step"] == 10
    assert slurm_result["metrics"] == inline_result["metrics"]
    assert slurm_result["metrics_last"] == inline_result["metrics_last"]
    weights = [torch.load(folder / "cells" / "softpool-seed0" / "checkpoints" / "last.ckpt", map_location="cpu",
                          weights_only=False)["state_dict"] for folder in (out, inline)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


def test_sbatch_refusals_are_one_line_and_submit_nothing(tmp_path, capsys, demo_root):
    out = tmp_path / "slurm"
    code = _slurm(out, "max", "0", tiny_cell_args(demo_root), "--slurm.partition", "no_such_partition")
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sbatch refused the jobs: invalid partition specified: no_such_partition" in err
    assert not read_submissions(out) and not (out / "grid.json").exists()


def test_the_example_sbatch_script_trains_with_two_cpu_tasks(demo_root, tmp_path):
    """scripts/slurm/train_ddp.sbatch as documented (the environment active, so softpool-video is
    on PATH), with 2 CPU tasks (gloo) in place of GPUs."""
    (tmp_path / "runs").mkdir()  # SLURM opens the script's log, runs/slurm-<job>.out, before the script runs
    job = subprocess.run(
        ["sbatch", "--wait", "--ntasks-per-node=2", "--gres=none", "--cpus-per-task=1", "--mem=4G", "--time=10",
         str(SCRIPT), "demo", str(demo_root), "max", *tiny_cell_args(demo_root)[2:],
         "--trainer.accelerator", "cpu"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])})
    logs = sorted(tmp_path.glob("runs/slurm-*.out"))
    output = logs[0].read_text() if logs else ""
    assert job.returncode == 0, f"{job.stderr}\n{output[-3000:]}"
    assert "MEMBER: 1/2" in output and "MEMBER: 2/2" in output  # two ranks, one per task
    assert (tmp_path / "runs" / "demo_max" / "checkpoints" / "last.ckpt").is_file()
