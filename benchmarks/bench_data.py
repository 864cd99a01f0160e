"""Data-loading throughput: training clips per second per worker, decord vs PyAV.

One DataLoader worker's job, timed in this process with one thread (as a worker runs):
open a 320x240 video, decode a random 16-frame clip (every 2nd frame), then the training
transforms (short side -> 128, random resized crop 112, flip, normalise) -> float
3x16x112x112. Sources are generated here with PyAV, like the two formats that matter:

- H.264 in MP4 (Kinetics copies), libx264 defaults (key frame every 250 frames);
- MPEG-4 part 2 (XVID) in AVI, as UCF-101 and HMDB-51 ship (key frame every 12 frames).

    python -m benchmarks.bench_data            # full run (< 2 min), writes results/data.json
    python -m benchmarks.bench_data --quick
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from softpool_video.atomic_files import write_json_atomic
from softpool_video.datamodules import ClipSampler, TrainTransform
from softpool_video.datamodules.decoders import DecordReader, PyAVReader

RESULTS = Path(__file__).resolve().parent / "results" / "data.json"
WIDTH, HEIGHT, FPS = 320, 240, 25
CLIP_LEN, FRAME_INTERVAL, CROP, RESIZE = 16, 2, 112, 128
READERS = {"decord": DecordReader, "pyav": PyAVReader}


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
    except Exception:  # noqa: BLE001 - any failure means "not available"
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
        for i in range(videos):
            path = folder / f"{name}_{i}{ext}"
            _write(path, codec, fmt, _frames(num_frames, seed=i), gop)
            paths.append(path)
        frames, keys = _count(paths[0])
        sources[name] = {"paths": paths, "codec": codec, "frames": frames, "key_frames": keys,
                         "mean_size_kib": round(sum(p.stat().st_size for p in paths) / len(paths) / 1024, 1)}
    return sources


def _time(paths: list[Path], backend: str, transform: TrainTransform | None, seconds: float,
          min_clips: int) -> dict[str, float]:
    sampler = ClipSampler("random", CLIP_LEN, FRAME_INTERVAL)
    gen = torch.Generator().manual_seed(0)
    reader_cls = READERS[backend]

    def one(i: int) -> None:
        path = paths[i % len(paths)]
        with reader_cls(path, num_threads=1) as reader:  # open per clip, as the dataset does
            frames = reader.get(sampler(reader.num_frames, generator=gen))
        if transform is not None:
            out = transform(frames)
            assert out.shape == (3, CLIP_LEN, CROP, CROP)

    one(0)  # warm-up: first open pays one-off costs
    clips, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while clips < min_clips or time.perf_counter() - start < seconds:
        one(clips)
        clips += 1
    elapsed = time.perf_counter() - start
    # CPU time as well: on a busy machine wall time includes waiting for a core.
    cpu = time.process_time() - cpu_start
    return {"clips": clips, "seconds": round(elapsed, 3), "clips_per_s": round(clips / elapsed, 1),
            "ms_per_clip": round(1000 * elapsed / clips, 2),
            "clips_per_cpu_s": round(clips / cpu, 1) if cpu > 0 else float("nan")}


def run(quick: bool = False) -> dict:
    """Measure; returns a JSON-able dict with one row per (format, decoder)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a DataLoader worker runs torch with one thread
    seconds, min_clips = (0.6, 5) if quick else (4.0, 20)
    transform = TrainTransform(CROP, RESIZE, crop="random_resized")
    rows = []
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
            sources = make_sources(Path(tmp), videos=2 if quick else 4, num_frames=100 if quick else 175)
            for fmt, src in sources.items():
                for backend in ("decord", "pyav"):
                    if not src["paths"]:
                        rows.append({"format": fmt, "decoder": backend, "skipped": src["note"]})
                        continue
                    full = _time(src["paths"], backend, transform, seconds, min_clips)
                    decode = _time(src["paths"], backend, None, seconds / 2, min_clips)
                    rows.append({"format": fmt, "decoder": backend,
                                 "clips_per_s": full["clips_per_s"], "ms_per_clip": full["ms_per_clip"],
                                 "clips_per_cpu_s": full["clips_per_cpu_s"],
                                 "decode_only_clips_per_s": decode["clips_per_s"],
                                 "decode_only_clips_per_cpu_s": decode["clips_per_cpu_s"],
                                 "clips_timed": full["clips"]})
    finally:
        torch.set_num_threads(threads)
    return {
        "benchmark": "data",
        "quick": quick,
        "what": (f"training clips/s per worker: open + decode {CLIP_LEN} frames every {FRAME_INTERVAL} "
                 f"from {WIDTH}x{HEIGHT} + resize {RESIZE} + random resized crop {CROP} + flip + "
                 "normalise; 1 torch thread, 1 decoder thread"),
        "sources": {k: {kk: vv for kk, vv in v.items() if kk != "paths"} for k, v in sources.items()},
        "rows": rows,
        "machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "torch": torch.__version__},
        "wall_s": round(time.perf_counter() - started, 1),
    }


def markdown(result: dict) -> str:
    lines = ["| source | decoder | clips/s (decode + transforms) | per CPU-second | ms/clip "
             "| decode-only clips/s | decode-only per CPU-second |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['format']} | {r['decoder']} | skipped: {r['skipped']} | | | | |")
        else:
            lines.append(f"| {r['format']} | {r['decoder']} | {r['clips_per_s']:.1f} | "
                         f"{r['clips_per_cpu_s']:.1f} | {r['ms_per_clip']:.1f} | "
                         f"{r['decode_only_clips_per_s']:.1f} | {r['decode_only_clips_per_cpu_s']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few clips per row (smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON output (default {RESULTS})")
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    print(f"data loading, {result['what']}\n")
    print(markdown(result))
    write_json_atomic(args.out, result, indent=1)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
