"""Damaged streams the fuzz campaign (benchmarks/fuzz.py) found the readers taking as sound:
errors the decoder concealed, and packets that repeat another's timestamp. The PyAV reader
refuses both, and a damaged stream is not handed to decord by a fallback. decord refuses a
read in which its FFmpeg reported errors (datamodules/decoder_errors.py), and the read falls
back to PyAV, which refuses the damage or reads the frames exactly."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from data_fixtures import write_video

from benchmarks.fuzz_mutations import mutate
from softpool_video.datamodules import DamagedStream, DecodeError, decoder_errors, open_video, probe_video, read_frames


def _packets(path: Path) -> list[tuple[int, int, int | None]]:
    with av.open(str(path)) as container:
        return [(p.pos, p.size, p.pts) for p in container.demux(video=0) if p.size]


def _corrupt_frames(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        return [i for i, frame in enumerate(container.decode(stream)) if frame.is_corrupt]


@pytest.fixture(scope="module")
def concealed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An H.264 MP4 with a third of one P-frame's data zeroed: FFmpeg conceals the errors."""
    path = write_video(tmp_path_factory.mktemp("damaged") / "concealed.mp4", 48, codec="libx264", gop=12)
    pos, size, _ = _packets(path)[20]
    data = bytearray(path.read_bytes())
    data[pos + size // 3: pos + 2 * size // 3] = bytes(size // 3)
    path.write_bytes(bytes(data))
    assert _corrupt_frames(path), "the zeroed range no longer makes FFmpeg conceal errors"
    return path


def test_pyav_refuses_frames_the_decoder_concealed_errors_in(concealed: Path) -> None:
    with open_video(concealed, "pyav", fallback=False) as reader:
        with pytest.raises(DamagedStream, match="concealed errors in frame"):
            reader.get(np.arange(reader.num_frames))
        assert reader.get([0, 5])[0].shape == (48, 64, 3)  # frames before the damage still read


def test_a_damaged_stream_is_not_handed_to_decord(concealed: Path) -> None:
    with pytest.raises(DamagedStream):
        read_frames(concealed, np.arange(30), "pyav")  # decord would return concealed frames
    for decoder in ("pyav", "decord"):  # a full probe decodes a decord file with PyAV too
        meta = probe_video(concealed, decoder, depth="full")
        assert not meta.ok and meta.error.startswith("pyav: damaged"), meta


def test_decord_refuses_a_read_its_decoder_reported_errors_in(concealed: Path) -> None:
    refused = r"damaged: the decoder reported \d+ error\(s\) while decoding"
    with open_video(concealed, "decord", fallback=False) as reader, pytest.raises(DecodeError, match=refused):
        reader.get(np.arange(reader.num_frames))


def test_a_decord_read_with_errors_falls_back_to_pyav(concealed: Path) -> None:
    with pytest.raises(DamagedStream):  # decord refuses, PyAV tells damage from a seek's lead-in
        read_frames(concealed, np.arange(30), "decord")
    # Frames before the damage: decord's, or (when its decoding thread had run on into the
    # damage before the read returned: decoder_errors.py) PyAV's; the same either way.
    first, _ = read_frames(concealed, [0, 5], "decord")
    with open_video(concealed, "pyav", fallback=False) as reader:
        assert torch.equal(first, reader.get([0, 5]))
    frames, decoder = read_frames(concealed, np.arange(40, 48), "decord")  # from the next key frame on
    assert decoder == "decord" and frames.shape[0] == 8


def test_a_clean_file_reports_no_decoder_errors(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clean.mp4", 48, codec="libx264", gop=12)
    assert decoder_errors.install()  # decord2 ships its own libavutil, found in this process
    before = decoder_errors.count()
    with open_video(path, "decord", fallback=False) as reader:
        reader.get(np.arange(48))
        for i in (47, 3, 30, 11, 12):  # seeks back and forth
            reader.get([i])
    assert decoder_errors.count() == before


def test_pyav_refuses_packets_that_repeat_a_timestamp(tmp_path: Path) -> None:
    source = write_video(tmp_path / "source.mp4", 40, codec="libx264", gop=8)
    with av.open(str(source)) as inp, av.open(str(tmp_path / "seed.mkv"), "w", format="matroska") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(video=0):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
    data = (tmp_path / "seed.mkv").read_bytes()
    for seed in range(200):  # a repeated range that repeats whole blocks, found by demuxing
        path = tmp_path / "repeated.mkv"
        path.write_bytes(mutate(data, "duplicate-range", seed))
        try:
            stamps = [pts for _, _, pts in _packets(path) if pts is not None]
        except av.error.FFmpegError:
            continue
        if len(set(stamps)) < len(stamps):
            break
    else:
        pytest.fail("no repeated range of the first 200 seeds repeats a timestamp")
    with pytest.raises(DecodeError, match="repeat another's timestamp"):
        open_video(path, "pyav", fallback=False)
