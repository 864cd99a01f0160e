"""What annotation parsers hand to datasets: one record per video, plus what is missing."""
from __future__ import annotations

import logging
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from .video_files import walk_dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoRecord:
    """One annotated video. `rel` is relative to the dataset root (posix separators)."""

    rel: str
    label: int  # 0-based; -1 for unlabelled videos (e.g. a Kinetics test CSV)
    group: str = ""  # videos sharing a group stay together in a train/val holdout


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
    `v_HandStandPushups_*.avi`, and some mirrors renamed the folder too.
    """

    def __init__(self, root: Path, video_dir: Path) -> None:
        self.root = root
        self.video_dir = video_dir
        self._lower: dict[str, str] | None = None

    def _build(self) -> dict[str, str]:
        table: dict[str, str] = {}
        for folder, filenames in walk_dataset(self.video_dir):
            for name in filenames:
                rel = (folder / name).relative_to(self.video_dir).as_posix()
                table.setdefault(rel.lower(), rel)
        return table

    def resolve(self, listed: str) -> str | None:
        """Path relative to the root of the file listed as `listed` (relative to the video
        folder), or None when it does not exist."""
        listed = check_listed_path(listed, "annotation")
        if (self.video_dir / listed).is_file():
            return (self.video_dir / listed).relative_to(self.root).as_posix()
        if self._lower is None:
            self._lower = self._build()
        found = self._lower.get(listed.lower())
        if found is None:
            return None
        return (self.video_dir / found).relative_to(self.root).as_posix()


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
