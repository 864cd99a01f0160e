"""Bad videos: empty, truncated and undecodable files are skipped and counted, never a crash
and never a silent loss; the same for files that fail only at read time."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import copy_tree, make_ucf_tree, shared_tree, ucf_file, write_video

from softpool_video.commands.check_videos import main as check_videos_main
from softpool_video.datamodules import DecodeError, UCF101DataModule, VideoIndex, probe_video
from softpool_video.datamodules import dataset as dataset_module


def _truncate(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("damaged")
    write_video(root / "good.avi", 30)
    write_video(root / "good.mp4", 30, codec="libx264", bframes=2)
    (root / "empty.avi").touch()
    write_video(root / "truncated.avi", 30)
    _truncate(root / "truncated.avi", 0.4)
    write_video(root / "truncated_faststart.mp4", 30, codec="libx264", faststart=True)
    _truncate(root / "truncated_faststart.mp4", 0.5)
    write_video(root / "truncated_moov_at_end.mp4", 30, codec="libx264")
    _truncate(root / "truncated_moov_at_end.mp4", 0.7)
    (root / "garbage.avi").write_bytes(np.random.default_rng(1).integers(0, 256, 30000, np.uint8).tobytes())
    return root


@pytest.mark.parametrize("name,reason", [
    ("empty.avi", "empty file"),
    ("truncated.avi", "truncated"),
    ("truncated_faststart.mp4", "truncated"),
    ("truncated_moov_at_end.mp4", "cannot open"),
    ("garbage.avi", "cannot open"),
])
def test_probe_marks_bad_files(damaged: Path, name: str, reason: str) -> None:
    for depth in ("header", "fast"):
        meta = probe_video(damaged / name, depth=depth)
        assert not meta.ok and reason in meta.error, meta


@pytest.mark.parametrize("name", ["good.avi", "good.mp4"])
def test_probe_accepts_good_files(damaged: Path, name: str) -> None:
    for depth in ("header", "fast", "full"):
        meta = probe_video(damaged / name, depth=depth)
        assert meta.ok, meta.error
        assert meta.num_frames == 30 and meta.decoder == "decord"
        assert (meta.width, meta.height) == (64, 48)


def test_check_videos_command(damaged: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    report = tmp_path / "report.json"
    rc = check_videos_main([str(damaged), "--json", str(report), "--cache-dir", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert rc == 1
    assert "checked 7 videos" in out and "2 good, 5 bad" in out
    data = json.loads(report.read_text())
    assert set(data["bad"]) == {"empty.avi", "truncated.avi", "truncated_faststart.mp4",
                                "truncated_moov_at_end.mp4", "garbage.avi"}
    for rel in data["bad"]:
        assert f"BAD  {rel}" in out
    # A clean folder exits 0.
    clean = tmp_path / "clean"
    write_video(clean / "a.avi", 20)
    assert check_videos_main([str(clean)]) == 0


def test_index_is_cached_and_invalidated(damaged: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "r"
    root.mkdir()
    write_video(root / "a.avi", 20)
    write_video(root / "b.avi", 25)
    first = VideoIndex(root).ensure(["a.avi", "b.avi"])
    assert first["a.avi"].num_frames == 20 and first["b.avi"].num_frames == 25
    import softpool_video.datamodules.index_cache as index_cache

    def no_probe(*args, **kwargs):
        raise AssertionError("probed although cached")

    monkeypatch.setattr(index_cache, "probe_video", no_probe)
    again = VideoIndex(root).ensure(["a.avi", "b.avi"])  # a new object reads the JSON file
    assert again == first
    monkeypatch.undo()
    write_video(root / "b.avi", 15)  # changed file: size/mtime differ -> re-probed
    assert VideoIndex(root).ensure(["b.avi"])["b.avi"].num_frames == 15


def test_an_index_of_the_previous_version_is_read_without_probing(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Version 2 called the decoder column 'backend': a big dataset's index is renamed on load,
    not probed again."""
    root = tmp_path / "r"
    root.mkdir()
    write_video(root / "a.avi", 20)
    first = VideoIndex(root).ensure(["a.avi"])
    index = VideoIndex(root).index_path
    stored = json.loads(index.read_text())
    assert stored["version"] == 3 and "decoder" in stored["columns"]
    stored["version"], stored["columns"]["backend"] = 2, stored["columns"].pop("decoder")
    index.write_text(json.dumps(stored))
    import softpool_video.datamodules.index_cache as index_cache

    def no_probe(*args, **kwargs):
        raise AssertionError("probed although indexed")

    monkeypatch.setattr(index_cache, "probe_video", no_probe)
    assert VideoIndex(root).ensure(["a.avi"]) == first
    assert first["a.avi"].decoder == "decord"


