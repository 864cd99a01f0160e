"""`softpool-video check-videos ROOT`: probe every video under a dataset root, report bad ones."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from softpool_video.datamodules.decoders import DECODERS
from softpool_video.datamodules.frame_layout import LAYOUTS, PLAIN
from softpool_video.datamodules.index_cache import PROBE_DEPTHS, VideoIndex
from softpool_video.datamodules.video_files import find_videos

from ._console import console, fail, setup_logging


def main(argv: list[str]) -> int:
    """Probe every video under ROOT; report bad ones. Exit status 1 when any is bad."""
    parser = argparse.ArgumentParser(
        prog="softpool-video check-videos",
        description="Probe every video file under ROOT (through the dataset's index cache, so "
                    "training reuses the result) and report empty, truncated and undecodable "
                    "files, plus files that failed while training. Exit status 1 if any is bad.")
    parser.add_argument("root", type=Path, help="dataset root")
    parser.add_argument("--decoder", choices=DECODERS, default="decord",
                        help="preferred decoder, as in training (default decord; PyAV is the fallback)")
    parser.add_argument("--depth", choices=PROBE_DEPTHS, default="fast",
                        help="header: count frames; fast: also decode first and last frame "
                             "(default); full: decode every frame")
    parser.add_argument("--full", action="store_const", const="full", dest="depth",
                        help="same as --depth full")
    parser.add_argument("--workers", type=int, default=None, help="probe threads (default: auto)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="index cache folder (default ROOT/.softpool_video)")
    parser.add_argument("--rebuild", action="store_true",
                        help="re-probe every file and forget recorded read failures")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if not args.root.is_dir():
        return fail("check-videos", f"ROOT={str(args.root)!r} is not a directory")
    out = console()
    index = VideoIndex(args.root, decoder=args.decoder, depth=args.depth, cache_dir=args.cache_dir,
                       workers=args.workers)
    if args.rebuild:
        index.clear()
    rels = find_videos(args.root)
    failures = index.read_failures()
    metas = index.ensure(rels, "Checking videos")
    bad = {rel: m.error for rel, m in metas.items() if not m.ok}
    by_decoder: dict[str, int] = {}
    for m in metas.values():
        if m.ok:
            by_decoder[m.decoder] = by_decoder.get(m.decoder, 0) + 1
    frames = sum(m.num_frames for m in metas.values() if m.ok)
    # Files only some decoders number exactly: how many, and which decoder reads them.
    layouts: dict[str, dict[str, int]] = {}
    for m in metas.values():
        if m.ok and m.layout != PLAIN:
            per_decoder = layouts.setdefault(m.layout, {})
            per_decoder[m.decoder] = per_decoder.get(m.decoder, 0) + 1

    out.print(f"checked {len(rels)} videos under {args.root} (depth {args.depth}): "
                  f"{len(rels) - len(bad)} good, {len(bad)} bad; {frames} frames in good videos")
    if by_decoder:
        out.print("decoded by: " + ", ".join(f"{b} {n}" for b, n in sorted(by_decoder.items())))
    for layout, per_decoder in sorted(layouts.items()):
        readers = ", ".join(f"{b} {n}" for b, n in sorted(per_decoder.items()))
        wrong = [b for b in DECODERS if b not in LAYOUTS[layout].decoders]
        count = sum(per_decoder.values())
        out.print(f"frame layout {layout} ({LAYOUTS[layout].description}): {count} "
                  f"video{'s' * (count != 1)}, read by {readers}"
                  + (f"; {' and '.join(wrong)} would return wrong frames" if wrong else ""),
                  markup=False)
    for rel, error in sorted(bad.items()):
        out.print(f"[red]BAD[/red]  {rel}  {error}")
    if failures:
        out.print(f"{len(failures)} videos failed at read time in earlier runs (now treated as bad):")
        for rel, rec in sorted(failures.items()):
            out.print(f"  {rel}  {rec.get('error', '')}")
    out.print(f"index: {index.index_path}")
    if args.json is not None:
        report = {"root": str(args.root), "depth": args.depth, "decoder": args.decoder,
                  "videos": len(rels), "good": len(rels) - len(bad), "bad": bad,
                  "read_failures": {rel: rec.get("error", "") for rel, rec in failures.items()},
                  "decoded_by": by_decoder, "layouts": layouts, "index": str(index.index_path)}
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 1 if bad else 0
