"""HMDB-51 as distributed: `hmdb51_org.rar` (-> `hmdb51_org/<class>/<video>.avi` once the
per-class archives are extracted) and `test_train_splits.rar`
(-> `testTrainMulti_7030_splits/<class>_test_split<N>.txt`), whose lines read

    April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1

with 1 = train, 2 = test, 0 = not used in this split. Labels are the class's position in
sorted class order (brush_hair = 0, ...).

This file holds the parser (`HMDB51Annotations`) and the dataset's LightningDataModule
(`HMDB51DataModule`), on the split-list bases it shares with UCF-101 (split_lists.py).
"""
from __future__ import annotations

import re
from pathlib import Path

from .records import check_listed_path
from .split_lists import SplitListAnnotations, SplitListDataModule

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


class HMDB51Annotations(SplitListAnnotations):
    """Class names and the train/test subsets of one official split."""

    dataset = "HMDB-51"
    video_dirs = ("hmdb51_org", "hmdb51", "HMDB51", "videos")
    annotation_dirs = ("testTrainMulti_7030_splits", "test_train_splits", "splits", "annotations")
    annotation_folder = "HMDB-51 split folder"

    def _read_lists(self) -> list[str]:
        class_names, self._items = read_hmdb51_splits(self.annotation_dir, self.split)
        return class_names

    def _listed(self, subset: str) -> list[tuple[str, int]]:
        label_of = {c: i for i, c in enumerate(self.class_names)}
        return [(listed, label_of[cls]) for listed, cls in self._items[subset]]

    def _group(self, listed: str, label: int) -> str:
        return hmdb51_source_video(listed, self.class_names[label])


def hmdb51_source_video(listed: str, class_name: str) -> str:
    """The source video a clip was cut from: the part of its name before `_<class>_` (without
    the class folder: clips of one source in two classes stay on one side of a holdout too). HMDB-51 names a clip `<source>_<class>_<visibility, camera, viewpoint, quality
    tags>_<n>.avi`, and clips of one source differ in their tags as well as their number
    (`..._brush_hair_u_nm_np1_ba_goo_0` and `..._brush_hair_h_nm_np2_fr_med_1`), so stripping
    the number alone would split one source between the two sides of a holdout. A name
    without `_<class>_` keeps the old rule: everything before the trailing number."""
    name = listed.rpartition("/")[2]
    cut = name.lower().rfind(f"_{class_name.lower()}_")
    return name[:cut] if cut > 0 else re.sub(r"_\d+\.avi$", "", name, flags=re.IGNORECASE)


class HMDB51DataModule(SplitListDataModule):
    """HMDB-51 from `hmdb51_org/<class>/*.avi` and `testTrainMulti_7030_splits/`.

    Args:
        root: folder holding both (see VideoDataModule for the other arguments).
        split: 1, 2 or 3.
        video_dir: video folder relative to root (None: hmdb51_org, hmdb51, HMDB51 or videos).
        annotation_dir: split-file folder relative to root (None: testTrainMulti_7030_splits, ...).
    """

    dataset_name = "HMDB-51"
    annotations_class = HMDB51Annotations
