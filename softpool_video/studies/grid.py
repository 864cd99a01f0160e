"""The study grid: train and test every pooling x split x seed, then one results table
(the command is softpool_video/commands/study.py).

    softpool-video study --config ucf101/r2plus1d_50 --pooling max,avg,softpool \
        --splits 1,2,3 --seeds 0,1 -- --data.init_args.root /data/ucf101

Each cell (pooling, split, seed) runs in this process with a fresh Trainer and writes
`<out>/cells/<cell>/result.json` atomically when its test has finished; a rerun skips
cells whose result exists for the same resolved config, and resumes unfinished cells
from their last.ckpt. Arguments after `--` (or unknown to this command) go to every
cell's LightningCLI.

Every cell is tested twice: with the checkpoint selected on validation (a holdout of the
training list by default; protocol.py refuses selection on the reported test list) and
with the last epoch's, side by side. The report gives each method's mean and std over
its cells, and each method's paired difference against the first method over identical
(split, seed) cells, with a 95% confidence interval, a paired t-test's p-value and the
verdict in words (statistics.py): results.md, results.csv (one row per method),
results.json (everything), cells.csv (one row per cell) and results.png; per class (each
cell's test writes per_class.csv and a confusion matrix in its log folder), how each method's
video top-1 per class differs from the first method's: per_class_diff.csv and .png.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import statistics
import time
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytorch_lightning.utilities.rank_zero import rank_zero_only

from softpool_video.reporting import new_figure, write_csv, write_json_atomic
from softpool_video.training.protocol import SELECTED_ON_TEST_NOTE
from softpool_video.training.reproducibility import run_record, write_record
from softpool_video.training.requeue import RequeueOnSignal
from softpool_video.training.run_lock import RunLock

from .cell_progress import CellProgress
from .statistics import PairedDifference, holm_adjust, paired_difference

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
CELL_FILE = "cell.json"
LAST_EPOCH_FOLDER = "last_epoch"  # the last epoch's per-class files, under the cell's log folder
# where a metric is read from a cell's result: the test of the selected checkpoint, the test
# of the last epoch's, or the fit's own summary
SELECTED, LAST, FIT = "metrics", "metrics_last", "fit"


@dataclass(frozen=True)
class Metric:
    column: str
    key: str
    percent: bool
    header: str | None  # short header for the console, None to leave it out there
    source: str = SELECTED


METRICS: tuple[Metric, ...] = (
    Metric("clip top-1", "test/clip_acc1", True, "clip@1"),
    Metric("clip top-5", "test/clip_acc5", True, None),
    Metric("video top-1", "test/video_acc1", True, "video@1"),
    Metric("video top-5", "test/video_acc5", True, "video@5"),
    Metric("video mean class", "test/video_mean_class_acc", True, "mean cls"),
    Metric("last-epoch video top-1", "test/video_acc1", True, "last@1", LAST),
    Metric("last-epoch video mean class", "test/video_mean_class_acc", True, None, LAST),
    Metric("train clips/s", "train_clips_per_s", False, "clips/s", FIT),
    Metric("peak memory MiB", "peak_memory_mib", False, "MiB", FIT),
)
# the metrics compared pair by pair against the first method; the first is the headline
COMPARED: tuple[str, ...] = ("video top-1", "last-epoch video top-1", "video mean class", "clip top-1")
UNIT_OF_ANALYSIS = ("Unit of analysis: one training run, a (split, seed) cell; seeds of one split share its "
                    "test list, so intervals are over training randomness on these test lists, not over test sets.")
# keys that name where a cell writes, not what it computes
_PLACE_KEYS = (("trainer", "default_root_dir"), ("checkpoint", "dirpath"),
               # the SLURM launcher validates a GPU cell on the CPU of the node it submits from
               ("trainer", "accelerator"))


@dataclass(frozen=True)
class Cell:
    pooling: str
    split: int | None
    seed: int

    @property
    def name(self) -> str:
        split = "" if self.split is None else f"-split{self.split}"
        return f"{self.pooling}{split}-seed{self.seed}"

    def args(self, cell_dir: Path) -> list[str]:
        args = ["--model.pooling", self.pooling, "--seed_everything", str(self.seed),
                "--data.init_args.seed", str(self.seed), "--trainer.default_root_dir", str(cell_dir)]
        if self.split is not None:
            args += ["--data.init_args.split", str(self.split)]
        return args


@dataclass
class BenchmarkResult:
    cells: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    files: dict[str, Path] = field(default_factory=dict)
    ran: int = 0
    skipped: int = 0


def parse_list(option: str, text: str | None, kind: type = str) -> list:
    if text is None:
        return []
    items = [item.strip() for item in text.split(",") if item.strip()]
    try:
        return [kind(item) for item in items]
    except ValueError:
        raise ValueError(f"{option}: expected a comma-separated list of {kind.__name__}, got {text!r}") from None


def make_grid(poolings: Sequence[str], splits: Sequence[int | None], seeds: Sequence[int]) -> list[Cell]:
    from softpool_video.pooling import check_methods
    check_methods(poolings, "--pooling")
    return [Cell(p, s, seed) for p in poolings for s in (splits or [None]) for seed in (seeds or [0])]


def _fingerprint(config: dict[str, Any] | None) -> str:
    config = json.loads(json.dumps(config or {}, default=str))
    for section, key in _PLACE_KEYS:
        if isinstance(config.get(section), dict):
            config[section].pop(key, None)
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def read_json(path: Path) -> Any:
    """A JSON file's content, or None when it is missing or unreadable (a cell's records)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _summary(trainer: Any) -> dict[str, Any]:
    from softpool_video.training.callbacks import TrainingStats
    for callback in trainer.callbacks:
        if isinstance(callback, TrainingStats):
            return dict(callback.summary)
    return {}


