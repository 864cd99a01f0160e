"""The map-style clip dataset shared by every video dataset.

Item `i` is view `i % views_per_video` of video `i // views_per_video`, where a view is one
(clip, crop) pair: train and val have one view per video, test has
`num_clips x num_crops`. So `len()` is deterministic and every view of every video has
its own index (which is what lets a sampler shard test views without losing any).

Each item is a dict: video (float C,T,H,W), label, video_index, clip_index, crop_index.

Bad videos. Files the index marked undecodable never reach this class (the DataModule
excludes and reports them). A file that still fails here, after both backends were tried,
is recorded in the index's read-failure log and logged, and the item is served from the
next good video instead (with that video's own label and video_index, so nothing is
mislabelled); the epoch goes on. The DataModule reports the count and the paths at the end
of the stage, and the next index build marks the file bad.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import Dataset

from .decoders import DecodeError, check_backend, read_frames
from .index_cache import ReadFailureLog, VideoMeta
from .records import VideoRecord
from .sampling import ClipSampler

log = logging.getLogger(__name__)

ClipTransform = Callable[[torch.Tensor, int], torch.Tensor]


class VideoClipDataset(Dataset):
    """Clips of annotated videos, decoded on demand.

    Args:
        root: dataset root; `records[i].rel` is relative to it.
        records: the videos (all decodable per the index).
        metas: their index entries (frame count, backend that decoded them), same order.
        sampler: picks frame indices for a (video, clip_index).
        transform: (uint8 T,H,W,C frames, crop_index) -> float C,T,H,W.
        num_crops: spatial crops per clip (views = sampler.num_clips * num_crops).
        decoder: preferred backend; the other is the fallback.
        failure_log: where read-time failures are recorded (None: only logged).
    """

    def __init__(self, root: str | Path, records: Sequence[VideoRecord], metas: Sequence[VideoMeta],
                 sampler: ClipSampler, transform: ClipTransform, num_crops: int = 1,
                 decoder: str = "decord", decode_threads: int = 1,
                 failure_log: ReadFailureLog | None = None, name: str = "") -> None:
        if len(records) != len(metas):
            raise ValueError(f"records and metas differ in length: {len(records)} vs {len(metas)}")
        if not isinstance(num_crops, int) or num_crops < 1:
            raise ValueError(f"num_crops must be a positive integer, got {num_crops!r}")
        self.root = Path(root)
        self.records = list(records)
        # Only what reading needs, so a spawned worker gets a small pickle.
        self.num_frames = [m.num_frames for m in metas]
        self.backends = [m.backend or decoder for m in metas]
        self.sampler = sampler
        self.transform = transform
        self.num_crops = num_crops
        self.decoder = check_backend(decoder)
        self.decode_threads = decode_threads
        self.failure_log = failure_log
        self.name = name
        self.views_per_video = sampler.num_clips * num_crops
        self._failed: set[int] = set()  # per process: videos that failed here

    @property
    def num_videos(self) -> int:
        return len(self.records)

    @property
    def labels(self) -> list[int]:
        return [r.label for r in self.records]

    def __len__(self) -> int:
        return len(self.records) * self.views_per_video

    def view(self, index: int) -> tuple[int, int, int]:
        """(video_index, clip_index, crop_index) of item `index`."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        video_index, view = divmod(index, self.views_per_video)
        clip_index, crop_index = divmod(view, self.num_crops)
        return video_index, clip_index, crop_index

    def load(self, video_index: int, clip_index: int = 0, crop_index: int = 0) -> dict[str, Any]:
        """One view of one video; raises DecodeError if neither backend can read it."""
        record = self.records[video_index]
        indices = self.sampler(self.num_frames[video_index], clip_index)
        frames, _ = read_frames(self.root / record.rel, indices, self.backends[video_index],
                                num_threads=self.decode_threads)
        return {
            "video": self.transform(frames, crop_index),
            "label": record.label,
            "video_index": video_index,
            "clip_index": clip_index,
            "crop_index": crop_index,
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        video_index, clip_index, crop_index = self.view(index)
        for step in range(self.num_videos):
            candidate = (video_index + step) % self.num_videos
            if candidate in self._failed:
                continue
            try:
                return self.load(candidate, clip_index, crop_index)
            except DecodeError as err:
                self._failed.add(candidate)
                rel = self.records[candidate].rel
                log.warning("%s: skipping video that failed at read time: %s (%s); serving the "
                            "next video instead", self.name or "dataset", rel, err.reason)
                if self.failure_log is not None:
                    self.failure_log.record(rel, err.reason)
        raise RuntimeError(f"{self.name or 'dataset'}: none of the {self.num_videos} videos could "
                           f"be decoded; run `softpool-video check-videos {self.root}`")

    def __repr__(self) -> str:
        return (f"VideoClipDataset({self.name!r}, videos={self.num_videos}, "
                f"views_per_video={self.views_per_video}, sampler={self.sampler})")
