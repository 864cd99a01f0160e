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
import io
import logging
from pathlib import Path
from typing import Any, Literal

from .datamodule import VideoDataModule
from .listing import VideoListing
from .records import Subset, VideoRecord, check_listed_path, existing_root, summarise_missing

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
    return f"{youtube_id}_{_seconds(time_start):06d}_{_seconds(time_end):06d}"


def _seconds(value: float | str) -> int:
    # the official CSVs write whole seconds ("10"); int() alone is several times faster than
    # int(float()), which 545,000 rows of Kinetics-700 notice
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return int(float(value))


def _csv_rows(text: str) -> list[list[str]]:
    """The rows of a CSV text. A line without quotes is split on commas, which is what the csv
    module does with it, at a fraction of the cost (545,000 rows of Kinetics-700: 0.5 s to
    0.1 s here); a line with quotes goes through the csv module, and a file in which a quoted
    field may span lines (a line with an odd number of quotes) goes through it whole."""
    lines = text.splitlines()
    if any(line.count('"') % 2 for line in lines if '"' in line):
        return list(csv.reader(io.StringIO(text)))
    return [next(csv.reader([line])) if '"' in line else line.split(",") for line in lines]


def read_kinetics_columns(path: str | Path) -> tuple[list[str | None], list[str]]:
    """An official CSV -> (labels, file stems), one of each per non-empty row; a label is None
    where the row has none (a test CSV). Column by column: Kinetics-700's 545,000 rows are read
    at every set-up, and a comprehension over a column costs a fraction of a function call
    per row."""
    path = Path(path)
    with path.open(newline="") as fh:
        text = fh.read()
    plain = _plain_columns(text)
    if plain is not None:
        return plain
    rows = _csv_rows(text)
    header = _check_header(path, rows[0] if rows else [])
    yid, start, end = (header.index(c) for c in ("youtube_id", "time_start", "time_end"))
    stems = [_row_stem(path, n, row, yid, start, end) for n, row in enumerate(rows[1:], 2) if row]
    if "label" not in header:
        return [None] * len(stems), stems
    lab = header.index("label")
    return [(row[lab].strip() or None) if lab < len(row) else None for row in rows[1:] if row], stems


def _check_header(path: Path, row: list[str]) -> list[str]:
    header = [name.strip() for name in row]
    needed = {"youtube_id", "time_start", "time_end"}
    if not needed <= set(header):
        raise ValueError(f"{path}: expected columns label,youtube_id,time_start,time_end,split; "
                         f"missing {sorted(needed - set(header))} (has {sorted(header)})")
    return header


def _plain_columns(text: str) -> tuple[list[str | None], list[str]] | None:
    """read_kinetics_columns for the common file: no quotes, no blank lines, every row as many
    fields as the header, times in whole seconds. The text is split once into fields and the
    columns are slices of that list, which is several times faster than a list per row; any
    other file (None) goes row by row."""
    text = text.replace("\r\n", "\n").rstrip("\n")
    if '"' in text or "\n\n" in text or "\r" in text or "\n" not in text:
        return None
    head, body = text.split("\n", 1)
    header = [name.strip() for name in head.split(",")]
    if not {"youtube_id", "time_start", "time_end"} <= set(header):
        return None  # the row-by-row path says what is missing
    width, rows = len(header), body.count("\n") + 1
    fields = body.replace("\n", ",").split(",")
    if len(fields) != width * rows:
        return None  # a row with another number of fields
    ids, starts, ends = (fields[header.index(c)::width] for c in ("youtube_id", "time_start", "time_end"))
    if not (_whole_seconds(starts) and _whole_seconds(ends)):
        return None
    stems = [f"{y}_{s.zfill(6)}_{e.zfill(6)}" for y, s, e in zip(ids, starts, ends, strict=True)]
    if "label" not in header:
        return [None] * rows, stems
    return [label.strip() or None for label in fields[header.index("label")::width]], stems


def _whole_seconds(column: list[str]) -> bool:
    """Whether every field is 1 to 6 ASCII digits, for which `zfill(6)` is `f"{int(s):06d}"`
    (a string method per field instead of parsing and formatting a number)."""
    joined = "".join(column)
    return not column or (joined.isascii() and joined.isdigit()
                          and min(map(len, column)) >= 1 and max(map(len, column)) <= 6)


def _row_stem(path: Path, line: int, row: list[str], yid: int, start: int, end: int) -> str:
    try:
        return kinetics_file_stem(row[yid], row[start], row[end])
    except (ValueError, IndexError) as err:
        raise ValueError(f"{path}:{line}: bad time_start/time_end ({err})") from None


def read_kinetics_csv(path: str | Path) -> list[tuple[str | None, str]]:
    """An official CSV -> [(label or None, file stem)]."""
    return list(zip(*read_kinetics_columns(path)))


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


