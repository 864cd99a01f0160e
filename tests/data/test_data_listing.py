"""The folder listing (listing.py): a warm set-up stats folders, not files, walks no tree and
touches no video file; new, removed and changed files are still found; a file changed in
place is caught when it is read and probed again at the next set-up."""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import copy_tree, full_decode, make_kinetics_tree, make_ucf_tree, shared_tree, write_video

from softpool_video.datamodules import KineticsDataModule, UCF101DataModule, VideoIndex, find_videos
from softpool_video.datamodules.collate import SkippedItem
from softpool_video.datamodules.listing import VideoListing
from softpool_video.datamodules.video_files import CACHE_DIRNAME, is_video_file


def _tree(root: Path) -> Path:
    for rel in ("train/a/1.mp4", "train/a/2.avi", "train/b c/3.mkv", "train/b c/notes.txt", "val/4.mp4",
                "deep/x/y/z/5.webm", f"{CACHE_DIRNAME}/6.mp4"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x" * len(rel))
    (root / "outside").mkdir()
    (root / "outside" / "7.mp4").write_bytes(b"7")
    elsewhere = root.parent / f"{root.name}_elsewhere"  # a class folder kept outside the root
    elsewhere.mkdir()
    (elsewhere / "9.mp4").write_bytes(b"9")
    os.symlink(root / "outside" / "7.mp4", root / "train" / "a" / "linked.mp4")  # a symlinked file: listed
    os.symlink(elsewhere, root / "train" / "linked_folder")  # a symlinked folder: followed
    os.symlink(root / "outside", root / "val" / "again")  # a second way to a listed folder: listed once
    os.symlink(root / "train", root / "train" / "a" / "loop")  # a link cycle: ends
    return root


def test_listing_is_the_walk(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root")
    listing = VideoListing.of(root)
    assert listing.files() == find_videos(root)
    assert "train/a/linked.mp4" in listing and "train/linked_folder/9.mp4" in listing
    assert "outside/7.mp4" in listing and "val/again/7.mp4" not in listing  # the first way there, as os.walk
    assert not any("/loop/" in rel for rel in listing.files())
    assert listing.files("train/b c") == ["train/b c/3.mkv"]
    assert listing.folders("train") == ["a", "b c", "linked_folder"] and listing.folders() == ["deep", "outside", "train", "val"]
    assert listing.stat_of("train/a/1.mp4") == (len("train/a/1.mp4"), os.stat(root / "train/a/1.mp4").st_mtime_ns)
    assert (root / CACHE_DIRNAME / "listing.json").is_file()


def _count_fs_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Record what the standard library is asked of the file system from now on."""
    calls: dict[str, list[str]] = {"stat": [], "scandir": [], "listdir": [], "walk": []}
    for name in calls:
        real = getattr(os, name)

        def spy(path=".", *args, _name=name, _real=real, **kwargs):
            calls[_name].append(os.fspath(path))
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, spy)
    return calls


def test_a_warm_refresh_stats_each_folder_once_and_lists_none(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    root = _tree(tmp_path / "root")
    VideoListing.of(root)
    calls = _count_fs_calls(monkeypatch)
    warm = VideoListing.of(root)
    assert calls["scandir"] == calls["listdir"] == calls["walk"] == []
    folders = {str(root)} | {str(root / f) for f in ("train", "train/a", "train/b c", "val", "deep", "deep/x",
                                                       "deep/x/y", "deep/x/y/z", "outside",
                                                       "train/linked_folder", "train/a/loop", "val/again")}
    stated = {p for p in calls["stat"] if CACHE_DIRNAME not in p}
    assert stated == folders
    assert warm.files() == find_videos(root) and warm.stat_of("train/a/1.mp4") is None


def test_changes_are_found(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root")
    VideoListing.of(root)
    (root / "train/a/new.mp4").write_bytes(b"new")  # a download finished
    (root / "val/4.mp4").unlink()  # a file removed
    (root / "train/d/e").mkdir(parents=True)  # a new class folder, nested
    (root / "train/d/e/8.mp4").write_bytes(b"8")
    os.rename(root / "train/b c/3.mkv", root / "train/b c/3b.mkv")  # a rename
    listing = VideoListing.of(root)
    assert listing.files() == find_videos(root)
    assert "train/a/new.mp4" in listing and "val/4.mp4" not in listing and "train/d/e/8.mp4" in listing
    assert listing.stat_of("train/a/new.mp4") == (3, os.stat(root / "train/a/new.mp4").st_mtime_ns)
    assert listing.stat_of("deep/x/y/z/5.webm") is None  # an unchanged folder: trusted


# ---- warm set-up of the datasets -------------------------------------------------------------
def _no_video_touched(calls: dict[str, list[str]], root: Path) -> None:
    # Listing a folder of annotation files is fine; listing the root or a folder of videos
    # is the walk a warm set-up must not do.
    listed = calls["scandir"] + calls["listdir"] + calls["walk"]
    walked = [p for p in listed if Path(p) == root or any(is_video_file(n) for n in os.listdir(p))]
    assert walked == [], f"a warm set-up listed folders of videos: {walked[:3]}"
    touched = [p for p in calls["stat"] if is_video_file(p)]
    assert touched == [], f"a warm set-up stat'ed video files: {touched[:3]}"


def test_warm_kinetics_setup_touches_no_video_file(tmp_path_factory: pytest.TempPathFactory,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    shared = shared_tree(tmp_path_factory, "kinetics_videos_4", lambda r: make_kinetics_tree(r, per_class=4))
    root = copy_tree(shared, tmp_path_factory.mktemp("warm_k") / "k")

    def setup() -> KineticsDataModule:
        dm = KineticsDataModule(root, decoding={"probe": "header", "decoder": "pyav"},
                                loading={"batch_size": 2, "num_workers": 0})
        dm.setup("fit")
        dm.setup("test")
        return dm

    cold = setup()
    calls = _count_fs_calls(monkeypatch)
    warm = setup()
    monkeypatch.undo()
    _no_video_touched(calls, root)
    for stage in ("train", "val", "test"):
        assert warm.datasets[stage].records[:] == cold.datasets[stage].records[:]
    assert warm.missing_videos == cold.missing_videos and warm.missing_videos["train"]


def test_setup_keeps_only_the_datasets_packed_tables(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The per-video Python tables set-up builds (CSV rows, subsets, index entries, listing
    paths) are dropped once the datasets are built, and made again, the same, when asked."""
    shared = shared_tree(tmp_path_factory, "kinetics_videos_4", lambda r: make_kinetics_tree(r, per_class=4))
    root = copy_tree(shared, tmp_path_factory.mktemp("release") / "k")
    dm = KineticsDataModule(root, decoding={"probe": "header", "decoder": "pyav"}, loading={"num_workers": 0})
    dm.setup("fit")
    assert dm._subsets == {} and dm._index is None
    assert dm.annotations._columns == {} and dm.listing._sorted is None and dm.listing._files is None
    assert [r.rel for r in dm.subset("train").records] == [r.rel for r in dm.datasets["train"].records[:]]
    assert dm.index.get(dm.datasets["train"].records[0].rel).ok
    dm.setup("test")
    assert dm.datasets["test"].num_videos > 0 and dm._subsets == {}


def test_warm_ucf_setup_touches_no_video_file(tmp_path_factory: pytest.TempPathFactory,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    shared = shared_tree(tmp_path_factory, "ucf_videos", lambda r: make_ucf_tree(r, groups=22))
    root = copy_tree(shared, tmp_path_factory.mktemp("warm_u") / "u")
    UCF101DataModule(root, split=1).setup("fit")
    calls = _count_fs_calls(monkeypatch)
    dm = UCF101DataModule(root, split=1)
    dm.setup("fit")
    monkeypatch.undo()
    _no_video_touched(calls, root)
    assert dm.datasets["train"].num_videos > 0


def test_a_finished_download_is_found_warm(tmp_path_factory: pytest.TempPathFactory) -> None:
    shared = shared_tree(tmp_path_factory, "kinetics_videos_4", lambda r: make_kinetics_tree(r, per_class=4))
    root = copy_tree(shared, tmp_path_factory.mktemp("download") / "k")
    before = KineticsDataModule(root, loading={"num_workers": 0})
    missing = before.subset("train").missing
    assert len(missing) == 1
    before.setup("fit")
    stem = missing[0]
    label = next(c for c, y, s, e in _rows(root) if f"{y}_{s:06d}_{e:06d}" == stem)
    write_video(root / "train" / label / f"{stem}.mp4", 24, codec="libx264")
    after = KineticsDataModule(root, loading={"num_workers": 0})
    assert after.subset("train").missing == []
    after.setup("fit")
    assert after.index.get(f"train/{label}/{stem}.mp4").ok


def _rows(root: Path) -> list[tuple[str, str, int, int]]:
    import csv

    with open(root / "annotations" / "train.csv", newline="") as fh:
        return [(r["label"], r["youtube_id"], int(r["time_start"]), int(r["time_end"]))
                for r in csv.DictReader(fh)]


def test_a_file_changed_in_place_is_caught_when_read_and_reindexed(
        tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture) -> None:
    shared = shared_tree(tmp_path_factory, "ucf_videos", lambda r: make_ucf_tree(r, groups=22))
    root = copy_tree(shared, tmp_path_factory.mktemp("changed") / "u")

    def dm() -> UCF101DataModule:
        return UCF101DataModule(root, split=1, sampling={"clip_len": 4, "frame_interval": 2, "test_clips": 2},
                                transforms={"crop_size": 32, "resize_short": 36, "test_crops": 1},
                                loading={"batch_size": 4, "num_workers": 0})

    first = dm()
    first.setup("test")
    victim, gone = 3, 5
    rel, gone_rel = (first.datasets["test"].records[i].rel for i in (victim, gone))
    # Re-encoded in place, longer, and another file deleted; their folders keep their time
    # stamps, so set-up cannot see either.
    folders = {p: os.stat(p).st_mtime_ns for p in {(root / rel).parent, (root / gone_rel).parent}}
    write_video(root / rel, 40, seed=99)
    (root / gone_rel).unlink()
    for folder, mtime in folders.items():
        os.utime(folder, ns=(mtime, mtime))
    second = dm()
    second.setup("test")
    test = second.datasets["test"]
    stale = int(first.datasets["test"].num_frames[victim])
    assert int(test.num_frames[victim]) == stale != 40  # trusted at set-up
    loader = second.test_dataloader()
    with caplog.at_level(logging.WARNING):
        batches = list(loader)
        second.teardown("test")
    # The changed file is probed again where it is read, and read as it is now.
    assert int(test.num_frames[victim]) == 40
    views = [i for b in batches for i, v in enumerate(b["video_index"].tolist()) if v == victim]
    assert len(views) == 2
    expected = torch.from_numpy(full_decode(root / rel)[test.sampler(40, 1)])
    assert torch.equal(test._timed_read(victim, root / rel, 1), expected)
    assert rel not in second.read_failures()
    assert "probed again (40 frames)" in second.changed_videos()[rel]
    assert any("changed since they were indexed" in r.getMessage() and rel in r.getMessage()
               for r in caplog.records)
    # The deleted one is a read failure: skipped (both views), counted and named.
    assert [s.rel for s in loader.report.skipped] == [gone_rel, gone_rel]
    assert "gone since it was indexed" in second.read_failures()[gone_rel]
    third = dm()
    third.setup("test")  # indexes the new file again: good, with its new frame count
    meta = third.index.get(rel)
    assert meta.ok and meta.num_frames == 40
    assert rel in [r.rel for r in third.datasets["test"].records]
    assert gone_rel not in [r.rel for r in third.datasets["test"].records]


def test_a_file_changed_in_place_into_garbage_is_a_read_failure(tmp_path_factory: pytest.TempPathFactory) -> None:
    shared = shared_tree(tmp_path_factory, "ucf_videos", lambda r: make_ucf_tree(r, groups=22))
    root = copy_tree(shared, tmp_path_factory.mktemp("garbage") / "u")
    UCF101DataModule(root, split=1, loading={"num_workers": 0}).setup("test")
    dm = UCF101DataModule(root, split=1, loading={"num_workers": 0})
    dm.setup("test")
    test = dm.datasets["test"]
    rel = test.records[0].rel
    (root / rel).write_bytes(b"RIFF" + bytes(range(256)) * 8)  # not a video any more
    item = test[0]
    assert isinstance(item, SkippedItem) and "changed since it was indexed, and now bad" in item.reason
    assert "now bad" in dm.read_failures()[rel] and rel not in dm.changed_videos()


def test_the_index_without_a_listing_stats_every_file(tmp_path: Path) -> None:
    # check-videos and prepare index without a listing: every file is compared with its entry.
    root = tmp_path / "root"
    write_video(root / "a.avi", 12)
    index = VideoIndex(root)
    assert index.ensure(["a.avi"])["a.avi"].num_frames == 12
    shutil.copy(root / "a.avi", tmp_path / "keep.avi")
    write_video(root / "a.avi", 20, seed=3)
    assert VideoIndex(root).ensure(["a.avi"])["a.avi"].num_frames == 20


def test_records_of_a_dataset_are_packed(tmp_path_factory: pytest.TempPathFactory) -> None:
    shared = shared_tree(tmp_path_factory, "ucf_videos", lambda r: make_ucf_tree(r, groups=22))
    dm = UCF101DataModule(shared, split=1)
    dm.setup("test")
    dataset = dm.datasets["test"]
    subset = dm.subset("test").records
    assert dataset.records[:] == subset and dataset.records[-1] == subset[-1]
    assert dataset.labels == [r.label for r in subset]
    assert isinstance(dataset.num_frames, np.ndarray) and dataset.num_frames.dtype == np.int64
    with pytest.raises(IndexError):
        dataset.records[len(subset)]
