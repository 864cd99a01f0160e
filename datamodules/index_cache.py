"""A per-dataset-root cache of video metadata: frame count, fps, size, decodable or not.

Probing a video (open, count frames, decode a frame or two) costs milliseconds, which
adds up to minutes on a 13k-video dataset and must not happen every epoch. `VideoIndex`
probes each file once, keyed by its path relative to the dataset root and invalidated by
size and mtime, and saves the result as JSON in `<root>/.softpool_video/index.json` (or
under `~/.cache/softpool_video/` when the root is read-only). Whether a file changed is
asked of the folder listing when there is one (listing.py: only files in folders that
changed are stat'ed, which keeps a Kinetics-700 set-up in seconds), else of the file.

Exact frames. The probe also records each file's frame layout (frame_layout.py): how its
stream orders frames, and so which decoders number them exactly. `VideoMeta.decoder` is
always one of those: a file that decord would misnumber (B-frames in AVI, DivX/XviD packed
B-frames, open groups of pictures) is read by PyAV even when decord is asked for, and never
falls back to decord.

Bad videos. A probe marks a file bad when it is empty, cannot be opened, has no
frames, holds fewer frames than its container declares (truncated), or its first or
last frame cannot be decoded by either decoder. Datasets exclude bad files at setup and
log their count and paths. A file that passes the probe but fails later, at read time,
is appended to `read_failures.jsonl` next to the index (DataLoader workers cannot share
counters with the main process; a file can); the next probe treats it as bad, unless it
changed after it was indexed (the record says what the reader had indexed): that file is
probed again.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from softpool_video.reporting import write_json_atomic

from .decoders import DamagedStream, DecodeError, PyAVReader, check_decoder, reader_class
from .frame_layout import LAYOUTS, PLAIN, decoder_order
from .index_columns import MetaColumns, StoredColumns
from .listing import VideoListing
from .video_files import cache_folder

log = logging.getLogger(__name__)

ProbeDepth = Literal["header", "fast", "full"]
PROBE_DEPTHS: tuple[str, ...] = ("header", "fast", "full")
INDEX_VERSION = 3  # 2: frame layout per file; 3: the column 'backend' is called 'decoder'
_RENAMED_COLUMNS = {2: {"backend": "decoder"}}  # read from older versions, renamed on load
# A container may declare a few frames more than it holds (dropped frames, an AVI header
# written before the last packets); a larger shortfall is a truncated or damaged file.
# Lenient on purpose: losing a good video to a false alarm costs more than keeping one
# that misses its last few frames.
TRUNCATION_TOLERANCE_FRAMES = 2
TRUNCATION_TOLERANCE_FRACTION = 0.05


class VideoMeta(NamedTuple):
    """What the index knows about one file. `error` is empty for a good video. A named tuple:
    an index holds hundreds of thousands, made and kept at a fraction of a dataclass's cost."""

    num_frames: int
    fps: float
    width: int
    height: int
    decoder: str  # the decoder that decoded it ('' when bad)
    error: str
    size: int
    mtime_ns: int
    requested: str  # the decoder asked for when probing
    depth: str  # header | fast | full
    layout: str = PLAIN  # frame layout (frame_layout.py): which decoders read it exactly

    @property
    def ok(self) -> bool:
        return not self.error


# VideoMeta fields stored in the index file as numbers into its list of strings
_CODED_FIELDS = frozenset({"decoder", "requested", "depth", "layout"})


def _depth_rank(depth: str) -> int:
    return PROBE_DEPTHS.index(depth)


def _bad(error: str, size: int, mtime_ns: int, requested: str, depth: str,
         num_frames: int = 0, fps: float = 0.0, layout: str = PLAIN) -> VideoMeta:
    return VideoMeta(num_frames, fps, 0, 0, "", error, size, mtime_ns, requested, depth, layout)


def _stream_header(container: Any, path: str) -> tuple[int, float, int, int, bool]:
    """Declared frame count (0 if unknown), fps, width, height, from the container header;
    and whether the stream reorders frames (has B-frames), which decides if the packets must
    be demuxed to find the frame layout."""
    if not container.streams.video:
        raise DecodeError(path, "pyav", "no video stream")
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate
    return (int(stream.frames or 0), float(rate) if rate else 0.0,
            int(stream.codec_context.width), int(stream.codec_context.height),
            bool(stream.codec_context.has_b_frames))


