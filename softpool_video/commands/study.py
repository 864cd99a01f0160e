"""`softpool-video study`: train and test every pooling x split x seed, then one results table.

    softpool-video study --config ucf101/r2plus1d_50 --pooling max,avg,softpool \
        --splits 1,2,3 --seeds 0,1 -- --data.init_args.root /data/ucf101
    softpool-video study ... --launcher local --parallel 2      # 2 cells at once here
    softpool-video study ... --launcher slurm --slurm.partition gpu --slurm.gpus_per_node 4
    softpool-video study --status runs/study/ucf101/r2plus1d_50

The runner and its outputs are described in softpool_video/studies/grid.py, the
launchers in softpool_video/studies/launch.py.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from softpool_video.studies.grid import parse_list, split_passthrough
from softpool_video.studies.launch import launch_grid

from ._console import console, fail, print_table, setup_logging
from ._tables import print_grid_table

# --slurm.<name>: (type, help); the names are SlurmOptions' fields
SLURM_OPTIONS = {
    "partition": (str, "partition (sbatch --partition)"),
    "account": (str, "account to charge (sbatch --account)"),
    "qos": (str, "quality of service (sbatch --qos)"),
    "time": (str, "time limit per cell job, sbatch's format (default 24:00:00)"),
    "nodes": (int, "nodes per cell (default 1)"),
    "gpus_per_node": (int, "GPUs per node = tasks per node, one task per device (default 0: one CPU task)"),
    "cpus_per_task": (int, "CPUs per task (data-loading workers + 1)"),
    "mem": (str, "memory per node, sbatch's format (e.g. 64G)"),
    "constraint": (str, "node features (sbatch --constraint)"),
    "signal_delay_s": (int, "seconds before the time limit at which the cell checkpoints and requeues (default 90)"),
}


def default_out(config: str) -> Path:
    """runs/study/<config name>; a config given as a file path contributes its stem."""
    name = Path(config).stem if Path(config).is_file() else config.removesuffix(".yaml")
    return Path("runs") / "study" / name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="softpool-video study",
        description="Train and test every pooling x split x seed; write results.md/.csv/.png. "
                    "Arguments after `--` go to every run's LightningCLI (e.g. --data.init_args.root DIR).")
    parser.add_argument("--config", help="config name (e.g. ucf101/r2plus1d_50) or path")
    parser.add_argument("--pooling", default="max,softpool", help="comma-separated pooling methods")
    parser.add_argument("--splits", default=None,
                        help="comma-separated dataset splits (default: the config's split)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--out", default=None, help="output folder (default: runs/study/<config name>)")
    parser.add_argument("--force", action="store_true", help="run finished cells again")
    parser.add_argument("--launcher", default="inline",
                        help="inline: cells one after another in this process (default); local: --parallel "
                             "cells at once on this machine; slurm: each cell a SLURM job (submitit)")
    parser.add_argument("--parallel", type=int, default=None,
                        help="--launcher local: cells at once, each with its share of the cores (default: all cores)")
    parser.add_argument("--wait", action="store_true",
                        help="--launcher slurm: wait for the jobs and write the report (default: submit and return)")
    parser.add_argument("--status", metavar="OUT", default=None,
                        help="print where every cell of the study grid in OUT stands, and nothing else")
    group = parser.add_argument_group("--launcher slurm: each cell's resources")
    for name, (kind, text) in SLURM_OPTIONS.items():
        group.add_argument(f"--slurm.{name}", dest=f"slurm_{name}", type=kind, default=None, help=text,
                           metavar="N" if kind is int else "VALUE")
    group.add_argument("--slurm.sbatch", dest="slurm_sbatch", action="append", default=[], metavar="KEY[=VALUE]",
                       help="any other sbatch option, repeatable (e.g. --slurm.sbatch exclusive)")
    return parser


def slurm_options(args: argparse.Namespace):
    from softpool_video.studies.slurm_launcher import SlurmOptions
    given = {name: value for name in SLURM_OPTIONS if (value := getattr(args, f"slurm_{name}")) is not None}
    return SlurmOptions(**given, sbatch=list(args.slurm_sbatch))


def print_status(out: Path) -> int:
    from rich.table import Table

    from softpool_video.studies.grid_status import grid_status
    rows = grid_status(out)
    table = Table(title=f"{out}: {len(rows)} cells")
    for column in ("cell", "state", "job", "elapsed", "last metric", "log (failed cells)"):
        table.add_column(column, no_wrap=column in ("cell", "state", "job"))
    for row in rows:
        detail = f"{row.last_line}\n{row.log}" if row.state == "failed" else ""
        table.add_row(row.cell, row.state, row.job, row.elapsed, row.metric, detail)
    print_table(table, console())
    counts = Counter(row.state for row in rows)
    console().print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())), markup=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv, passthrough = split_passthrough(list(sys.argv[1:] if argv is None else argv))
    args, unknown = build_parser().parse_known_args(argv)
    setup_logging(verbose=False)
    try:
        if args.status is not None:
            return print_status(Path(args.status))
        if not args.config:
            raise ValueError("--config: required (or --status OUT)")
        if args.launcher != "local" and args.parallel is not None:
            raise ValueError("--parallel: only with --launcher local")
        if args.launcher != "slurm" and (args.wait or args.slurm_sbatch or any(
                getattr(args, f"slurm_{name}") is not None for name in SLURM_OPTIONS)):
            raise ValueError("--wait and --slurm.*: only with --launcher slurm")
        poolings = parse_list("--pooling", args.pooling)
        splits = parse_list("--splits", args.splits, int)
        seeds = parse_list("--seeds", args.seeds, int)
        folder = Path(args.out) if args.out else default_out(args.config)
        from softpool_video.studies.local_launcher import available_cores
        launch = launch_grid(args.config, poolings, splits, seeds, folder, [*unknown, *passthrough], args.force,
                                  launcher=args.launcher, parallel=args.parallel or len(available_cores()),
                                  slurm=slurm_options(args), wait=args.wait)
    except (ValueError, FileNotFoundError, NotADirectoryError) as err:
        return fail("study", err)
    except RuntimeError as err:  # cells busy elsewhere (RunBusy), cells that failed (CellsFailed), squeue
        from softpool_video.training.run_lock import RunBusy
        return fail("study", err, code=2 if isinstance(err, RunBusy) else 1)
    except FloatingPointError as err:  # a cell diverged: the input was fine, the run failed
        return fail("study", err, code=1)
    except SystemExit as exit_:  # a cell's LightningCLI rejected its arguments
        return exit_.code if isinstance(exit_.code, int) else 2
    out = console()
    if launch.waiting:
        submission = launch.submission
        out.print(f"submitted {launch.waiting} cells as SLURM job array {submission.array} "
                  f"({launch.result.skipped} finished before); logs under {folder / 'slurm'}", markup=False)
        out.print(f"state: softpool-video study --status {folder}; run this command again to collect "
                  "the results when the jobs are done (or pass --wait)", markup=False)
        return 0
    result = launch.result
    print_grid_table(result.rows, f"{args.config}: {result.ran} cells run, {result.skipped} skipped")
    files = result.files
    out.print(f"results: {files['markdown']}  {files['csv']}  {files['json']}  {files['plot']}", markup=False)
    if "class_diff_csv" in files:
        out.print(f"per class: {files['class_diff_csv']}  {files['class_diff_plot']}", markup=False)
    return 0
