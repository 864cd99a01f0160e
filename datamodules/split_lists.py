"""What UCF-101 and HMDB-51 share: a video folder beside a folder of split lists, and three
official train/test splits.

`SplitListAnnotations` checks the split, finds both folders and turns a dataset's listing
(listed path and label, per subset) into records, reporting listed videos that are not on
disk; `SplitListDataModule` is the DataModule of such a dataset, taking the two folders as
arguments. ucf101.py and hmdb51.py say only how their files read and how clips group.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from .datamodule import VideoDataModule
from .listing import VideoListing
from .records import PathResolver, Subset, VideoRecord, existing_root, find_dir, summarise_missing


class SplitListAnnotations:
    """Class names and train/test subsets of one official split.

    Subclasses set the class attributes and read their files in `_read_lists` (returns the
    class names), `_listed` (a subset's (path relative to the video folder, 0-based label))
    and `_group` (clips cut from one source video share a group, so a holdout keeps them
    together).
    """

    dataset: ClassVar[str]
    splits: ClassVar[tuple[int, ...]] = (1, 2, 3)
    subsets: ClassVar[tuple[str, ...]] = ("train", "test")
    video_dirs: ClassVar[tuple[str, ...]]  # tried in order under root when video_dir is None
    annotation_dirs: ClassVar[tuple[str, ...]]  # likewise for annotation_dir
    annotation_folder: ClassVar[str]  # what the lists' folder is called in errors

    def __init__(self, root: str | Path, split: int = 1, video_dir: str | Path | None = None,
                 annotation_dir: str | Path | None = None, listing: VideoListing | None = None) -> None:
        if split not in self.splits:
            raise ValueError(f"split={split!r} is not an official {self.dataset} split; choose one of "
                             f"{self.splits}")
        self.root = existing_root(root)
        self.split = split
        self.video_dir = (self.root / video_dir if video_dir is not None else
                          find_dir(self.root, self.video_dirs, f"{self.dataset} video folder", "video_dir"))
        self.annotation_dir = (self.root / annotation_dir if annotation_dir is not None else
                               find_dir(self.root, self.annotation_dirs, self.annotation_folder,
                                        "annotation_dir"))
        self.class_names = self._read_lists()
        # What is on disk, from the folder listing (refreshed here unless the caller has one).
        self._resolver = PathResolver(self.root, self.video_dir, listing or VideoListing.of(self.root))

    def _read_lists(self) -> list[str]:
        raise NotImplementedError

    def _listed(self, subset: str) -> list[tuple[str, int]]:
        raise NotImplementedError

    def _group(self, listed: str, label: int) -> str:
        raise NotImplementedError

    def check_subset(self, subset: str) -> None:
        if subset not in self.subsets:
            raise ValueError(f"subset={subset!r}: {self.dataset} splits have "
                             + " and ".join(map(repr, self.subsets)))

    def subset(self, subset: str) -> Subset:
        self.check_subset(subset)
        items = self._listed(subset)
        records, missing = [], []
        for listed, label in items:
            rel = self._resolver.resolve(listed)
            if rel is None:
                missing.append(listed)
            else:
                records.append(VideoRecord(rel, label, self._group(listed, label)))
        out = Subset(subset, records, missing)
        summarise_missing(self.dataset, out, len(items), self.video_dir)
        return out

    def release_tables(self) -> None:
        """Drop what set-up looked paths up in (VideoDataModule.setup), made again when asked."""
        self._resolver.release_tables()


class SplitListDataModule(VideoDataModule):
    """The DataModule of a split-list dataset (`annotations_class` reads its files).

    Args:
        root: folder holding the videos and the split lists (see VideoDataModule for the
            other arguments).
        split: 1, 2 or 3.
        video_dir: video folder relative to root (None: the dataset's usual names).
        annotation_dir: split-list folder relative to root (None: the dataset's usual names).
    """

    annotations_class: ClassVar[type[SplitListAnnotations]]

    def __init__(self, root: str | Path, split: int = 1, video_dir: str | None = None,
                 annotation_dir: str | None = None, **kwargs: Any) -> None:
        super().__init__(root, split, **kwargs)
        self.video_dir, self.annotation_dir = video_dir, annotation_dir
        _ = self.annotations  # fail fast on a wrong root or split, and know the classes now

    def _make_annotations(self) -> SplitListAnnotations:
        return self.annotations_class(self.root, self.split, self.video_dir, self.annotation_dir,
                                      self.listing)
