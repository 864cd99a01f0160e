"""Data-loading throughput: training clips per worker per second and per CPU-second, for
every decoder, side by side with PyTorchVideo's loader, on original and prepared sources.

One DataLoader worker's job, timed with one torch thread and one decoder thread (as a worker
runs): open a video, decode a random 16-frame clip (every 2nd frame), then the training
transforms (random resized crop 112 straight from the decoded frame, flip, normalise) ->
float 3x16x112x112. Sources are generated here with PyAV, like the two formats that matter:

- H.264 in MP4 (Kinetics copies), libx264 defaults (one key frame per 250 frames, B-frames);
- MPEG-4 part 2 (XVID) in AVI, as UCF-101 and HMDB-51 ship (key frame every 12 frames);
- an original UCF-101 file with DivX/XviD packed B-frames (tests/data/realdata/, copied), as
  about a third of UCF-101 ships: decord declines it (it would return wrong frames, see
  datamodules/frame_layout.py) and PyAV counts pictures from the start of the file; the
  PyTorchVideo rows show what its decord path costs, wrong frames and all;
- the same videos after `softpool-video prepare` (short side 128, key frame every 16
  frames; `datamodules.prepare.prepare_dataset`), when that module is installed.

Loaders, timed in rounds that interleave them so a load change on the machine hits all alike:

- decord / pyav: ours (`datamodules.decoders`); pyav skips non-reference frames it does not
  return (same frames, see tests/data/test_data_seek.py). `pyav-noskip` decodes every frame, to
  show what the skipping saves.
- pytorchvideo: PyTorchVideo 0.1.5's LabeledVideoDataset with its decord decoder, a random
  32-frame window, no transforms (its float CTHW output), as shipped: decord picks its own
  thread count. `pytorchvideo-1thread` pins decord to one thread like our readers, the
  stricter reference. Each runs in a child process:
  importing its decord decoder switches decord's bridge to torch for the whole process,
  which would change what our decord reader costs.

Clips per CPU-second use time.process_time (all threads of the process), so they hold on a
busy machine where wall-clock clips/s include waiting for a core.

    python -m benchmarks.bench_data            # full run (about 2 min), writes results/data.json
    python -m benchmarks.bench_data --quick    # seconds; a smoke test
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from softpool_video.datamodules import ClipSampler, EvalTransform, TrainTransform
from softpool_video.datamodules.dataset import VideoClipDataset
from softpool_video.datamodules.decoders import DecodeError, DecordReader, PyAVReader, read_frames
from softpool_video.datamodules.index_cache import VideoMeta
from softpool_video.datamodules.records import VideoRecord

INPUTS = ("quick", "what", "rounds", "seconds_per_round", "eval_what", "machine")  # run()'s keys saying what was measured
SUMMARY = Path(__file__).resolve().parent / "results" / "data.json"
REPO = Path(__file__).resolve().parents[1]
PACKED_SOURCE = REPO / "tests" / "data" / "realdata" / "v_ApplyEyeMakeup_g01_c01.avi"
WIDTH, HEIGHT, FPS = 320, 240, 25
CLIP_LEN, FRAME_INTERVAL, CROP = 16, 2, 112
PTV_WINDOW = 32  # frames in PyTorchVideo's clip: 16 frames every 2nd frame span 31-32
PREPARED = {"short_side": 128, "gop": 16}
OURS = ("decord", "pyav", "pyav-noskip")
PTV = {"pytorchvideo": 0, "pytorchvideo-1thread": 1}  # loader -> decord num_threads (0: its auto)
LOADERS = OURS + tuple(PTV)


def _frames(num_frames: int, seed: int) -> np.ndarray:
    """Moving, textured content so the codecs do realistic work (not flat frames)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (HEIGHT // 16 + 2, WIDTH // 16 + 2, 3)).astype(np.float32)
    bg = np.kron(coarse, np.ones((16, 16, 1), np.float32))
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    out = np.empty((num_frames, HEIGHT, WIDTH, 3), np.uint8)
    for t in range(num_frames):
        shift = int(2 * t)  # a panning camera
        frame = bg[:HEIGHT, :, :][:, np.arange(WIDTH) + shift % 16]
        cx = WIDTH / 2 + 80 * math.sin(t / 9)
        cy = HEIGHT / 2 + 50 * math.cos(t / 7)
        blob = (xs - cx) ** 2 + (ys - cy) ** 2 < 30 ** 2
        frame = np.where(blob[..., None], (255 - frame) * 0.9, frame)
        out[t] = np.clip(frame + rng.normal(0, 4, (HEIGHT, WIDTH, 1)), 0, 255).astype(np.uint8)
    return out


def _write(path: Path, codec: str, fmt: str, frames: np.ndarray, gop: int | None) -> None:
    import av

    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        if codec == "mpeg4":
            stream.codec_tag = "XVID"
            stream.bit_rate = 1_000_000  # UCF-101's files average about 1 Mbit/s
        if gop is not None:
            stream.codec_context.gop_size = gop
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _has_encoder(name: str) -> bool:
    import av

    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:
        return False


def _count(path: Path) -> tuple[int, int]:
    """(frames, key frames) of a file, from its packets."""
    import av

    with av.open(str(path)) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
        return len(packets), sum(p.is_keyframe for p in packets)


def make_sources(folder: Path, videos: int, num_frames: int) -> dict[str, dict[str, Any]]:
    """Write the source videos; returns {format name: {paths, codec, notes}}."""
    sources: dict[str, dict[str, Any]] = {}
    formats = [("h264_mp4", "libx264", "mp4", ".mp4", None), ("mpeg4_avi", "mpeg4", "avi", ".avi", 12)]
    for name, codec, fmt, ext, gop in formats:
        if not _has_encoder(codec):
            sources[name] = {"paths": [], "codec": codec,
                             "note": f"{codec} is not available in PyAV's bundled FFmpeg; skipped"}
            continue
        paths = []
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(videos):
            path = folder / name / f"video_{i}{ext}"
            _write(path, codec, fmt, _frames(num_frames, seed=i), gop)
            paths.append(path)
        frames, keys = _count(paths[0])
        sources[name] = {"paths": paths, "codec": codec, "frames": frames, "key_frames": keys,
                         "mean_size_kib": round(sum(p.stat().st_size for p in paths) / len(paths) / 1024, 1)}
    # Packed B-frames cannot be written with FFmpeg: copies of the real file.
    (folder / "xvid_packed_avi").mkdir(parents=True, exist_ok=True)
    paths = [folder / "xvid_packed_avi" / f"video_{i}.avi" for i in range(videos)]
    for path in paths:
        shutil.copyfile(PACKED_SOURCE, path)
    frames, keys = _count(paths[0])
    sources["xvid_packed_avi"] = {"paths": paths, "codec": "mpeg4 (XviD, packed B-frames)",
                                  "frames": frames, "key_frames": keys,
                                  "mean_size_kib": round(PACKED_SOURCE.stat().st_size / 1024, 1)}
    return sources


def _reader(loader: str, path: Path):
    if loader == "decord":
        return DecordReader(path, num_threads=1)
    return PyAVReader(path, num_threads=1, skip_nonref=loader == "pyav")


class Ours:
    """Our dataset's per-item work on a list of files: open per clip, decode, transform."""

    def __init__(self, loader: str, paths: list[Path], transform: TrainTransform) -> None:
        self.loader, self.paths, self.transform = loader, paths, transform
        self.sampler = ClipSampler("random", CLIP_LEN, FRAME_INTERVAL)
        self.gen = torch.Generator().manual_seed(0)
        self.n = 0
        self.totals = {"clips": 0, "wall": 0.0, "cpu": 0.0, "cpu_decode": 0.0, "frames_decoded": 0}
        self.error = ""  # why this loader does not read these files (decord: a layout it declines)

    def one(self) -> None:
        path = self.paths[self.n % len(self.paths)]
        self.n += 1
        cpu0 = time.process_time()
        with _reader(self.loader, path) as reader:  # open per clip, as the dataset does
            frames = reader.get(self.sampler(reader.num_frames, generator=self.gen))
            self.totals["frames_decoded"] += getattr(reader, "frames_decoded", 0)
        self.totals["cpu_decode"] += time.process_time() - cpu0
        out = self.transform(frames)
        assert out.shape == (3, CLIP_LEN, CROP, CROP)

    def warm_up(self) -> None:
        try:
            self.one()  # the first open pays one-off costs
        except DecodeError as err:
            self.error = err.reason
        self.totals.update(cpu_decode=0.0, frames_decoded=0)

    def time(self, seconds: float, min_clips: int) -> None:
        if self.error:
            return
        clips, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
        while clips < min_clips or time.perf_counter() - wall0 < seconds:
            self.one()
            clips += 1
        self.totals["clips"] += clips
        self.totals["wall"] += time.perf_counter() - wall0
        self.totals["cpu"] += time.process_time() - cpu0


class PyTorchVideo:
    """PyTorchVideo's loader, timed in a child process (see the module docstring)."""

    def __init__(self, decode_threads: int) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_data",
                                      "--pytorchvideo-worker", str(decode_threads)],
                                     cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.error = ""

    def use(self, paths: list[Path]) -> PyTorchVideo:
        """Time these files from now on (one worker process serves every source)."""
        if not self.error:
            self.error = self._ask({"paths": [str(p) for p in paths]}).get("error", "")
        self.totals = {"clips": 0, "wall": 0.0, "cpu": 0.0}
        return self

    def warm_up(self) -> None:
        pass  # the worker warms up when it gets its files

    def _ask(self, message: dict) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
            for line in self.proc.stdout:  # skip anything a library printed
                if line.startswith("RESULT "):
                    return json.loads(line[len("RESULT "):])
        except OSError:  # the worker is gone (broken pipe)
            pass
        return {"error": f"the pytorchvideo worker exited (code {self.proc.wait()})"}

    def time(self, seconds: float, min_clips: int) -> None:
        if self.error:
            return
        reply = self._ask({"seconds": seconds, "min_clips": min_clips})
        self.error = reply.get("error", "")
        for key in self.totals:
            self.totals[key] += reply.get(key, 0)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # the worker ends at end of input
            self.proc.wait(timeout=30)


