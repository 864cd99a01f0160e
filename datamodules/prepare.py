"""A drop-in copy of a dataset root with videos that are cheap to train from
(`softpool-video prepare SRC DST`, softpool_video/commands/prepare.py).

Datasets ship videos larger than training uses (UCF-101 is 320x240, Kinetics often 340p to
1080p) and encoded for playback: H.264 with a key frame every 250 frames means a random
16-frame clip first decodes on average over a hundred frames it does not use. `prepare`
re-encodes every video once, so that each training clip costs far less CPU:

- scaled to `short_side` pixels on the short side (aspect ratio kept, sizes rounded to even
  as yuv420p requires; videos already smaller keep their size, as upscaling adds nothing);
- a key frame at least every `gop` frames and no B-frames, in codecs both decoders read
  fast: H.264 (libx264, `tune=fastdecode`: no CABAC, no deblocking) in MP4, MOV, MKV and
  the rest; MPEG-4 part 2 (XVID, as UCF-101 and HMDB-51 ship) in AVI, because decord reads
  H.264 from AVI about half as fast as from MP4;
- exactly the frames the project's readers count, in the same order (frame i of the copy is
  frame i of the original, read by the PyAV reader, exact for every frame layout, packed
  B-frames included), at a constant rate equal to the input's average rate: variable
  frame-rate inputs are re-timestamped, so time stamps change but frame numbers do not.
  Every copy is plain (no B-frames), so decord reads it exactly and fast: for the UCF-101
  and HMDB-51 files that only PyAV reads exactly, the copy is the fast path;
- video only: audio and subtitle streams are dropped (training never reads them).

Everything else is copied byte for byte, under the same paths and names, so DST is used
exactly like SRC (same annotation files, same splits and labels). A video keeps its file
name; its container follows the extension (H.264 cannot go into WebM, Ogg or MPEG-PS, so
those get Matroska inside, which both decoders detect from the content).

Measured on six 8 s 320x240 videos at the defaults (training clips of 16 frames every 2nd,
resize 128, crop 112, one thread): long-GOP H.264 MP4 (libx264 defaults, a key frame every
250 frames, as Kinetics copies) gives 3-4x the training clips per CPU-second with both
decoders at 0.8x the bytes; UCF-101-like XVID AVI (1 Mbit/s, a key frame every 12) gives
about 1.5x at half the bytes. Preparing costs about 0.3 CPU-seconds per such video.

Safe to interrupt and rerun: each video is written to a hidden temporary file next to its
destination (`.<name>.<random>.prepare-tmp`, not a video extension, so no dataset or
`check-videos` picks it up), checked (both decoders open it, it holds the input's frame
count at the input's frame rate, and each of its frames is nearer the same frame of a
full sequential decode of the input than that frame's neighbours) and only then renamed into place, stamped with the source's
modification time. A rerun skips videos whose copy exists with that stamp, removes temporary
files a killed run left behind and redoes the rest. Inputs that cannot be read (empty,
truncated, no video stream, decode errors) are listed in `DST/prepare_failures.json` and
left out, so the dataset's parser reports them as missing and excludes them. The settings
live in `DST/prepare_info.json`; a rerun with other settings must pass `overwrite`.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from softpool_video.reporting import write_json_atomic

from .decoders import PyAVReader
from .index_cache import _progress, probe_video
from .video_files import is_video_file, walk_dataset

log = logging.getLogger(__name__)

INFO_FILE = "prepare_info.json"
FAILURES_FILE = "prepare_failures.json"
PREPARE_FORMAT_VERSION = 1
TMP_SUFFIX = ".prepare-tmp"
X264_PRESETS: tuple[str, ...] = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium",
                                 "slow", "slower", "veryslow")
# Container per extension. H.264 is not allowed in WebM or Ogg and poorly supported in
# MPEG-PS; files with those names get Matroska (decoders probe the content, not the name).
_CONTAINERS: dict[str, str] = {".avi": "avi", ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov",
                               ".mkv": "matroska", ".flv": "flv", ".3gp": "3gp"}
_FALLBACK_CONTAINER = "matroska"
# A rate differing by less than this (relative) is the same rate: containers store rates as
# fractions of their own time base.
FPS_TOLERANCE = 1e-3
# Mean absolute error (0-255 scale) by which a copy's frame may sit nearer a neighbour of its
# source frame than the frame itself. Near-identical neighbours (UCF-101's duplicated frames,
# about 0.1 apart) trade places within the encoder's noise: 0.08 at most in a correct copy
# of the real UCF-101 file, 0.45 to 7.5 where its frames were swapped (measured).
SAME_FRAME_MARGIN = 0.3
_READ_CHUNK = 8  # frames decoded at a time while re-encoding (8 frames of 1080p: 50 MB)


@dataclass(frozen=True)
class PrepareSettings:
    """How videos are re-encoded; stored in DST/prepare_info.json."""

    short_side: int = 128
    gop: int = 16
    crf: int = 23  # H.264 quality (x264's constant rate factor)
    preset: str = "veryfast"  # x264 speed preset
    qscale: int = 5  # MPEG-4 part 2 quantizer, for AVI files

    def check(self) -> None:
        for name, low in (("short_side", 8), ("gop", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not isinstance(self.crf, int) or not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be an integer in 0..51 (x264's scale; lower is better "
                             f"quality and bigger files), got {self.crf!r}")
        if not isinstance(self.qscale, int) or not 2 <= self.qscale <= 31:
            raise ValueError(f"qscale must be an integer in 2..31 (MPEG-4 part 2 quantizer for AVI "
                             f"files; lower is better quality and bigger files), got {self.qscale!r}")
        if self.preset not in X264_PRESETS:
            raise ValueError(f"preset={self.preset!r} is not an x264 preset; choose one of {X264_PRESETS}")


@dataclass
class PrepareSummary:
    """What one `prepare_dataset` run did. Sizes are of the videos now in DST and their sources."""

    src: str
    dst: str
    videos: int = 0  # video files found under SRC
    prepared: int = 0  # encoded in this run
    skipped: int = 0  # already prepared by an earlier run
    failed: dict[str, str] = field(default_factory=dict)  # relative path -> reason; left out of DST
    copied: int = 0  # other files (annotations, lists) copied in this run
    src_bytes: int = 0
    dst_bytes: int = 0
    seconds: float = 0.0

    @property
    def size_ratio(self) -> float:
        """DST video bytes / SRC video bytes (of the videos that made it)."""
        return self.dst_bytes / self.src_bytes if self.src_bytes else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "size_ratio": round(self.size_ratio, 4)}


@dataclass(frozen=True)
class _Result:
    rel: str
    error: str  # '' when the copy is in place
    src_bytes: int
    dst_bytes: int


# ---- one video ------------------------------------------------------------------------------
def output_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the short side at most `short_side`, aspect kept, both even."""
    scale = min(1.0, short_side / min(width, height))

    def even(x: float) -> int:
        return max(2, round(x / 2) * 2)

    return even(width * scale), even(height * scale)


