"""`softpool-video prepare SRC DST`: a drop-in copy of a dataset root with its videos re-encoded
small and fast to decode (the work is softpool_video.datamodules.prepare)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from softpool_video.datamodules.prepare import FAILURES_FILE, X264_PRESETS, prepare_dataset

from ._console import console, fail, setup_logging


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def main(argv: list[str]) -> int:
    """`softpool-video prepare SRC DST`; exit status 1 when some video was left out."""
    default_workers = os.cpu_count() or 1
    parser = argparse.ArgumentParser(
        prog="softpool-video prepare",
        description="Write a drop-in copy of a dataset root (UCF-101, HMDB-51, Kinetics or any "
                    "folder of videos) with every video re-encoded small and with frequent key "
                    "frames, so training decodes several times fewer CPU-seconds per clip. Same "
                    "folders, names and annotation files; same frame count and frame rate (audio "
                    "is dropped). Resumable: rerun the same command after an interruption. "
                    "Unreadable videos are listed and left out. Exit status 1 if any was left out.")
    parser.add_argument("src", type=Path, help="dataset root to copy")
    parser.add_argument("dst", type=Path, help="where the prepared copy goes (new or empty folder, "
                                               "or an earlier prepared copy to resume)")
    parser.add_argument("--short-side", type=int, default=128,
                        help="short side of the copies in pixels; larger videos are scaled down, "
                             "aspect kept (default 128: training resizes to 128 and crops 112)")
    parser.add_argument("--gop", type=int, default=16,
                        help="at most this many frames between key frames (default 16)")
    parser.add_argument("--crf", type=int, default=23,
                        help="H.264 quality (all but AVI files), 0..51, lower is better and bigger "
                             "(default 23)")
    parser.add_argument("--preset", choices=X264_PRESETS, default="veryfast",
                        help="x264 speed preset: slower writes smaller files (default veryfast)")
    parser.add_argument("--qscale", type=int, default=5,
                        help="MPEG-4 part 2 quantizer for AVI files (UCF-101, HMDB-51), 2..31, lower "
                             "is better and bigger (default 5)")
    parser.add_argument("--workers", type=int, default=default_workers,
                        help=f"videos encoded in parallel, one core each (default: all cores, {default_workers})")
    parser.add_argument("--overwrite", action="store_true",
                        help="re-encode everything; allows a non-empty DST or other settings")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each left-out video as it happens")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    out = console()
    try:
        summary = prepare_dataset(args.src, args.dst, short_side=args.short_side, gop=args.gop,
                                  workers=args.workers, crf=args.crf, preset=args.preset,
                                  qscale=args.qscale,
                                  overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        return fail("prepare", err)
    s = summary
    out.print(f"prepared {s.videos - len(s.failed)} of {s.videos} videos under {s.src} into {s.dst}: "
                  f"{s.prepared} encoded now, {s.skipped} already done, {len(s.failed)} left out; "
                  f"{s.copied} other files copied; {s.seconds:.1f}s")
    out.print(f"videos: {_mib(s.src_bytes)} -> {_mib(s.dst_bytes)} "
                  f"({100 * s.size_ratio:.0f}% of the original size)" if s.src_bytes else "videos: none")
    for rel, error in s.failed.items():
        out.print(f"[red]LEFT OUT[/red]  {rel}  {error}")
    if s.failed:
        out.print(f"list: {Path(s.dst) / FAILURES_FILE} (the dataset reports these as missing)")
    out.print(f"train with the same settings and root={str(s.dst)!r}")
    return 1 if s.failed else 0
