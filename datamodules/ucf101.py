"""UCF-101 as distributed: `UCF101.rar` (-> `UCF-101/<Class>/v_<Class>_gXX_cYY.avi`) and
`UCF101TrainTestSplits-RecognitionTask.zip` (-> `ucfTrainTestlist/`):

    classInd.txt        "1 ApplyEyeMakeup"                               (1-based)
    trainlist0N.txt     "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"  (1-based label)
    testlist0N.txt      "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"    (no label)

Labels become 0-based. Test labels come from the folder name, matched ignoring case:
the files of class `HandstandPushups` are named `v_HandStandPushups_*`, and some copies
renamed the folder to match.

This file holds the parser (`UCF101Annotations`) and the dataset's LightningDataModule
(`UCF101DataModule`), on the split-list bases it shares with HMDB-51 (split_lists.py).
"""
from __future__ import annotations

import re
from pathlib import Path

from .records import check_listed_path
from .split_lists import SplitListAnnotations, SplitListDataModule

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


class UCF101Annotations(SplitListAnnotations):
    """Class names (classInd.txt) and the train/test lists of one official split."""

    dataset = "UCF-101"
    video_dirs = ("UCF-101", "UCF101", "videos")
    annotation_dirs = ("ucfTrainTestlist", "UCF101TrainTestSplits-RecognitionTask", "splits", "annotations")
    annotation_folder = "ucfTrainTestlist folder"

    def _read_lists(self) -> list[str]:
        return read_class_index(self.annotation_dir / "classInd.txt")

    def list_file(self, subset: str) -> Path:
        self.check_subset(subset)
        return self.annotation_dir / f"{subset}list0{self.split}.txt"

    def _listed(self, subset: str) -> list[tuple[str, int]]:
        return read_split_list(self.list_file(subset), self.class_names, labelled=subset == "train")

    def _group(self, listed: str, label: int) -> str:
        # `_gXX_` names the long source video the clip was cut from.
        match = _GROUP.search(listed)
        return f"{self.class_names[label]}/g{match.group(1)}" if match else listed


class UCF101DataModule(SplitListDataModule):
    """UCF-101 from the official `UCF-101/` folder and `ucfTrainTestlist/`.

    Args:
        root: folder holding both (see VideoDataModule for the other arguments).
        split: 1, 2 or 3.
        video_dir: video folder relative to root (None: UCF-101, UCF101 or videos).
        annotation_dir: split-list folder relative to root (None: ucfTrainTestlist, ...).
    """

    dataset_name = "UCF-101"
    annotations_class = UCF101Annotations