def container_format(path: str | Path) -> str:
    return _CONTAINERS.get(Path(path).suffix.lower(), _FALLBACK_CONTAINER)


def _add_video_stream(out: Any, fmt: str, rate: Fraction, settings: PrepareSettings) -> Any:
    if fmt == "avi":
        # decord decodes H.264 from AVI about half as fast as from MP4 (measured); MPEG-4
        # part 2, the codec UCF-101 and HMDB-51 ship in AVI, decodes as fast as H.264 in MP4.
        ost = out.add_stream("mpeg4", rate=rate)
        ost.codec_tag = "XVID"
        ost.codec_context.qmin = ost.codec_context.qmax = settings.qscale  # constant quality
    else:
        ost = out.add_stream("libx264", rate=rate, options={
            "crf": str(settings.crf), "preset": settings.preset,
            "tune": "fastdecode"})  # CAVLC and no deblocking: cheaper to decode
    ost.codec_context.gop_size = settings.gop
    ost.codec_context.max_b_frames = 0  # AVI cannot carry B-frames cleanly; fewer frames decoded per seek
    ost.codec_context.thread_count = 1  # one core per worker: --workers sets the parallelism
    return ost


def encode_video(src: str | Path, out_path: str | Path, fmt: str, settings: PrepareSettings,
                 layout: str | None = None) -> int:
    """Re-encode the video stream of `src` into `out_path` (container `fmt`); returns the
    number of frames written.

    Frames are read by the project's PyAV reader, which numbers every frame layout exactly
    (`layout`: the source's, from the probe), and written in that order at a constant rate
    equal to the input's average rate, so frame i of the copy is frame i of the source.
    """
    import av

    # No frame skipping: reading every frame in order, each read continues where the last
    # stopped (a skipped frame would make the next read seek back to the key frame).
    with PyAVReader(src, num_threads=1, skip_nonref=False, layout=layout) as reader, \
            av.open(str(src)) as inp:
        ist = inp.streams.video[0]
        rate = ist.average_rate or ist.guessed_rate
        if not rate or rate <= 0:
            raise ValueError("no frame rate in the container")
        # x264 and AVI store the rate as a ratio of 32-bit integers.
        rate = Fraction(rate).limit_denominator(100_000)
        if min(ist.codec_context.width, ist.codec_context.height) <= 0:
            raise ValueError("no frame size in the stream header")
        width, height = output_size(ist.codec_context.width, ist.codec_context.height,
                                    settings.short_side)
        scaler = av.video.reformatter.VideoReformatter()  # one converter for every frame
        # bitexact: no random segment id or date in the container, so the same input and
        # settings give the same bytes (Matroska's differed from run to run).
        with av.open(str(out_path), "w", format=fmt, options={"fflags": "+bitexact"}) as out:
            ost = _add_video_stream(out, fmt, rate, settings)
            ost.width, ost.height, ost.pix_fmt = width, height, "yuv420p"
            for start in range(0, reader.num_frames, _READ_CHUNK):
                numbers = np.arange(start, min(start + _READ_CHUNK, reader.num_frames))
                for i, image in zip(numbers.tolist(), reader.get(numbers).numpy(), strict=True):
                    scaled = scaler.reformat(av.VideoFrame.from_ndarray(image, format="rgb24"),
                                             width, height, "yuv420p", interpolation="AREA")
                    scaled.pts, scaled.time_base = i, 1 / rate
                    for packet in ost.encode(scaled):
                        out.mux(packet)
            for packet in ost.encode():
                out.mux(packet)
        return reader.num_frames


