"""Video decoders behind one small interface.

`open_video(path)` returns a reader with `num_frames`, `fps` and `get(indices)`, which
decodes only the requested frames and returns them as a uint8 tensor of shape
(T, H, W, C), RGB. Frame i is the i-th picture of a full sequential decode (the video as a
player shows it), for any order of indices, repeats and single reads. Two decoders:

- decord (package decord2): the default. Fast random access; we never touch its global
  bridge, frames leave decord as numpy (`.asnumpy()`) and become tensors here. It seeks to
  the key frame before a frame and counts pictures on from there, which is exact only for
  `plain` files (frame_layout.py): it refuses the others (B-frames in AVI, DivX/XviD packed
  B-frames, open groups of pictures), on which it returns neighbouring frames.
- PyAV: the fallback, and the reader of every file decord cannot open, decode or number.
  It numbers frames by their sorted timestamps where the container stores them, and by
  counting decoder output from the start where it does not (B-frames in AVI). It decodes
  less for the same frames (it skips non-reference frames it does not return, and one open
  reader reads clips in order in one pass): see `PyAVReader`, tests/data/test_data_seek.py
  and benchmarks/bench_data.py for what that saves.

Which file goes which way is its frame layout, found by demuxing (`frame_layout`) and kept
in the index, so a reader opened with a known `layout` does not demux again. Tested against
the full decode on synthetic files of every layout and on an original UCF-101 file with
packed B-frames (tests/data/test_data_exact_frames.py).
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, Self, runtime_checkable

import numpy as np
import torch

from . import decoder_errors
from .frame_layout import LAYOUTS, PLAIN, check_layout, classify, count_vops, decoder_order

log = logging.getLogger(__name__)

Decoder = Literal["decord", "pyav"]
DECODERS: tuple[str, ...] = ("decord", "pyav")
_DECORD_LOG_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: ")


class DecodeError(RuntimeError):
    """A video could not be opened, or the requested frames could not be decoded."""

    def __init__(self, path: str | Path, decoder: str, reason: str) -> None:
        self.path = str(path)
        self.decoder = decoder
        # Decoders repeat the path in their messages; it is already in ours.
        self.reason = reason.replace(f": '{self.path}'", "").replace(self.path, Path(self.path).name)
        super().__init__(f"{decoder}: cannot decode {self.path}: {self.reason}")


class DamagedStream(DecodeError):
    """The decoder concealed errors in a frame (FFmpeg flags it corrupt): the data is damaged,
    and what a reader returns for it depends on where decoding started, so no reader's
    frames can be trusted. Not a decoder problem: callers do not fall back to another one
    (decord conceals the same errors without saying so)."""


@runtime_checkable
class VideoReader(Protocol):
    """What every decoder provides. Use as a context manager or call `close()`."""

    path: str
    decoder: str

    @property
    def num_frames(self) -> int: ...

    @property
    def fps(self) -> float: ...

    def get(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor: ...

    def close(self) -> None: ...


def check_decoder(decoder: str) -> str:
    if decoder not in DECODERS:
        raise ValueError(f"decoder={decoder!r} is not supported; choose one of {DECODERS}")
    return decoder


class _ReaderBase:
    path: str
    decoder: str
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
        except Exception as err:  # decoder errors come in many types; normalise them
            raise DecodeError(self.path, self.decoder, f"{type(err).__name__}: {err}") from err
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
    """decord.VideoReader on CPU. `num_threads=1` suits DataLoader workers (one core each).

    Refuses (DecodeError) a file whose frames it would misnumber; `layout` is the file's
    frame layout when the caller knows it (the index does), else it is found here.
    """

    decoder = "decord"

    def __init__(self, path: str | Path, num_threads: int = 1, *, layout: str | None = None) -> None:
        self.path = str(path)
        self.layout = frame_layout(path) if layout is None else check_layout(layout).name
        if self.decoder not in LAYOUTS[self.layout].decoders:
            raise DecodeError(path, self.decoder,
                              f"would return wrong frames ({LAYOUTS[self.layout].description}); "
                              "pyav reads this file exactly")
        try:
            import decord
        except ImportError as err:  # pragma: no cover - decord2 is a pinned dependency
            raise DecodeError(path, self.decoder, f"decord is not installed ({err})") from err
        decoder_errors.install()
        errors = decoder_errors.count()
        try:
            self._vr = decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=num_threads)
            self._num_frames = len(self._vr)
            self._fps = float(self._vr.get_avg_fps())
        except Exception as err:
            # decord prefixes its C++ log location ("[12:00:00] src/video_reader.cc:154: ").
            message = _DECORD_LOG_PREFIX.sub("", str(err).splitlines()[0] if str(err) else "")
            raise DecodeError(path, self.decoder, f"cannot open: {message}".rstrip(".")) from err
        self._refuse_if_concealed(errors, "opening")
        if self._num_frames <= 0:
            raise DecodeError(path, self.decoder, "no frames")

    def _get(self, idx: np.ndarray) -> torch.Tensor:
        # get_batch seeks to the key frame before each run of indices and decodes forward.
        errors = decoder_errors.count()
        arr = self._vr.get_batch(idx.tolist()).asnumpy()
        self._refuse_if_concealed(errors, "decoding")
        return torch.from_numpy(np.ascontiguousarray(arr))

    def _refuse_if_concealed(self, errors_before: int, doing: str) -> None:
        """decord hides the pictures FFmpeg concealed errors in; FFmpeg's log names them
        (decoder_errors.py). Refused as a DecodeError, not a DamagedStream: the errors may be
        those of pictures this read did not return (the leading pictures after a seek), so
        the read falls back to PyAV, which tells the two apart and refuses only damage."""
        errors = decoder_errors.count() - errors_before
        if errors > 0:
            raise DecodeError(self.path, self.decoder,
                              f"damaged: the decoder reported {errors} error(s) while {doing} "
                              f"(last: {decoder_errors.last_message()!r})")

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

    Frame numbers: where the container stores presentation times, frame i is the picture
    with the i-th smallest timestamp, found by demuxing every packet (`layout` plain or
    open-gop). Where it does not (B-frames in AVI, packed B-frames: see frame_layout.py),
    frame i is the i-th picture the decoder puts out from the start of the file; such a
    reader never seeks and never skips a picture, which would shift the count. The demux
    finds the layout; a `layout` from the index is only compared with it.
    """

    decoder = "pyav"

    def __init__(self, path: str | Path, num_threads: int = 1, *, skip_nonref: bool = True,
                 layout: str | None = None) -> None:
        import av

        self.path = str(path)
        self._av = av
        self.skip_nonref = bool(skip_nonref)
        self.frames_decoded = 0  # frames out of the decoder, for measuring what seeks cost
        # Decoder state since the last seek, for continuing instead of seeking: the live
        # demuxer (None: seek first), the latest frame number fed to the decoder and out of
        # it, the frames dropped by skipping; and the frames the last read returned.
        self._packets: Any = None
        self._pending: Iterator[Any] = iter(())  # frames of the last packet not looked at
        self._rgb = av.video.reformatter.VideoReformatter()
        self._sent_pts = self._out_pts = _NO_PTS
        self._pass_key = _NO_PTS  # pts of the key frame the current decoding pass started from
        self._next_count = 0  # counting readers: the number of the next picture out
        self._skipped: set[int] = set()
        self._recent: dict[int, np.ndarray] = {}
        try:
            self._container = av.open(self.path)
        except Exception as err:
            raise DecodeError(path, self.decoder, f"cannot open: {err}") from err
        try:
            if not self._container.streams.video:
                raise DecodeError(path, self.decoder, "no video stream")
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
            raise DecodeError(path, self.decoder, f"cannot index packets: {err}") from err
        if layout is not None and check_layout(layout).name != self.layout:
            log.warning("%s: indexed with frame layout %r, reads now as %r (changed file?)",
                        self.path, layout, self.layout)
        self._counting = LAYOUTS[self.layout].count_frames

    @property
    def container(self) -> Any:
        """The open PyAV container, for its header (the probe reads it from here rather than
        opening the file again); decoding through it would disturb the reader's state."""
        return self._container

    def _index_packets(self) -> None:
        # Demux (no decoding) to list every frame's timestamp and find the frame layout.
        # Sorted, the timestamps map frame index -> pts in presentation order; a counting
        # reader numbers the non-empty packets instead.
        stamps: list[int] = []
        keys: list[bool] = []
        packed = False
        look_for_vops = self._stream.codec_context.name == "mpeg4"
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
                keys.append(bool(packet.is_keyframe))
                if look_for_vops and not packed:
                    packed = count_vops(bytes(packet)) > 1
        except self._av.error.FFmpegError as err:
            # A broken tail: keep the frames before it, but let callers (the probe) know.
            self.demux_error = str(err)
        if missing_ts and not stamps:
            raise DecodeError(self.path, self.decoder, "packets carry no timestamps")
        in_decode_order = np.asarray(stamps, dtype=np.int64)
        is_key = np.asarray(keys, dtype=bool)
        self.layout = classify(is_avi="avi" in self._container.format.name.split(","),
                               has_b_frames=bool(self._stream.codec_context.has_b_frames),
                               pts=in_decode_order, keys=is_key, packed=packed)
        if LAYOUTS[self.layout].count_frames:
            # Frame numbers are output counts, and the only known one is 0 at the start.
            self._pts = np.arange(in_decode_order.size, dtype=np.int64)
            self._keys = np.zeros(1, dtype=np.int64)
        else:
            self._pts = np.unique(in_decode_order)
            self._keys = np.unique(in_decode_order[is_key])
            if self._pts.size < in_decode_order.size:
                # Numbering by timestamp would merge the pictures that share one (a repeated
                # range of a damaged file does this), and shift every frame after them.
                raise DecodeError(self.path, self.decoder,
                                  f"{in_decode_order.size - self._pts.size} packets repeat another's "
                                  "timestamp: frames cannot be numbered by time")
        self._num_frames = int(self._pts.size)
        if self._num_frames == 0:
            raise DecodeError(self.path, self.decoder,
                              "no frames" + (f" ({self.demux_error})" if self.demux_error else ""))
        rate = self._stream.average_rate or self._stream.guessed_rate
        if rate:
            self._fps = float(rate)
        else:  # fall back to the timestamps themselves
            span = float((in_decode_order.max() - in_decode_order.min()) * self._stream.time_base)
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
        """Decode forward from the key frame before `seek_pts` (None, and always for a
        counting reader: from the start) until every wanted frame is in `out` or `stop_pts`
        has come out."""
        if seek_pts is None or self._counting:
            self._container.seek(0)
            self._pass_key = _NO_PTS
        else:
            self._container.seek(seek_pts, stream=self._stream, backward=True, any_frame=False)
            before = self._keys[self._keys <= seek_pts]
            self._pass_key = int(before[-1]) if before.size else _NO_PTS
        self._packets = self._container.demux(self._stream)
        self._pending = iter(())
        self._sent_pts = self._out_pts = _NO_PTS
        self._next_count = 0
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
                # A counting reader learns that only when the picture comes out; it has
                # passed its one key frame (the start) once it has sent anything.
                if self._counting:
                    self._sent_pts = 0
                elif packet.pts is not None:
                    self._sent_pts = max(self._sent_pts, int(packet.pts))
                elif packet.size:  # it could be any frame: no continuing past it
                    self._sent_pts = self._out_pts = _ANY_PTS
                if self.skip_nonref and not self._counting:
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
        if self._counting:
            ts = self._next_count
            self._next_count += 1
        elif frame.pts is None:
            return False
        else:
            ts = int(frame.pts)
        if frame.is_corrupt and ts >= self._pass_key:
            # Errors concealed in this frame reach the frames that refer to it. (Frames shown
            # before the key frame a pass starts from refer to the group before: an open
            # group's leading pictures come out damaged after a seek, and are never returned.)
            number = ts if self._counting else int(np.searchsorted(self._pts, ts))
            raise DamagedStream(self.path, self.decoder,
                                f"damaged: the decoder concealed errors in frame {number}")
        self._out_pts = max(self._out_pts, ts)
        i = wanted.get(ts)
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
            short = self._counting and self._next_count < self._num_frames
            raise DecodeError(self.path, self.decoder, f"frames {missing[:8]} could not be decoded" + (
                f" (the decoder put out {self._next_count} pictures for {self._num_frames} "
                "chunks)" if short else ""))
        self._recent = {ts: out[i] for ts, i in wanted.items()}
        return torch.from_numpy(np.stack([out[int(i)] for i in idx]))

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            self._packets, self._recent = None, {}
            container.close()
            self._container = None


