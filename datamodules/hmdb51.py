"""HMDB-51 as distributed: `hmdb51_org.rar` (-> `hmdb51_org/<class>/<video>.avi` once the
per-class archives are extracted) and `test_train_splits.rar`
(-> `testTrainMulti_7030_splits/<class>_test_split<N>.txt`), whose lines read

    April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1

with 1 = train, 2 = test, 0 = not used in this split. Labels are the class's position in
sorted class order (brush_hair = 0, ...).

This file holds the parser (`HMDB51Annotations`) and the dataset's LightningDataModule
(`HMDB51DataModule`, on the shared base in datamodule.py).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from .datamodule import VideoDataModule
from .records import (
    PathResolver,
    Subset,
    VideoRecord,
    check_listed_path,
    find_dir,
    summarise_missing,
)

log = logging.getLogger(__name__)

HMDB51_SPLITS: tuple[int, ...] = (1, 2, 3)
VIDEO_DIRS: tuple[str, ...] = ("hmdb51_org", "hmdb51", "HMDB51", "videos")
ANNOTATION_DIRS: tuple[str, ...] = ("testTrainMulti_7030_splits", "test_train_splits", "splits",
                                    "annotations")
_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>\d+)\.txt$")
_TAGS = {"0": "unused", "1": "train", "2": "test"}


def read_hmdb51_splits(annotation_dir: str | Path, split: int) -> tuple[list[str], dict[str, list[tuple[str, str]]]]:
    """Read every `<class>_test_split<split>.txt` in a folder.

    Returns (class names sorted, {subset: [(class/video.avi, class), ...]}) where subset is
    'train', 'test' or 'unused'.
    """
    annotation_dir = Path(annotation_dir)
    files: dict[str, Path] = {}
    for path in sorted(annotation_dir.iterdir()):
        match = _SPLIT_FILE.match(path.name)
        if match and int(match["split"]) == split:
            files[match["cls"]] = path
    if not files:
        raise FileNotFoundError(f"no '<class>_test_split{split}.txt' files in {annotation_dir}")
    subsets: dict[str, list[tuple[str, str]]] = {"train": [], "test": [], "unused": []}
    for cls in sorted(files):
        path = files[cls]
        for n, line in enumerate(path.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in _TAGS:
                raise ValueError(f"{path}:{n}: expected '<video>.avi <0|1|2>' "
                                 f"(0 = unused, 1 = train, 2 = test), got {line.strip()!r}")
            # Lines name a file in the class folder: no absolute path, no climbing out.
            listed = f"{cls}/{check_listed_path(parts[0], f'{path}:{n}')}"
            subsets[_TAGS[parts[1]]].append((listed, cls))
    return sorted(files), subsets


class HMDB51Annotations:
    """Class names and train/test subsets of one official split."""

    dataset = "HMDB-51"

    def __init__(self, root: str | Path, split: int = 1, video_dir: str | Path | None = None,
                 annotation_dir: str | Path | None = None) -> None:
        if split not in HMDB51_SPLITS:
            raise ValueError(f"split={split!r} is not an official HMDB-51 split; choose one of "
                             f"{HMDB51_SPLITS}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"root={str(root)!r} is not a directory")
        self.split = split
        self.video_dir = (self.root / video_dir if video_dir is not None
                          else find_dir(self.root, VIDEO_DIRS, "HMDB-51 video folder", "video_dir"))
        self.annotation_dir = (self.root / annotation_dir if annotation_dir is not None
                               else find_dir(self.root, ANNOTATION_DIRS, "HMDB-51 split folder",
                                             "annotation_dir"))
        self.class_names, self._items = read_hmdb51_splits(self.annotation_dir, split)
        self._resolver = PathResolver(self.root, self.video_dir)

    def subset(self, subset: str) -> Subset:
        if subset not in ("train", "test"):
            raise ValueError(f"subset={subset!r}: HMDB-51 splits have 'train' and 'test'")
        label_of = {c: i for i, c in enumerate(self.class_names)}
        items = self._items[subset]
        records, missing = [], []
        for listed, cls in items:
            rel = self._resolver.resolve(listed)
            if rel is None:
                missing.append(listed)
                continue
            # Clips cut from one source video share the name up to the trailing clip number.
            group = re.sub(r"_\d+\.avi$", "", listed, flags=re.IGNORECASE)
            records.append(VideoRecord(rel, label_of[cls], group))
        out = Subset(subset, records, missing)
        summarise_missing(self.dataset, out, len(items), self.video_dir)
        return out


# ---- the DataModule ----------------------------------------------------------------------
class HMDB51DataModule(VideoDataModule):
    """HMDB-51 from `hmdb51_org/<class>/*.avi` and `testTrainMulti_7030_splits/`.

    Args:
        root: folder holding both (see VideoDataModule for the other arguments).
        split: 1, 2 or 3.
        video_dir: video folder relative to root (None: hmdb51_org, hmdb51, HMDB51 or videos).
        annotation_dir: split-file folder relative to root (None: testTrainMulti_7030_splits, ...).
    """

    dataset_name = "HMDB-51"

    def __init__(self, root: str | Path, split: int = 1, video_dir: str | None = None,
                 annotation_dir: str | None = None, **kwargs: Any) -> None:
        super().__init__(root, split, **kwargs)
        self.video_dir, self.annotation_dir = video_dir, annotation_dir
        _ = self.annotations  # fail fast on a wrong root or split

    def _make_annotations(self) -> HMDB51Annotations:
        return HMDB51Annotations(self.root, self.split, self.video_dir, self.annotation_dir)
