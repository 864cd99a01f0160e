"""Which files are videos, and how a dataset folder is walked.

One home for what annotation parsers, the video index, `prepare` and the retention
benchmark used to define each on their own: the video extensions, the cache folder that
every walk skips, and the walk itself.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

# Union of the lists the package used to keep (the index's 11 already held retention's 8).
# A suffix only decides what is looked at; the decoders probe the content, not the name.
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv", ".3gp"})
# Per-root folder of the video index and read-failure log; never part of the dataset.
CACHE_DIRNAME = ".softpool_video"


def is_video_file(name: str | Path) -> bool:
    """True when the file name has a video extension (any case)."""
    return Path(name).suffix.lower() in VIDEO_EXTENSIONS


def walk_dataset(root: str | Path) -> Iterator[tuple[Path, list[str]]]:
    """(folder, its file names) for every folder under `root`, in sorted order, without
    descending into the cache folder."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != CACHE_DIRNAME)
        yield Path(dirpath), sorted(filenames)


def find_videos(root: str | Path) -> list[str]:
    """Every file with a video extension under `root`, as sorted relative posix paths."""
    root = Path(root)
    found = [(folder / name).relative_to(root).as_posix()
             for folder, names in walk_dataset(root) for name in names if is_video_file(name)]
    return sorted(found)
