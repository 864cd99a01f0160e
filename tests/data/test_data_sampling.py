"""Clip sampling by frame index: train random, val centre, test uniform; short videos."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from softpool_video.datamodules import ClipSampler, clip_at, clip_span, uniform_starts
from softpool_video.datamodules.clip_sampling import centre_start, random_start


def test_clip_span() -> None:
    assert clip_span(16, 2) == 31
    assert clip_span(1, 5) == 1
    assert clip_span(8, 8) == 57


def test_centre_clip() -> None:
    idx = ClipSampler("centre", clip_len=4, frame_interval=3)(100)
    # span 10, start (100 - 10) // 2 = 45
    assert idx.tolist() == [45, 48, 51, 54]
    assert idx.dtype == np.int64


def test_uniform_clips_spread_over_video() -> None:
    sampler = ClipSampler("uniform", clip_len=16, frame_interval=2, num_clips=10)
    starts = [int(sampler(131, k)[0]) for k in range(10)]
    # delta = 131 - 31 = 100; starts at the centres of 10 equal segments of [0, 100].
    assert starts == [5, 15, 25, 35, 45, 55, 65, 75, 85, 95]
    for k in range(10):
        assert sampler(131, k).max() <= 130
    one = ClipSampler("uniform", clip_len=16, frame_interval=2, num_clips=1)
    centre = ClipSampler("centre", clip_len=16, frame_interval=2)
    for frames in range(1, 200):  # odd and even free ranges, and videos shorter than the clip
        assert one(frames, 0).tolist() == centre(frames).tolist(), frames
    assert int(centre(132)[0]) == 51  # free range 101: its middle rounds up, for every recipe


def test_random_clip_within_video_and_reproducible() -> None:
    sampler = ClipSampler("random", clip_len=8, frame_interval=4)
    gen = torch.Generator().manual_seed(3)
    starts = {int(sampler(60, generator=gen)[0]) for _ in range(300)}
    # span 29 -> starts 0..31, and all of them get drawn.
    assert starts == set(range(32))
    a = sampler(60, generator=torch.Generator().manual_seed(7))
    b = sampler(60, generator=torch.Generator().manual_seed(7))
    assert a.tolist() == b.tolist()
    assert np.all(np.diff(a) == 4)


def test_short_video_loop() -> None:
    idx = ClipSampler("centre", clip_len=6, frame_interval=2, short_video="loop")(5)
    assert idx.tolist() == [0, 2, 4, 1, 3, 0]
    starts = uniform_starts(5, 6, 2, 5, "loop")
    assert starts.tolist() == [0, 1, 2, 3, 4]  # looping clips start all over the video
    gen = torch.Generator().manual_seed(0)
    drawn = {random_start(5, 6, 2, "loop", gen) for _ in range(200)}
    assert drawn == set(range(5))


def test_short_video_repeat_last() -> None:
    sampler = ClipSampler("uniform", clip_len=6, frame_interval=2, num_clips=3, short_video="repeat_last")
    for k in range(3):
        assert sampler(5, k).tolist() == [0, 2, 4, 4, 4, 4]
    gen = torch.Generator().manual_seed(0)
    assert {random_start(5, 6, 2, "repeat_last", gen) for _ in range(50)} == {0}


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="mode='middle'"):
        ClipSampler("middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="short_video='pad'"):
        ClipSampler("centre", short_video="pad")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="clip_len must be a positive integer"):
        ClipSampler("centre", clip_len=0)
    with pytest.raises(ValueError, match="needs mode='uniform'"):
        ClipSampler("centre", num_clips=3)
    with pytest.raises(IndexError, match="clip_index"):
        ClipSampler("uniform", num_clips=2)(50, 2)
    with pytest.raises(ValueError, match="num_frames"):
        ClipSampler("centre")(0)


@settings(max_examples=200, deadline=None)
@given(num_frames=st.integers(1, 400), clip_len=st.integers(1, 32), interval=st.integers(1, 8),
       num_clips=st.integers(1, 12), short=st.sampled_from(["loop", "repeat_last"]),
       seed=st.integers(0, 2**31))
def test_indices_always_valid(num_frames: int, clip_len: int, interval: int, num_clips: int,
                              short: str, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for sampler, clips in ((ClipSampler("random", clip_len, interval, 1, short), 1),
                           (ClipSampler("centre", clip_len, interval, 1, short), 1),
                           (ClipSampler("uniform", clip_len, interval, num_clips, short), num_clips)):
        for k in range(clips):
            idx = sampler(num_frames, k, gen)
            assert idx.shape == (clip_len,)
            assert idx.min() >= 0 and idx.max() < num_frames
            if num_frames >= clip_span(clip_len, interval):
                # A long enough video never wraps or clamps: a clean stride.
                assert np.all(np.diff(idx) == interval)
    if num_frames >= clip_span(clip_len, interval):
        starts = uniform_starts(num_frames, clip_len, interval, num_clips, short)
        assert np.all(np.diff(starts) >= 0)
        assert starts[0] >= 0 and starts[-1] <= num_frames - clip_span(clip_len, interval)
        free = num_frames - clip_span(clip_len, interval)
        assert centre_start(num_frames, clip_len, interval) == (free + 1) // 2  # the middle, rounded up
        assert centre_start(num_frames, clip_len, interval) == int(uniform_starts(num_frames, clip_len, interval, 1)[0])


def test_clip_at_modes() -> None:
    assert clip_at(8, 10, 3, 2, "loop").tolist() == [8, 0, 2]
    assert clip_at(8, 10, 3, 2, "repeat_last").tolist() == [8, 9, 9]
