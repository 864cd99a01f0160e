"""`softpool-video fit|test|predict` through LightningCLI on tiny demo data (real videos, tiny model)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from run_args import BATCH, TEST_CLIPS, TEST_CROPS, tiny_args

from softpool_video.cli import main as softpool_video_main
from softpool_video.commands import fit, predict_dataset
from softpool_video.commands import test as test_command

fit_main, predict_main = fit.main, predict_dataset.main

def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trained(demo_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli_run")
    assert fit_main(tiny_args(demo_root, out)) == 0
    return out


def test_fit_writes_checkpoints_logs_and_run_record(trained):
    assert (trained / "checkpoints" / "last.ckpt").is_file()
    assert len(list((trained / "checkpoints").glob("best-*.ckpt"))) == 1
    version = trained / "logs" / "version_0"
    assert (version / "config.yaml").is_file() and list(version.glob("events.out.tfevents.*"))
    rows = read_csv(version / "metrics.csv")
    assert {"train/loss_step", "val/video_acc1", "val/clip_acc1"} <= set(rows[0])
    record = json.loads((version / "run.json").read_text())
    assert record["config"]["model"]["arch"] == "r2plus1d_tiny"
    assert record["config"]["model"]["num_classes"] == 6  # linked from the datamodule
    assert record["config"]["model"]["clip_size"] in ([4, 32, 32], (4, 32, 32))  # linked too (T, H, W)
    assert record["config"]["seed_everything"] == 0
    assert record["versions"]["torch"] and record["device"]["cpu_count"] >= 1
    assert "commit" in (record["git"] or {"commit": None})
    fit = record["results"]["fit"]
    assert fit["global_step"] == 2 and fit["train_clips"] == 2 * BATCH
    assert fit["train_clips_per_s"] > 0 and fit["peak_memory_mib"] > 0


def test_multi_view_test_from_last_checkpoint(trained, demo_root):
    assert test_command.main([*tiny_args(demo_root, trained), "--ckpt_path", "last"]) == 0
    records = sorted(trained.glob("logs/version_*/run.json"))
    test = json.loads(records[-1].read_text())["results"]["test"]
    # 2 batches x 4 views, 2 views per video, views of a video are adjacent
    assert test["test/num_videos"] == 2 * BATCH / (TEST_CLIPS * TEST_CROPS)
    for level in ("clip", "video"):
        for metric in ("acc1", "acc5", "mean_class_acc"):
            assert 0.0 <= test[f"test/{level}_{metric}"] <= 1.0
    assert test["test/video_acc1"] <= test["test/video_acc5"]


def test_run_record_names_videos_that_failed_at_read_time(trained, demo_root, tmp_path):
    import os
    import shutil

    from softpool_video.datamodules import UCF101DataModule

    root = tmp_path / "data"
    shutil.copytree(demo_root, root, ignore=shutil.ignore_patterns(".softpool_video"))
    dm = UCF101DataModule(root, split=1)
    dm.setup("test")  # indexes every test video as good
    victim = root / dm.datasets["test"].records[0].rel
    # Damaged after indexing, same size and time stamp: only a read can find out.
    st = victim.stat()
    victim.write_bytes(bytes(st.st_size))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    ckpt = str(trained / "checkpoints" / "last.ckpt")
    assert test_command.main([*tiny_args(root, tmp_path / "run"), "--ckpt_path", ckpt]) == 0
    record = json.loads(next((tmp_path / "run").glob("logs/version_*/run.json")).read_text())
    rel = victim.relative_to(root).as_posix()
    assert list(record["read_failures"]) == [rel] and "decord" in record["read_failures"][rel]


def test_resume_from_last_continues_at_the_same_step(demo_root, tmp_path):
    assert fit_main(tiny_args(demo_root, tmp_path, epochs=1)) == 0
    assert fit_main([*tiny_args(demo_root, tmp_path, epochs=2), "--ckpt_path", "last"]) == 0
    resumed = tmp_path / "logs" / "version_1"
    steps = [int(r["step"]) for r in read_csv(resumed / "metrics.csv") if r.get("train/loss_step")]
    assert steps and min(steps) == 2  # the first epoch's 2 steps are not trained again
    fit = json.loads((resumed / "run.json").read_text())["results"]["fit"]
    assert fit["global_step"] == 4 and fit["train_steps"] == 2


def test_last_checkpoint_holds_the_last_epoch_when_the_selected_one_is_earlier(demo_root, tmp_path):
    # "step" in mode min: the first validated checkpoint stays the selected one
    assert fit_main([*tiny_args(demo_root, tmp_path, epochs=3), "--checkpoint.monitor", "step",
                     "--checkpoint.mode", "min"]) == 0
    from softpool_video.checkpoint.reader import read_checkpoint
    checkpoints = tmp_path / "checkpoints"
    (selected,) = checkpoints.glob("best-*.ckpt")
    assert read_checkpoint(selected)["global_step"] == 2
    last = read_checkpoint(checkpoints / "last.ckpt")
    assert last["global_step"] == 6 and last["epoch"] == 2
    assert sorted(p.name for p in checkpoints.iterdir()) == sorted([selected.name, "last.ckpt"])


def test_predict_writes_one_row_per_video(trained, demo_root):
    assert predict_main([*tiny_args(demo_root, trained), "--ckpt_path", "last"]) == 0
    rows = read_csv(sorted(trained.glob("logs/version_*/predictions.csv"))[-1])
    assert len(rows) == 2 * BATCH / (TEST_CLIPS * TEST_CROPS)
    from softpool_video.datamodules import DEMO_CLASSES
    for row in rows:
        assert int(row["num_views"]) == TEST_CLIPS * TEST_CROPS
        assert row["predicted_name"] == DEMO_CLASSES[int(row["predicted"])]
        assert row["label_name"] == DEMO_CLASSES[int(row["label"])]
        assert 0.0 < float(row["score"]) <= 1.0 and row["top5"].split()[0] == row["predicted"]


@pytest.mark.parametrize("extra,message", [
    (["--model.arch", "r9d_tiny"], "model.arch: unknown model 'r9d_tiny'"),
    (["--model.pooling", "median"], "model.pooling: unknown pooling method 'median'"),
    (["--data.init_args.split", "4"], "split=4"),
    (["--data.class_path", "softpool_video.datamodules.NoSuchDataModule"], "NoSuchDataModule"),
])
def test_bad_input_fails_before_training_and_names_the_option(demo_root, tmp_path, capsys, extra, message):
    assert fit_main([*tiny_args(demo_root, tmp_path), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "checkpoints").exists()


def test_missing_dataset_root_names_the_option(tmp_path, capsys):
    args = tiny_args(tmp_path / "nowhere", tmp_path / "out")
    assert fit_main(args) == 2
    err = capsys.readouterr().err
    assert "root=" in err and "nowhere" in err


def test_empty_split_is_a_clear_error(demo_root, tmp_path, capsys):
    root = tmp_path / "data"
    (root / "ucfTrainTestlist").mkdir(parents=True)
    (root / "UCF-101").symlink_to(demo_root / "UCF-101")
    lists = demo_root / "ucfTrainTestlist"
    for name in ("classInd.txt", "testlist01.txt"):
        (root / "ucfTrainTestlist" / name).write_text((lists / name).read_text())
    (root / "ucfTrainTestlist" / "trainlist01.txt").write_text("")
    assert fit_main(tiny_args(root, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "split 1 train" in err and "no" in err
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_unknown_config_name_through_the_entry_point(capsys):
    assert softpool_video_main(["fit", "--config", "ucf101/no_such_model"]) == 2
    assert "no file or config named 'ucf101/no_such_model'" in capsys.readouterr().err