def _pytorchvideo_worker(decode_threads: int) -> int:
    """Child process: times PyTorchVideo's loader on request, one JSON line per reply."""
    torch.set_num_threads(1)
    torch.manual_seed(0)

    def reply(obj: dict) -> None:
        print("RESULT " + json.dumps(obj), flush=True)

    try:
        import pytorchvideo.data as ptv
        import pytorchvideo.data.encoded_video_decord as ptv_decord
    except Exception as err:
        sys.stdin.readline()
        reply({"error": f"pytorchvideo cannot be imported: {type(err).__name__}: {err}"})
        return 0
    if decode_threads:  # PyTorchVideo leaves decord on auto threads (0); pin it if asked
        init = ptv_decord.EncodedVideoDecord.__init__

        def pinned(self, *args, **kwargs):
            kwargs.setdefault("num_threads", decode_threads)
            init(self, *args, **kwargs)

        ptv_decord.EncodedVideoDecord.__init__ = pinned
    dataset = items = None

    def one() -> None:
        nonlocal items
        try:
            item = next(items)
        except StopIteration:  # one pass over the videos done: start another
            items = iter(dataset)
            item = next(items)
        assert item["video"].shape[1] >= PTV_WINDOW - 1

    for line in sys.stdin:
        ask = json.loads(line)
        try:
            if "paths" in ask:  # new files
                dataset = ptv.LabeledVideoDataset([(p, {"label": 0}) for p in ask["paths"]],
                                                  ptv.make_clip_sampler("random", PTV_WINDOW / FPS),
                                                  video_sampler=torch.utils.data.RandomSampler,
                                                  decode_audio=False, decoder="decord")
                items = iter(dataset)
                one()  # warm-up
                reply({"ready": True})
                continue
            clips, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
            while clips < ask["min_clips"] or time.perf_counter() - wall0 < ask["seconds"]:
                one()
                clips += 1
            reply({"clips": clips, "wall": time.perf_counter() - wall0, "cpu": time.process_time() - cpu0})
        except Exception as err:
            reply({"error": f"{type(err).__name__}: {err}"})
    return 0