def _header(path: str) -> tuple[int, float, int, int, bool]:
    import av

    with av.open(path) as container:
        return _stream_header(container, path)


def _decode_all(reader: Any) -> None:
    for start in range(0, reader.num_frames, 64):
        reader.get(np.arange(start, min(start + 64, reader.num_frames)))


def probe_video(path: str | Path, decoder: str = "decord", depth: str = "fast",
                fallback: bool = True) -> VideoMeta:
    """Probe one file. Never raises for a bad video: the reason is in `VideoMeta.error`.

    depth: 'header' opens the file and counts frames (no decoding); 'fast' also decodes
    the first and the last frame; 'full' decodes every frame (slow, thorough), also with PyAV
    when decord reads the file (PyAV's reader refuses a damaged stream, decoders.DamagedStream;
    decord's only sees the errors its FFmpeg logs, decoder_errors.py). A stream with
    B-frames is also demuxed by PyAV to find its frame layout (frame_layout.py); only decoders
    exact for that layout are tried (`decoder` if it is, then with `fallback` the other).
    """
    check_decoder(decoder)
    if depth not in PROBE_DEPTHS:
        raise ValueError(f"probe depth={depth!r} is not supported; choose one of {PROBE_DEPTHS}")
    path = str(path)
    try:
        st = os.stat(path)
    except OSError as err:
        return _bad(f"cannot stat: {err.strerror}", 0, 0, decoder, depth)
    size, mtime = st.st_size, st.st_mtime_ns
    if size == 0:
        return _bad("empty file (0 bytes)", size, mtime, decoder, depth)
    with ExitStack() as stack:
        opened: dict[str, Any] = {}
        failed: dict[str, str] = {}  # decoder -> why it could not open the file

        def open_pyav() -> None:
            try:
                opened["pyav"] = stack.enter_context(PyAVReader(path))
            except DecodeError as err:
                failed["pyav"] = err.reason

        if decoder == "pyav":
            open_pyav()  # its container has the header: one open of the file, not two
        try:
            header = (_stream_header(opened["pyav"].container, path) if "pyav" in opened
                      else _header(path))
        except DecodeError as err:  # e.g. an audio-only file: no video stream
            return _bad(err.reason, size, mtime, decoder, depth)
        except Exception as err:  # av raises many error types for broken containers
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            return _bad(f"cannot open: {DecodeError(path, 'pyav', message).reason}", size, mtime,
                        decoder, depth)
        declared, fps, width, height, reordered = header
        layout = PLAIN
        if reordered:
            # Only PyAV's packet index tells whether decord would number the frames right;
            # the probe below reuses that reader.
            if "pyav" not in opened and "pyav" not in failed:
                open_pyav()
            if "pyav" not in opened:
                return _bad(f"pyav: {failed['pyav']} (frames are reordered, and without the packets "
                            "their order is unknown)", size, mtime, decoder, depth)
            layout = opened["pyav"].layout
        order = decoder_order(layout, decoder, fallback)
        if not order:
            return _bad(f"{decoder} would return wrong frames ({LAYOUTS[layout].description}) and "
                        "fallback is off", size, mtime, decoder, depth, layout=layout)
        errors: list[str] = []
        for name in order:
            try:
                if name in failed:
                    raise DecodeError(path, name, failed[name])
                reader = (opened[name] if name in opened
                          else stack.enter_context(reader_class(name)(path, layout=layout)))
                n = reader.num_frames
                demux_error = getattr(reader, "demux_error", "")
                if demux_error:
                    raise DecodeError(path, name, f"demux error after {n} frames: {demux_error}")
                missing = declared - n
                if declared > 0 and missing > max(TRUNCATION_TOLERANCE_FRAMES,
                                                  TRUNCATION_TOLERANCE_FRACTION * declared):
                    # Not a decoder problem: the data is not there. No point trying another.
                    return _bad(f"truncated: {n} of {declared} declared frames", size, mtime,
                                decoder, depth, n, fps, layout)
                if depth == "fast":
                    reader.get([0, n - 1])
                elif depth == "full":
                    _decode_all(reader)
                    if name != "pyav":
                        # decord's reader sees only the errors its FFmpeg logs; PyAV's flags
                        # every concealed frame (DamagedStream): a full probe decodes with it too.
                        _decode_all(opened["pyav"] if "pyav" in opened
                                    else stack.enter_context(PyAVReader(path, layout=layout)))
                return VideoMeta(n, reader.fps or fps, width, height, name, "", size, mtime,
                                 decoder, depth, layout)
            except DamagedStream as err:  # the data, not the decoder: no point trying another
                return _bad(f"{err.decoder}: {err.reason}", size, mtime, decoder, depth, n, fps, layout)
            except DecodeError as err:
                errors.append(f"{err.decoder}: {err.reason}")  # PyAV's, in a full probe of a decord file
        return _bad("; ".join(errors), size, mtime, decoder, depth, layout=layout)