def _make_cli(args: list[str]) -> Any:
    from softpool_video.training.cli import VideoCLI
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter")
        return VideoCLI(args=args, run=False)


def cell_folder(out: Path, cell: Cell) -> Path:
    return Path(out) / "cells" / cell.name


CELL_HINT = " (see `softpool-video study --status`)"


def cell_lock_path(out: Path, cell: Cell) -> Path:
    return Path(out) / "cells" / f"{cell.name}.lock"


def run_cell(cell: Cell, base_args: list[str], out: Path, force: bool = False,
             requeue_on_signal: bool = False) -> tuple[dict[str, Any], bool]:
    """Train and test one cell, or return its stored result. Returns (result, ran).

    Rank 0 holds the cell's lock throughout (`RunBusy` when another process runs the cell).
    `requeue_on_signal`: under SLURM, SLURM's warning signal checkpoints the cell and requeues
    its job (requeue.py; raises `Requeued`)."""
    lock = (RunLock(cell_lock_path(out, cell), f"cell {cell.name}", CELL_HINT) if rank_zero_only.rank == 0
            else nullcontext())
    with lock:
        return _run_cell(cell, base_args, out, force, requeue_on_signal)


def stored_result(cell: Cell, base_args: list[str], out: Path, extra: Sequence[str] = ()) -> dict[str, Any] | None:
    """Builds the cell's CLI (so bad input fails here) and returns the cell's stored result when it
    is for the same config, else None. `extra`: arguments appended for this check only."""
    cli = _make_cli([*base_args, *cell.args(cell_folder(out, cell)), *extra])
    stored = read_json(cell_folder(out, cell) / RESULT_FILE)
    return stored if stored and stored.get("fingerprint") == _fingerprint(cli.resolved_config()) else None


