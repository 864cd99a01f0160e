"""Which files are videos, how a dataset folder is walked, and where its cache lives.

One home for what annotation parsers, the video index, `prepare` and the retention
benchmark used to define each on their own: the video extensions, the cache folder that
every walk skips, and the walk itself.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from hashlib import sha1
from pathlib import Path

# Union of the lists the package used to keep (the index's 11 already held retention's 8).
# A suffix only decides what is looked at; the decoders probe the content, not the name.
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv", ".3gp"})
# Per-root folder of the video index and read-failure log; never part of the dataset.
CACHE_DIRNAME = ".softpool_video"


def cache_folder(root: str | Path, cache_dir: str | Path | None = None) -> Path:
    """Where the video index, the folder listing and the read-failure log of `root` live:
    `cache_dir` if given, else `<root>/.softpool_video` if writable, else a per-root folder in
    the user cache."""
    if cache_dir is not None:
        return Path(cache_dir)
    root = Path(root).resolve()
    local = root / CACHE_DIRNAME
    try:
        local.mkdir(exist_ok=True)
        probe = local / ".write-test"
        probe.touch()
        probe.unlink()
        return local
    except OSError:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        return base / "softpool_video" / sha1(str(root).encode()).hexdigest()[:16]


def is_video_file(name: str | Path) -> bool:
    """True when the file name has a video extension (any case)."""
    return Path(name).suffix.lower() in VIDEO_EXTENSIONS


def walk_dataset(root: str | Path) -> Iterator[tuple[Path, list[str]]]:
    """(folder, its file names) for every folder under `root`, in sorted order, without
    descending into the cache folder; symlinked folders are followed, each folder once."""
    seen: set[tuple[int, int]] = set()  # (device, inode): a link cycle ends here
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if d != CACHE_DIRNAME)
        yield Path(dirpath), sorted(filenames)


def find_videos(root: str | Path) -> list[str]:
    """Every file with a video extension under `root`, as sorted relative posix paths."""
    root = Path(root)
    found = [(folder / name).relative_to(root).as_posix()
             for folder, names in walk_dataset(root) for name in names if is_video_file(name)]
    return sorted(found)
