"""Kinetics-400/600/700 in the layouts people actually have on disk.

- 'csv' (official): `train.csv`, `validate.csv`, `test.csv` with columns
  `label,youtube_id,time_start,time_end,split[,is_cc]` (the test CSV may lack `label`);
  videos named `<youtube_id>_<start:06d>_<end:06d>.<ext>`, usually as
  `<split>/<label>/<name>.mp4`. Files are found by name anywhere under the video
  folder, so flat `<split>/<name>.mp4` copies and other extensions work too.
- 'list': a plain text file per subset, one `path label` per line (path relative to the
  video folder; label an integer, or a class name, which may contain spaces).
- 'folder': `<split>/<class>/<video>` with one folder per class.

Class labels are positions in sorted class-name order (the train annotations' classes),
unless `classes_file` (one name per line) fixes the order. Annotated videos that are not on
disk are reported once per subset and excluded.

This file holds the parser (`KineticsAnnotations`) and the dataset's LightningDataModule
(`KineticsDataModule`, on the shared base in datamodule.py).
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any, Literal

from .datamodule import VideoDataModule
from .records import Subset, VideoRecord, check_listed_path, existing_root, summarise_missing
from .video_files import CACHE_DIRNAME, is_video_file, walk_dataset

log = logging.getLogger(__name__)

AnnotationFormat = Literal["csv", "list", "folder"]
ANNOTATION_FORMATS: tuple[str, ...] = ("csv", "list", "folder")
SUBSETS: tuple[str, ...] = ("train", "val", "test")
# Folder names each subset goes by in the wild.
SPLIT_DIRS: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "val": ("val", "validate", "valid", "validation"),
    "test": ("test",),
}
_CSV_SUFFIX = {"train": ("train",), "val": ("validate", "val"), "test": ("test",)}
_LIST_SUFFIX = {"train": ("train",), "val": ("val", "validate"), "test": ("test",)}


def kinetics_file_stem(youtube_id: str, time_start: float | str, time_end: float | str) -> str:
    """`<youtube_id>_<start:06d>_<end:06d>`, the name the official downloader gives a clip."""
    return f"{youtube_id}_{int(float(time_start)):06d}_{int(float(time_end)):06d}"


def read_kinetics_csv(path: str | Path) -> list[tuple[str | None, str]]:
    """An official CSV -> [(label or None, file stem)]."""
    path = Path(path)
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        columns = set(reader.fieldnames or [])
        needed = {"youtube_id", "time_start", "time_end"}
        if not needed <= columns:
            raise ValueError(f"{path}: expected columns label,youtube_id,time_start,time_end,split; "
                             f"missing {sorted(needed - columns)} (has {sorted(columns)})")
        rows = []
        for n, row in enumerate(reader, 2):
            try:
                stem = kinetics_file_stem(row["youtube_id"], row["time_start"], row["time_end"])
            except (TypeError, ValueError) as err:
                raise ValueError(f"{path}:{n}: bad time_start/time_end ({err})") from None
            label = (row.get("label") or "").strip() or None
            rows.append((label, stem))
    return rows


def read_path_label_list(path: str | Path) -> list[tuple[str, str]]:
    """`path label` lines -> [(path, label as written)].

    With an integer label the path may contain spaces; with a class name as label the
    name may contain spaces (Kinetics' "playing guitar") and the path may not. Paths are
    relative to the video folder; an absolute one, or one climbing out with '..', is an error.
    """
    path = Path(path)
    items = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) == 2 and not parts[1].lstrip("-").isdigit():
            parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise ValueError(f"{path}:{n}: expected '<path> <label>', got {line!r}")
        items.append((check_listed_path(parts[0], f"{path}:{n}"), parts[1]))
    return items


def _scan_videos(video_dir: Path) -> dict[str, list[str]]:
    """file stem -> paths (relative to video_dir) of every video file under video_dir."""
    table: dict[str, list[str]] = {}
    for folder, filenames in walk_dataset(video_dir):
        for name in filenames:
            if is_video_file(name):
                table.setdefault(Path(name).stem, []).append((folder / name).relative_to(video_dir).as_posix())
    return table


def _find_annotation(root: Path, subset: str, suffixes: tuple[str, ...], ext: str) -> Path:
    folders = [root / "annotations", root]
    found: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob(f"*{ext}")):
            stem = path.stem.lower()
            if any(stem == s or stem.endswith(("_" + s, "-" + s)) for s in suffixes):
                found.append(path)
        if found:
            break
    if len(found) != 1:
        what = "no file" if not found else f"{len(found)} files ({', '.join(map(str, found))})"
        raise FileNotFoundError(
            f"Kinetics {subset} annotations: found {what} named like {suffixes[0]}{ext} in "
            f"{root / 'annotations'} or {root}; pass {subset}_annotations=PATH")
    return found[0]


class KineticsAnnotations:
    """Class names and subsets ('train', 'val', 'test') of a Kinetics copy."""

    dataset = "Kinetics"

    def __init__(self, root: str | Path, annotation_format: str = "csv",
                 video_dir: str | Path | None = None,
                 train_annotations: str | Path | None = None,
                 val_annotations: str | Path | None = None,
                 test_annotations: str | Path | None = None,
                 classes_file: str | Path | None = None) -> None:
        if annotation_format not in ANNOTATION_FORMATS:
            raise ValueError(f"annotation_format={annotation_format!r} is not supported; "
                             f"choose one of {ANNOTATION_FORMATS}")
        self.root = existing_root(root)
        self.format = annotation_format
        self.video_dir = self.root / video_dir if video_dir is not None else self.root
        self._given = {"train": train_annotations, "val": val_annotations, "test": test_annotations}
        self._scan: dict[str, list[str]] | None = None
        if classes_file is not None:
            path = self.root / classes_file
            self.class_names = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
            if len(set(self.class_names)) != len(self.class_names):
                raise ValueError(f"classes_file={str(classes_file)!r} lists a class twice")
        else:
            self.class_names = self._classes_from_train()
        self._label_of = {name: i for i, name in enumerate(self.class_names)}

    # ---- where things are ----------------------------------------------------------
    def annotation_file(self, subset: str) -> Path:
        if subset not in SUBSETS:
            raise ValueError(f"subset={subset!r} is not one of {SUBSETS}")
        given = self._given[subset]
        if given is not None:
            path = self.root / given
            if not path.is_file():
                raise FileNotFoundError(f"{subset}_annotations={str(given)!r}: no such file {path}")
            return path
        if self.format == "csv":
            return _find_annotation(self.root, subset, _CSV_SUFFIX[subset], ".csv")
        return _find_annotation(self.root, subset, _LIST_SUFFIX[subset], ".txt")

    def split_dir(self, subset: str) -> Path:
        for name in SPLIT_DIRS[subset]:
            if (self.video_dir / name).is_dir():
                return self.video_dir / name
        raise FileNotFoundError(f"Kinetics {subset}: no folder named any of {SPLIT_DIRS[subset]} "
                                f"under {self.video_dir}")

    def _classes_from_train(self) -> list[str]:
        if self.format == "folder":
            train = self.split_dir("train")
            names = sorted(p.name for p in train.iterdir() if p.is_dir() and p.name != CACHE_DIRNAME)
        elif self.format == "csv":
            names = sorted({lab for lab, _ in read_kinetics_csv(self.annotation_file("train")) if lab})
        else:
            labels = [lab for _, lab in read_path_label_list(self.annotation_file("train"))]
            if all(lab.lstrip("-").isdigit() for lab in labels):
                return [str(i) for i in range(max(int(x) for x in labels) + 1)] if labels else []
            names = sorted(set(labels))
        if not names:
            raise ValueError(f"Kinetics: no classes found in the train annotations under {self.root}")
        return names

    def _label(self, label: str, where: str) -> int:
        label_of = self._label_of
        if label in label_of:
            return label_of[label]
        if self.format == "list" and label.lstrip("-").isdigit():
            value = int(label)  # integer labels index class_names directly
            if not 0 <= value < len(self.class_names):
                raise ValueError(f"{where}: label {value} is outside 0..{len(self.class_names) - 1}")
            return value
        raise ValueError(f"{where}: label {label!r} is not one of the {len(self.class_names)} "
                         "train classes")

    # ---- subsets -------------------------------------------------------------------
    def subset(self, subset: str) -> Subset:
        if self.format == "folder":
            return self._folder_subset(subset)
        if self.format == "list":
            return self._list_subset(subset)
        return self._csv_subset(subset)

    def _folder_subset(self, subset: str) -> Subset:
        base = self.split_dir(subset)
        records = []
        label_of = self._label_of
        for cls_dir in sorted(p for p in base.iterdir() if p.is_dir() and p.name != CACHE_DIRNAME):
            if cls_dir.name not in label_of:
                raise ValueError(f"Kinetics {subset}: class folder {cls_dir.name!r} is not one of the "
                                 "train classes")
            for path in sorted(cls_dir.rglob("*")):
                if is_video_file(path) and path.is_file():
                    rel = path.relative_to(self.root).as_posix()
                    records.append(VideoRecord(rel, label_of[cls_dir.name], rel))
        return Subset(subset, records)

    def _list_subset(self, subset: str) -> Subset:
        path = self.annotation_file(subset)
        items = read_path_label_list(path)
        records, missing = [], []
        for listed, label in items:
            file = self.video_dir / listed  # listed is relative and stays inside (checked)
            if not file.is_file():
                missing.append(listed)
                continue
            rel = file.relative_to(self.root).as_posix()
            records.append(VideoRecord(rel, self._label(label, str(path)), rel))
        out = Subset(subset, records, missing)
        summarise_missing(self.dataset, out, len(items), self.video_dir)
        return out

    def _csv_subset(self, subset: str) -> Subset:
        path = self.annotation_file(subset)
        rows = read_kinetics_csv(path)
        if self._scan is None:
            self._scan = _scan_videos(self.video_dir)
        split_names = {name.lower() for name in SPLIT_DIRS[subset]}
        records, missing = [], []
        unlabelled = 0
        for label, stem in rows:
            youtube_id = stem[:-14]  # strip "_SSSSSS_EEEEEE"; ids may contain "_"
            # Some downloaders name clips by YouTube id alone.
            candidates = self._scan.get(stem) or self._scan.get(youtube_id, [])
            if not candidates:
                missing.append(stem)
                continue
            # Prefer the copy in this subset's folder when a clip appears in several.
            in_split = [c for c in candidates if c.split("/")[0].lower() in split_names]
            rel = (self.video_dir / (in_split or candidates)[0]).relative_to(self.root).as_posix()
            if label is None:
                unlabelled += 1
                value = -1
            else:
                value = self._label(label, str(path))
            records.append(VideoRecord(rel, value, youtube_id))
        if unlabelled:
            log.warning("Kinetics %s: %d of %d videos in %s have no label (label -1); they cannot "
                        "be scored", subset, unlabelled, len(rows), path)
        out = Subset(subset, records, missing)
        summarise_missing(self.dataset, out, len(rows), self.video_dir)
        return out


# ---- the DataModule ----------------------------------------------------------------------
class KineticsDataModule(VideoDataModule):
    """Kinetics-400/600/700 from the official CSVs, a `path label` list, or class folders.

    Args:
        root: dataset root (see VideoDataModule for the other arguments).
        annotation_format: 'csv' (official), 'list' or 'folder'.
        video_dir: folder holding the split folders, relative to root (None: root).
        train_annotations, val_annotations, test_annotations: annotation files relative to
            root (None: found under root/annotations or root by name, e.g. train.csv,
            validate.csv, test.csv).
        classes_file: class names, one per line, fixing label order (None: sorted train
            classes).
        test_subset: which subset the test loader uses: 'val' (default; Kinetics test labels
            are not public for every version) or 'test'.
        val_source: 'holdout' (default: a class-stratified part of train) or 'val' (the official
            validation set, which is also the reported test set while test_subset='val').
    """

    dataset_name = "Kinetics"
    official_subsets = ("train", "val", "test")
    val_sources = ("holdout", "val")

    def __init__(self, root: str | Path, annotation_format: Literal["csv", "list", "folder"] = "csv",
                 video_dir: str | None = None, train_annotations: str | None = None,
                 val_annotations: str | None = None, test_annotations: str | None = None,
                 classes_file: str | None = None, test_subset: Literal["val", "test"] = "val",
                 val_source: str = "holdout", **kwargs: Any) -> None:
        kwargs.setdefault("split", 0)
        super().__init__(root, val_source=val_source, **kwargs)
        if test_subset not in ("val", "test"):
            raise ValueError(f"test_subset={test_subset!r} is not supported; choose 'val' or 'test'")
        self.annotation_format, self.video_dir = annotation_format, video_dir
        self.annotation_files = {"train": train_annotations, "val": val_annotations,
                                 "test": test_annotations}
        self.classes_file, self._test_subset = classes_file, test_subset
        _ = self.annotations  # fail fast on a wrong root or split

    @property
    def test_subset_name(self) -> str:
        return self._test_subset

    def _describe(self, stage: str) -> str:
        return f"Kinetics {stage}"

    def _make_annotations(self) -> KineticsAnnotations:
        return KineticsAnnotations(self.root, self.annotation_format, self.video_dir,
                                   self.annotation_files["train"], self.annotation_files["val"],
                                   self.annotation_files["test"], self.classes_file)