def full_decode(path: str | Path, size: tuple[int, int] | None = None,
                threads: int = 0) -> Iterator[np.ndarray]:
    """The frames of a full sequential decode of `path` (the pictures the decoder puts out,
    in order), as RGB, scaled to `size` (width, height) with the filter `encode_video` uses.

    threads: decoder threads (0: FFmpeg's choice). A sound stream decodes the same with any
    number; a damaged one does not (error concealment differs with frame threads, and from
    run to run), so a comparison with the readers (one thread each) uses 1."""
    import av

    width, height = size or (None, None)
    to_rgb = av.video.reformatter.VideoReformatter()  # one converter for every frame
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = threads
        for frame in container.decode(stream):
            yield to_rgb.reformat(frame, width, height, "rgb24", interpolation="AREA").to_ndarray()


def _verify(src: Path, tmp: Path, expected_frames: int, expected_fps: float) -> str:
    """'' when both decoders read `tmp` with the expected frames and rate, and its frames are
    those of the full decode of `src`; else why not."""
    for decoder in ("decord", "pyav"):
        meta = probe_video(tmp, decoder, depth="fast", fallback=False)
        if not meta.ok:
            return f"the re-encoded copy does not decode with {decoder}: {meta.error}"
        if meta.num_frames != expected_frames:
            return f"the re-encoded copy has {meta.num_frames} frames ({decoder}), the input {expected_frames}"
        if abs(meta.fps - expected_fps) > FPS_TOLERANCE * expected_fps:
            return f"the re-encoded copy runs at {meta.fps:.4f} fps ({decoder}), the input at {expected_fps:.4f}"
    return _compare_frames(src, tmp, (meta.width, meta.height))


def _compare_frames(src: Path, tmp: Path, size: tuple[int, int]) -> str:
    """'' when every frame of the copy is nearer the same frame of the source's full decode
    than that frame's neighbours. The full decode does not go through the readers, so this
    also checks the numbering `encode_video` read the source with. Encoding is lossy, so
    equality cannot be asked for; a frame that moved (a swap, a frame lost or repeated)
    lands nearer a neighbour."""
    source = full_decode(src, size)
    window = [None, next(source, None), next(source, None)]  # frames i-1, i, i+1 of the source
    for i, copy in enumerate(full_decode(tmp)):
        if window[1] is None:
            return f"the copy has more frames than the input's full decode ({i} there)"
        error = {i + k: float(np.abs(copy.astype(np.float32) - frame).mean())
                 for k, frame in zip((-1, 0, 1), window, strict=True) if frame is not None}
        nearest = min(error, key=error.__getitem__)
        # Near-identical neighbours (a still scene, duplicated frames) may trade places in
        # the encoder's noise: only a margin beyond that noise is a wrong frame.
        if nearest != i and error[i] > error[nearest] + SAME_FRAME_MARGIN:
            return (f"frame {i} of the re-encoded copy matches frame {nearest} of the input's full "
                    f"decode (mean abs. error {error[nearest]:.2f}) better than frame {i} "
                    f"({error[i]:.2f})")
        window = [window[1], window[2], next(source, None)]
    return ""


