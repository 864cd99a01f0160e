"""A full disk: checkpoint, index and export writes on a filesystem that fills up fail with
one line naming the file and "no space left", the previous last.ckpt stays whole and
loadable, and a resume once space is freed ends where the same resume on a roomy disk ends.

The filesystem is a small tmpfs, which only root can mount: elsewhere the test is left out,
saying why (CI runs as root and runs it)."""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from run_args import tiny_args

from softpool_video.checkpoint.reader import read_checkpoint
from softpool_video.commands import export, fit
from softpool_video.datamodules.index_cache import VideoIndex

REALDATA = Path(__file__).parents[1] / "data" / "realdata" / "v_ApplyEyeMakeup_g01_c01.avi"


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (a disk that fills up) needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path, leave: int) -> Path:
    """A file that leaves `leave` bytes free on `disk`."""
    stat = os.statvfs(disk)
    filler = disk / "filler"
    with open(filler, "wb") as f:
        f.write(bytes(max(0, stat.f_bavail * stat.f_frsize - leave)))
    return filler


def _fill_more(disk: Path) -> None:
    """Whatever space is left, taken too."""
    stat = os.statvfs(disk)
    with open(disk / "filler.more", "wb") as f:
        f.write(bytes(stat.f_bavail * stat.f_frsize))


def _fit_args(root: Path, out: Path, epochs: int) -> list[str]:
    return [*tiny_args(root, out, epochs=epochs), "--trainer.deterministic", "true"]


def _error_line(err: str, command: str) -> str:
    assert "Traceback" not in err, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith(f"softpool-video {command}: error:")]
    assert len(lines) == 1, err[-2000:]
    return lines[0]


@pytest.mark.slow
def test_a_full_disk_is_one_line_keeps_last_ckpt_and_a_resume_continues_exactly(
        demo_root, small_disk, tmp_path, capsys, caplog):
    # the same two runs on a disk with room: epoch 1, then resumed for epoch 2 (a 1-epoch run's
    # LR schedule is not a 2-epoch run's, so the reference resumes too)
    reference = tmp_path / "reference"
    assert fit.main(_fit_args(demo_root, reference, epochs=1)) == 0
    assert fit.main([*_fit_args(demo_root, reference, epochs=2), "--ckpt_path", "last"]) == 0

    run = small_disk / "run"
    assert fit.main(_fit_args(demo_root, run, epochs=1)) == 0
    last = run / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    _fill(small_disk, leave=len(before) // 2)  # the next checkpoint does not fit
    capsys.readouterr()

    # checkpoint writes
    assert fit.main([*_fit_args(demo_root, run, epochs=2), "--ckpt_path", "last"]) == 1
    line = _error_line(capsys.readouterr().err, "fit")
    assert "no space left on device writing " + str(run / "checkpoints") in line
    assert last.read_bytes() == before and read_checkpoint(last)["epoch"] == 0  # whole and loadable
    assert not list((run / "checkpoints").glob(".saving-*"))  # no partial file takes the space

    # export writes
    out = small_disk / "export"
    out.mkdir()
    _fill_more(small_disk)
    assert export.main([str(last), "--format", "safetensors", "--out", str(out), "--video", str(REALDATA)]) == 1
    line = _error_line(capsys.readouterr().err, "export")
    assert f"no space left on device writing {out / 'r2plus1d_tiny_max.safetensors'}" in line
    assert not any(out.iterdir())  # nothing half-written

    # index writes: a cache, so the run goes on with a one-line warning naming the file
    index = VideoIndex(demo_root, cache_dir=small_disk / "cache")
    with caplog.at_level(logging.WARNING, logger="softpool_video.datamodules.index_cache"):
        index.ensure([p.relative_to(demo_root).as_posix() for p in sorted(demo_root.rglob("*.avi"))[:3]])
    assert f"cannot save the video index to {index.index_path}" in caplog.text
    assert f"no space left on device writing {index.index_path}" in caplog.text

    # space freed: the resume trains the second epoch as the run that never met a full disk
    for path in small_disk.glob("filler*"):
        path.unlink()
    shutil.rmtree(small_disk / "cache")
    assert fit.main([*_fit_args(demo_root, run, epochs=2), "--ckpt_path", "last"]) == 0
    resumed = torch.load(last, map_location="cpu", weights_only=True)
    expected = torch.load(reference / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert resumed["epoch"] == expected["epoch"] == 1 and resumed["global_step"] == expected["global_step"]
    for name, value in expected["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], value), name
