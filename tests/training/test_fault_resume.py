"""Faults: SIGKILL mid-epoch then `--ckpt_path last` ends where an uninterrupted run ends;
a SIGKILL during a checkpoint save leaves the previous checkpoint whole."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from run_args import tiny_args

from softpool_video.checkpoint.io import AtomicCheckpointIO, remove_stale_partials
from softpool_video.datamodules.resilient import _yielded
from softpool_video.training.cli import with_atomic_checkpoints

EPOCHS, STEPS_PER_EPOCH, KILL_AT_STEP = 2, 6, 8  # the kill lands in the second epoch
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def fit_command(root: Path, out: Path, workers: int, *extra: str) -> list[str]:
    args = tiny_args(root, out, epochs=EPOCHS)
    args[args.index("--data.init_args.loading.num_workers") + 1] = str(workers)
    args[args.index("--trainer.limit_train_batches") + 1] = str(STEPS_PER_EPOCH)
    return [sys.executable, "-m", "softpool_video.cli", "fit", *args, "--trainer.deterministic", "true",
            "--checkpoint.every_n_train_steps", "1", *extra]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def fit_results(out: Path) -> dict:
    record = sorted(out.glob("logs/version_*/run.json"))[-1]
    return json.loads(record.read_text())["results"]["fit"]


def run_until_killed(cmd: list[str], last: Path, step: int, timeout: float = 120.0) -> int:
    """Run `cmd` with a callback that SIGKILLs its process group in training step `step`
    (kill_at_step.py); returns the step of the last.ckpt the killed run left behind."""
    env = {**ENV, "SOFTPOOL_TEST_KILL_AT_STEP": str(step),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), ENV.get("PYTHONPATH")]))}
    proc = subprocess.Popen([*cmd, "--trainer.callbacks+=kill_at_step.KillAtStep"], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    return load(last)["global_step"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(demo_root, tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    # reference without workers, interrupted run with 2: items are seeded per (seed, epoch,
    # index), so the worker count must not matter either
    subprocess.run(fit_command(demo_root, reference, 0), env=ENV, check=True, capture_output=True)
    last = killed / "checkpoints" / "last.ckpt"
    step = run_until_killed(fit_command(demo_root, killed, 2), last, KILL_AT_STEP)
    assert step % STEPS_PER_EPOCH != 0 and step < EPOCHS * STEPS_PER_EPOCH, f"killed at step {step}, not mid-epoch"
    # the training loader's state (a StatefulDataLoader), kept by Lightning and the datamodule
    (loader_state,) = load(last)["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert load(last)["UCF101DataModule"] == {"train_loader": loader_state}
    assert loader_state["order"] == {"batch_size": 4, "num_replicas": 1, "seed": 0}
    assert _yielded(loader_state["loader"]) == step % STEPS_PER_EPOCH

    resumed = subprocess.run(fit_command(demo_root, killed, 2, "--ckpt_path", "last"), env=ENV,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    a, b = load(reference / "checkpoints" / "last.ckpt"), load(last)
    assert a["global_step"] == b["global_step"] == EPOCHS * STEPS_PER_EPOCH
    # Same batches, same augmentations, same RNG, deterministic kernels, one thread: the
    # arithmetic is identical, so the weights and the optimiser state are equal bit for bit.
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][name]), name
    for name, tensor in a["optimizer_states"][0]["state"][0].items():
        assert torch.equal(tensor, b["optimizer_states"][0]["state"][0][name]), name
    ra, rb = fit_results(reference), fit_results(killed)
    assert rb["train_steps"] == EPOCHS * STEPS_PER_EPOCH - step  # the resumed run did only the rest
    for key in ("val/video_acc1", "val/video_acc5", "val/clip_acc1", "val/loss", "val/num_videos"):
        assert ra[key] == rb[key], key


SLOW_SAVE = textwrap.dedent("""
    import os, sys, time, torch
    from softpool_video.checkpoint.io import AtomicCheckpointIO
    path, marker = sys.argv[1], sys.argv[2]
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.zeros(4096)}, "global_step": 1}, path)

    def stall(fd):  # the new bytes are written but not yet renamed over the old file
        open(marker, "w").close()
        time.sleep(120)

    os.fsync = stall
    io.save_checkpoint({"state_dict": {"w": torch.ones(4096)}, "global_step": 2}, path)
""")


@pytest.mark.slow  # SIGKILL
def test_sigkill_during_a_save_leaves_the_previous_checkpoint_loadable(tmp_path):
    script, marker = tmp_path / "slow_save.py", tmp_path / "saving"
    script.write_text(SLOW_SAVE)
    last = tmp_path / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen([sys.executable, str(script), str(last), str(marker)], env=ENV)
    deadline = time.monotonic() + 60
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), "the second save never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partials = [p for p in last.parent.iterdir() if p.name != "last.ckpt"]
    assert len(partials) == 1 and "last" not in partials[0].name  # the save really was cut short
    checkpoint = AtomicCheckpointIO().load_checkpoint(last)
    assert checkpoint["global_step"] == 1 and torch.equal(checkpoint["state_dict"]["w"], torch.zeros(4096))
    # the next save (a new process) clears what the killed one left
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2)}, "global_step": 3}, last)
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]
    assert AtomicCheckpointIO().load_checkpoint(last)["global_step"] == 3


def test_stale_partials_of_live_processes_are_kept(tmp_path):
    mine = tmp_path / f".saving-{os.getppid()}-0a0b.partial"  # pytest's parent is alive
    mine.write_bytes(b"x")
    assert remove_stale_partials(tmp_path) == [] and mine.exists()


def test_cli_installs_atomic_checkpoints_unless_one_is_configured():
    assert any(isinstance(p, AtomicCheckpointIO) for p in with_atomic_checkpoints(None))
    own = AtomicCheckpointIO()
    assert with_atomic_checkpoints([own]) == [own]


def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path):
    bad = tmp_path / "notes.ckpt"
    bad.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"notes.ckpt.*not a readable checkpoint"):
        AtomicCheckpointIO().load_checkpoint(bad)
