"""What annotation parsers hand to datasets: one record per video, plus what is missing."""
from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, overload

import numpy as np

from .listing import VideoListing

log = logging.getLogger(__name__)


class VideoRecord(NamedTuple):
    """One annotated video. `rel` is relative to the dataset root (posix separators). A named
    tuple: Kinetics-700 makes half a million of them at every set-up."""

    rel: str
    label: int  # 0-based; -1 for unlabelled videos (e.g. a Kinetics test CSV)
    group: str = ""  # videos sharing a group stay together in a train/val holdout


class PackedStrings(Sequence[str]):
    """Strings kept in one bytes buffer with an array of offsets.

    A list of 200,000 str objects is 200,000 reference counts: a forked DataLoader worker that
    reads them writes to the pages they live on, and the kernel copies those pages into the
    worker (its memory grows with every item it reads). One buffer and one array have no
    per-string object to touch, so their pages stay shared.
    """

    def __init__(self, strings: Iterable[str]) -> None:
        # Each string ends with a NUL (never in a path or a name), all encoded at once; where
        # they end is found by numpy, not by a Python loop over the strings.
        strings = list(strings)
        self._buffer = ("\0".join(strings) + "\0").encode() if strings else b""
        ends = np.flatnonzero(np.frombuffer(self._buffer, dtype=np.uint8) == 0)
        if len(ends) != len(strings):
            raise ValueError("strings must not contain NUL characters")
        self._offsets = np.zeros(len(strings) + 1, dtype=np.int64)
        self._offsets[1:] = ends + 1

    def __len__(self) -> int:
        return len(self._offsets) - 1

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} strings")
        i %= n
        return self._buffer[self._offsets[i]:self._offsets[i + 1] - 1].decode()


class RecordTable(Sequence[VideoRecord]):
    """VideoRecords held as columns (paths and groups packed, labels in an array): what a
    dataset keeps per video, read by every DataLoader worker without copying it."""

    def __init__(self, records: Iterable[VideoRecord]) -> None:
        records = list(records)
        rels, labels, groups = zip(*records) if records else ((), (), ())  # columns, in C
        self.rels, self.groups = PackedStrings(rels), PackedStrings(groups)
        self.labels = np.array(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    @overload
    def __getitem__(self, i: int) -> VideoRecord: ...

    @overload
    def __getitem__(self, i: slice) -> list[VideoRecord]: ...

    def __getitem__(self, i: int | slice) -> VideoRecord | list[VideoRecord]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return VideoRecord(self.rels[i], int(self.labels[i]), self.groups[i])


@dataclass
class Subset:
    """The videos of one subset (train / val / test) that exist, and those that do not."""

    name: str
    records: list[VideoRecord]
    missing: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)


_DRIVE = re.compile(r"^[A-Za-z]:")


def check_listed_path(listed: str, where: str) -> str:
    """`listed` as a normalised posix path, after checking it stays inside the video folder.

    Annotation files name videos relative to the dataset's video folder. An absolute path
    or one whose `..` parts climb out of that folder would read files outside the dataset
    root (and key the index cache outside it), so it is an error in the annotation file,
    reported with its file and line (`where`) like any other malformed line.
    """
    text = listed.replace("\\", "/")
    if text.startswith("/") or _DRIVE.match(text):
        raise ValueError(f"{where}: video path {listed!r} is absolute; annotation paths must be "
                         "relative to the dataset's video folder and stay inside the dataset root")
    normal = posixpath.normpath(text)
    if normal == ".." or normal.startswith("../"):
        raise ValueError(f"{where}: video path {listed!r} leaves the video folder ('..'); "
                         "annotation paths must stay inside the dataset root")
    return normal


class PathResolver:
    """Finds annotated files under a video folder, exactly or, failing that, ignoring case.

    Case matters for UCF-101: the lists and classInd say `HandstandPushups`, the files are
    `v_HandStandPushups_*.avi`, and some mirrors renamed the folder too. Looks files up in the
    dataset's folder listing (listing.py), not on disk.
    """

    def __init__(self, root: Path, video_dir: Path, listing: VideoListing) -> None:
        self.listing = listing
        inside = video_dir.relative_to(root).as_posix()
        self._prefix = "" if inside == "." else inside + "/"
        self._lower: dict[str, str] | None = None

    def resolve(self, listed: str) -> str | None:
        """Path relative to the root of the file listed as `listed` (relative to the video
        folder), or None when it does not exist."""
        rel = self._prefix + check_listed_path(listed, "annotation")
        if rel in self.listing:
            return rel
        if self._lower is None:
            self._lower = {}
            for found in self.listing.files(self._prefix):
                self._lower.setdefault(found.lower(), found)
        return self._lower.get(rel.lower())

    def release_tables(self) -> None:
        """Drop the lookup tables, made again when asked."""
        self._lower = None
        self.listing.release_tables()


def summarise_missing(dataset: str, subset: Subset, total: int, where: Path) -> None:
    """One warning per subset for annotated videos that are not on disk."""
    if not subset.missing:
        return
    shown = ", ".join(subset.missing[:5]) + (", ..." if len(subset.missing) > 5 else "")
    log.warning("%s %s: %d of %d annotated videos are missing under %s and are excluded "
                "(e.g. %s)", dataset, subset.name, len(subset.missing), total, where, shown)


def existing_root(root: str | Path) -> Path:
    """`root` as a Path, after checking that it is a folder."""
    path = Path(root)
    if not path.is_dir():
        raise FileNotFoundError(f"root={str(root)!r} is not a directory")
    return path


def find_dir(root: Path, candidates: tuple[str, ...], what: str, argument: str) -> Path:
    """The first existing `root/candidate`, or a clear error naming what was tried."""
    for name in candidates:
        path = root / name
        if path.is_dir():
            return path
    tried = ", ".join(str(root / c) for c in candidates)
    raise FileNotFoundError(f"cannot find the {what} under {root} (tried {tried}); "
                            f"pass {argument}=... to name it")
