"""The video files under a dataset root, listed once and kept with each folder's mtime.

Set-up must know which annotated videos exist, and for Kinetics' CSVs where they are (a clip
is found by name anywhere under the video folder). Walking the tree costs a `stat` per
entry: minutes for Kinetics-700 on a cluster file system, in every rank of every job. A
folder's mtime changes whenever an entry in it is added, removed or renamed, so the listing
of a folder whose mtime has not changed is still right: a warm `refresh` costs one `stat` per
folder (about 1,400 for Kinetics-700, 103 for UCF-101) and lists again only the folders that
changed, with a `stat` of their files, so that the index re-probes the files that changed
(`stat_of`). A file rewritten in place keeps its folder's mtime: the dataset notices it
when it reads it (size and mtime against the index's, dataset.py), the next set-up re-probes
it. Chosen over a `stat` per file (what the index did: 6 s for 200,000 files here, far
more on a network file system) and over trusting the index alone (new downloads would
never be found).

Kept as `listing.json` beside the video index (video_files.cache_folder). Walks the
way `video_files.walk_dataset` does: the cache folder skipped, symlinked folders and files
followed (a dataset assembled from links to class folders is common), a folder reached twice
(a link cycle, or two links to one folder) listed once.
"""
from __future__ import annotations

import bisect
import json
import logging
import os
from pathlib import Path

from softpool_video.reporting import write_json_atomic

from .video_files import CACHE_DIRNAME, cache_folder, is_video_file

log = logging.getLogger(__name__)

LISTING_VERSION = 1
# folder (relative to the root, '' for the root) -> (mtime_ns, sub-folder names, video file names)
Folders = dict[str, tuple[int, list[str], list[str]]]


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


class VideoListing:
    """Video files under `root` (relative posix paths), cached in `cache_dir/listing.json`."""

    def __init__(self, root: str | Path, cache_dir: str | Path) -> None:
        self.root = str(root)
        self.path = Path(cache_dir) / "listing.json"
        self._folders: Folders = self._load()
        self._stats: dict[str, tuple[int, int]] = {}  # files of folders listed again: (size, mtime_ns)
        self._files: frozenset[str] | None = None  # of the listed files, made when first asked
        self._sorted: list[str] | None = None

    @classmethod
    def of(cls, root: str | Path, cache_dir: str | Path | None = None) -> VideoListing:
        """The refreshed listing of `root`, cached in its cache folder (or `cache_dir`)."""
        return cls(root, cache_folder(root, cache_dir)).refresh()

    def _load(self) -> Folders:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != LISTING_VERSION or data.get("root") != self.root:
            return {}
        return {rel: (int(m), list(d), list(v)) for rel, (m, d, v) in data.get("folders", {}).items()}

    def refresh(self) -> VideoListing:
        """Bring the listing up to date (see the module docstring) and save it if it changed."""
        folders: Folders = {}
        seen: set[tuple[int, int]] = set()  # (device, inode) of the folders listed
        pending, relisted = [""], 0
        while pending:
            rel = pending.pop()
            path = os.path.join(self.root, rel) if rel else self.root
            try:
                st = os.stat(path)
            except OSError:
                continue  # gone since its parent was listed, or a broken link
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            mtime = st.st_mtime_ns
            entry = self._folders.get(rel)
            if entry is None or entry[0] != mtime:
                entry = self._list(rel, path, mtime)
                relisted += 1
            folders[rel] = entry
            # in reverse onto the stack: folders are visited in os.walk's order (sorted,
            # top-down), so a folder reached twice is listed where os.walk meets it first
            pending.extend(_join(rel, name) for name in reversed(entry[1]))
        changed = relisted or folders.keys() != self._folders.keys()
        self._folders, self._files, self._sorted = folders, None, None
        if changed:
            log.debug("listing of %s: %d of %d folders listed again", self.root, relisted, len(folders))
            try:
                write_json_atomic(self.path, {"version": LISTING_VERSION, "root": self.root,
                                              "folders": folders}, separators=(",", ":"))
            except OSError as err:
                log.warning("cannot save the folder listing to %s (%s); the tree will be listed "
                            "again next time", self.path, err)
        return self

    def _list(self, rel: str, path: str, mtime: int) -> tuple[int, list[str], list[str]]:
        subfolders, videos = [], []
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir():
                    if entry.name != CACHE_DIRNAME:
                        subfolders.append(entry.name)
                elif is_video_file(entry.name):
                    videos.append(entry.name)
                    try:
                        st = entry.stat()
                        self._stats[_join(rel, entry.name)] = (st.st_size, st.st_mtime_ns)
                    except OSError:  # a broken symlink: listed, and the probe will say why
                        self._stats[_join(rel, entry.name)] = (0, 0)
        return mtime, sorted(subfolders), sorted(videos)

    # ---- what is there ---------------------------------------------------------------------
    def files(self, under: str = "") -> list[str]:
        """Every video file (posix path relative to the root), sorted; only those inside the
        folder `under` (relative to the root) if given."""
        if self._sorted is None:
            self._sorted = sorted(_join(rel, name) for rel, (_, _, videos) in self._folders.items()
                                  for name in videos)
        prefix = under.strip("/")
        if not prefix:
            return list(self._sorted)
        start = bisect.bisect_left(self._sorted, prefix + "/")
        end = bisect.bisect_left(self._sorted, prefix + "0")  # '0' follows '/'
        return self._sorted[start:end]

    def folders(self, under: str = "") -> list[str]:
        """Names of the sub-folders of the folder `under` (relative to the root), sorted."""
        entry = self._folders.get(under.strip("/"))
        return list(entry[1]) if entry is not None else []

    @property
    def paths(self) -> frozenset[str]:
        """Every video file (posix path relative to the root), for membership tests."""
        if self._files is None:
            self._files = frozenset(self.files())
        return self._files

    def __contains__(self, rel: str) -> bool:
        return rel in self.paths

    def release_tables(self) -> None:
        """Drop the tables made from the folders (`files`, `paths`), made again when asked."""
        self._files = self._sorted = None

    @property
    def relisted(self) -> frozenset[str]:
        """The files whose folders this refresh listed again (each with a `stat_of`)."""
        return frozenset(self._stats)

    def stat_of(self, rel: str) -> tuple[int, int] | None:
        """(size, mtime_ns) of a file whose folder this refresh listed again; None for a file of
        an unchanged folder (trusted as the index recorded it) or one not there."""
        return self._stats.get(rel)
