"""Video decoders behind one small interface.

`open_video(path)` returns a reader with `num_frames`, `fps` and `get(indices)`, which
decodes only the requested frames and returns them as a uint8 tensor of shape
(T, H, W, C), RGB. Two backends:

- decord (package decord2): the default. Fast random access; we never touch its global
  bridge, frames leave decord as numpy (`.asnumpy()`) and become tensors here.
- PyAV: the fallback, and the backend for files decord cannot open or decode. It decodes
  less for the same frames (it skips non-reference frames it does not return, and one
  open reader reads clips in order in one pass): see `PyAVReader`, tests/data/test_data_seek.py
  and benchmarks/bench_data.py for what that saves.

Both number frames the same way: frame i is the i-th frame in presentation order,
found by demuxing every packet and sorting their timestamps (what decord does
internally). That is what makes the two backends return the same frame for the same
index (see tests/data/test_data_decoders.py).
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, Self, runtime_checkable

import numpy as np
import torch

log = logging.getLogger(__name__)

Backend = Literal["decord", "pyav"]
BACKENDS: tuple[str, ...] = ("decord", "pyav")
_DECORD_LOG_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: ")


class DecodeError(RuntimeError):
    """A video could not be opened, or the requested frames could not be decoded."""

    def __init__(self, path: str | Path, backend: str, reason: str) -> None:
        self.path = str(path)
        self.backend = backend
        # Backends repeat the path in their messages; it is already in ours.
        self.reason = reason.replace(f": '{self.path}'", "").replace(self.path, Path(self.path).name)
        super().__init__(f"{backend}: cannot decode {self.path}: {self.reason}")


@runtime_checkable
class VideoReader(Protocol):
    """What every backend provides. Use as a context manager or call `close()`."""

    path: str
    backend: str

    @property
    def num_frames(self) -> int: ...

    @property
    def fps(self) -> float: ...

    def get(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor: ...

    def close(self) -> None: ...


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"decoder={backend!r} is not supported; choose one of {BACKENDS}")
    return backend


class _ReaderBase:
    path: str
    backend: str
    _num_frames: int
    _fps: float

    @property
    def num_frames(self) -> int:
        return self._num_frames

    @property
    def fps(self) -> float:
        return self._fps

    def _check_indices(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            raise ValueError("indices must name at least one frame, got an empty list")
        if idx.min() < 0 or idx.max() >= self._num_frames:
            raise IndexError(
                f"frame indices must lie in [0, {self._num_frames - 1}] for {self.path}, "
                f"got min {int(idx.min())}, max {int(idx.max())}"
            )
        return idx

    def get(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        idx = self._check_indices(indices)
        try:
            frames = self._get(idx)
        except DecodeError:
            raise
        except Exception as err:  # backend errors come in many types; normalise them
            raise DecodeError(self.path, self.backend, f"{type(err).__name__}: {err}") from err
        return frames

    def _get(self, idx: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.path!r}, num_frames={self._num_frames}, "
                f"fps={self._fps:.3f})")


class DecordReader(_ReaderBase):
    """decord.VideoReader on CPU. `num_threads=1` suits DataLoader workers (one core each)."""

    backend = "decord"

    def __init__(self, path: str | Path, num_threads: int = 1) -> None:
        self.path = str(path)
        try:
            import decord
        except ImportError as err:  # pragma: no cover - decord2 is a pinned dependency
            raise DecodeError(path, self.backend, f"decord is not installed ({err})") from err
        try:
            self._vr = decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=num_threads)
            self._num_frames = len(self._vr)
            self._fps = float(self._vr.get_avg_fps())
        except Exception as err:
            # decord prefixes its C++ log location ("[12:00:00] src/video_reader.cc:154: ").
            message = _DECORD_LOG_PREFIX.sub("", str(err).splitlines()[0] if str(err) else "")
            raise DecodeError(path, self.backend, f"cannot open: {message}".rstrip(".")) from err
        if self._num_frames <= 0:
            raise DecodeError(path, self.backend, "no frames")

    def _get(self, idx: np.ndarray) -> torch.Tensor:
        # get_batch seeks to the key frame before each run of indices and decodes forward.
        arr = self._vr.get_batch(idx.tolist()).asnumpy()
        return torch.from_numpy(np.ascontiguousarray(arr))

    def close(self) -> None:
        self._vr = None  # decord frees its context when the reader is collected


_NO_PTS, _ANY_PTS = -(2 ** 63), 2 ** 63 - 1  # below / above every timestamp


class PyAVReader(_ReaderBase):
    """PyAV reader that seeks to the key frame before the first wanted frame and decodes
    forward, keeping only the wanted frames.

    Decoding less, same frames: with `skip_nonref` (default) the decoder drops the
    non-reference frames it is not asked for (FFmpeg's skip_frame=NONREF, set per packet),
    which on H.264 with B-frames is about half the frames passed on the way to a clip. And
    one open reader asked for clips in order (the test views) decodes on from where the
    last read stopped instead of seeking back to a key frame it has already passed, and
    keeps the last read's frames for a clip that overlaps it, so the views of a video cost
    about one pass over it.
    """

    backend = "pyav"

    def __init__(self, path: str | Path, num_threads: int = 1, *, skip_nonref: bool = True) -> None:
        import av

        self.path = str(path)
        self._av = av
        self.skip_nonref = bool(skip_nonref)
        self.frames_decoded = 0  # frames out of the decoder, for measuring what seeks cost
        # Decoder state since the last seek, for continuing instead of seeking: the live
        # demuxer (None: seek first), the latest pts fed to the decoder and out of it, the
        # frames dropped by skipping; and the frames the last read returned, by pts.
        self._packets: Any = None
        self._pending: Iterator[Any] = iter(())  # frames of the last packet not looked at
        self._rgb = av.video.reformatter.VideoReformatter()
        self._sent_pts = self._out_pts = _NO_PTS
        self._skipped: set[int] = set()
        self._recent: dict[int, np.ndarray] = {}
        try:
            self._container = av.open(self.path)
        except Exception as err:
            raise DecodeError(path, self.backend, f"cannot open: {err}") from err
        try:
            if not self._container.streams.video:
                raise DecodeError(path, self.backend, "no video stream")
            self._stream = self._container.streams.video[0]
            self._stream.codec_context.thread_count = max(0, int(num_threads))
            if num_threads != 1:
                self._stream.thread_type = "AUTO"
            self._index_packets()
        except DecodeError:
            self.close()
            raise
        except Exception as err:
            self.close()
            raise DecodeError(path, self.backend, f"cannot index packets: {err}") from err

    def _index_packets(self) -> None:
        # Demux (no decoding) to list every frame's timestamp; sorted, they map frame
        # index -> pts in presentation order, exactly as decord numbers frames.
        stamps: list[int] = []
        keys: list[int] = []
        self.demux_error = ""
        missing_ts = False
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0:
                    continue  # flush / dropped-frame packets carry no picture
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None:
                    missing_ts = True
                    continue
                stamps.append(int(ts))
                if packet.is_keyframe:
                    keys.append(int(ts))
        except self._av.error.FFmpegError as err:
            # A broken tail: keep the frames before it, but let callers (the probe) know.
            self.demux_error = str(err)
        if missing_ts and not stamps:
            raise DecodeError(self.path, self.backend, "packets carry no timestamps")
        self._pts = np.unique(np.asarray(stamps, dtype=np.int64))
        self._keys = np.unique(np.asarray(keys, dtype=np.int64))
        self._num_frames = int(self._pts.size)
        if self._num_frames == 0:
            raise DecodeError(self.path, self.backend,
                              "no frames" + (f" ({self.demux_error})" if self.demux_error else ""))
        rate = self._stream.average_rate or self._stream.guessed_rate
        if rate:
            self._fps = float(rate)
        else:  # fall back to the timestamps themselves
            span = float((self._pts[-1] - self._pts[0]) * self._stream.time_base)
            self._fps = (self._num_frames - 1) / span if span > 0 else 0.0

    def _continues(self, todo: list[int]) -> bool:
        """Whether decoding on from where the last read stopped yields every pts in `todo`
        without more work than a seek: none of them has come out of the decoder or been
        skipped yet, and a seek would land on a key frame already passed."""
        if self._packets is None or any(ts <= self._out_pts or ts in self._skipped for ts in todo):
            return False
        before = self._keys[self._keys <= min(todo)]
        return before.size == 0 or int(before[-1]) <= self._sent_pts

    def _decode_from(self, seek_pts: int | None, wanted: dict[int, int],
                     out: dict[int, np.ndarray], stop_pts: int) -> None:
        """Decode forward from the key frame before `seek_pts` (None: from the start) until
        every wanted frame is in `out` or `stop_pts` has come out."""
        if seek_pts is None:
            self._container.seek(0)
        else:
            self._container.seek(seek_pts, stream=self._stream, backward=True, any_frame=False)
        self._packets = self._container.demux(self._stream)
        self._pending = iter(())
        self._sent_pts = self._out_pts = _NO_PTS
        self._skipped = set()
        self._decode_on(wanted, out, stop_pts)

    def _decode_on(self, wanted: dict[int, int], out: dict[int, np.ndarray], stop_pts: int) -> None:
        codec = self._stream.codec_context
        try:
            # Frames one packet gave that the last read did not look at (the end-of-file
            # flush gives several).
            for frame in self._pending:
                if self._take(frame, wanted, out, stop_pts):
                    return
            for packet in self._packets:
                # Packets come in decode order; the pts says which frame each one becomes.
                if packet.pts is not None:
                    self._sent_pts = max(self._sent_pts, int(packet.pts))
                elif packet.size:  # it could be any frame: no continuing past it
                    self._sent_pts = self._out_pts = _ANY_PTS
                if self.skip_nonref:
                    # A frame we do not return is decoded only if others may refer to it:
                    # NONREF drops a frame only when no frame uses it as a reference, so
                    # the frames we keep decode bit-identically. No pts: decode it fully.
                    keep = packet.pts is None or int(packet.pts) in wanted
                    codec.skip_frame = "DEFAULT" if keep else "NONREF"
                    if not keep:
                        self._skipped.add(int(packet.pts))
                self._pending = iter(packet.decode())
                for frame in self._pending:
                    if self._take(frame, wanted, out, stop_pts):
                        return  # the demuxer stays live for the next read
            self._packets = None  # end of file
        except BaseException:
            self._packets = None  # unknown decoder state: the next read seeks
            raise
        finally:
            codec.skip_frame = "DEFAULT"

    def _take(self, frame: Any, wanted: dict[int, int], out: dict[int, np.ndarray],
              stop_pts: int) -> bool:
        """Keep `frame` if wanted; True once decoding can stop."""
        self.frames_decoded += 1
        ts = frame.pts
        if ts is None:
            return False
        self._out_pts = max(self._out_pts, int(ts))
        i = wanted.get(int(ts))
        if i is not None and i not in out:
            # One reformatter for all frames: frame.to_ndarray(format=...) would set up a
            # new colour converter for every frame, which costs more than converting.
            out[i] = self._rgb.reformat(frame, format="rgb24").to_ndarray()
            if len(out) == len(wanted):
                return True
        return ts >= stop_pts

    def _get(self, idx: np.ndarray) -> torch.Tensor:
        uniq = np.unique(idx)
        wanted = {int(self._pts[i]): int(i) for i in uniq}
        # Frames the last read returned (overlapping clips) need no decoding.
        out = {i: self._recent[ts] for ts, i in wanted.items() if ts in self._recent}
        todo = [ts for ts, i in wanted.items() if i not in out]
        if todo:
            stop = max(todo)
            if self._continues(todo):
                self._decode_on(wanted, out, stop)
            else:
                self._decode_from(min(todo), wanted, out, stop)
        if len(out) < len(wanted):
            # Seeking in some containers (AVI without index, odd mp4 edit lists) lands after
            # the target; decode from the start instead of returning wrong frames.
            self._decode_from(None, wanted, out, max(wanted))
        if len(out) < len(wanted):
            missing = sorted({int(i) for i in uniq} - set(out))
            raise DecodeError(self.path, self.backend,
                              f"frames {missing[:8]} could not be decoded")
        self._recent = {ts: out[i] for ts, i in wanted.items()}
        return torch.from_numpy(np.stack([out[int(i)] for i in idx]))

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            self._packets, self._recent = None, {}
            container.close()
            self._container = None


_READERS: dict[str, type[_ReaderBase]] = {"decord": DecordReader, "pyav": PyAVReader}


def reader_class(backend: str) -> type[_ReaderBase]:
    """The reader class of `backend` (no fallback: for callers that try backends themselves)."""
    return _READERS[check_backend(backend)]


def open_video(path: str | Path, backend: str = "decord", *, fallback: bool = True,
               num_threads: int = 1) -> VideoReader:
    """Open `path` with `backend`; if that fails and `fallback`, try PyAV.

    Raises DecodeError when no backend can open the file.
    """
    check_backend(backend)
    order = [backend] + ([b for b in BACKENDS if b != backend] if fallback else [])
    errors: list[str] = []
    for name in order:
        try:
            return _READERS[name](path, num_threads=num_threads)
        except DecodeError as err:
            errors.append(f"{name}: {err.reason}")
    raise DecodeError(path, "/".join(order), "; ".join(errors))


def read_frames(path: str | Path, indices: Sequence[int] | np.ndarray, backend: str = "decord",
                *, fallback: bool = True, num_threads: int = 1) -> tuple[torch.Tensor, str]:
    """Decode `indices` of `path`; returns (frames T,H,W,C uint8, backend that succeeded).

    Falls back to the other backend when opening *or decoding* fails, so a file that
    decord opens but cannot decode is still read.
    """
    check_backend(backend)
    order = [backend] + ([b for b in BACKENDS if b != backend] if fallback else [])
    errors: list[str] = []
    for name in order:
        try:
            with _READERS[name](path, num_threads=num_threads) as reader:
                return reader.get(indices), name
        except DecodeError as err:
            errors.append(f"{name}: {err.reason}")
        except IndexError as err:  # this backend sees fewer frames than the index promised
            errors.append(f"{name}: {err}")
    raise DecodeError(path, "/".join(order), "; ".join(errors))