def prepare_copies(sources: dict[str, dict[str, Any]], folder: Path) -> tuple[dict[str, dict[str, Any]], str]:
    """Prepared copies of each source via `prepare_dataset`; ({}, reason) if unavailable."""
    try:
        from softpool_video.datamodules.prepare import prepare_dataset
    except ImportError as err:
        return {}, (f"prepared rows skipped: softpool_video.datamodules.prepare is not available "
                    f"({err})")
    prepared: dict[str, dict[str, Any]] = {}
    for name, src in sources.items():
        if not src["paths"]:
            continue
        root = src["paths"][0].parent
        dst = folder / f"prepared_{name}"
        started = time.perf_counter()
        summary = prepare_dataset(root, dst, workers=1, **PREPARED)
        paths = [dst / p.relative_to(root) for p in src["paths"]]
        paths = [p if p.exists() else next(dst.rglob(p.stem + ".*")) for p in paths]
        frames, keys = _count(paths[0])
        prepared[f"prepared_{name}"] = {
            "paths": paths, "from": name, **PREPARED, "frames": frames, "key_frames": keys,
            "prepare_s": round(time.perf_counter() - started, 1),
            "mean_size_kib": round(sum(p.stat().st_size for p in paths) / len(paths) / 1024, 1),
            "summary": asdict(summary) if is_dataclass(summary) else repr(summary)}
    return prepared, ""


