"""`softpool-video benchmark`: train and test every pooling x split x seed, then one results table.

    softpool-video benchmark --config ucf101/r2plus1d_50 --pooling max,avg,softpool \
        --splits 1,2,3 --seeds 0,1 -- --data.init_args.root /data/ucf101

The runner and its outputs are described in softpool_video/training/benchmark.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from softpool_video.training.benchmark import parse_list, run_benchmark, split_passthrough

from ._console import console, fail, setup_logging
from ._tables import print_benchmark_table


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
    setup_logging(verbose=False)
    try:
        poolings = parse_list("--pooling", args.pooling)
        splits = parse_list("--splits", args.splits, int)
        seeds = parse_list("--seeds", args.seeds, int)
        folder = Path(args.out) if args.out else default_out(args.config)
        result = run_benchmark(args.config, poolings, splits, seeds, folder, [*unknown, *passthrough], args.force)
    except (ValueError, FileNotFoundError, NotADirectoryError) as err:
        return fail("benchmark", err)
    except FloatingPointError as err:  # a cell diverged: the input was fine, the run failed
        return fail("benchmark", err, code=1)
    except SystemExit as exit_:  # a cell's LightningCLI rejected its arguments
        return exit_.code if isinstance(exit_.code, int) else 2
    print_benchmark_table(result.rows, f"{args.config}: {result.ran} cells run, {result.skipped} skipped")
    out = console()
    files = result.files
    out.print(f"results: {files['markdown']}  {files['csv']}  {files['json']}  {files['plot']}", markup=False)
    if "class_diff_csv" in files:
        out.print(f"per class: {files['class_diff_csv']}  {files['class_diff_plot']}", markup=False)
    return 0
