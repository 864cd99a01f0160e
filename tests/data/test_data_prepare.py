"""`softpool-video prepare`: a drop-in, re-encoded copy of a dataset root. Same splits and
labels, same frames, smaller videos; bad inputs left out and reported; resumable."""
from __future__ import annotations

import filecmp
import json
import os
import shutil
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from data_fixtures import (
    copy_tree,
    make_hmdb_tree,
    make_kinetics_tree,
    make_ucf_tree,
    marker_frames,
    shared_tree,
    ucf_file,
    write_video,
)

from softpool_video import cli
from softpool_video.datamodules import (
    DecordReader,
    HMDB51Annotations,
    KineticsAnnotations,
    PyAVReader,
    UCF101Annotations,
    find_videos,
)
from softpool_video.datamodules import prepare as prepare_module
from softpool_video.datamodules.prepare import (
    FAILURES_FILE,
    INFO_FILE,
    TMP_SUFFIX,
    output_size,
    prepare_dataset,
)

SHORT = 32  # the fixtures are 64x48: 32 makes every copy smaller, 42x32
GARBAGE = f"UCF-101/YoYo/{ucf_file('YoYo', 1, 1)}"  # a split-1 test video
TRUNCATED = f"UCF-101/ApplyEyeMakeup/{ucf_file('ApplyEyeMakeup', 9, 1)}"  # a split-1 train video


