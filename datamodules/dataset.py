"""The map-style clip dataset shared by every video dataset.

Item `i` is view `i % views_per_video` of video `i // views_per_video`, where a view is one
(clip, crop) pair: train and val have one view per video, test has
`num_clips x num_crops`. So `len()` is deterministic and every view of every video has
its own index (which is what lets a sampler shard test views without losing any).

Each item is a dict: video (float C,T,H,W), label, video_index, clip_index, crop_index.

Bad videos. Files the index marked undecodable never reach this class (the DataModule
excludes and reports them). A file that still fails here, after every decoder that reads it
exactly was tried (both, unless its frame layout leaves only PyAV),
or whose decoding does not finish within `decode_timeout` seconds, or which is gone since it
was indexed, is recorded in the index's read-failure log and logged once per process, and the
item comes back as a
`SkippedItem` instead of a sample. The collate filter (`SkippingCollate`, collate.py) leaves
skipped items out of the batch and `ResilientDataLoader` counts them, so in evaluation every
good video is still delivered exactly once and a bad one is never replaced by a duplicate
of another; in training `SeededItems` (samplers.py) puts another item of the rank's shard in
its place, so DDP ranks stay in step, and it is counted all the same. The DataModule reports the count and the paths at the end of the stage, and the
next index build marks the file bad.

Changed files. Set-up trusts the index for files in folders that did not change (listing.py),
so a file rewritten in place keeps its old entry. Its size or time stamp, compared before each
read, give it away: it is probed again where it is read and read as it is now, with its own
frame count and layout (never with the stale ones); logged, and recorded in the read-failure
log as recovered, so the next set-up indexes it again. If the probe finds it bad, it is a read
failure like any other.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .clip_sampling import ClipSampler
from .collate import SkippedItem
from .decoders import DECODERS, DecodeError, VideoReader, check_decoder, open_video, read_frames
from .index_cache import ReadFailureLog, VideoMeta, probe_video
from .index_columns import LAYOUT_NAMES, NO_DECODER, MetaColumns
from .records import RecordTable, VideoRecord
from .timeouts import call_with_timeout

log = logging.getLogger(__name__)

ClipTransform = Callable[[torch.Tensor, int], torch.Tensor]
DEFAULT_DECODE_TIMEOUT = 60.0  # seconds; a 10-minute 1080p Kinetics clip decodes in far less


class _ChangedSinceIndexed(Exception):
    """The file's size or time stamp is not what the index recorded."""


# Readers a forked worker inherited from its parent (`_timed_read`): never freed in the child.
_INHERITED_READERS: list[VideoReader] = []


@dataclass
class _OpenVideo:
    """The reader a process keeps open between views of one video, and the last clip."""

    pid: int
    video_index: int
    reader: VideoReader
    indices: np.ndarray | None = None
    frames: torch.Tensor | None = None


