"""Clip sampling by frame index.

A clip is `clip_len` frames taken every `frame_interval` frames, so it spans
`(clip_len - 1) * frame_interval + 1` frames of the video. Three modes:

- random  (train): a uniformly random start.
- centre  (val):   the clip centred in the video (uniform's one clip: the same start).
- uniform (test):  `num_clips` clips whose starts are the centres of `num_clips` equal
  segments of the possible start range (one clip -> the centre clip).

A video shorter than the span either loops (indices wrap around; random and uniform
starts then range over the whole video) or repeats its last frame (the clip starts at 0
and indices past the end are clamped).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

SampleMode = Literal["random", "centre", "uniform"]
ShortVideo = Literal["loop", "repeat_last"]
SAMPLE_MODES: tuple[str, ...] = ("random", "centre", "uniform")
SHORT_VIDEO_MODES: tuple[str, ...] = ("loop", "repeat_last")


def clip_span(clip_len: int, frame_interval: int) -> int:
    """Frames of the video one clip covers, first to last inclusive."""
    return (clip_len - 1) * frame_interval + 1


def clip_at(start: int, num_frames: int, clip_len: int, frame_interval: int,
            short_video: str = "loop") -> np.ndarray:
    """Frame indices of the clip starting at `start` (int64, length `clip_len`)."""
    idx = start + np.arange(clip_len, dtype=np.int64) * frame_interval
    if short_video == "loop":
        return idx % num_frames
    return np.minimum(idx, num_frames - 1)


def random_start(num_frames: int, clip_len: int, frame_interval: int, short_video: str = "loop",
                 generator: torch.Generator | None = None) -> int:
    # torch's RNG, not numpy's: DataLoader seeds torch per worker and per epoch, so workers
    # draw different clips and runs are reproducible under seed_everything(workers=True).
    delta = num_frames - clip_span(clip_len, frame_interval)
    if delta >= 0:
        high = delta + 1
    elif short_video == "loop":
        high = num_frames
    else:
        return 0
    return int(torch.randint(high, (1,), generator=generator).item())


def centre_start(num_frames: int, clip_len: int, frame_interval: int) -> int:
    # One recipe for a video's middle clip: the first of `uniform_starts` with one clip, which
    # is what predict and export parity use (evaluation/views.py). An own formula
    # (delta // 2) put the clip one frame earlier whenever the free range was odd.
    return int(uniform_starts(num_frames, clip_len, frame_interval, 1, "repeat_last")[0])


def uniform_starts(num_frames: int, clip_len: int, frame_interval: int, num_clips: int,
                   short_video: str = "loop") -> np.ndarray:
    """Starts of `num_clips` evenly spread clips; with one clip, the centre clip."""
    delta = num_frames - clip_span(clip_len, frame_interval)
    seg = (np.arange(num_clips, dtype=np.float64) + 0.5) / num_clips
    if delta >= 0:
        return np.floor(seg * delta + 0.5).astype(np.int64)
    if short_video == "loop":
        # A looping clip can start anywhere; spread the starts over the whole video.
        return np.floor(np.arange(num_clips) * num_frames / num_clips).astype(np.int64)
    return np.zeros(num_clips, dtype=np.int64)


@dataclass(frozen=True)
class ClipSampler:
    """Maps (num_frames, clip_index) to frame indices for one sampling mode."""

    mode: SampleMode
    clip_len: int = 16
    frame_interval: int = 2
    num_clips: int = 1
    short_video: ShortVideo = "loop"

    def __post_init__(self) -> None:
        if self.mode not in SAMPLE_MODES:
            raise ValueError(f"mode={self.mode!r} is not supported; choose one of {SAMPLE_MODES}")
        if self.short_video not in SHORT_VIDEO_MODES:
            raise ValueError(f"short_video={self.short_video!r} is not supported; "
                             f"choose one of {SHORT_VIDEO_MODES}")
        for name in ("clip_len", "frame_interval", "num_clips"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.mode != "uniform" and self.num_clips != 1:
            raise ValueError(f"num_clips={self.num_clips} needs mode='uniform'; "
                             f"mode={self.mode!r} samples one clip per video")

    @property
    def span(self) -> int:
        return clip_span(self.clip_len, self.frame_interval)

    def __call__(self, num_frames: int, clip_index: int = 0,
                 generator: torch.Generator | None = None) -> np.ndarray:
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if not 0 <= clip_index < self.num_clips:
            raise IndexError(f"clip_index must lie in [0, {self.num_clips - 1}], got {clip_index}")
        if self.mode == "random":
            start = random_start(num_frames, self.clip_len, self.frame_interval,
                                 self.short_video, generator)
        elif self.mode == "centre":
            start = centre_start(num_frames, self.clip_len, self.frame_interval)
        else:
            start = int(uniform_starts(num_frames, self.clip_len, self.frame_interval,
                                       self.num_clips, self.short_video)[clip_index])
        return clip_at(start, num_frames, self.clip_len, self.frame_interval, self.short_video)