def _ucf_with_bad_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shared = shared_tree(tmp_path_factory, "ucf_videos", lambda r: make_ucf_tree(r, groups=22))
    root = copy_tree(shared, tmp_path_factory.mktemp("prepare_src") / "ucf")
    (root / GARBAGE).write_bytes(np.random.default_rng(0).integers(0, 256, 20000, np.uint8).tobytes())
    data = (root / TRUNCATED).read_bytes()
    (root / TRUNCATED).write_bytes(data[: len(data) // 3])
    return root


@pytest.fixture(scope="module")
def ucf(tmp_path_factory: pytest.TempPathFactory):
    src = _ucf_with_bad_files(tmp_path_factory)
    dst = tmp_path_factory.mktemp("prepare_dst") / "ucf"
    summary = prepare_dataset(src, dst, short_side=SHORT, workers=2, progress=False)
    return src, dst, summary


def _records(ann: object, subset: str) -> tuple[list, list]:
    s = ann.subset(subset)  # type: ignore[attr-defined]
    return s.records, s.missing


# ---- UCF-101 --------------------------------------------------------------------------------
def test_ucf_copy_has_the_same_splits_and_labels(ucf) -> None:
    src, dst, summary = ucf
    failed = set(summary.failed)
    assert failed == {GARBAGE, TRUNCATED}
    assert summary.videos == 66 and summary.prepared == 64 and summary.skipped == 0
    for split in (1, 2, 3):
        a, b = UCF101Annotations(src, split=split), UCF101Annotations(dst, split=split)
        assert a.class_names == b.class_names
        for subset in ("train", "test"):
            src_records, src_missing = _records(a, subset)
            dst_records, dst_missing = _records(b, subset)
            # Identical records, minus the bad videos, which the parser reports as missing.
            assert dst_records == [r for r in src_records if r.rel not in failed]
            left_out = sorted(r.rel.removeprefix("UCF-101/") for r in src_records if r.rel in failed)
            assert sorted(dst_missing) == sorted(src_missing + left_out)
    lists = src / "ucfTrainTestlist"
    names = sorted(p.name for p in lists.iterdir())
    assert names == sorted(p.name for p in (dst / "ucfTrainTestlist").iterdir())
    match, mismatch, errors = filecmp.cmpfiles(lists, dst / "ucfTrainTestlist", names, shallow=False)
    assert match == names and not mismatch and not errors  # byte for byte, CRLF kept


def test_bad_inputs_are_reported_by_name_and_left_out(ucf) -> None:
    src, dst, summary = ucf
    assert "cannot open" in summary.failed[GARBAGE]
    assert "truncated" in summary.failed[TRUNCATED]
    assert json.loads((dst / FAILURES_FILE).read_text()) == summary.failed
    assert not (dst / GARBAGE).exists() and not (dst / TRUNCATED).exists()
    # Every other video is there, nothing else with a video name, no temporary files.
    assert set(find_videos(dst)) == set(find_videos(src)) - {GARBAGE, TRUNCATED}
    assert not [p for p in dst.rglob("*") if p.name.endswith(TMP_SUFFIX)]
    assert summary.dst_bytes < summary.src_bytes
    on_disk = sum((dst / rel).stat().st_size for rel in find_videos(dst))
    assert summary.dst_bytes == on_disk


def _downscaled(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(frames.permute(0, 3, 1, 2).float(), size=size, mode="area")


@pytest.mark.parametrize("reader", [DecordReader, PyAVReader])
def test_copies_keep_frames_rate_and_aspect(ucf, reader: type) -> None:
    src, dst, _ = ucf
    for rel in find_videos(dst)[::9]:
        with reader(src / rel) as a, reader(dst / rel) as b:
            assert b.num_frames == a.num_frames and b.fps == pytest.approx(a.fps, rel=1e-6)
            fa, fb = a.get(range(a.num_frames)), b.get(range(b.num_frames))
        assert fb.shape[1:] == (SHORT, 42, 3)  # 64x48 -> short side 32, aspect 4:3, even
        # Frame i of the copy is frame i of the original: the marker bar moves every frame,
        # so a copy off by one frame would match its neighbour better.
        small, copy = _downscaled(fa, (SHORT, 42)), fb.permute(0, 3, 1, 2).float()
        same = (small - copy).abs().mean(dim=(1, 2, 3))
        shifted = (small[1:] - copy[:-1]).abs().mean(dim=(1, 2, 3))
        assert same.max() < 12 and (same[1:] < shifted).all(), (rel, same, shifted)


def test_key_frames_at_most_gop_apart(ucf) -> None:
    _, dst, _ = ucf
    rel = find_videos(dst)[0]
    with av.open(str(dst / rel)) as container:
        keys = [i for i, p in enumerate(container.demux(video=0)) if p.size and p.is_keyframe]
        codec = container.streams.video[0].codec_context.name
    assert codec == "mpeg4" and keys[0] == 0  # AVI files get MPEG-4 part 2
    assert max(np.diff(keys + [24])) <= 16


def test_the_datamodule_trains_on_the_copy_and_skips_left_out_videos(ucf) -> None:
    from softpool_video.datamodules import UCF101DataModule

    _, dst, _ = ucf
    dm = UCF101DataModule(dst, split=1, sampling={"clip_len": 4, "frame_interval": 2},
                          transforms={"crop_size": 16, "resize_short": SHORT},
                          loading={"batch_size": 4, "num_workers": 0}, val_source="test")
    dm.prepare_data()
    dm.setup("fit")
    # The truncated train video is missing in the copy: listed as missing, not a crash.
    assert dm.missing_videos["train"] == [TRUNCATED.removeprefix("UCF-101/")]
    assert dm.missing_videos["val"] == [GARBAGE.removeprefix("UCF-101/")]
    assert dm.datasets["train"].num_videos == (22 - 7) * 3 - 1 and not dm.bad_videos
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (4, 3, 4, 16, 16) and torch.isfinite(batch["video"]).all()


def test_rerun_skips_finished_videos_and_finishes_the_rest(ucf, tmp_path: Path) -> None:
    src, done, first = ucf
    dst = tmp_path / "dst"
    shutil.copytree(done, dst)  # copy2 keeps the mtimes that mark finished videos
    unfinished = find_videos(dst)[:3]
    for rel in unfinished:
        (dst / rel).unlink()
    stale = dst / "UCF-101" / "YoYo" / f".{ucf_file('YoYo', 5, 1)}.x1y2{TMP_SUFFIX}"
    stale.write_bytes(b"half a video")
    touched = dst / find_videos(dst)[-1]
    os.utime(touched, ns=(0, 0))  # an old copy whose source changed since: redone
    summary = prepare_dataset(src, dst, short_side=SHORT, workers=1, progress=False)
    assert summary.prepared == 4 and summary.skipped == 64 - 4
    assert summary.failed == first.failed and summary.copied == 0
    assert not stale.exists()
    assert set(find_videos(dst)) == set(find_videos(done))
    assert summary.dst_bytes == pytest.approx(first.dst_bytes, rel=0.01)
    for rel in unfinished:
        assert PyAVReader(dst / rel).num_frames == PyAVReader(src / rel).num_frames


_KILL_SCRIPT = """
import os, signal, sys
from softpool_video.datamodules import prepare

real, calls = prepare.encode_video, []

def encode_then_die(src, out_path, fmt, settings, **kwargs):
    calls.append(src)
    if len(calls) == 3:  # the third video: write part of it, then the process is killed
        real(src, out_path, fmt, settings, **kwargs)
        with open(out_path, "r+b") as f:
            f.truncate(os.path.getsize(out_path) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, out_path, fmt, settings, **kwargs)

prepare.encode_video = encode_then_die
prepare.prepare_dataset(sys.argv[1], sys.argv[2], short_side=32, workers=1, progress=False)
"""


@pytest.mark.slow  # SIGKILL
def test_killed_run_leaves_no_partial_video_and_resumes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(5):
        write_video(src / "clips" / f"clip{i}.mp4", 20, codec="libx264", seed=i)
    dst = tmp_path / "dst"
    proc = subprocess.run([sys.executable, "-c", _KILL_SCRIPT, str(src), str(dst)], check=False,
                          timeout=120, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # Two finished videos, nothing under the third's name; its half-written temporary file
    # is hidden and has no video extension, so no dataset or check-videos sees it.
    assert find_videos(dst) == ["clips/clip0.mp4", "clips/clip1.mp4"]
    leftovers = [p.name for p in (dst / "clips").iterdir() if p.name.endswith(TMP_SUFFIX)]
    assert len(leftovers) == 1 and leftovers[0].startswith(".clip2.mp4.")
    for rel in find_videos(dst):
        assert PyAVReader(dst / rel).num_frames == 20
    summary = prepare_dataset(src, dst, short_side=SHORT, progress=False)
    assert (summary.skipped, summary.prepared, summary.failed) == (2, 3, {})
    assert find_videos(dst) == [f"clips/clip{i}.mp4" for i in range(5)]
    assert not [p for p in (dst / "clips").iterdir() if p.name.endswith(TMP_SUFFIX)]


def test_a_copy_that_fails_its_check_is_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    write_video(src / "a.avi", 12)
    monkeypatch.setattr(prepare_module, "_verify", lambda *args: "simulated frame-count mismatch")
    summary = prepare_dataset(src, tmp_path / "dst", short_side=SHORT, progress=False)
    assert summary.failed == {"a.avi": "simulated frame-count mismatch"} and summary.prepared == 0
    assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == sorted([FAILURES_FILE, INFO_FILE])


# ---- HMDB-51, Kinetics, odd inputs -------------------------------------------------------------
def test_hmdb51_layout(tmp_path_factory: pytest.TempPathFactory) -> None:
    src = shared_tree(tmp_path_factory, "hmdb_videos", lambda r: make_hmdb_tree(r, per_class=6))
    dst = tmp_path_factory.mktemp("prepare_hmdb") / "hmdb"
    summary = prepare_dataset(src, dst, short_side=SHORT, progress=False)
    assert summary.prepared == summary.videos == 18 and not summary.failed
    for split in (1, 2, 3):
        a, b = HMDB51Annotations(src, split=split), HMDB51Annotations(dst, split=split)
        assert a.class_names == b.class_names
        for subset in ("train", "test"):
            assert _records(a, subset) == _records(b, subset)
            assert _records(b, subset)[0]


def test_kinetics_layout(tmp_path_factory: pytest.TempPathFactory) -> None:
    src = shared_tree(tmp_path_factory, "kinetics_videos", lambda r: make_kinetics_tree(r, per_class=3))
    dst = tmp_path_factory.mktemp("prepare_kinetics") / "kinetics"
    summary = prepare_dataset(src, dst, short_side=SHORT, progress=False)
    assert not summary.failed and summary.prepared == summary.videos == len(find_videos(src))
    assert summary.copied == 3  # train.csv, validate.csv, test.csv
    a, b = KineticsAnnotations(src), KineticsAnnotations(dst)
    assert a.class_names == b.class_names
    for subset in ("train", "val", "test"):
        records, missing = _records(b, subset)
        assert (records, missing) == _records(a, subset) and records
    assert _records(b, "train")[1]  # the fixture's missing download stays missing
    with av.open(str(dst / b.subset("train").records[0].rel)) as container:
        assert container.streams.video[0].codec_context.name == "h264"


def _write_vfr(path: Path, gaps_ms: list[int]) -> None:
    """H.264 in MP4 with frame durations `gaps_ms` (a variable frame rate)."""
    frames = marker_frames(len(gaps_ms))
    path.parent.mkdir(parents=True)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        pts = 0
        for frame, gap in zip(frames, gaps_ms):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts, vf.time_base = pts, Fraction(1, 1000)
            pts += gap
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_variable_frame_rate_keeps_every_frame_at_the_average_rate(tmp_path: Path) -> None:
    gaps = [20, 60, 40, 20, 80, 40, 30, 50] * 4
    _write_vfr(tmp_path / "src" / "vfr.mp4", gaps)
    summary = prepare_dataset(tmp_path / "src", tmp_path / "dst", short_side=SHORT, progress=False)
    assert not summary.failed
    with PyAVReader(tmp_path / "src" / "vfr.mp4") as a, DecordReader(tmp_path / "dst" / "vfr.mp4") as b:
        assert a.num_frames == b.num_frames == len(gaps)
        assert b.fps == pytest.approx(a.fps, rel=1e-3)
    with av.open(str(tmp_path / "dst" / "vfr.mp4")) as container:
        stream = container.streams.video[0]
        pts = sorted(p.pts for p in container.demux(stream) if p.size)
    assert len(set(np.diff(pts))) == 1  # re-timestamped: constant frame duration


@pytest.mark.parametrize("size,short,expected", [((320, 240), 128, (170, 128)), ((240, 320), 128, (128, 170)),
                                                 ((64, 48), 128, (64, 48)), ((1920, 1080), 128, (228, 128)),
                                                 ((63, 47), 128, (64, 48))])
def test_output_size_keeps_aspect_and_is_even(size: tuple, short: int, expected: tuple) -> None:
    assert output_size(*size, short) == expected


def test_bad_arguments_name_the_argument(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_video(src / "a.avi", 8)
    for kwargs, match in [({"short_side": 0}, "short_side must be an integer >= 8"),
                          ({"gop": 0}, "gop must be an integer >= 1"),
                          ({"workers": 0}, "workers must be an integer >= 1"),
                          ({"crf": 60}, r"crf must be an integer in 0\.\.51"),
                          ({"preset": "quick"}, "preset='quick' is not an x264 preset; choose one of")]:
        with pytest.raises(ValueError, match=match):
            prepare_dataset(src, tmp_path / "dst", **kwargs)
    with pytest.raises(FileNotFoundError, match="src="):
        prepare_dataset(tmp_path / "nope", tmp_path / "dst")
    with pytest.raises(ValueError, match="separate folders"):
        prepare_dataset(src, src / "inside")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a prepared copy"):
        prepare_dataset(src, tmp_path / "other")
    prepare_dataset(src, tmp_path / "dst", short_side=SHORT, progress=False)
    with pytest.raises(FileExistsError, match="other settings"):
        prepare_dataset(src, tmp_path / "dst", short_side=64, progress=False)
    assert prepare_dataset(src, tmp_path / "dst", short_side=64, overwrite=True,
                           progress=False).prepared == 1


def test_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert "prepare" in cli.COMMANDS
    src = tmp_path / "src"
    write_video(src / "good.avi", 10)
    (src / "bad.avi").write_bytes(b"")
    (src / "labels.txt").write_text("good.avi 0\n")
    rc = cli.main(["prepare", str(src), str(tmp_path / "dst"), "--short-side", "32", "--workers", "1"])
    out = capsys.readouterr().out
    assert rc == 1  # something was left out
    assert "prepared 1 of 2 videos" in out and "LEFT OUT  bad.avi  empty file" in out
    assert "1 other files copied" in out and (tmp_path / "dst" / "labels.txt").read_text() == "good.avi 0\n"
    rc = cli.main(["prepare", str(src), str(tmp_path / "dst"), "--short-side", "32", "--workers", "1"])
    assert rc == 1 and "0 encoded now, 1 already done" in capsys.readouterr().out
    assert cli.main(["prepare", str(src), str(tmp_path / "d2"), "--gop", "0"]) == 2
    assert "gop must be an integer >= 1" in capsys.readouterr().err
