"""Index entries as columns: what a warm set-up reads from the index file and hands to datasets.

A Kinetics-700 index holds half a million entries. Made into one `VideoMeta` per video, then
taken apart again into a dataset's arrays, they cost a set-up most of its time, and more per
video the more there are (memory traffic over hundreds of thousands of small objects). So the
index file's columns stay columns: `StoredColumns` holds them as read (numbers as numpy arrays,
the few distinct decoder/depth/layout strings as codes), answers "is every asked-for video
indexed as this index asks?" with array operations, and hands out `MetaColumns` rows without
making an object per video. `VideoIndex` turns them into entries only when it must probe or
change one (index_cache.py).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from .decoders import DECODERS
from .frame_layout import LAYOUTS

LAYOUT_NAMES: tuple[str, ...] = tuple(LAYOUTS)
NO_DECODER = -1  # the decoder code of a bad file (VideoMeta.decoder == '')
# what MetaColumns hold for VideoMeta's decoder and layout strings
DECODER_CODE: dict[str, int] = {b: i for i, b in enumerate(DECODERS)} | {"": NO_DECODER}
LAYOUT_CODE: dict[str, int] = {name: i for i, name in enumerate(LAYOUT_NAMES)}


class MetaColumns(NamedTuple):
    """Index entries of some videos, one row per video, in the order they were asked for."""

    num_frames: np.ndarray  # int64
    size: np.ndarray  # int64, bytes as indexed
    mtime_ns: np.ndarray  # int64, as indexed
    decoder: np.ndarray  # int8: index into DECODERS, NO_DECODER for a bad file
    layout: np.ndarray  # int8: index into LAYOUT_NAMES
    error: list[str]  # '' for a good file

    @classmethod
    def of(cls, metas: Sequence[Any]) -> MetaColumns:
        """From VideoMeta entries (a cold set-up, tests, hand-made metadata)."""
        return cls(np.array([m.num_frames for m in metas], dtype=np.int64),
                   np.array([m.size for m in metas], dtype=np.int64),
                   np.array([m.mtime_ns for m in metas], dtype=np.int64),
                   np.array([DECODER_CODE[m.decoder] for m in metas], dtype=np.int8),
                   np.array([LAYOUT_CODE[m.layout] for m in metas], dtype=np.int8),
                   [m.error for m in metas])

    def __len__(self) -> int:
        return len(self.num_frames)

    @property
    def ok(self) -> np.ndarray:
        """Which files are good (bool per row)."""
        return np.array([not e for e in self.error], dtype=bool)

    def take(self, rows: np.ndarray) -> MetaColumns:
        """These rows (integer positions), in this order."""
        return MetaColumns(self.num_frames[rows], self.size[rows], self.mtime_ns[rows],
                           self.decoder[rows], self.layout[rows], [self.error[i] for i in rows.tolist()])


class StoredColumns:
    """The columns of an index file (version 2) as read: `rels`, `strings` (the coded fields'
    values) and `columns` (VideoMeta field -> list, coded fields as numbers into `strings`)."""

    def __init__(self, rels: list[str], strings: list[str], columns: dict[str, list[Any]],
                 fields: Sequence[str], coded: Iterable[str]) -> None:
        coded = frozenset(coded)
        if any(len(columns[name]) != len(rels) for name in fields):
            raise ValueError("columns of different lengths")
        self.rels, self.strings, self.fields, self.coded = rels, strings, tuple(fields), coded
        self._lists = {name: columns[name] for name in fields}
        self._codes = {name: np.array(columns[name], dtype=np.int64) for name in coded}
        if any(len(c) and (c.min() < 0 or c.max() >= len(strings)) for c in self._codes.values()):
            raise IndexError("a coded field points outside the index's strings")
        self._row_of: dict[str, int] | None = None
        self._numbers: dict[str, np.ndarray] = {}  # numeric columns as arrays, made when first taken

    def __len__(self) -> int:
        return len(self.rels)

    def entries(self, make: Any) -> dict[str, Any]:
        """rel -> make(*fields) for every entry (VideoMeta._make of the row)."""
        strings = self.strings
        columns = [list(map(strings.__getitem__, self._lists[name])) if name in self.coded
                   else self._lists[name] for name in self.fields]
        return dict(zip(self.rels, map(make, zip(*columns)), strict=True))

    def rows(self, rels: Sequence[str]) -> np.ndarray:
        """Row of each path (-1 where the index has none)."""
        if self._row_of is None:
            self._row_of = dict(zip(self.rels, range(len(self.rels))))
        row_of = self._row_of
        return np.fromiter((row_of.get(rel, -1) for rel in rels), dtype=np.int64, count=len(rels))

    def matches(self, rows: np.ndarray, field: str, values: Iterable[str]) -> np.ndarray:
        """Whether the coded `field` of each row is one of `values` (bool per row)."""
        values = set(values)
        wanted = [i for i, s in enumerate(self.strings) if s in values]
        return np.isin(self._codes[field][rows], wanted)

    def take(self, rows: np.ndarray) -> MetaColumns:
        """MetaColumns of these rows (all >= 0), no object per row but the error strings."""
        # the index's string codes -> MetaColumns' codes (strings of other fields map to -1)
        decoder_code = np.array([DECODER_CODE.get(s, NO_DECODER) for s in self.strings], dtype=np.int8)
        layout_code = np.array([LAYOUT_CODE.get(s, -1) for s in self.strings], dtype=np.int8)
        layouts = layout_code[self._codes["layout"][rows]]
        if len(layouts) and layouts.min() < 0:
            raise ValueError("an index entry names an unknown frame layout")
        errors = self._lists["error"]

        def numbers(name: str) -> np.ndarray:
            if name not in self._numbers:  # once, however many subsets take rows
                self._numbers[name] = np.asarray(self._lists[name], dtype=np.int64)
            return self._numbers[name][rows]

        return MetaColumns(numbers("num_frames"), numbers("size"), numbers("mtime_ns"),
                           decoder_code[self._codes["decoder"][rows]], layouts,
                           [errors[i] for i in rows.tolist()])