def _run_cell(cell: Cell, base_args: list[str], out: Path, force: bool,
              requeue_on_signal: bool) -> tuple[dict[str, Any], bool]:
    cell_dir = cell_folder(out, cell)
    args = [*base_args, *cell.args(cell_dir)]
    cli = _make_cli(args)  # parses and builds everything: bad input fails here
    config = cli.resolved_config()
    fingerprint = _fingerprint(config)
    stored = read_json(cell_dir / RESULT_FILE)
    if stored and stored.get("fingerprint") == fingerprint and not force:
        log.info("%s: finished before, skipped", cell.name)
        return stored, False
    if stored:
        log.warning("%s: stored result is for another config (or --force); running it again", cell.name)
    started = read_json(cell_dir / CELL_FILE)
    last = cell_dir / "checkpoints" / "last.ckpt"
    resume = bool(started and started.get("fingerprint") == fingerprint and last.is_file() and not force
                  and not stored)
    if cell_dir.exists() and not resume:
        if rank_zero_only.rank == 0:  # under DDP every rank runs this loop; one of them cleans up
            shutil.rmtree(cell_dir)  # a stale or foreign partial run: start clean
        cli = _make_cli(args)  # again, so the loggers number versions from scratch
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    trainer.callbacks.append(CellProgress(cell_dir))
    if requeue_on_signal:
        trainer.callbacks.append(RequeueOnSignal(last, cell_dir))
    if trainer.is_global_zero:
        write_record(cell_dir / CELL_FILE, {"cell": cell.__dict__, "fingerprint": fingerprint, "args": args})
    tic = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=str(last) if resume else None)
    fit_seconds = time.perf_counter() - tic
    stats = _summary(trainer)
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
    metrics = _test(trainer, model, datamodule, best)
    report = _per_class_report(trainer)
    per_class = report.results["test"].as_dict() if report and "test" in report.results else None
    # the last epoch's weights, unless validation selected them anyway
    same = best is None or not last.is_file() or Path(best).resolve() == last.resolve() or \
        _same_epoch(best, last)
    if same:
        metrics_last = metrics
    else:
        if report:  # its per-class files beside the selected checkpoint's, not over them
            report.subfolder = LAST_EPOCH_FOLDER
        metrics_last = _test(trainer, model, datamodule, str(last))
    result = {
        "cell": cell.__dict__, "name": cell.name, "status": "finished", "fingerprint": fingerprint,
        "resumed": resume, "fit_seconds": fit_seconds, "global_step": trainer.global_step,
        "epochs": trainer.current_epoch, "best_checkpoint": best,
        "last_checkpoint": str(last) if last.is_file() else None, "best_is_last": same,
        "metrics": metrics, "metrics_last": metrics_last, "per_class": per_class,
        "protocol": dict(getattr(model, "selection_protocol", {}) or {}),
        **stats,
        "log_dir": trainer.log_dir, "config": config,
        "environment": {k: v for k, v in run_record().items() if k != "config"},
    }
    if trainer.is_global_zero:
        write_record(cell_dir / RESULT_FILE, result)
    return result, True


def _per_class_report(trainer: Any) -> Any:
    """The trainer's PerClassReport (the module adds it), which keeps each test's per-class results."""
    from softpool_video.training.callbacks import PerClassReport
    return next((c for c in trainer.callbacks if isinstance(c, PerClassReport)), None)


def _test(trainer: Any, model: Any, datamodule: Any, ckpt_path: str | None) -> dict[str, float]:
    tested = trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    return {k: float(v) for k, v in (tested[0] if tested else {}).items()}


def _same_epoch(best: str, last: Path) -> bool:
    """Whether two checkpoints hold the same training step (then one test serves both)."""
    from softpool_video.checkpoint.reader import read_checkpoint
    steps = [read_checkpoint(path).get("global_step") for path in (best, last)]
    return steps[0] is not None and steps[0] == steps[1]


def _value(result: dict[str, Any], metric: Metric) -> float | None:
    # results written before last-epoch testing have no "metrics_last"
    value = result.get(metric.key) if metric.source == FIT else (result.get(metric.source) or {}).get(metric.key)
    return None if value is None else float(value)


def _metric(column: str) -> Metric:
    return next(m for m in METRICS if m.column == column)


def _selected_on_test(cells: list[dict[str, Any]]) -> bool:
    return any((c.get("protocol") or {}).get("selected_on_test") for c in cells)


@dataclass(frozen=True)
class Comparison:
    metric: str
    difference: PairedDifference

    def verdict(self) -> str:
        return self.difference.verdict(100.0 if _metric(self.metric).percent else 1.0, " points")


