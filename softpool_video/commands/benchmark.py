"""`softpool-video benchmark`: train and test every pooling x split x seed, then one results table.

    softpool-video benchmark --config ucf101/r2plus1d_50 --pooling max,avg,softpool \
        --splits 1,2,3 --seeds 0,1 -- --data.init_args.root /data/ucf101

The runner and its outputs are described in softpool_video/training/benchmark.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from softpool_video.training.benchmark import (
    parse_list,
    print_table,
    run_benchmark,
    split_passthrough,
)


def default_out(config: str) -> Path:
    """runs/benchmark/<config name>; a config given as a file path contributes its stem."""
    name = Path(config).stem if Path(config).is_file() else config.removesuffix(".yaml")
    return Path("runs") / "benchmark" / name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="softpool-video benchmark",
        description="Train and test every pooling x split x seed; write results.md/.csv/.png. "
                    "Arguments after `--` go to every run's LightningCLI (e.g. --data.init_args.root DIR).")
    parser.add_argument("--config", required=True, help="config name (e.g. ucf101/r2plus1d_50) or path")
    parser.add_argument("--pooling", default="max,softpool", help="comma-separated pooling methods")
    parser.add_argument("--splits", default=None,
                        help="comma-separated dataset splits (default: the config's split)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--out", default=None, help="output folder (default: runs/benchmark/<config name>)")
    parser.add_argument("--force", action="store_true", help="run finished cells again")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv, passthrough = split_passthrough(list(sys.argv[1:] if argv is None else argv))
    args, unknown = build_parser().parse_known_args(argv)
    try:
        poolings = parse_list("--pooling", args.pooling)
        splits = parse_list("--splits", args.splits, int)
        seeds = parse_list("--seeds", args.seeds, int)
        out = Path(args.out) if args.out else default_out(args.config)
        result = run_benchmark(args.config, poolings, splits, seeds, out, [*unknown, *passthrough], args.force)
    except (ValueError, FileNotFoundError, NotADirectoryError) as err:
        print(f"softpool-video benchmark: error: {err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:
        print(f"softpool-video benchmark: error: {err}", file=sys.stderr)
        return 1
    except SystemExit as exit_:  # a cell's LightningCLI rejected its arguments
        return exit_.code if isinstance(exit_.code, int) else 2
    print_table(result.rows, f"{args.config}: {result.ran} cells run, {result.skipped} skipped")
    print(f"results: {result.files['markdown']}  {result.files['csv']}  {result.files['json']}  "
          f"{result.files['plot']}")
    if "class_diff_csv" in result.files:
        print(f"per class: {result.files['class_diff_csv']}  {result.files['class_diff_plot']}")
    return 0