@pytest.fixture(scope="module")
def ucf_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_tree(tmp_path_factory, "ucf_videos", lambda r: make_ucf_tree(r, groups=22))


def _dm(root: Path, **loading) -> UCF101DataModule:
    return UCF101DataModule(root, split=1, sampling={"clip_len": 4, "frame_interval": 2, "test_clips": 2},
                            transforms={"crop_size": 32, "resize_short": 36, "test_crops": 1},
                            loading={"batch_size": 4, "num_workers": 0, **loading})


def test_bad_videos_excluded_at_setup_and_reported(ucf_videos: Path, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    root = copy_tree(ucf_videos, tmp_path / "ucf")
    empty = f"UCF-101/YoYo/{ucf_file('YoYo', 3, 1)}"  # test group (split 1: groups 1-7)
    cut = f"UCF-101/ApplyEyeMakeup/{ucf_file('ApplyEyeMakeup', 2, 1)}"
    (root / empty).write_bytes(b"")
    _truncate(root / cut, 0.3)
    dm = _dm(root)
    with caplog.at_level(logging.WARNING):
        dm.setup("test")
    assert set(dm.bad_videos) == {empty, cut}
    assert dm.datasets["test"].num_videos == 3 * 7 - 2
    msgs = [r.getMessage() for r in caplog.records if "undecodable" in r.getMessage()]
    assert len(msgs) == 1 and "2 of 21" in msgs[0] and empty in msgs[0] and cut in msgs[0]
    # The epoch runs over the good videos only.
    seen = sum(len(b["label"]) for b in dm.test_dataloader())
    assert seen == (3 * 7 - 2) * 2


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("damage", ["overwritten", "emptied", "truncated", "unchanged"])
def test_read_time_failure_is_skipped_counted_and_remembered(
        ucf_videos: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch, num_workers: int, damage: str) -> None:
    root = copy_tree(ucf_videos, tmp_path / "ucf")
    dm = _dm(root, num_workers=num_workers, persistent_workers=False)
    dm.setup("validate")
    val = dm.datasets["val"]
    victim = 5
    rel = val.records[victim].rel
    # Damaged after indexing (e.g. a disk error, a copy still in progress): only a read can
    # find out.
    if damage == "overwritten":
        (root / rel).write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    elif damage == "emptied":
        (root / rel).write_bytes(b"")
    elif damage == "truncated":
        _truncate(root / rel, 0.25)
    else:
        # The file is intact but fails to decode at read time (e.g. a flaky mount).
        real = dataset_module.read_frames

        def flaky(path, *args, **kwargs):
            if str(path).endswith(rel):
                raise DecodeError(path, "decord/pyav", "simulated read failure")
            return real(path, *args, **kwargs)

        monkeypatch.setattr(dataset_module, "read_frames", flaky)  # inherited by forked workers
    with caplog.at_level(logging.WARNING):
        loader = dm.val_dataloader()
        batches = list(loader)
        dm.teardown("validate")
    video_index = torch.cat([b["video_index"] for b in batches]).tolist()
    labels = torch.cat([b["label"] for b in batches]).tolist()
    # The epoch went on; every good video exactly once, the bad one left out (no stand-in).
    assert sorted(video_index) == [v for v in range(val.num_videos) if v != victim]
    assert all(lab == val.records[v].label for v, lab in zip(video_index, labels))
    assert all("skipped" not in b for b in batches)  # the loader takes its bookkeeping out
    assert [(s.video_index, s.rel) for s in loader.report.skipped] == [(victim, rel)]
    assert loader.report.samples == val.num_videos - 1 and loader.report.finished
    failures = dm.read_failures()
    assert list(failures) == [rel]  # counted once, across worker processes
    report = [r.getMessage() for r in caplog.records if "failed at read time during" in r.getMessage()]
    assert len(report) == 1 and rel in report[0] and "1 videos" in report[0] and "skipped" in report[0]
    # The next run's index treats it as bad and excludes it up front.
    monkeypatch.undo()
    dm2 = _dm(root)
    dm2.setup("validate")
    assert rel in dm2.bad_videos
    expected = {"overwritten": "cannot open", "emptied": "empty file", "truncated": "",
                "unchanged": "failed at read time: simulated read failure"}[damage]
    assert expected in dm2.bad_videos[rel]
    assert dm2.datasets["val"].num_videos == val.num_videos - 1
