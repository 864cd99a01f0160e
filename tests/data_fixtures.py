"""Fixture builders for the data tests: tiny real videos and dataset trees in the official
UCF-101, HMDB-51 and Kinetics formats.

Imported by the data tests (tests/data/) and the export parity tests. Builders that
several modules use are memoised per session in `shared_tree`, so the videos are written
once per pytest run.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

W, H = 64, 48

# name -> path, so trees built by one test module are reused by the next.
_SHARED: dict[str, Path] = {}


def shared_tree(tmp_path_factory: pytest.TempPathFactory, name: str,
                build: Callable[[Path], None]) -> Path:
    if name not in _SHARED or not _SHARED[name].exists():
        root = tmp_path_factory.mktemp(name)
        build(root)
        _SHARED[name] = root
    return _SHARED[name]


def copy_tree(src: Path, dst: Path) -> Path:
    """A private copy for tests that damage files (drops any index cache)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".softpool_video"))
    return dst


def full_decode(path: str | Path) -> np.ndarray:
    """Every frame of a full sequential decode, in the order the decoder puts them out (the
    video as a player shows it): the ground truth every reader is tested against. Not sorted
    by timestamp: AVI stores none, and the ones FFmpeg guesses for packed B-frames are wrong."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def marker_frames(num_frames: int, width: int = W, height: int = H, seed: int = 0) -> np.ndarray:
    """Frames whose content identifies their index: a bar at x = index and a brightness
    ramp; plus texture so the codec has something to do."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 90, (height, width, 3)).astype(np.uint8)
    frames = np.repeat(base[None], num_frames, 0)
    for i in range(num_frames):
        x = (2 * i) % (width - 6)
        frames[i, :, x:x + 6] = 255
        frames[i, : height // 4, : width // 4] = (i * 9) % 200 + 30
    return frames


def write_video(path: str | Path, num_frames: int = 24, *, codec: str = "mpeg4", fmt: str | None = None,
                width: int = W, height: int = H, fps: int = 25, bframes: int = 0,
                gop: int = 8, seed: int = 0, faststart: bool = False) -> Path:
    """Encode marker frames with PyAV. codec 'mpeg4' -> AVI (as UCF-101), 'libx264' -> mp4."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt or ("avi" if path.suffix == ".avi" else "mp4")
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format=fmt, options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = bframes
        stream.codec_context.thread_count = 1
        if codec == "mpeg4":
            stream.codec_tag = "XVID"
        stream.bit_rate = 400_000
        for frame in marker_frames(num_frames, width, height, seed):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# ---- UCF-101 --------------------------------------------------------------------------
UCF_CLASSES = ("ApplyEyeMakeup", "HandstandPushups", "YoYo")


def ucf_file(cls: str, group: int, clip: int) -> str:
    # The official archive names HandstandPushups' files "v_HandStandPushups_...".
    stem = "HandStandPushups" if cls == "HandstandPushups" else cls
    return f"v_{stem}_g{group:02d}_c{clip:02d}.avi"


def make_ucf_tree(root: Path, *, groups: int = 25, clips: int = 1, videos: bool = True,
                  num_frames: int = 24, folder_case: dict[str, str] | None = None,
                  classes: tuple[str, ...] = UCF_CLASSES) -> Path:
    """UCF-101 layout; test groups 1-7 / 8-14 / 15-21 for splits 1 / 2 / 3, CRLF lists.

    videos=False writes empty placeholders (enough for parsing tests).
    folder_case renames a class folder on disk (some mirrors use HandStandPushups/).
    """
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_bytes("".join(f"{i} {c}\r\n" for i, c in enumerate(classes, 1)).encode())
    seed = 0
    for cls in classes:
        folder = (folder_case or {}).get(cls, cls)
        for g in range(1, groups + 1):
            for k in range(1, clips + 1):
                path = root / "UCF-101" / folder / ucf_file(cls, g, k)
                if videos:
                    write_video(path, num_frames + (seed % 5), seed=seed)
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
                seed += 1
    tests = {1: range(1, 8), 2: range(8, 15), 3: range(15, 22)}
    for split, test_groups in tests.items():
        train, test = [], []
        for label, cls in enumerate(classes, 1):
            for g in range(1, groups + 1):
                for k in range(1, clips + 1):
                    rel = f"{cls}/{ucf_file(cls, g, k)}"
                    (test.append(rel) if g in test_groups else train.append(f"{rel} {label}"))
        (lists / f"trainlist0{split}.txt").write_bytes("".join(x + "\r\n" for x in train).encode())
        (lists / f"testlist0{split}.txt").write_bytes("".join(x + "\r\n" for x in test).encode())
    return root


# ---- HMDB-51 --------------------------------------------------------------------------
HMDB_CLASSES = ("sword_exercise", "brush_hair", "cartwheel")  # deliberately unsorted


def hmdb_name(cls: str, i: int) -> str:
    return f"Movie_{i // 2}_{cls}_u_nm_np1_fr_med_{i % 2}.avi"


def make_hmdb_tree(root: Path, *, per_class: int = 9, videos: bool = True,
                   num_frames: int = 24) -> Path:
    """HMDB-51 layout. In split s, video i of a class is train/test/unused by (i + s) % 3."""
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for ci, cls in enumerate(HMDB_CLASSES):
        for i in range(per_class):
            path = root / "hmdb51_org" / cls / hmdb_name(cls, i)
            if videos:
                write_video(path, num_frames, seed=100 + ci * per_class + i)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
        for s in (1, 2, 3):
            tags = {0: "1", 1: "2", 2: "0"}
            lines = [f"{hmdb_name(cls, i)} {tags[(i + s) % 3]} \n" for i in range(per_class)]
            (splits / f"{cls}_test_split{s}.txt").write_text("".join(lines))
    return root


# ---- Kinetics ---------------------------------------------------------------------------
KINETICS_CLASSES = ("abseiling", "playing guitar", "zumba")


def kinetics_rows(subset: str, per_class: int) -> list[tuple[str, str, int, int]]:
    rows = []
    for ci, cls in enumerate(KINETICS_CLASSES):
        for i in range(per_class):
            # YouTube ids are 11 characters and may contain '-' and '_'.
            yid = f"{subset[:2]}{ci}_{i:02d}-abcde"[:11].ljust(11, "x")
            rows.append((cls, yid, 10 * i, 10 * i + 10))
    return rows


def make_kinetics_tree(root: Path, *, per_class: int = 4, videos: bool = True,
                       num_frames: int = 24, drop: int = 1) -> Path:
    """Official CSVs + `train/<label>/<id>_<s>_<e>.mp4`, `val/<id>_<s>_<e>.mp4` (flat, as some
    copies are). The first `drop` train rows have no file (missing downloads). test.csv has no
    label column."""
    ann = root / "annotations"
    ann.mkdir(parents=True)
    seed = 500
    for subset, folder, split_name in (("train", "train", "train"), ("val", "val", "validate")):
        rows = kinetics_rows(subset, per_class)
        lines = ["label,youtube_id,time_start,time_end,split,is_cc"]
        for n, (cls, yid, s, e) in enumerate(rows):
            label = f'"{cls}"' if " " in cls else cls
            lines.append(f"{label},{yid},{s},{e},{split_name},0")
            if subset == "train" and n < drop:
                continue
            name = f"{yid}_{s:06d}_{e:06d}.mp4"
            path = root / folder / (cls if subset == "train" else "") / name
            if videos:
                write_video(path, num_frames, codec="libx264", seed=seed)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            seed += 1
        (ann / f"{'validate' if subset == 'val' else subset}.csv").write_text("\n".join(lines) + "\n")
    test_rows = kinetics_rows("test", 1)
    (ann / "test.csv").write_text("youtube_id,time_start,time_end,split\n" + "".join(
        f"{yid},{s},{e},test\n" for _, yid, s, e in test_rows))
    for _, yid, s, e in test_rows:
        path = root / "test" / f"{yid}_{s:06d}_{e:06d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        if videos:
            write_video(path, num_frames, codec="libx264", seed=seed)
        else:
            path.touch()
        seed += 1
    return root


# ---- faults -----------------------------------------------------------------------------
def write_audio_only(path: str | Path, seconds: float = 0.5, rate: int = 16000) -> Path:
    """A valid file holding one AAC audio stream and no video stream (a sine tone)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = rate
        for packet in list(stream.encode(frame)) + list(stream.encode()):
            container.mux(packet)
    return path


def replace_with_fifo(path: str | Path) -> Path:
    """Swap a file for a named pipe with no writer: opening it for reading blocks, as a
    read from a hung network mount does. `release_fifo` lets blocked readers go."""
    path = Path(path)
    path.unlink()
    os.mkfifo(path)
    return path


def release_fifo(path: str | Path, wait_s: float = 2.0) -> None:
    """Open and close the write end until no reader is waiting, so every reader blocked in
    open() gets EOF (a decoder that then falls back to the other decoder opens it again)."""
    import time

    deadline = time.monotonic() + wait_s
    idle = 0
    while time.monotonic() < deadline and idle < 5:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader is waiting (yet)
            idle += 1
            time.sleep(0.05)
            continue
        idle = 0
        os.close(fd)
