"""UCF-101 as distributed: `UCF101.rar` (-> `UCF-101/<Class>/v_<Class>_gXX_cYY.avi`) and
`UCF101TrainTestSplits-RecognitionTask.zip` (-> `ucfTrainTestlist/`):

    classInd.txt        "1 ApplyEyeMakeup"                               (1-based)
    trainlist0N.txt     "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"  (1-based label)
    testlist0N.txt      "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"    (no label)

Labels become 0-based. Test labels come from the folder name, matched ignoring case:
the files of class `HandstandPushups` are named `v_HandStandPushups_*`, and some copies
renamed the folder to match.

This file holds the parser (`UCF101Annotations`) and the dataset's LightningDataModule
(`UCF101DataModule`, on the shared base in datamodule.py).
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

UCF101_SPLITS: tuple[int, ...] = (1, 2, 3)
VIDEO_DIRS: tuple[str, ...] = ("UCF-101", "UCF101", "videos")
ANNOTATION_DIRS: tuple[str, ...] = ("ucfTrainTestlist", "UCF101TrainTestSplits-RecognitionTask",
                                    "splits", "annotations")
_GROUP = re.compile(r"_g(\d+)_c\d+", re.IGNORECASE)


def _lines(path: Path) -> list[tuple[int, str]]:
    # The official lists use CRLF line ends and a few have trailing blanks.
    return [(n, line.strip()) for n, line in enumerate(path.read_text().splitlines(), 1)
            if line.strip()]


def read_class_index(path: str | Path) -> list[str]:
    """classInd.txt -> class names in label order (label = line's index - 1)."""
    path = Path(path)
    names: dict[int, str] = {}
    for n, line in _lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ValueError(f"{path}:{n}: expected '<index> <ClassName>', got {line!r}")
        index = int(parts[0])
        if index in names:
            raise ValueError(f"{path}:{n}: class index {index} appears twice")
        names[index] = parts[1]
    if sorted(names) != list(range(1, len(names) + 1)):
        raise ValueError(f"{path}: class indices must be 1..{len(names)} without gaps, got "
                         f"{sorted(names)[:5]}...")
    return [names[i] for i in range(1, len(names) + 1)]


def read_split_list(path: str | Path, class_names: list[str],
                    labelled: bool) -> list[tuple[str, int]]:
    """trainlist0N.txt (labelled) or testlist0N.txt -> [(listed path, 0-based label)].

    The label of a listed path must agree with its folder (ignoring case). A path that is
    absolute or climbs out of the video folder is an error.
    """
    path = Path(path)
    by_name = {name.lower(): i for i, name in enumerate(class_names)}
    items: list[tuple[str, int]] = []
    for n, line in _lines(path):
        parts = line.split()
        # Test lists carry no label; accept one anyway (some copies add it) and check it.
        if len(parts) not in ((2,) if labelled else (1, 2)):
            raise ValueError(f"{path}:{n}: expected '<Class>/<file>.avi"
                             f"{' <label>' if labelled else ''}', got {line!r}")
        listed = check_listed_path(parts[0], f"{path}:{n}")
        folder = listed.split("/")[0]
        if folder.lower() not in by_name:
            raise ValueError(f"{path}:{n}: class folder {folder!r} is not in classInd.txt")
        label = by_name[folder.lower()]
        if len(parts) == 2:
            if not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(class_names):
                raise ValueError(f"{path}:{n}: label must be an integer in 1..{len(class_names)}, "
                                 f"got {parts[1]!r}")
            if int(parts[1]) - 1 != label:
                raise ValueError(f"{path}:{n}: label {parts[1]} ({class_names[int(parts[1]) - 1]}) "
                                 f"disagrees with folder {folder!r}")
        items.append((listed, label))
    return items


class UCF101Annotations:
    """Class names and train/test subsets of one official split."""

    dataset = "UCF-101"

    def __init__(self, root: str | Path, split: int = 1, video_dir: str | Path | None = None,
                 annotation_dir: str | Path | None = None) -> None:
        if split not in UCF101_SPLITS:
            raise ValueError(f"split={split!r} is not an official UCF-101 split; choose one of "
                             f"{UCF101_SPLITS}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"root={str(root)!r} is not a directory")
        self.split = split
        self.video_dir = (self.root / video_dir if video_dir is not None
                          else find_dir(self.root, VIDEO_DIRS, "UCF-101 video folder", "video_dir"))
        self.annotation_dir = (self.root / annotation_dir if annotation_dir is not None
                               else find_dir(self.root, ANNOTATION_DIRS, "ucfTrainTestlist folder",
                                             "annotation_dir"))
        self.class_names = read_class_index(self.annotation_dir / "classInd.txt")
        self._resolver = PathResolver(self.root, self.video_dir)

    def list_file(self, subset: str) -> Path:
        if subset not in ("train", "test"):
            raise ValueError(f"subset={subset!r}: UCF-101 has 'train' and 'test' lists")
        return self.annotation_dir / f"{subset}list0{self.split}.txt"

    def subset(self, subset: str) -> Subset:
        items = read_split_list(self.list_file(subset), self.class_names, labelled=subset == "train")
        records, missing = [], []
        for listed, label in items:
            rel = self._resolver.resolve(listed)
            if rel is None:
                missing.append(listed)
                continue
            match = _GROUP.search(listed)
            # Clips of one group come from one long video: keep them together in holdouts.
            group = f"{self.class_names[label]}/g{match.group(1)}" if match else listed
            records.append(VideoRecord(rel, label, group))
        out = Subset(subset, records, missing)
        summarise_missing(self.dataset, out, len(items), self.video_dir)
        return out


# ---- the DataModule ----------------------------------------------------------------------
class UCF101DataModule(VideoDataModule):
    """UCF-101 from the official `UCF-101/` folder and `ucfTrainTestlist/`.

    Args:
        root: folder holding both (see VideoDataModule for the other arguments).
        split: 1, 2 or 3.
        video_dir: video folder relative to root (None: UCF-101, UCF101 or videos).
        annotation_dir: split-list folder relative to root (None: ucfTrainTestlist, ...).
    """

    dataset_name = "UCF-101"

    def __init__(self, root: str | Path, split: int = 1, video_dir: str | None = None,
                 annotation_dir: str | None = None, **kwargs: Any) -> None:
        super().__init__(root, split, **kwargs)
        self.video_dir, self.annotation_dir = video_dir, annotation_dir
        _ = self.annotations  # fail fast on a wrong root or split, and know the classes now

    def _make_annotations(self) -> UCF101Annotations:
        return UCF101Annotations(self.root, self.split, self.video_dir, self.annotation_dir)