def compare(cells: list[dict[str, Any]]) -> list[Comparison]:
    """Each method against the first, per compared metric, over identical (split, seed) cells."""
    poolings = list(dict.fromkeys(c["cell"]["pooling"] for c in cells))
    if len(poolings) < 2:
        return []

    def values(pooling: str, metric: Metric) -> dict[tuple, float]:
        return {(c["cell"]["split"], c["cell"]["seed"]): v for c in cells
                if c["cell"]["pooling"] == pooling and (v := _value(c, metric)) is not None}

    baseline, found = poolings[0], []
    for column in COMPARED:
        metric = _metric(column)
        for pooling in poolings[1:]:
            found.append(Comparison(column, paired_difference(pooling, values(pooling, metric), baseline,
                                                              values(baseline, metric))))
    # The headline metric's comparisons are one family: Holm-adjusted (statistics.py)
    headline = [i for i, c in enumerate(found) if c.metric == COMPARED[0]]
    adjusted = holm_adjust([found[i].difference.p_value for i in headline])
    for i, p in zip(headline, adjusted, strict=True):
        if p is not None:
            found[i] = Comparison(found[i].metric, replace(found[i].difference, p_adjusted=p,
                                                           comparisons=len(headline)))
    return found


def summarize(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per pooling method: mean and std (over splits and seeds) of every metric, and its
    paired difference against the first method (mean, 95% CI, p-value, significant)."""
    rows = []
    for pooling in dict.fromkeys(c["cell"]["pooling"] for c in cells):
        mine = [c for c in cells if c["cell"]["pooling"] == pooling]
        row: dict[str, Any] = {"pooling": pooling, "cells": len(mine),
                               "selected_on_test": _selected_on_test(mine)}
        for metric in METRICS:
            values = [v for c in mine if (v := _value(c, metric)) is not None]
            row[f"{metric.column} mean"] = statistics.fmean(values) if values else math.nan
            row[f"{metric.column} std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(row)
    for comparison in compare(cells):
        d = comparison.difference
        row = next(r for r in rows if r["pooling"] == d.method)
        prefix = comparison_prefix(comparison.metric, d.baseline)
        # the headline metric's p is Holm-adjusted (compare); the raw one stays in "p unadjusted"
        p = d.p_adjusted if d.p_adjusted is not None else d.p_value
        row.update({f"{prefix} diff": d.mean, f"{prefix} ci low": d.ci_low, f"{prefix} ci high": d.ci_high,
                    f"{prefix} p": p, f"{prefix} p unadjusted": d.p_value, f"{prefix} pairs": d.n,
                    f"{prefix} significant": d.significant, f"{prefix} detectable": d.detectable(),
                    f"{prefix} verdict": comparison.verdict()})
    return rows


def comparison_prefix(metric: str, baseline: str) -> str:
    """How a summary row names its paired comparison's columns: `<prefix> diff`, `<prefix> ci low`,
    ..., `<prefix> verdict`, e.g. "video top-1 vs max diff"."""
    return f"{metric} vs {baseline}"


def format_metric(row: dict[str, Any], column: str, percent: bool, with_std: bool = True) -> str:
    """One table cell: a summary row's mean (± std) of `column`; a dash when not measured."""
    mean, std = row[f"{column} mean"], row[f"{column} std"]
    if math.isnan(mean):
        return "–"
    scale = 100.0 if percent else 1.0
    digits = {"train clips/s": 2, "peak memory MiB": 0}.get(column, 1)
    text = f"{mean * scale:.{digits}f}"
    return f"{text} ± {std * scale:.{digits}f}" if with_std else text


def pooling_label(row: dict[str, Any]) -> str:
    """The method's name, marked † when some cell selected its checkpoint on the test list."""
    return f"{row['pooling']} †" if row.get("selected_on_test") else row["pooling"]


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Mean ± std per method; then, when there are two methods or more, the paired differences."""
    head = ["pooling", "cells", *(f"{m.column} (%)" if m.percent else m.column for m in METRICS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [pooling_label(row), str(row["cells"]), *(format_metric(row, m.column, m.percent) for m in METRICS)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Mean ± std over splits and seeds. `video top-1` etc.: the checkpoint selected on validation; "
                 "`last-epoch`: the last epoch's checkpoint, tested on the same list.")
    if any(row.get("selected_on_test") for row in rows):
        lines.append(f"† {SELECTED_ON_TEST_NOTE}.")
    if len(rows) > 1:
        baseline = rows[0]["pooling"]
        lines += ["", (f"Paired differences against {baseline} over identical (split, seed) cells "
                       "(percentage points; 95% CI from the t distribution, two-sided paired t-test):"), "",
                  f"{UNIT_OF_ANALYSIS} p on {COMPARED[0]}: Holm-adjusted over its {len(rows) - 1} "
                  "comparison(s); on the other metrics: unadjusted.", "",
                  "| pooling | metric | difference | 95% CI | p | pairs | verdict |", "|---|---|---|---|---|---|---|"]
        for column in COMPARED:
            for row in rows[1:]:
                prefix = comparison_prefix(column, baseline)
                diff, low, high, p = (row.get(f"{prefix} {k}") for k in ("diff", "ci low", "ci high", "p"))
                p_label = "" if p is None else (" (Holm)" if column == COMPARED[0] else " (unadj.)")
                if diff is None:
                    continue
                interval = "–" if math.isnan(low) else f"{100 * low:+.1f} to {100 * high:+.1f}"
                lines.append(f"| {row['pooling']} | {column} | {100 * diff:+.1f} | {interval} | "
                             f"{'–' if p is None else f'{p:.3g}{p_label}'} | {row[f'{prefix} pairs']} | "
                             f"{row[f'{prefix} verdict']} |")
        detectable = [(row["pooling"], d) for row in rows[1:]
                      if (d := row.get(f"{comparison_prefix(COMPARED[0], baseline)} detectable")) is not None]
        if detectable:
            sizes = ", ".join(f"{name} {100 * d:.1f}" for name, d in detectable)
            lines += ["", f"Smallest difference in {COMPARED[0]} that this grid detects with 80% power "
                          f"(points; paired t-test at 5% over {len(rows) - 1} comparison(s), Holm's strictest step, "
                          f"with the spread of the differences measured here): {sizes}."]
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Bars of clip- and video-level top-1 (mean ± std) per pooling method, training throughput, and
    each method's paired video top-1 difference against the first with its 95% CI."""
    names = [r["pooling"] for r in rows]
    xs = range(len(rows))
    fig = new_figure(figsize=(max(9.0, 2.0 * len(rows) + 5), 4.2), layout="constrained")
    acc, speed, diff = fig.subplots(1, 3, width_ratios=[2, 1, 1.4])
    width = 0.38
    for offset, column in ((-width / 2, "clip top-1"), (width / 2, "video top-1")):
        acc.bar([x + offset for x in xs], [100 * r[f"{column} mean"] for r in rows], width,
                yerr=[100 * r[f"{column} std"] for r in rows], capsize=3, label=column)
    acc.set_xticks(list(xs), names)
    acc.set_ylabel("top-1 accuracy (%), mean ± std")
    acc.set_ylim(0, 105)
    acc.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncols=2, frameon=False)
    acc.set_title("test accuracy")
    speed.bar(list(xs), [r["train clips/s mean"] for r in rows], yerr=[r["train clips/s std"] for r in rows],
              capsize=3, color="tab:gray")
    speed.set_xticks(list(xs), names)
    speed.set_ylabel("clips / s")
    speed.set_title("training throughput")
    _plot_differences(diff, rows)
    fig.savefig(path, dpi=120)
    return path


