"""`softpool-video demo` (`make demo`): the whole suite on a fresh machine, no data needed.

1. writes the demo dataset (six synthetic motion classes, UCF-101 layout);
2. runs the study grid on configs/demo.yaml: a tiny R(2+1)D with max pooling and
   with SoftPool, split 1, a few epochs each, tested with every clip x crop view;
3. prints the results table;
4. exports the best checkpoint (weights as safetensors and a JSON model card).

Rerunning reuses the data and skips finished runs. About 5-10 minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from softpool_video.demo import (
    DEMO_CONFIG,
    DEMO_POOLING,
    TARGET_VIDEO_ACC,
    export_checkpoint,
)

from ._console import console, fail, setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="softpool-video demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/demo", help="output folder (data, runs, table, export)")
    parser.add_argument("--pooling", default=",".join(DEMO_POOLING), help="comma-separated pooling methods")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and of training")
    parser.add_argument("--force", action="store_true", help="train again even if results exist")
    return parser


def main(argv: list[str] | None = None) -> int:
    from softpool_video.datamodules import make_demo_dataset
    from softpool_video.studies.grid import parse_list, run_grid, split_passthrough

    from ._tables import print_grid_table

    argv, passthrough = split_passthrough(list(sys.argv[1:] if argv is None else argv))
    args, unknown = build_parser().parse_known_args(argv)
    setup_logging(verbose=True)  # the runner logs each cell as it starts
    out = console()
    folder = Path(args.out)
    tic = time.perf_counter()
    out.rule("[bold]1/3 demo data")
    # a demo dataset written by another version or seed is replaced; any other folder is left alone
    data = folder / "data"
    root = make_demo_dataset(data, seed=args.seed, overwrite=(data / "demo_info.json").is_file())
    out.print(f"demo dataset in {root} ({time.perf_counter() - tic:.0f} s)", markup=False)

    out.rule("[bold]2/3 train and test (study grid)")
    try:
        result = run_grid(DEMO_CONFIG, parse_list("--pooling", args.pooling), [1], [args.seed],
                               folder / "study", ["--data.init_args.root", str(root), *unknown, *passthrough],
                               force=args.force)
    except (ValueError, FileNotFoundError) as err:
        return fail("demo", err)
    print_grid_table(result.rows, f"demo: {result.ran} runs trained, {result.skipped} reused")
    files = result.files
    out.print(f"table: {files['markdown']}  {files['csv']}  plot: {files['plot']}", markup=False)

    out.rule("[bold]3/3 export")
    best = max(result.cells, key=lambda c: c["metrics"].get("test/video_acc1", 0.0))
    exported = export_checkpoint(best["best_checkpoint"] or best["last_checkpoint"], folder / "export",
                                 metrics=best["metrics"])
    out.print(f"best: {best['name']} -> " + "  ".join(str(f) for f in exported), markup=False)

    low = [c["name"] for c in result.cells if c["metrics"].get("test/video_acc1", 0.0) < TARGET_VIDEO_ACC]
    out.print(f"demo finished in {time.perf_counter() - tic:.0f} s")
    if low:
        return fail("demo", f"video-level accuracy below {TARGET_VIDEO_ACC:.0%} for: {', '.join(low)}", code=1)
    return 0
