"""Faults under DDP: every rank takes as many steps as the others when videos fail (an
unreadable training item is replaced from the rank's own shard); a rank that hangs ends the
run within the process group's timeout, with an error naming a rank; SIGTERM ends every rank."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from run_args import tiny_args
from torch.utils.data import Dataset

from softpool_video.datamodules import UCF101DataModule
from softpool_video.datamodules.collate import SkippedItem
from softpool_video.datamodules.resilient import ResilientDataLoader
from softpool_video.datamodules.samplers import SeededItems, SeededTrainSampler

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
       "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))}


class _Numbers(Dataset):
    """Item i is {'x': i, ...}; the items in `bad` are unreadable videos."""

    def __init__(self, bad: set[int], size: int = 24) -> None:
        self.bad, self.size = bad, size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int):
        if index in self.bad:
            return SkippedItem(index, index, f"v{index}.avi", "corrupt")
        return {"x": torch.tensor(index), "noise": torch.rand(())}


def _epoch(bad: set[int], rank: int, epoch: int = 1, batch_size: int = 3) -> tuple[list[dict], ResilientDataLoader]:
    sampler = SeededTrainSampler(_Numbers(bad), num_replicas=2, rank=rank, seed=7)
    sampler.set_epoch(epoch)
    loader = ResilientDataLoader(SeededItems(_Numbers(bad)), sampler=sampler, batch_size=batch_size,
                                 keep_batch_count=True)
    return list(loader), loader


def test_an_unreadable_training_item_is_replaced_from_the_same_ranks_shard():
    sampler = SeededTrainSampler(_Numbers(set()), num_replicas=2, rank=1, seed=7)
    sampler.set_epoch(1)
    shard = sampler.indices()
    bad = set(shard[:3])  # rank 1's whole first batch
    batches, loader = _epoch(bad, rank=1)
    other, _ = _epoch(bad, rank=0)
    assert len(batches) == len(other) == 4  # 12 items per rank in batches of 3, on both ranks
    assert all(len(b["x"]) == 3 for b in batches)  # the batch kept its size
    delivered = torch.cat([b["x"] for b in batches]).tolist()
    assert set(delivered) <= set(shard) - bad  # stand-ins come from this rank's shard, readable
    assert loader.report.replaced == 3 and sorted(s.index for s in loader.report.skipped) == sorted(bad)
    assert "3 of them replaced by other items of this rank's shard" in loader.report.summary()
    again, _ = _epoch(bad, rank=1)
    assert all(torch.equal(a["x"], b["x"]) and torch.equal(a["noise"], b["noise"]) for a, b in zip(batches, again))
    later, _ = _epoch(bad, rank=1, epoch=2)  # another epoch, another draw
    assert torch.cat([b["x"] for b in later]).tolist() != delivered


def test_a_batch_with_nothing_readable_stops_the_rank_instead_of_desynchronising_ddp():
    rank0 = SeededTrainSampler(_Numbers(set()), num_replicas=2, rank=0, seed=7)
    rank0.set_epoch(1)
    readable = rank0.indices()[0]
    everything_but_one = set(range(24)) - {readable}  # which rank 1's shard does not hold
    with pytest.raises(RuntimeError, match=r"rank 1: no item of batch \d+ could be read, replacements included"):
        _epoch(everything_but_one, rank=1, batch_size=2)


# ---- real 2-process DDP (gloo) ---------------------------------------------------------------
def ddp_fit(root: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "softpool_video.cli", "fit", *tiny_args(root, out), "--config", "strategy/ddp",
            "--trainer.devices", "2", *extra]


def _corrupt(path: Path) -> None:
    """Garbage of the same size and mtime: the index keeps the file, reading it fails."""
    stat = path.stat()
    path.write_bytes(b"\0garbage" * (stat.st_size // 8) + b"\0" * (stat.st_size % 8))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.slow
def test_a_rank_whose_whole_batch_is_unreadable_finishes_the_epoch_with_the_others(demo_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(demo_root, root)
    # the index is built now, from readable files; the run's data module is configured alike
    dm = UCF101DataModule(root, split=1, sampling=dict(clip_len=4), loading=dict(batch_size=2),
                          transforms=dict(crop_size=32, resize_short=32))
    dm.prepare_data()
    dm.setup("fit")
    train = dm.datasets["train"]
    shard = SeededTrainSampler(train, num_replicas=2, rank=1, seed=0).indices()  # epoch 0 of rank 1
    broken = [train.records[train.view(i)[0]].rel for i in shard[:2]]  # its whole first batch of 2
    for rel in broken:
        _corrupt(root / rel)
    # the whole epoch: a rank one batch short would wait at its end for the other's last step
    cmd = ddp_fit(root, tmp_path / "run", "--data.init_args.loading.batch_size", "2")
    at = cmd.index("--trainer.limit_train_batches")
    del cmd[at:at + 2]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "replaced by other items of this rank's shard" in done.stderr
    for rel in broken:
        assert rel in done.stderr  # each unreadable video is named
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_a_hung_rank_ends_the_run_within_the_timeout_naming_a_rank(demo_root, tmp_path):
    cmd = ddp_fit(demo_root, tmp_path / "run", "--trainer.strategy.init_args.timeout", "0:00:20",
                  "--trainer.callbacks+=rank_behaviour.HangRank")
    proc = subprocess.Popen(cmd, env={**ENV, "SOFTPOOL_TEST_HANG_RANK": "1"}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    try:
        _, err = proc.communicate(timeout=200)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 1, err[-3000:]
    assert "softpool-video fit: error: rank 0 of 2 failed" in err and "process group's timeout" in err
    assert time.monotonic() - started < 200
    _wait_gone(proc.pid)  # the hung rank was stopped too


def _wait_gone(group: int, within: float = 30.0) -> None:
    """Every process of the run's process group (all ranks, their loader workers) has ended."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    os.killpg(group, signal.SIGKILL)
    pytest.fail(f"processes of the run were still alive {within:g} s after it ended")


@pytest.mark.slow
def test_sigterm_ends_a_ddp_fit_on_every_rank(demo_root, tmp_path):
    marker = tmp_path / "step"
    cmd = ddp_fit(demo_root, tmp_path / "run", "--trainer.callbacks+=rank_behaviour.MarkSteps",
                  "--trainer.max_epochs", "50")
    proc = subprocess.Popen(cmd, env={**ENV, "SOFTPOOL_TEST_STEP_MARKER": str(marker)}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not (Path(f"{marker}.0").exists() and Path(f"{marker}.1").exists()):
            assert proc.poll() is None and time.monotonic() < deadline, "the run did not start training"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)  # what a scheduler sends the process it started
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    _wait_gone(proc.pid)