def _plot_differences(ax: Any, rows: list[dict[str, Any]]) -> None:
    prefix = comparison_prefix(COMPARED[0], rows[0]["pooling"])
    others = [r for r in rows[1:] if r.get(f"{prefix} diff") is not None]
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_title(f"{COMPARED[0]} - {rows[0]['pooling']}\n(paired, 95% CI)")
    ax.set_ylabel("percentage points")
    for x, row in enumerate(others):
        mean, low, high = (100 * row[f"{prefix} {k}"] for k in ("diff", "ci low", "ci high"))
        if math.isnan(low):  # one pair: no interval
            ax.plot([x], [mean], "o", color="tab:blue")
        else:
            ax.errorbar([x], [mean], yerr=[[mean - low], [high - mean]], fmt="o", capsize=4, color="tab:blue")
        p = row[f"{prefix} p"]
        label = "n/a" if p is None else (f"p={p:.2g}" + (" *" if p < 0.05 else ""))
        ax.annotate(label, (x, mean), textcoords="offset points", xytext=(8, 0), va="center", fontsize=8)
    ax.set_xticks(range(len(others)), [r["pooling"] for r in others])
    ax.set_xlim(-0.6, max(len(others), 1) - 0.4)
    if not others:
        ax.text(0.5, 0.5, "one method:\nnothing to compare", ha="center", va="center", transform=ax.transAxes)


