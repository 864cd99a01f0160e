"""Broken checkpoints: a truncated or zeroed .ckpt or .safetensors given to test, export,
predict or --ckpt_path gets one line naming the file; `--ckpt_path last` with an unreadable
last.ckpt falls back to the newest readable checkpoint and says so."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
from run_args import tiny_args

from softpool_video.commands import export, fit, predict
from softpool_video.commands import test as test_command


@pytest.fixture(scope="module")
def trained(demo_root, tmp_path_factory) -> Path:
    """A 2-epoch tiny run (best-*.ckpt and last.ckpt) and its safetensors export."""
    out = tmp_path_factory.mktemp("broken_ckpt") / "run"
    assert fit.main(tiny_args(demo_root, out, epochs=2)) == 0
    last = out / "checkpoints" / "last.ckpt"
    # the parity clip from the real UCF-101 file (decord misreads the tiny demo's 32x32 frames)
    video = Path(__file__).parents[1] / "data" / "realdata" / "v_ApplyEyeMakeup_g01_c01.avi"
    assert export.main([str(last), "--format", "safetensors", "--out", str(out / "export"), "--video", str(video)]) == 0
    return out


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _zero(path: Path) -> None:
    path.write_bytes(bytes(path.stat().st_size))


BREAKS = {"truncated": _truncate, "zeroed": _zero}


def _one_line_naming(err: str, command: str, path: Path) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err[-2000:]
    errors = [line for line in lines if line.startswith(f"softpool-video {command}: error:")]
    assert len(errors) == 1 and str(path) in errors[0], err[-2000:]


@pytest.mark.parametrize("broken", BREAKS)
def test_a_broken_ckpt_is_named_by_test_export_predict_and_fit(trained, demo_root, tmp_path, capsys, broken):
    bad = tmp_path / f"{broken}.ckpt"
    shutil.copy(trained / "checkpoints" / "last.ckpt", bad)
    BREAKS[broken](bad)
    video = next((demo_root / "UCF-101").rglob("*.avi"))
    runs = {
        "test": lambda: test_command.main([*tiny_args(demo_root, tmp_path / "t"), "--ckpt_path", str(bad)]),
        "fit": lambda: fit.main([*tiny_args(demo_root, tmp_path / "f"), "--ckpt_path", str(bad)]),
        "export": lambda: export.main([str(bad), "--format", "safetensors", "--out", str(tmp_path / "e")]),
        "predict": lambda: predict.main([str(video), "--model", str(bad)]),
    }
    for command, run in runs.items():
        capsys.readouterr()
        assert run() == 2, command
        _one_line_naming(capsys.readouterr().err, command, bad)


@pytest.mark.parametrize("broken", BREAKS)
def test_a_broken_safetensors_is_named_by_predict_and_export(trained, demo_root, tmp_path, capsys, broken):
    folder = tmp_path / "export"
    shutil.copytree(trained / "export", folder)
    weights = next(folder.glob("*.safetensors"))
    BREAKS[broken](weights)
    video = next((demo_root / "UCF-101").rglob("*.avi"))
    for model in (folder, weights):  # the export folder (card + weights), or the weights file itself
        assert predict.main([str(video), "--model", str(model)]) == 2
        err = capsys.readouterr().err
        _one_line_naming(err, "predict", model)
        assert weights.name in err
    assert export.main([str(weights), "--format", "onnx", "--out", str(tmp_path / "e")]) == 2
    _one_line_naming(capsys.readouterr().err, "export", weights)


@pytest.mark.slow  # a resumed fit
def test_ckpt_path_last_falls_back_to_the_newest_readable_checkpoint(trained, demo_root, tmp_path, caplog):
    out = tmp_path / "run"
    shutil.copytree(trained, out, ignore=shutil.ignore_patterns("run.lock"))
    last = out / "checkpoints" / "last.ckpt"
    best = next((out / "checkpoints").glob("best-*.ckpt"))
    _truncate(last)
    with caplog.at_level(logging.WARNING, logger="softpool_video.checkpoint.reader"):
        assert fit.main([*tiny_args(demo_root, out, epochs=3), "--ckpt_path", "last"]) == 0
    assert f"--ckpt_path last: {last} cannot be read" in caplog.text and f"using {best.name}" in caplog.text
    resumed = torch.load(last, map_location="cpu", weights_only=False)  # written again by the resumed run
    assert resumed["epoch"] == 2  # trained on from best's epoch to the end of epoch 3


def test_ckpt_path_last_with_nothing_readable_is_one_line(trained, demo_root, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(trained, out, ignore=shutil.ignore_patterns("run.lock"))
    for path in (out / "checkpoints").glob("*.ckpt"):
        _zero(path)
    assert test_command.main([*tiny_args(demo_root, out), "--ckpt_path", "last"]) == 2
    _one_line_naming(capsys.readouterr().err, "test", out / "checkpoints" / "last.ckpt")