def _row(fmt: str, loader: str, timer: Ours | PyTorchVideo) -> dict[str, Any]:
    t = timer.totals
    if timer.error:
        return {"format": fmt, "decoder": loader, "skipped": timer.error}
    row = {"format": fmt, "decoder": loader, "clips": t["clips"],
           "clips_per_s": round(t["clips"] / t["wall"], 2),
           "clips_per_cpu_s": round(t["clips"] / t["cpu"], 2) if t["cpu"] > 0 else math.nan,
           "cpu_ms_per_clip": round(1000 * t["cpu"] / t["clips"], 2)}
    if isinstance(timer, Ours):
        row["decode_cpu_share"] = round(t["cpu_decode"] / t["cpu"], 3) if t["cpu"] > 0 else math.nan
        if loader != "decord":
            row["frames_decoded_per_clip"] = round(t["frames_decoded"] / t["clips"], 1)
    return row


def eval_rows(fmt: str, paths: list[Path], clips: int, crops: int = 3) -> list[dict[str, Any]]:
    """Test views (clips x crops per video, EvalTransform): our dataset, whose views of one
    video share a reader and whose crops share a clip, vs opening and decoding every view
    afresh (what it did before)."""
    root = paths[0].parent
    records = [VideoRecord(p.name, 0) for p in paths]
    rows = []
    for decoder in ("decord", "pyav"):
        metas = []
        for p in paths:
            with _reader(decoder, p) as reader:
                metas.append(VideoMeta(reader.num_frames, reader.fps, WIDTH, HEIGHT, decoder, "", 0, 0,
                                       decoder, "fast"))
        dataset = VideoClipDataset(root, records, metas, ClipSampler("uniform", CLIP_LEN, FRAME_INTERVAL,
                                                                     num_clips=clips),
                                   EvalTransform(CROP, num_crops=crops), num_crops=crops, decoder=decoder)

        for mode in ("shared reader", "each view afresh"):
            wall0, cpu0 = time.perf_counter(), time.process_time()
            for i in range(len(dataset)):
                if mode == "shared reader":
                    out = dataset[i]["video"]
                else:
                    video, clip, crop = dataset.view(i)
                    indices = dataset.sampler(dataset.num_frames[video], clip)
                    out = dataset.transform(read_frames(root / records[video].rel, indices, decoder)[0], crop)
                assert out.shape == (3, CLIP_LEN, CROP, CROP)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            rows.append({"format": fmt, "decoder": decoder, "mode": mode, "views": len(dataset),
                         "views_per_s": round(len(dataset) / wall, 2),
                         "views_per_cpu_s": round(len(dataset) / cpu, 2)})
    return rows


