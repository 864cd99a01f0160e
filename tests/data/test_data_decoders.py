"""Decoders: decord and PyAV return the same frames for the same indices; fallback; errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import H, W, marker_frames, shared_tree, write_video

from softpool_video.datamodules import (
    DecodeError,
    DecordReader,
    PyAVReader,
    VideoReader,
    decoders,
    open_video,
    read_frames,
)

N = 40


def _build(root: Path) -> None:
    write_video(root / "xvid.avi", N, codec="mpeg4", gop=12)
    write_video(root / "h264_bframes.mp4", N, codec="libx264", bframes=2, gop=10)
    write_video(root / "h264.mkv", N, codec="libx264", fmt="matroska", gop=16)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_tree(tmp_path_factory, "decoder_videos", _build)


INDEX_SETS = [[0, 1, 2, 3], [5, 7, 9, 11], [N - 1], [30, 32, 34, 0, 2], [13, 13, 14, 14],
              list(range(0, N, 3)), [N - 2, 1]]


@pytest.mark.parametrize("name", ["xvid.avi", "h264_bframes.mp4", "h264.mkv"])
def test_decoders_agree(videos: Path, name: str) -> None:
    path = videos / name
    with DecordReader(path) as d, PyAVReader(path) as p:
        assert isinstance(d, VideoReader) and isinstance(p, VideoReader)
        assert d.num_frames == p.num_frames == N
        assert d.fps == pytest.approx(25.0) and p.fps == pytest.approx(25.0)
        for idx in INDEX_SETS:
            a, b = d.get(idx), p.get(idx)
            assert a.dtype == b.dtype == torch.uint8
            assert a.shape == b.shape == (len(idx), H, W, 3)
            # Both run FFmpeg's decoder and the same YUV->RGB conversion: identical pixels.
            assert torch.equal(a, b), f"{name} {idx}: max diff {(a.int() - b.int()).abs().max()}"
        # And they are the requested frames: compare to the encoded source (lossy, but
        # each frame is much closer to its own source than to its neighbours).
        src = torch.from_numpy(marker_frames(N)).float()
        got = p.get(list(range(N))).float()
        err = (got[:, None] - src[None]).abs().mean(dim=(2, 3, 4))  # decoded x source
        assert torch.equal(err.argmin(dim=1), torch.arange(N))


def test_open_video_falls_back_to_pyav(videos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(DecordReader):
        def __init__(self, path, num_threads=1, layout=None):
            raise DecodeError(path, "decord", "simulated failure")

    monkeypatch.setitem(decoders._READERS, "decord", Broken)
    reader = open_video(videos / "xvid.avi", "decord")
    assert reader.decoder == "pyav"
    reader.close()
    frames, used = read_frames(videos / "xvid.avi", [3, 4], "decord")
    assert used == "pyav" and frames.shape == (2, H, W, 3)
    with pytest.raises(DecodeError, match="simulated failure"):
        open_video(videos / "xvid.avi", "decord", fallback=False)


def test_decode_time_failure_falls_back(videos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # decord opens the file but fails on the frames: read_frames still gets them from PyAV.
    def broken_get(self, idx):
        raise RuntimeError("simulated decode failure")

    monkeypatch.setattr(DecordReader, "_get", broken_get)
    frames, used = read_frames(videos / "h264_bframes.mp4", [0, 20, 39], "decord")
    assert used == "pyav"
    with PyAVReader(videos / "h264_bframes.mp4") as p:
        assert torch.equal(frames, p.get([0, 20, 39]))


def test_errors(videos: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    for decoder in ("decord", "pyav"):
        with pytest.raises(DecodeError, match="cannot open"):
            open_video(garbage, decoder, fallback=False)
    with pytest.raises(DecodeError) as info:
        open_video(tmp_path / "absent.mp4")
    assert "decord" in str(info.value) and "pyav" in str(info.value)
    with DecordReader(videos / "xvid.avi") as d:
        with pytest.raises(IndexError, match=r"\[0, 39\]"):
            d.get([0, N])
        with pytest.raises(ValueError, match="at least one frame"):
            d.get([])
    with pytest.raises(ValueError, match="decoder='opencv'"):
        open_video(videos / "xvid.avi", "opencv")