def prepare_video(src: str | Path, dst: str | Path, settings: PrepareSettings) -> str:
    """Write the prepared copy of `src` at `dst`, atomically; '' on success, else the reason
    `src` cannot be prepared (nothing is left at `dst` then)."""
    src, dst = Path(src), Path(dst)
    # The project's own verdict on the input: empty, truncated, unreadable, no frames.
    meta = probe_video(src, "pyav", depth="header", fallback=False)
    if not meta.ok:
        return meta.error
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=TMP_SUFFIX)
    os.close(fd)
    tmp = Path(name)
    try:
        try:
            written = encode_video(src, tmp, container_format(dst), settings, layout=meta.layout)
        except Exception as err:
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            return f"decode/encode failed: {message}".replace(str(src), src.name)
        if written != meta.num_frames:
            return f"decoded {written} of the {meta.num_frames} frames in the container"
        error = _verify(src, tmp, meta.num_frames, meta.fps)
        if error:
            return error
        shutil.copymode(src, tmp)  # mkstemp made it private; the copy is as readable as its source
        st = src.stat()
        # The source's mtime marks the copy as finished and up to date (see _is_done).
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, dst)
        return ""
    finally:
        tmp.unlink(missing_ok=True)  # gone after the rename; removed on any failure


def _prepare_job(src: str, dst: str, rel: str, settings: PrepareSettings) -> _Result:
    """Worker entry point: never raises for a bad video."""
    try:
        error = prepare_video(src, dst, settings)
    except Exception as err:
        error = f"{type(err).__name__}: {err}"
    src_bytes = os.stat(src).st_size if not error else 0
    dst_bytes = os.stat(dst).st_size if not error else 0
    return _Result(rel, error, src_bytes, dst_bytes)


# ---- the dataset -------------------------------------------------------------------------------
def _walk(root: Path) -> Iterator[tuple[Path, list[str]]]:
    """(folder relative to root, its file names), skipping the index cache as find_videos does."""
    for folder, filenames in walk_dataset(root):
        yield folder.relative_to(root), filenames


def _is_done(src: Path, dst: Path) -> bool:
    """A finished copy exists: only verified copies are renamed into place, stamped with the
    source's mtime (so a source changed since is prepared again)."""
    try:
        return dst.stat().st_mtime_ns == src.stat().st_mtime_ns
    except OSError:
        return False


def _copy_file(src: Path, dst: Path) -> bool:
    """Copy unless an identical-looking copy (size and mtime) is there; atomic. True if copied."""
    st = src.stat()
    try:
        old = dst.stat()
        if (old.st_size, old.st_mtime_ns) == (st.st_size, st.st_mtime_ns):
            return False
    except OSError:
        pass
    fd, name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=TMP_SUFFIX)
    os.close(fd)
    try:
        shutil.copy2(src, name)
        os.replace(name, dst)
    finally:
        Path(name).unlink(missing_ok=True)
    return True


def _check_roots(src: Path, dst: Path, settings: PrepareSettings, overwrite: bool) -> None:
    if not src.is_dir():
        raise FileNotFoundError(f"src={str(src)!r} is not a directory")
    s, d = src.resolve(), dst.resolve()
    if s == d or s in d.parents or d in s.parents:
        raise ValueError(f"src={str(src)!r} and dst={str(dst)!r} must be separate folders "
                         "(neither inside the other)")
    info = dst / INFO_FILE
    expected = {"version": PREPARE_FORMAT_VERSION, **asdict(settings)}
    if info.is_file() and not overwrite:
        try:
            existing = {k: v for k, v in json.loads(info.read_text()).items() if k != "source"}
        except (ValueError, AttributeError):  # unreadable, or not a JSON object
            existing = None
        if existing != expected:
            raise FileExistsError(f"dst={str(dst)!r} holds a copy prepared with other settings "
                                  f"({existing}); choose another dst or pass overwrite=True")
    elif not info.is_file() and dst.is_dir() and any(dst.iterdir()) and not overwrite:
        raise FileExistsError(f"dst={str(dst)!r} exists, is not empty and is not a prepared copy; "
                              "choose an empty or new folder, or pass overwrite=True")