def _ratios(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per CPU-second: each of our decoders over each PyTorchVideo reference, and a prepared
    copy over its original with the same decoder."""
    rate = {(r["format"], r["decoder"]): r["clips_per_cpu_s"] for r in rows if "clips_per_cpu_s" in r}
    out: dict[str, Any] = {}
    for fmt in sorted({f for f, _ in rate}):
        entry: dict[str, float] = {}
        for ours in ("decord", "pyav"):
            if (fmt, ours) not in rate:
                continue
            for ref in PTV:
                if (fmt, ref) in rate:
                    entry[f"{ours}_over_{ref}"] = round(rate[(fmt, ours)] / rate[(fmt, ref)], 2)
            original = fmt.removeprefix("prepared_")
            if original != fmt and (original, ours) in rate:
                entry[f"{ours}_prepared_over_original"] = round(rate[(fmt, ours)] / rate[(original, ours)], 2)
        if entry:
            out[fmt] = entry
    return out


def run(quick: bool = False) -> dict:
    """Measure; returns a JSON-able dict with one row per (source, loader)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a DataLoader worker runs torch with one thread
    rounds, seconds, min_clips = (1, 0.3, 3) if quick else (3, 1.5, 5)
    transform = TrainTransform(CROP, crop="random_resized")
    rows: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    notes: list[str] = []
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
            sources = make_sources(Path(tmp), videos=2 if quick else 6, num_frames=60 if quick else 200)
            prepared, note = prepare_copies(sources, Path(tmp))
            if note:
                notes.append(note)
                print(note, file=sys.stderr)
            sources.update(prepared)
            ptvs = {name: PyTorchVideo(threads) for name, threads in PTV.items()}
            try:
                for fmt, src in sources.items():
                    if not src["paths"]:
                        rows += [{"format": fmt, "decoder": d, "skipped": src["note"]} for d in LOADERS]
                        continue
                    timers: dict[str, Ours | PyTorchVideo] = {d: Ours(d, src["paths"], transform)
                                                              for d in OURS}
                    timers.update({name: ptv.use(src["paths"]) for name, ptv in ptvs.items()})
                    for timer in timers.values():
                        timer.warm_up()
                    for _ in range(rounds):
                        for timer in timers.values():
                            timer.time(seconds, min_clips)
                    rows += [_row(fmt, d, t) for d, t in timers.items()]
            finally:
                for ptv in ptvs.values():
                    ptv.close()
            for fmt in ("h264_mp4", "mpeg4_avi"):
                if sources[fmt]["paths"]:
                    evals += eval_rows(fmt, sources[fmt]["paths"][:2 if quick else 3], clips=2 if quick else 10)
    finally:
        torch.set_num_threads(threads)
    return {
        "benchmark": "data",
        "quick": quick,
        "what": (f"training clips per worker: open + decode {CLIP_LEN} frames every {FRAME_INTERVAL} "
                 f"from {WIDTH}x{HEIGHT} (or the prepared copy) + random resized crop {CROP} + flip + "
                 f"normalise; pytorchvideo: LabeledVideoDataset, decord (auto threads as shipped, "
                 f"or pinned to 1), random {PTV_WINDOW}-frame window, no transforms; 1 torch thread, "
                 "1 decoder thread for ours"),
        "rounds": rounds, "seconds_per_round": seconds,
        "sources": {k: {kk: vv for kk, vv in v.items() if kk != "paths"} for k, v in sources.items()},
        "rows": rows,
        "ratios": _ratios(rows),
        "eval_what": (f"test views: {CLIP_LEN} frames every {FRAME_INTERVAL}, 10 uniform clips x 3 crops per "
                      f"video (quick: 2 x 3), EvalTransform (short side 128, crop {CROP}), one pass"),
        "eval_rows": evals,
        "notes": notes,
        "machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "loadavg_1min": round(os.getloadavg()[0], 2)},
        "wall_s": round(time.perf_counter() - started, 1),
    }


def markdown(result: dict) -> str:
    lines = [("| source | loader | clips/s | clips per CPU-second | CPU ms/clip | decode share of CPU "
             "| frames decoded per clip |"), "|---|---|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['format']} | {r['decoder']} | skipped: {r['skipped']} | | | | |")
            continue
        share = f"{100 * r['decode_cpu_share']:.0f}%" if "decode_cpu_share" in r else ""
        lines.append(f"| {r['format']} | {r['decoder']} | {r['clips_per_s']:.1f} | {r['clips_per_cpu_s']:.1f} "
                     f"| {r['cpu_ms_per_clip']:.1f} | {share} | {r.get('frames_decoded_per_clip', '')} |")
    for fmt, entry in result.get("ratios", {}).items():
        parts = [f"{key.replace('_over_', ' / ')} {value:.2f}x" for key, value in entry.items()]
        lines.append(f"\n{fmt}, per CPU-second: " + ", ".join(parts))
    if result.get("eval_rows"):
        lines += ["", result["eval_what"], "", "| source | decoder | views | views/s | views per CPU-second |",
                  "|---|---|---|---:|---:|"]
        lines += [f"| {r['format']} | {r['decoder']} | {r['mode']} | {r['views_per_s']:.1f} | "
                  f"{r['views_per_cpu_s']:.1f} |" for r in result["eval_rows"]]
    lines += [f"\n{note}" for note in result.get("notes", [])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few clips per row (smoke test)")
    parser.add_argument("--out", type=Path, default=SUMMARY, help=f"summary (default {SUMMARY})")
    parser.add_argument("--pytorchvideo-worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pytorchvideo_worker is not None:
        return _pytorchvideo_worker(args.pytorchvideo_worker)
    result = run(quick=args.quick)
    print(f"data loading, {result['what']}\n")
    print(markdown(result))
    from benchmarks.summary import split_inputs, write_summary  # the layout `make bench` writes

    write_summary("data", *split_inputs(result, INPUTS), out=args.out)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