def _videos_by_stem(listing: VideoListing, video_prefix: str) -> dict[str, list[str]]:
    """file stem -> paths (relative to the video folder) of every video file under it."""
    table: dict[str, list[str]] = {}
    for rel in listing.files(video_prefix):
        inside = rel[len(video_prefix):]
        name = inside.rsplit("/", 1)[-1]
        table.setdefault(name.rsplit(".", 1)[0], []).append(inside)
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
                 classes_file: str | Path | None = None, listing: VideoListing | None = None) -> None:
        if annotation_format not in ANNOTATION_FORMATS:
            raise ValueError(f"annotation_format={annotation_format!r} is not supported; "
                             f"choose one of {ANNOTATION_FORMATS}")
        self.root = existing_root(root)
        self.format = annotation_format
        self.video_dir = self.root / video_dir if video_dir is not None else self.root
        inside = self.video_dir.relative_to(self.root).as_posix()
        self._video_prefix = "" if inside == "." else inside + "/"  # video folder, relative to root
        # What is on disk, from the folder listing (refreshed here unless the caller has one).
        self.listing = listing or VideoListing.of(self.root)
        self._given = {"train": train_annotations, "val": val_annotations, "test": test_annotations}
        self._by_stem: dict[str, list[str]] | None = None
        self._columns: dict[str, tuple[list[str | None], list[str]]] = {}  # subset -> its CSV, read once
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

    def split_dir(self, subset: str) -> str:
        """The subset's folder, relative to the root."""
        present = self.listing.folders(self._video_prefix)
        for name in SPLIT_DIRS[subset]:
            if name in present:
                return self._video_prefix + name
        raise FileNotFoundError(f"Kinetics {subset}: no folder named any of {SPLIT_DIRS[subset]} "
                                f"under {self.video_dir}")

    def _classes_from_train(self) -> list[str]:
        if self.format == "folder":
            names = self.listing.folders(self.split_dir("train"))
        elif self.format == "csv":
            names = sorted(set(self._csv_columns("train")[0]) - {None})
        else:
            labels = [lab for _, lab in read_path_label_list(self.annotation_file("train"))]
            if all(lab.lstrip("-").isdigit() for lab in labels):
                return [str(i) for i in range(max(int(x) for x in labels) + 1)] if labels else []
            names = sorted(set(labels))
        if not names:
            raise ValueError(f"Kinetics: no classes found in the train annotations under {self.root}")
        return names

    def release_tables(self) -> None:
        """Drop the CSVs' rows and the lookup tables (VideoDataModule.setup), read again when asked."""
        self._columns.clear()
        self._by_stem = None
        self.listing.release_tables()

    def _csv_columns(self, subset: str) -> tuple[list[str | None], list[str]]:
        if subset not in self._columns:
            self._columns[subset] = read_kinetics_columns(self.annotation_file(subset))
        return self._columns[subset]

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
        for name in self.listing.folders(base):
            if name not in label_of:
                raise ValueError(f"Kinetics {subset}: class folder {name!r} is not one of the "
                                 "train classes")
            for rel in self.listing.files(f"{base}/{name}"):
                records.append(VideoRecord(rel, label_of[name], rel))
        return Subset(subset, records)

    def _list_subset(self, subset: str) -> Subset:
        path = self.annotation_file(subset)
        items = read_path_label_list(path)
        records, missing = [], []
        for listed, label in items:
            rel = self._video_prefix + listed  # listed is relative and stays inside (checked)
            if rel not in self.listing:
                missing.append(listed)
                continue
            records.append(VideoRecord(rel, self._label(label, str(path)), rel))
        out = Subset(subset, records, missing)
        summarise_missing(self.dataset, out, len(items), self.video_dir)
        return out

    def _csv_subset(self, subset: str) -> Subset:
        path = self.annotation_file(subset)
        labels, stems = self._csv_columns(subset)
        split_names = {name.lower() for name in SPLIT_DIRS[subset]}
        # Where the official downloader puts a clip, if that folder exists: one lookup a row
        # in the common case; the table of every file by name only for the other rows.
        # Column by column (comprehensions, not a loop body per row): Kinetics-700 has
        # half a million rows.
        folders = set(self.listing.folders(self._video_prefix))
        official = next((self._video_prefix + name for name in SPLIT_DIRS[subset] if name in folders), None)
        present, label_of = self.listing.paths, self._label_of
        rels: list[str | None] = ([f"{official}/{lab}/{stem}.mp4" if lab else None
                                   for lab, stem in zip(labels, stems, strict=True)]
                                  if official else [None] * len(stems))
        for i in [i for i, rel in enumerate(rels) if rel not in present]:  # usually none
            rels[i] = self._find(stems[i], stems[i][:-14], split_names)
        values = [-1 if lab is None else label_of.get(lab, -2) for lab in labels]
        for i in [i for i, v in enumerate(values) if v == -2 and rels[i] is not None]:
            values[i] = self._label(labels[i], str(path))  # a list's integer label, or an error
        # the group is the YouTube id: the stem without "_SSSSSS_EEEEEE" (ids may contain "_")
        records = [VideoRecord(rel, value, stem[:-14])
                   for rel, value, stem in zip(rels, values, stems, strict=True) if rel is not None]
        missing = [stem for rel, stem in zip(rels, stems, strict=True) if rel is None]
        unlabelled = sum(1 for rel, value in zip(rels, values, strict=True) if rel is not None and value == -1)
        if unlabelled:
            log.warning("Kinetics %s: %d of %d videos in %s have no label (label -1); they cannot "
                        "be scored", subset, unlabelled, len(stems), path)
        out = Subset(subset, records, missing)
        summarise_missing(self.dataset, out, len(stems), self.video_dir)
        return out

    def _find(self, stem: str, youtube_id: str, split_names: set[str]) -> str | None:
        """A clip found by name anywhere under the video folder (relative to the root)."""
        if self._by_stem is None:
            self._by_stem = _videos_by_stem(self.listing, self._video_prefix)
        # Some downloaders name clips by YouTube id alone.
        candidates = self._by_stem.get(stem) or self._by_stem.get(youtube_id, [])
        if len(candidates) > 1:  # prefer the copy in this subset's folder
            candidates = [c for c in candidates if c.split("/")[0].lower() in split_names] or candidates
        return self._video_prefix + candidates[0] if candidates else None


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
                                   self.annotation_files["test"], self.classes_file, self.listing)
