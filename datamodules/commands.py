"""`softpool-video make-demo-data` and `softpool-video check-videos` (wired in softpool_video/cli.py)."""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from .decoders import BACKENDS
from .index_cache import PROBE_DEPTHS, VideoIndex, find_videos


def _console():
    from rich.console import Console

    return Console(soft_wrap=True, highlight=False)


def _setup_logging(verbose: bool) -> None:
    if not logging.getLogger().handlers:
        from rich.logging import RichHandler

        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                            handlers=[RichHandler(show_path=False)])


def make_demo_data_main(argv: list[str]) -> int:
    """Write a demo dataset (UCF-101 layout) to OUT."""
    from .demo_data import DEMO_CLASSES, DEMO_VARIANTS, demo_spec, write_dataset
    from .demo_hard import HARD_CLASSES

    default, hard = demo_spec("default"), demo_spec("hard")
    parser = argparse.ArgumentParser(
        prog="softpool-video make-demo-data",
        description="Write a built-in synthetic action dataset in the exact UCF-101 layout. "
                    f"Variants: default ({', '.join(DEMO_CLASSES)}; every pooling method saturates) "
                    f"and hard ({', '.join(HARD_CLASSES)}: small, fast and low-contrast details that "
                    "downsampling can destroy, so pooling methods differ).")
    parser.add_argument("out", type=Path, help="output folder (created; must be empty or a demo)")
    parser.add_argument("--variant", choices=DEMO_VARIANTS, default="default",
                        help="which demo (default: default; hard: for configs/demo_hard.yaml)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--groups", type=int, default=None,
                        help=f"groups per class, >= 22 (default {default.groups}; hard {hard.groups})")
    parser.add_argument("--clips-per-group", type=int, default=None,
                        help=f"clips per group (default {default.clips_per_group}; hard {hard.clips_per_group})")
    parser.add_argument("--width", type=int, default=None,
                        help=f"frame width (default {default.width}; hard {hard.width})")
    parser.add_argument("--height", type=int, default=None,
                        help=f"frame height (default {default.height}; hard {hard.height})")
    parser.add_argument("--workers", type=int, default=2, help="writer threads (default 2)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset in OUT")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    console = _console()
    start = time.perf_counter()
    try:
        spec = demo_spec(args.variant, seed=args.seed, groups=args.groups, clips_per_group=args.clips_per_group,
                         width=args.width, height=args.height)
        root = write_dataset(args.out, spec, overwrite=args.overwrite, workers=args.workers)
    except (FileExistsError, ValueError) as err:
        console.print(f"[red]make-demo-data:[/red] {err}")
        return 2
    videos = sorted((root / "UCF-101").rglob("*.avi"))
    size = sum(p.stat().st_size for p in videos)
    console.print(f"demo dataset ({args.variant}): {root} ({len(videos)} videos, {size / 2**20:.1f} MiB, "
                  f"{time.perf_counter() - start:.1f}s)")
    config = " (configs/demo_hard.yaml)" if args.variant == "hard" else ""
    console.print(f"train with: UCF101DataModule(root={str(root)!r}, split=1){config}")
    return 0


def check_videos_main(argv: list[str]) -> int:
    """Probe every video under ROOT; report bad ones. Exit status 1 when any is bad."""
    parser = argparse.ArgumentParser(
        prog="softpool-video check-videos",
        description="Probe every video file under ROOT (through the dataset's index cache, so "
                    "training reuses the result) and report empty, truncated and undecodable "
                    "files, plus files that failed while training. Exit status 1 if any is bad.")
    parser.add_argument("root", type=Path, help="dataset root")
    parser.add_argument("--decoder", choices=BACKENDS, default="decord",
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
    _setup_logging(args.verbose)
    console = _console()
    if not args.root.is_dir():
        console.print(f"[red]check-videos:[/red] ROOT={str(args.root)!r} is not a directory")
        return 2
    index = VideoIndex(args.root, backend=args.decoder, depth=args.depth, cache_dir=args.cache_dir,
                       workers=args.workers)
    if args.rebuild:
        index.clear()
    rels = find_videos(args.root)
    failures = index.read_failures()
    metas = index.ensure(rels, "Checking videos")
    bad = {rel: m.error for rel, m in metas.items() if not m.ok}
    by_backend: dict[str, int] = {}
    for m in metas.values():
        if m.ok:
            by_backend[m.backend] = by_backend.get(m.backend, 0) + 1
    frames = sum(m.num_frames for m in metas.values() if m.ok)

    console.print(f"checked {len(rels)} videos under {args.root} (depth {args.depth}): "
                  f"{len(rels) - len(bad)} good, {len(bad)} bad; {frames} frames in good videos")
    if by_backend:
        console.print("decoded by: " + ", ".join(f"{b} {n}" for b, n in sorted(by_backend.items())))
    for rel, error in sorted(bad.items()):
        console.print(f"[red]BAD[/red]  {rel}  {error}")
    if failures:
        console.print(f"{len(failures)} videos failed at read time in earlier runs (now treated as bad):")
        for rel, rec in sorted(failures.items()):
            console.print(f"  {rel}  {rec.get('error', '')}")
    console.print(f"index: {index.index_path}")
    if args.json is not None:
        report = {"root": str(args.root), "depth": args.depth, "decoder": args.decoder,
                  "videos": len(rels), "good": len(rels) - len(bad), "bad": bad,
                  "read_failures": {rel: rec.get("error", "") for rel, rec in failures.items()},
                  "decoded_by": by_backend, "index": str(index.index_path)}
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 1 if bad else 0