def _progress():
    """A rich progress bar on an interactive terminal, nothing otherwise (log files)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), transient=True, disable=not sys.stderr.isatty())


class VideoIndex:
    """Probe results for the videos under one dataset root, cached on disk.

    `ensure(rel_paths)` returns metadata for each path, probing only files that are new,
    changed, or were probed with another decoder or a shallower depth.
    """

    def __init__(self, root: str | Path, *, decoder: str = "decord", depth: str = "fast",
                 cache_dir: str | Path | None = None, workers: int | None = None) -> None:
        self.root = Path(root)
        self.decoder = check_decoder(decoder)
        if depth not in PROBE_DEPTHS:
            raise ValueError(f"probe={depth!r} is not supported; choose one of {PROBE_DEPTHS}")
        self.depth = depth
        self.cache_dir = cache_folder(self.root, cache_dir)
        self.workers = max(1, workers if workers is not None else min(8, os.cpu_count() or 1))
        # The index file's columns as read; made into entries only when one is probed or
        # changed (index_columns.py says why): a warm set-up never makes them.
        self._stored: StoredColumns | None = None
        self._entry_dict: dict[str, VideoMeta] | None = None
        self._as_asked: set[str] | None = None
        self._lock = threading.Lock()
        self._dirty = False
        self._load()

    @property
    def _entries(self) -> dict[str, VideoMeta]:
        """Every entry, by path; made from the stored columns when first needed."""
        if self._entry_dict is None:
            stored, self._stored = self._stored, None
            self._entry_dict = stored.entries(VideoMeta._make) if stored is not None else {}
        return self._entry_dict

    @property
    def index_path(self) -> Path:
        return self.cache_dir / "index.json"

    @property
    def failures_path(self) -> Path:
        return self.cache_dir / "read_failures.jsonl"

    # ---- persistence -------------------------------------------------------------
    def _load(self) -> None:
        try:
            data = json.loads(self.index_path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as err:
            log.warning("ignoring unreadable video index %s (%s); it will be rebuilt",
                        self.index_path, err)
            return
        version = data.get("version")
        if version in _RENAMED_COLUMNS and isinstance(data.get("columns"), dict):
            data["columns"] = {_RENAMED_COLUMNS[version].get(k, k): v for k, v in data["columns"].items()}
        elif version != INDEX_VERSION:
            return  # probed again
        # Hundreds of thousands of entries, read at every set-up: stored column by column, the
        # columns with a few distinct values (decoders, depths, layouts) as numbers into
        # `strings`, so each value is one shared str, and the entries made by zipping columns.
        try:
            self._stored = StoredColumns(data["rels"], data["strings"], data["columns"],
                                         VideoMeta._fields, _CODED_FIELDS)
        except (KeyError, TypeError, IndexError, ValueError) as err:  # damaged: probed again
            log.warning("ignoring a damaged video index %s (%s: %s); it will be rebuilt",
                        self.index_path, type(err).__name__, err)
            self._stored = None

    def save(self) -> None:
        """Write atomically (temp file + rename), so concurrent ranks never see half a file."""
        rels = sorted(self._entries)
        rows = [self._entries[rel] for rel in rels]
        strings = sorted({getattr(m, name) for m in rows for name in _CODED_FIELDS})
        code = {value: i for i, value in enumerate(strings)}
        transposed = list(zip(*rows)) or [()] * len(VideoMeta._fields)
        columns = {name: [code[v] for v in column] if name in _CODED_FIELDS else list(column)
                   for name, column in zip(VideoMeta._fields, transposed, strict=True)}
        data = {"version": INDEX_VERSION, "root": str(self.root.resolve()), "strings": strings,
                "rels": rels, "columns": columns}
        try:
            write_json_atomic(self.index_path, data, separators=(",", ":"))
        except OSError as err:  # a cache: the run goes on (a full disk is named, reporting.py)
            log.warning("cannot save the video index to %s (%s); videos will be re-probed "
                        "next run", self.index_path, err)

    # ---- lookups -------------------------------------------------------------------
    def get(self, rel: str) -> VideoMeta | None:
        return self._entries.get(rel)

    def _fresh(self, rel: str, failures: dict[str, dict], listing: VideoListing | None,
               deep_enough: frozenset[str]) -> bool:
        meta = self._entries.get(rel)
        if meta is None or meta.requested != self.decoder or meta.depth not in deep_enough:
            return False
        if listing is None:
            try:
                st = os.stat(self.root / rel)
            except OSError:
                return meta.error.startswith("cannot stat")
            current: tuple[int, int] | None = (st.st_size, st.st_mtime_ns)
        elif rel not in listing:
            return meta.error.startswith("cannot stat")
        else:
            current = listing.stat_of(rel)  # None: its folder did not change; trust the entry
        if current is not None and current != (meta.size, meta.mtime_ns):
            return False
        failure = failures.get(rel)
        if failure and meta.ok:
            # What the reader had indexed, and what the file was when it failed (records
            # written before 'indexed' existed have only the latter).
            at_failure = (failure.get("size"), failure.get("mtime_ns"))
            indexed = tuple(failure.get("indexed") or at_failure)
            if indexed == (meta.size, meta.mtime_ns):
                if at_failure != indexed:
                    return False  # it changed after it was indexed: probe the new file
                # Passed the probe but failed while training: from now on it is bad.
                self._entries[rel] = meta._replace(decoder="", error=f"failed at read time: {failure['error']}")
                self._dirty, self._as_asked = True, None
        return True

    def ensure(self, rel_paths: Iterable[str], description: str = "Indexing videos", *,
               listing: VideoListing | None = None) -> dict[str, VideoMeta]:
        """Metadata for every path (relative to root), probing what is not cached yet.

        Without a `listing` every file is stat'ed to see whether it changed; with one (the
        dataset's folder listing, refreshed), only files in folders that changed are.
        """
        rel_paths = rel_paths if isinstance(rel_paths, list) else list(rel_paths)
        failures = self.read_failures()
        deep_enough = frozenset(PROBE_DEPTHS[_depth_rank(self.depth):])
        if listing is None:
            todo = [rel for rel in rel_paths if not self._fresh(rel, failures, None, deep_enough)]
        else:
            # The common case as set algebra (Kinetics-700: half a million files): probed as
            # asked, listed, in a folder that did not change, never failed. The rest: _fresh.
            if self._as_asked is None:  # entries probed as this index asks; kept until one changes
                self._as_asked = {rel for rel, m in self._entries.items()
                                  if m.requested == self.decoder and m.depth in deep_enough}
            asked, present = self._as_asked, listing.paths
            suspect = failures.keys() | listing.relisted  # usually empty
            todo = [rel for rel in rel_paths
                    if (rel not in asked or rel not in present or rel in suspect)
                    and not self._fresh(rel, failures, listing, deep_enough)]
        todo = list(dict.fromkeys(todo))  # a path asked for twice is probed once
        if todo:
            start = time.perf_counter()
            self._probe_all(todo, description)
            bad = sum(not self._entries[rel].ok for rel in todo)
            log.info("%s: probed %d videos under %s in %.1fs (%d bad); cached in %s", description,
                     len(todo), self.root, time.perf_counter() - start, bad, self.index_path)
            self.save()
        elif self._dirty:
            self.save()
        self._dirty = False
        return dict(zip(rel_paths, map(self._entries.__getitem__, rel_paths)))

    def columns(self, rel_paths: list[str], description: str = "Indexing videos", *,
                listing: VideoListing) -> MetaColumns:
        """`ensure(rel_paths, listing=listing)` as columns, in the order asked.

        The warm case, every path indexed as this index asks, listed, in a folder that did
        not change, none failed at read time, is answered from the stored columns with array
        operations (Kinetics-700: half a million videos, no object per video); anything else
        goes through `ensure`.
        """
        stored = self._stored
        if stored is not None and not listing.relisted and not self.read_failures():
            rows = stored.rows(rel_paths)
            deep_enough = PROBE_DEPTHS[_depth_rank(self.depth):]
            if (not (rows < 0).any() and listing.paths.issuperset(rel_paths)
                    and stored.matches(rows, "requested", (self.decoder,)).all()
                    and stored.matches(rows, "depth", deep_enough).all()):
                return stored.take(rows)
        metas = self.ensure(rel_paths, description, listing=listing)
        return MetaColumns.of([metas[rel] for rel in rel_paths])

    def _probe_one(self, rel: str) -> None:
        meta = probe_video(self.root / rel, self.decoder, self.depth)
        with self._lock:
            self._entries[rel] = meta
            self._as_asked = None

    def _probe_all(self, todo: list[str], description: str) -> None:
        with _progress() as progress:
            task = progress.add_task(description, total=len(todo))
            if self.workers == 1 or len(todo) < 8:
                for rel in todo:
                    self._probe_one(rel)
                    progress.advance(task)
                return
            # Decoders release the GIL while demuxing and decoding, so threads overlap I/O
            # and decode without forking a process that may hold CUDA state.
            with ThreadPoolExecutor(self.workers) as pool:
                for _ in pool.map(self._probe_one, todo):
                    progress.advance(task)

    # ---- read-time failures ----------------------------------------------------------
    def failure_log(self) -> ReadFailureLog:
        return ReadFailureLog(self.root, self.failures_path)

    def read_failures(self) -> dict[str, dict]:
        """Latest recorded read-time failure per relative path."""
        return self.failure_log().read()

    def clear(self) -> None:
        """Forget every cached probe and recorded read failure (the next ensure re-probes)."""
        self._stored, self._entry_dict = None, {}
        self._as_asked = None
        self.failures_path.unlink(missing_ok=True)


class ReadFailureLog:
    """Append-only record of videos that failed at read time, shared by DataLoader workers.

    Workers cannot update counters in the main process, but each can append one short line
    to a file (O_APPEND keeps lines whole); the main process reads the file to report.
    Small and picklable, so datasets can carry it into spawned workers.
    """

    def __init__(self, root: str | Path, path: str | Path) -> None:
        self.root = Path(root)
        self.path = Path(path)

    def record(self, rel: str, error: str, indexed: tuple[int, int] | None = None,
               recovered: bool = False) -> None:
        """Note that `rel` failed; `indexed`: its (size, mtime_ns) as the index had it, which
        tells the next set-up whether the failure is the file's or a change since; `recovered`:
        it was read after all (it had changed and was probed again), so it was not skipped."""
        try:
            st = os.stat(self.root / rel)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = 0, 0
        line = json.dumps({"path": rel, "error": error, "size": size, "mtime_ns": mtime,
                           "indexed": list(indexed) if indexed is not None else None,
                           "recovered": recovered,
                           "time": time.time(), "pid": os.getpid()}) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError as err:
            log.warning("cannot record the read failure of %s in %s: %s", rel, self.path, err)

    def read(self, since: float = 0.0) -> dict[str, dict]:
        """Latest failure per relative path, recorded at or after `since` (a time.time())."""
        out: dict[str, dict] = {}
        try:
            lines = self.path.read_text().splitlines()
        except OSError:
            return out
        for line in lines:
            try:
                rec = json.loads(line)
                if rec.get("time", 0.0) >= since:
                    out[rec["path"]] = rec
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a torn line from a killed worker
        return out