def write_outputs(cells: list[dict[str, Any]], out: Path) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    rows = summarize(cells)
    out.mkdir(parents=True, exist_ok=True)
    files = {"markdown": out / "results.md", "csv": out / "results.csv", "json": out / "results.json",
             "cells_csv": out / "cells.csv", "plot": out / "results.png"}
    files["markdown"].write_text(markdown_table(rows) + "\n")
    write_csv(files["csv"], rows)
    flat = [{"cell": c["name"], **{k: v for k, v in c["cell"].items()},
             **{m.column: _value(c, m) for m in METRICS}, "fit_seconds": c.get("fit_seconds"),
             "selected_on_test": _selected_on_test([c]), "best_checkpoint": c.get("best_checkpoint"),
             "best_is_last": c.get("best_is_last")} for c in cells]
    write_csv(files["cells_csv"], flat)
    comparisons = [{"metric": c.metric, **c.difference.as_dict(), "verdict": c.verdict()} for c in compare(cells)]
    write_json_atomic(files["json"], {"methods": rows, "comparisons": comparisons, "cells": flat,
                                      "protocol": [c.get("protocol") for c in cells]}, indent=1, default=str)
    plot(rows, files["plot"])
    files.update(write_class_differences(cells, out))
    return rows, files


def write_class_differences(cells: list[dict[str, Any]], out: Path) -> dict[str, Path]:
    """per_class_diff.csv and .png: which classes each method helps or hurts against the first
    (video top-1 per class, paired over identical cells); nothing without two such methods."""
    # per_class imports write_csv from this module: imported here, not at the top
    from softpool_video.reporting import save_figure
    from softpool_video.training.per_class import class_differences
    from softpool_video.training.per_class_plot import difference_figure
    rows = class_differences(cells)
    if not rows:
        return {}
    files = {"class_diff_csv": out / "per_class_diff.csv", "class_diff_plot": out / "per_class_diff.png"}
    write_csv(files["class_diff_csv"], rows)
    save_figure(difference_figure(rows), files["class_diff_plot"])
    return files


def run_grid(config: str, poolings: Sequence[str], splits: Sequence[int | None], seeds: Sequence[int],
                  out: str | Path, extra_args: Sequence[str] = (), force: bool = False) -> BenchmarkResult:
    """Every cell of the grid (finished ones are read back), then the results table and plot."""
    from softpool_video.training.configs import resolve_config
    config_path = resolve_config(config)
    grid = make_grid(poolings, splits, seeds)
    out = Path(out)
    base_args = ["--config", str(config_path), *extra_args]
    result = BenchmarkResult(cells=[], rows=[])
    for i, cell in enumerate(grid, 1):
        log.info("cell %d/%d: %s", i, len(grid), cell.name)
        cell_result, ran = run_cell(cell, base_args, out, force)
        result.cells.append(cell_result)
        result.ran += ran
        result.skipped += not ran
    result.rows, result.files = write_outputs(result.cells, out)
    return result


def headline_verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """Each method's verdict in words on the headline metric, against the first method."""
    baseline = rows[0]["pooling"]
    key = f"{comparison_prefix(COMPARED[0], baseline)} verdict"
    # "softpool vs max, video top-1: higher by 3.1 points (95% CI ...), significant ...": the
    # verdict carries its interval and test, so the comparison is named before it
    return [f"{row['pooling']} vs {baseline}, {COMPARED[0]}: {row[key]}" for row in rows[1:]]


def split_passthrough(argv: list[str]) -> tuple[list[str], list[str]]:
    """Splits `own options -- options for every run` at the first `--`."""
    if "--" not in argv:
        return argv, []
    at = argv.index("--")
    return argv[:at], argv[at + 1:]
