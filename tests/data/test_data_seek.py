"""The seek path decodes less but returns the same frames: PyAV skips non-reference frames it
does not return, and must still give bit-identical frames to a full sequential decode.

Sources: long-GOP H.264 with B-frames (one key frame, as libx264's defaults give Kinetics
copies), MPEG-4 part 2 in AVI (as UCF-101 ships, with and without B-frames) and a
variable-frame-rate H.264 MP4.
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from data_fixtures import H, W, marker_frames, shared_tree, write_video
from data_fixtures import full_decode as decode_all

from softpool_video.datamodules import DecordReader, PyAVReader

N = 90


def write_vfr(path: Path, num_frames: int = N) -> Path:
    """H.264 with B-frames whose frames last 1, 2 or 3 ticks of 1/25 s."""
    gaps = np.random.default_rng(1).choice([1, 2, 3], num_frames)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.max_b_frames = 3
        stream.codec_context.thread_count = 1
        pts = 0
        for image, gap in zip(marker_frames(num_frames), gaps):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = pts
            pts += int(gap)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _build(root: Path) -> None:
    # gop=250 with 90 frames: one key frame, so every seek decodes from frame 0.
    write_video(root / "long_gop.mp4", N, codec="libx264", gop=250, bframes=3)
    write_video(root / "xvid.avi", N, codec="mpeg4", gop=12)
    write_video(root / "xvid_bframes.avi", N, codec="mpeg4", gop=12, bframes=2)
    write_vfr(root / "vfr.mp4")


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_tree(tmp_path_factory, "seek_videos", _build)


def full_decode(path: Path) -> torch.Tensor:
    return torch.from_numpy(decode_all(path))


def random_index_sets(num_frames: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    sets = [rng.integers(0, num_frames, size) for size in (1, 3, 8)]
    start = int(rng.integers(0, num_frames - 16))
    sets.append(np.arange(start, start + 16, 2))  # a training clip: every 2nd frame
    sets.append(np.array([num_frames - 1, 0, num_frames // 2]))  # backwards jumps
    return sets


NAMES = ["long_gop.mp4", "xvid.avi", "xvid_bframes.avi", "vfr.mp4"]


@pytest.mark.parametrize("name", NAMES)
def test_seek_path_matches_full_decode(videos: Path, name: str) -> None:
    path = videos / name
    reference = full_decode(path)
    assert reference.shape == (N, H, W, 3)
    with PyAVReader(path) as reader:
        assert reader.skip_nonref and reader.num_frames == N
        for idx in random_index_sets(N, seed=len(name)):
            got = reader.get(idx)
            assert torch.equal(got, reference[idx]), f"{name} {idx.tolist()}"


@pytest.mark.parametrize("name", ["long_gop.mp4", "vfr.mp4"])
def test_skipping_decodes_fewer_frames(videos: Path, name: str) -> None:
    # Late frames of a one-key-frame file: everything before is decoded to reach them,
    # so skipping non-reference frames must show up in the count (else it is not on).
    idx = np.arange(N - 20, N, 2)
    counts = {}
    for skip in (False, True):
        with PyAVReader(videos / name, skip_nonref=skip) as reader:
            frames = reader.get(idx)
            counts[skip] = reader.frames_decoded
        assert torch.equal(frames, full_decode(videos / name)[idx])
    assert counts[True] < counts[False], counts


@pytest.mark.parametrize("name", ["long_gop.mp4", "xvid.avi"])
def test_decord_agrees_with_full_decode(videos: Path, name: str) -> None:
    reference = full_decode(videos / name)
    with DecordReader(videos / name) as reader:
        for idx in random_index_sets(N, seed=7):
            assert torch.equal(reader.get(idx), reference[idx])


def test_decoder_state_is_restored(videos: Path) -> None:
    # The skip setting applies to one read only; the codec is left decoding everything.
    with PyAVReader(videos / "long_gop.mp4") as reader:
        reader.get([40, 42])
        assert reader._stream.codec_context.skip_frame == "DEFAULT"


@pytest.mark.parametrize("name", ["long_gop.mp4", "vfr.mp4"])
def test_clips_in_order_decode_the_video_once(videos: Path, name: str) -> None:
    # The test views: clips of one video read in order from one open reader continue
    # decoding instead of seeking back to the (single) key frame each time.
    path = videos / name
    reference = full_decode(path)
    clips = [np.arange(s, s + 16, 2) for s in np.linspace(0, N - 16, 6).astype(int)]
    with PyAVReader(path, skip_nonref=False) as reader:
        for idx in clips:
            assert torch.equal(reader.get(idx), reference[idx])
        in_order = reader.frames_decoded
    separately = 0
    for idx in clips:
        with PyAVReader(path, skip_nonref=False) as reader:
            reader.get(idx)
            separately += reader.frames_decoded
    assert in_order <= N < separately
    # One frame at a time: each read continues, none falls back to decoding from frame 0
    # (which a frame wrongly taken for still-to-come would cause).
    with PyAVReader(path, skip_nonref=False) as reader:
        for i in range(N // 3, N):
            assert torch.equal(reader.get([i]), reference[[i]])
        assert reader.frames_decoded <= N


def test_reads_backwards_seek(videos: Path) -> None:
    # Backwards, or to frames already out of the decoder or skipped: the reader must seek
    # to the key frame before the clip (one every 12 frames here), not decode on in vain
    # and then again from frame 0. Frames stay exact either way.
    clips = [np.arange(s, s + 16, 2) for s in np.linspace(0, N - 16, 6).astype(int)]
    reads = [clips[3], clips[1], clips[1] + 1, clips[2], clips[2][-1] + np.array([1, 3]), clips[2] - 1]
    for name in ("xvid.avi", "long_gop.mp4"):
        reference = full_decode(videos / name)
        for skip in (False, True):
            with PyAVReader(videos / name, skip_nonref=skip) as reader:
                for idx in reads:
                    before = reader.frames_decoded
                    assert torch.equal(reader.get(idx), reference[idx])
                    if name == "xvid.avi":
                        assert reader.frames_decoded - before <= int(np.ptp(idx)) + 12 + 8


@pytest.mark.parametrize("decoder", ["pyav", "decord"])
def test_test_views_share_one_reader(videos: Path, decoder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # 5 clips x 3 crops of each of two videos: one open per video (not per view), one decode
    # per clip (not per crop), and the same samples as reading every view afresh.
    from softpool_video.datamodules import ClipSampler, EvalTransform, decoders
    from softpool_video.datamodules.dataset import VideoClipDataset
    from softpool_video.datamodules.index_cache import VideoMeta
    from softpool_video.datamodules.records import VideoRecord

    names = ["long_gop.mp4", "xvid.avi"]
    metas = [VideoMeta(N, 25.0, W, H, decoder, "", 0, 0, decoder, "fast") for _ in names]
    dataset = VideoClipDataset(videos, [VideoRecord(n, i) for i, n in enumerate(names)], metas,
                               ClipSampler("uniform", 8, 2, num_clips=5),
                               EvalTransform(32, 40, num_crops=3), num_crops=3, decoder=decoder)
    opened, reads = [], []
    reader_cls = decoders._READERS[decoder]

    class Counting(reader_cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            opened.append(self.path)

        def _get(self, idx):
            reads.append(idx.tolist())
            return super()._get(idx)

    monkeypatch.setitem(decoders._READERS, decoder, Counting)
    items = [dataset[i] for i in range(len(dataset))]
    assert [Path(p).name for p in opened] == names
    assert len(reads) == 2 * 5
    for i, item in enumerate(items):
        video, clip, crop = dataset.view(i)
        fresh = decoders.read_frames(videos / names[video], dataset.sampler(N, clip), decoder)[0]
        assert torch.equal(item["video"], dataset.transform(fresh, crop))
    # A pickled copy (a spawned worker) opens its own reader.
    import pickle
    assert pickle.loads(pickle.dumps(dataset))._open is None