class VideoClipDataset(Dataset):
    """Clips of annotated videos, decoded on demand.

    Args:
        root: dataset root; `records[i].rel` is relative to it.
        records: the videos (all decodable per the index).
        metas: their index entries (frame count, decoder that decoded them), same order: as
            VideoMeta entries or as the index's columns.
        sampler: picks frame indices for a (video, clip_index).
        transform: (uint8 T,H,W,C frames, crop_index) -> float C,T,H,W.
        num_crops: spatial crops per clip (views = sampler.num_clips * num_crops).
        decoder: preferred decoder; the other is the fallback.
        failure_log: where read-time failures are recorded (None: only logged).
        decode_timeout: seconds before a read is abandoned as hung (None: wait forever).
    """

    def __init__(self, root: str | Path, records: Sequence[VideoRecord],
                 metas: Sequence[VideoMeta] | MetaColumns,
                 sampler: ClipSampler, transform: ClipTransform, num_crops: int = 1,
                 decoder: str = "decord", decode_threads: int = 1,
                 failure_log: ReadFailureLog | None = None, name: str = "",
                 decode_timeout: float | None = DEFAULT_DECODE_TIMEOUT) -> None:
        if len(records) != len(metas):
            raise ValueError(f"records and metas differ in length: {len(records)} vs {len(metas)}")
        if not isinstance(num_crops, int) or num_crops < 1:
            raise ValueError(f"num_crops must be a positive integer, got {num_crops!r}")
        if decode_timeout is not None and not decode_timeout > 0:
            raise ValueError(f"decode_timeout must be a positive number of seconds or None, "
                             f"got {decode_timeout!r}")
        self.root = Path(root)
        self.decoder = check_decoder(decoder)
        # Only what reading needs, as arrays: a spawned worker gets a small pickle, and a
        # forked one reads them without copying pages (records.PackedStrings says why).
        self.records = records if isinstance(records, RecordTable) else RecordTable(records)
        columns = metas if isinstance(metas, MetaColumns) else MetaColumns.of(metas)
        self.num_frames = columns.num_frames
        # a video without a recorded decoder (hand-made metadata) is read with `decoder`
        self._decoders = np.where(columns.decoder == NO_DECODER, DECODERS.index(self.decoder),
                                  columns.decoder).astype(np.int8)
        self._layouts = columns.layout  # which decoders are exact: the only fallbacks
        # (size, mtime_ns) as indexed: a file that changed since is caught when it is read
        self._indexed = np.stack([columns.size, columns.mtime_ns], axis=1).reshape(-1, 2)
        self.sampler = sampler
        self.transform = transform
        self.num_crops = num_crops
        self.decode_threads = decode_threads
        self.failure_log = failure_log
        self.name = name
        self.decode_timeout = decode_timeout
        self.views_per_video = sampler.num_clips * num_crops
        # Per process: videos that failed here, with the reason. Not retried: a hung file
        # would cost another timeout on every view and every epoch.
        self._failed: dict[int, str] = {}
        self._open: _OpenVideo | None = None  # the video the last view read (several views)

    @property
    def num_videos(self) -> int:
        return len(self.records)

    @property
    def labels(self) -> list[int]:
        return self.records.labels.tolist()

    @property
    def decoders(self) -> list[str]:
        """The decoder that reads each video exactly (from the index)."""
        return [DECODERS[code] for code in self._decoders]

    @property
    def layouts(self) -> list[str]:
        return [LAYOUT_NAMES[code] for code in self._layouts]

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
        """One view of one video; raises DecodeError if neither decoder can read it in
        `decode_timeout` seconds."""
        record = self.records[video_index]
        path = self.root / record.rel
        try:
            frames = self._timed_read(video_index, path, clip_index)
        except _ChangedSinceIndexed:
            self._timed(self._reindex, video_index, path, record.rel)
            frames = self._timed_read(video_index, path, clip_index)
        return {
            "video": self.transform(frames, crop_index),
            "label": record.label,
            "video_index": video_index,
            "clip_index": clip_index,
            "crop_index": crop_index,
        }

    def _timed_read(self, video_index: int, path: Path, clip_index: int) -> torch.Tensor:
        """`_read` under the timeout. The reader kept between views is handed in and the one to
        keep is handed back, so that a read abandoned here (its thread may finish much later)
        never replaces or closes the reader this process goes on with."""
        if self._open is not None and self._open.pid != os.getpid():
            # A forked worker's copy of its parent's reader: freeing it here would stop
            # decoding threads that exist only in the parent, so it is kept, unused, for good.
            _INHERITED_READERS.append(self._open.reader)
            self._open = None
        try:
            frames, self._open = self._timed(self._read, video_index, path, clip_index, self._open)
        except BaseException:
            self._open = None  # closed by the failed read, or still in use by an abandoned one
            raise
        return frames

    def _timed(self, call: Callable[..., Any], video_index: int, *args: Any) -> Any:
        """`call(video_index, *args)`, abandoned as hung after `decode_timeout` seconds."""
        try:
            return call_with_timeout(call, self.decode_timeout, video_index, *args)
        except TimeoutError:
            raise DecodeError(args[0], DECODERS[self._decoders[video_index]],
                              f"decoding timed out after {self.decode_timeout:g}s "
                              "(abandoned; raise decode_timeout if the file is just slow)") from None

    def _check_unchanged(self, video_index: int, path: Path) -> None:
        """A file gone or changed since it was indexed (set-up trusts the index for files in
        folders that did not change: listing.py) is caught here, before its stale frame count
        is used: a gone one is a read failure, a changed one is probed again (`_reindex`)."""
        size, mtime = self._indexed[video_index]
        if size == 0:
            return  # not recorded (metadata made by hand); indexed files are never empty
        try:
            st = os.stat(path)
        except OSError as err:
            raise DecodeError(path, DECODERS[self._decoders[video_index]],
                              f"gone since it was indexed ({err.strerror})") from None
        if (st.st_size, st.st_mtime_ns) != (size, mtime):
            raise _ChangedSinceIndexed

    def _reindex(self, video_index: int, path: Path, rel: str) -> None:
        """Probe a file that changed since it was indexed, as set-up would (its frame count, and
        its frame layout, so that only exact decoders read it), and read it with what the probe
        found from now on in this process. Recorded in the read-failure log as recovered: it was
        not skipped, and the next set-up indexes it again. A file the probe finds bad is a read
        failure."""
        meta = probe_video(path, self.decoder, depth="header")
        indexed = tuple(self._indexed[video_index].tolist())
        if not meta.ok:
            raise DecodeError(path, self.decoder, f"changed since it was indexed, and now bad: {meta.error}")
        self.num_frames[video_index] = meta.num_frames
        self._decoders[video_index] = DECODERS.index(meta.decoder)
        self._layouts[video_index] = LAYOUT_NAMES.index(meta.layout)
        self._indexed[video_index] = (meta.size, meta.mtime_ns)
        log.warning("%s: %s changed since it was indexed; probed again (%d frames, %s) and read as it "
                    "is now", self.name or "dataset", rel, meta.num_frames, meta.decoder)
        if self.failure_log is not None:
            self.failure_log.record(rel, f"changed since it was indexed; probed again ({meta.num_frames} "
                                    "frames) and read", indexed=indexed, recovered=True)

    def _read(self, video_index: int, path: Path, clip_index: int,
              cached: _OpenVideo | None) -> tuple[torch.Tensor, _OpenVideo | None]:
        """The frames of one view, and the reader to keep for the next view. With several
        views per video (the test's clips x crops, read in order), the views of one video
        share one open reader, which decodes on from the last clip instead of seeking back,
        and the crops of one clip share its frames: each video is decoded about once instead
        of once per view."""
        self._check_unchanged(video_index, path)  # under the timeout: a stalled mount stalls stat too
        indices = self.sampler(int(self.num_frames[video_index]), clip_index)
        decoder = DECODERS[self._decoders[video_index]]
        layout = LAYOUT_NAMES[self._layouts[video_index]]
        if self.views_per_video == 1:
            return read_frames(path, indices, decoder, num_threads=self.decode_threads,
                               layout=layout)[0], None
        if cached is not None and cached.video_index != video_index:
            cached.reader.close()
            cached = None
        if cached is not None and np.array_equal(cached.indices, indices):
            return cached.frames, cached  # another crop of the same clip
        try:
            if cached is None:
                cached = _OpenVideo(os.getpid(), video_index,
                                    open_video(path, decoder, num_threads=self.decode_threads,
                                               layout=layout))
            frames = cached.reader.get(indices)
        except (DecodeError, IndexError):
            # As for a single view: every exact decoder, each opened afresh.
            if cached is not None:
                cached.reader.close()
            return read_frames(path, indices, decoder, num_threads=self.decode_threads,
                               layout=layout)[0], None
        cached.indices, cached.frames = np.asarray(indices).copy(), frames
        return frames, cached

    def __getstate__(self) -> dict[str, Any]:
        # An open reader stays with the process that opened it (workers open their own).
        return {**self.__dict__, "_open": None}

    def __getitem__(self, index: int) -> dict[str, Any] | SkippedItem:
        video_index, clip_index, crop_index = self.view(index)
        rel = self.records[video_index].rel
        if video_index in self._failed:
            return SkippedItem(index, video_index, rel, self._failed[video_index])
        try:
            return self.load(video_index, clip_index, crop_index)
        except DecodeError as err:
            self._failed[video_index] = err.reason
            log.warning("%s: skipping a video that failed at read time: %s (%s)",
                        self.name or "dataset", rel, err.reason)
            if self.failure_log is not None:
                self.failure_log.record(rel, err.reason, indexed=tuple(self._indexed[video_index].tolist()))
            return SkippedItem(index, video_index, rel, err.reason)

    def __repr__(self) -> str:
        return (f"VideoClipDataset({self.name!r}, videos={self.num_videos}, "
                f"views_per_video={self.views_per_video}, sampler={self.sampler})")
