"""`softpool-video make-demo-data OUT`: write the built-in demo dataset in UCF-101 layout."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from softpool_video.datamodules.demo import DEMO_CLASSES, DEMO_VARIANTS, demo_spec, write_dataset
from softpool_video.datamodules.demo_hard import HARD_CLASSES

from ._console import console, fail, setup_logging


def main(argv: list[str]) -> int:
    """Write a demo dataset (UCF-101 layout) to OUT."""
    default, hard = demo_spec("default"), demo_spec("hard")
    parser = argparse.ArgumentParser(
        prog="softpool-video make-demo-data",
        description="Write a built-in synthetic action dataset in the exact UCF-101 layout. "
                    f"Variants: default ({', '.join(DEMO_CLASSES)}; every pooling method saturates) "
                    f"and hard ({', '.join(HARD_CLASSES)}: small details changing over time that "
                    "downsampling can destroy, so pooling methods can differ).")
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
    setup_logging(args.verbose)
    out = console()
    start = time.perf_counter()
    try:
        spec = demo_spec(args.variant, seed=args.seed, groups=args.groups, clips_per_group=args.clips_per_group,
                         width=args.width, height=args.height)
        root = write_dataset(args.out, spec, overwrite=args.overwrite, workers=args.workers)
    except (FileExistsError, ValueError) as err:
        return fail("make-demo-data", err)
    videos = sorted((root / "UCF-101").rglob("*.avi"))
    size = sum(p.stat().st_size for p in videos)
    out.print(f"demo dataset ({args.variant}): {root} ({len(videos)} videos, {size / 2**20:.1f} MiB, "
                  f"{time.perf_counter() - start:.1f}s)")
    config = " (configs/demo_hard.yaml)" if args.variant == "hard" else ""
    out.print(f"train with: UCF101DataModule(root={str(root)!r}, split=1){config}")
    return 0