_READERS: dict[str, type[_ReaderBase]] = {"decord": DecordReader, "pyav": PyAVReader}


def reader_class(decoder: str) -> type[_ReaderBase]:
    """The reader class of `decoder` (no fallback: for callers that try decoders themselves)."""
    return _READERS[check_decoder(decoder)]


def frame_layout(path: str | Path) -> str:
    """The frame layout of `path` (frame_layout.py): the stream header says whether frames
    are reordered at all; only then are the packets demuxed. Raises DecodeError when PyAV
    cannot open the file."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DecodeError(path, "pyav", "no video stream")
            if not container.streams.video[0].codec_context.has_b_frames:
                return PLAIN
    except DecodeError:
        raise
    except Exception as err:  # av raises many error types for broken containers
        raise DecodeError(path, "pyav", f"cannot open: {err}") from err
    with PyAVReader(path) as reader:
        return reader.layout


def _decoders(path: str | Path, decoder: str, fallback: bool, layout: str | None) -> list[str]:
    """Readers to try, in order: `decoder` first, then the other one (with `fallback`);
    with a known `layout`, only those exact for it."""
    check_decoder(decoder)
    if layout is not None:
        return decoder_order(layout, decoder, fallback)
    return [decoder] + ([b for b in DECODERS if b != decoder] if fallback else [])


def _no_reader(path: str | Path, decoder: str, order: list[str], errors: list[str],
               layout: str | None) -> DecodeError:
    if order:
        return DecodeError(path, "/".join(order), "; ".join(errors))
    return DecodeError(path, decoder, f"would return wrong frames ({LAYOUTS[layout or PLAIN].description}) "
                                      "and fallback is off")


def open_video(path: str | Path, decoder: str = "decord", *, fallback: bool = True,
               num_threads: int = 1, layout: str | None = None) -> VideoReader:
    """Open `path` with `decoder`; if that fails and `fallback`, try the other decoder.
    decord refuses files whose frames it would misnumber, so the reader returned is exact.

    Raises DecodeError when no decoder can open the file (exactly).
    """
    errors: list[str] = []
    order = _decoders(path, decoder, fallback, layout)
    for name in order:
        try:
            return _READERS[name](path, num_threads=num_threads, layout=layout)
        except DecodeError as err:
            errors.append(f"{name}: {err.reason}")
    raise _no_reader(path, decoder, order, errors, layout)


def read_frames(path: str | Path, indices: Sequence[int] | np.ndarray, decoder: str = "decord",
                *, fallback: bool = True, num_threads: int = 1,
                layout: str | None = None) -> tuple[torch.Tensor, str]:
    """Decode `indices` of `path`; returns (frames T,H,W,C uint8, decoder that succeeded).

    Falls back to the other decoder when opening *or decoding* fails, so a file that
    decord opens but cannot decode is still read; with a known `layout`, only to a decoder
    that is exact for it; never after DamagedStream.
    """
    errors: list[str] = []
    order = _decoders(path, decoder, fallback, layout)
    for name in order:
        try:
            with _READERS[name](path, num_threads=num_threads, layout=layout) as reader:
                return reader.get(indices), name
        except DamagedStream:
            raise  # the data is damaged: another decoder would only hide it
        except DecodeError as err:
            errors.append(f"{name}: {err.reason}")
        except IndexError as err:  # this decoder sees fewer frames than the index promised
            errors.append(f"{name}: {err}")
    raise _no_reader(path, decoder, order, errors, layout)
