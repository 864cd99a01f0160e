"""The evaluation protocol: checkpoints are never selected on the list that reports the result."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch
from run_args import tiny_args

from softpool_video.commands import fit as fit_command
from softpool_video.commands import test as test_command
from softpool_video.datamodules import (
    HMDB51DataModule,
    KineticsDataModule,
    UCF101DataModule,
    VideoDataModule,
)
from softpool_video.studies import grid as benchmark


@pytest.mark.parametrize("cls", [UCF101DataModule, HMDB51DataModule, KineticsDataModule])
def test_every_dataset_validates_on_a_holdout_by_default(cls):
    signature = inspect.signature(cls.__init__)
    base = inspect.signature(VideoDataModule.__init__)
    default = (signature.parameters.get("val_source") or base.parameters["val_source"]).default
    assert default == "holdout"
    assert base.parameters["allow_test_selection"].default is False


def test_the_holdout_leaves_the_test_list_alone_and_only_the_test_list_leaks(demo_root):
    small = {"loading": {"num_workers": 0}, "sampling": {"clip_len": 4},
             "transforms": {"crop_size": 32, "resize_short": 32}}
    held = UCF101DataModule(demo_root, **small)
    assert not held.validates_on_test and held.protocol()["val_source"] == "holdout"
    val, test = held.subset("val").records, held.subset("test").records
    assert val and not {r.rel for r in val} & {r.rel for r in test}
    leaky = UCF101DataModule(demo_root, val_source="test", **small)
    assert leaky.validates_on_test and leaky.protocol()["validates_on_test"]


def _run_records(out: Path) -> list[dict]:
    paths = sorted(out.glob("logs/version_*/run.json"), key=lambda p: int(p.parent.name.split("_")[1]))
    return [json.loads(p.read_text()) for p in paths]


def test_selecting_on_the_test_list_is_refused_with_the_reason(demo_root, tmp_path, capsys):
    args = [*tiny_args(demo_root, tmp_path), "--data.init_args.val_source", "test"]
    assert fit_command.main(args) == 2
    err = capsys.readouterr().err
    assert "val_source='test'" in err and "checkpoint.monitor='val/loss'" in err
    assert "pick its own model" in err and "allow_test_selection" in err
    assert not list((tmp_path / "checkpoints").glob("*.ckpt"))


def test_validating_on_test_without_selection_is_allowed_and_unmarked(demo_root, tmp_path):
    args = [*tiny_args(demo_root, tmp_path), "--data.init_args.val_source", "test", "--checkpoint.monitor", "null"]
    assert fit_command.main(args) == 0
    protocol = _run_records(tmp_path)[-1]["protocol"]
    assert protocol["validates_on_test"] and protocol["monitor"] is None and not protocol["selected_on_test"]


def test_the_override_runs_and_marks_the_fit_the_checkpoint_and_a_later_test(demo_root, tmp_path):
    args = [*tiny_args(demo_root, tmp_path), "--data.init_args.val_source", "test",
            "--data.init_args.allow_test_selection", "true"]
    assert fit_command.main(args) == 0
    assert _run_records(tmp_path)[-1]["protocol"]["selected_on_test"] is True
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["selection_protocol"]["selected_on_test"] is True
    # tested later, in another run, the checkpoint still says how it was chosen
    assert test_command.main([*tiny_args(demo_root, tmp_path), "--ckpt_path", "last"]) == 0
    record = _run_records(tmp_path)[-1]
    assert record["stages"] == ["test"] and record["protocol"]["selected_on_test"] is True


def test_benchmark_reports_selected_and_last_epoch_and_marks_test_selection(demo_root, tmp_path):
    args = tiny_args(demo_root, tmp_path)
    at = args.index("--trainer.default_root_dir")
    del args[at:at + 2]
    passthrough = [a for a in args[2:] if a != "--config"]
    passthrough += ["--trainer.max_epochs", "2", "--data.init_args.val_source", "test",
                    "--data.init_args.allow_test_selection", "true", "--trainer.logger", "false"]
    result = benchmark.run_grid("demo", ["max"], [1], [0], tmp_path / "bench", passthrough)
    cell = result.cells[0]
    assert cell["protocol"]["selected_on_test"] is True
    assert set(cell["metrics_last"]) == set(cell["metrics"]) and "test/video_acc1" in cell["metrics_last"]
    if not cell["best_is_last"]:  # two checkpoints: two tests of the same list
        assert cell["best_checkpoint"] != cell["last_checkpoint"]
    md = (tmp_path / "bench" / "results.md").read_text()
    assert "| max † |" in md and "last-epoch video top-1 (%)" in md and "selected on the reported test list" in md
    saved = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert saved["methods"][0]["selected_on_test"] is True and saved["cells"][0]["selected_on_test"] is True