def _remove_stale_tmp(dst: Path) -> None:
    """Temporary files a killed run left behind (never renamed, so never finished)."""
    for folder, names in _walk(dst):
        for name in names:
            if name.endswith(TMP_SUFFIX):
                (dst / folder / name).unlink(missing_ok=True)


def prepare_dataset(src: str | Path, dst: str | Path, *, short_side: int = 128, gop: int = 16,
                    workers: int = 1, crf: int = 23, preset: str = "veryfast", qscale: int = 5,
                    overwrite: bool = False, progress: bool = True) -> PrepareSummary:
    """Write the prepared copy of dataset root `src` to `dst` (see the module docstring).

    Returns a summary; bad input videos are in `summary.failed` (and DST/prepare_failures.json),
    never raised. Raises ValueError / FileNotFoundError / FileExistsError for bad arguments.
    """
    settings = PrepareSettings(short_side=short_side, gop=gop, crf=crf, preset=preset,
                               qscale=qscale)
    settings.check()
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    src, dst = Path(src), Path(dst)
    _check_roots(src, dst, settings, overwrite)
    start = time.perf_counter()
    dst.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(dst)
    write_json_atomic(dst / INFO_FILE, {"version": PREPARE_FORMAT_VERSION, **asdict(settings),
                                        "source": str(src.resolve())}, indent=1)
    summary = PrepareSummary(str(src), str(dst))
    jobs: list[tuple[str, str, str]] = []
    for folder, names in _walk(src):
        (dst / folder).mkdir(parents=True, exist_ok=True)  # same layout, empty folders too
        for name in names:
            rel = (folder / name).as_posix()
            s, d = src / folder / name, dst / folder / name
            if folder == Path(".") and name in (INFO_FILE, FAILURES_FILE):
                continue  # SRC is itself a prepared copy: these describe it, not DST
            if not is_video_file(name):
                summary.copied += _copy_file(s, d)
                continue
            summary.videos += 1
            if not overwrite and _is_done(s, d):
                summary.skipped += 1
                summary.src_bytes += s.stat().st_size
                summary.dst_bytes += d.stat().st_size
            else:
                jobs.append((str(s), str(d), rel))
    for result in _run(jobs, settings, workers, progress):
        if result.error:
            summary.failed[result.rel] = result.error
            log.info("prepare: left out %s: %s", result.rel, result.error)  # listed in the summary
        else:
            summary.prepared += 1
            summary.src_bytes += result.src_bytes
            summary.dst_bytes += result.dst_bytes
    summary.failed = dict(sorted(summary.failed.items()))
    failures = dst / FAILURES_FILE
    if summary.failed:
        write_json_atomic(failures, summary.failed, indent=1)
    else:
        failures.unlink(missing_ok=True)
    summary.seconds = time.perf_counter() - start
    return summary


def _run(jobs: list[tuple[str, str, str]], settings: PrepareSettings, workers: int,
         show: bool) -> Iterator[_Result]:
    with _progress() as bar:
        task = bar.add_task("Preparing videos", total=len(jobs), visible=show)
        if workers == 1 or len(jobs) < 2:
            for s, d, rel in jobs:
                yield _prepare_job(s, d, rel, settings)
                bar.advance(task)
            return
        # Processes, not threads: scaling and the encoder hold the GIL for part of each frame.
        # Forkserver: workers do not inherit this process's threads (the progress bar's) or
        # CUDA state, which forking does.
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
            futures = {pool.submit(_prepare_job, s, d, rel, settings): rel for s, d, rel in jobs}
            for future in as_completed(futures):
                try:
                    yield future.result()
                except BrokenProcessPool as err:
                    # A decoder crashed its process (or it was killed); the pool cannot tell
                    # which video did it, so every unfinished one is reported. A rerun retries.
                    yield _Result(futures[future], f"worker process died ({err}); rerun to retry", 0, 0)
                bar.advance(task)
