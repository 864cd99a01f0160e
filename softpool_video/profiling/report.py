"""Output of the profiles: markdown table, CSV, JSON and PNG charts of `softpool-video profile`,
and the callbacks' summaries as columns of the benchmark results table."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softpool_video.reporting import markdown_table as render_table
from softpool_video.reporting import new_figure, save_figure, write_csv, write_json_atomic, write_text_atomic

if TYPE_CHECKING:
    from .model_profile import MethodProfile

MIB = 2**20
LATENCY_FILE = "latency_profile.json"
MEMORY_FILE = "memory_profile.json"


# --- benchmark-table columns from the callbacks -------------------------------------------------------------

def _load(summary: Any) -> list[dict[str, Any]]:
    if summary is None:
        return []
    if isinstance(summary, dict):
        return [summary]
    if isinstance(summary, (list, tuple)):
        return [s for item in summary for s in _load(item)]
    path = Path(summary)
    if path.is_dir():
        return [s for name in (LATENCY_FILE, MEMORY_FILE) if (path / name).is_file() for s in _load(path / name)]
    if path.is_file():
        return [json.loads(path.read_text())]
    raise FileNotFoundError(f"callback_summary_columns: summary_json {str(summary)!r} is neither a JSON file, "
                            f"a folder with {LATENCY_FILE}/{MEMORY_FILE}, nor a dict")


def callback_summary_columns(summary_json: Any) -> dict[str, float | None]:
    """Columns for the benchmark results table from LatencyProfiler / MemoryProfiler summaries.

    `summary_json`: a summary dict, a path to one summary file, a run's log folder holding
    `latency_profile.json` and/or `memory_profile.json`, or a list of these. Only the
    columns whose callback ran are returned (an empty dict when neither did).
    """
    columns: dict[str, float | None] = {}
    for summary in _load(summary_json):
        kind = summary.get("kind")
        if kind == "latency":
            columns.update({
                "step ms": summary.get("step_ms"), "forward ms": summary.get("forward_ms"),
                "backward ms": summary.get("backward_ms"), "optimizer ms": summary.get("optimizer_ms"),
                "data wait ms": summary.get("data_wait_ms"),
                "profiled clips/s": summary.get("train_clips_per_s"),
            })
            if "pool_forward_ms" in summary:
                columns["pool fwd+bwd ms"] = summary["pool_forward_ms"] + summary.get("pool_backward_ms", 0.0)
        elif kind == "memory":
            columns["saved for backward MiB"] = summary.get("saved_mib")
            pool = summary.get("pool_saved_bytes")
            columns["pool saved MiB"] = None if pool is None else pool / MIB
            if "peak_allocated_mib" in summary:
                columns["peak allocated MiB"] = summary["peak_allocated_mib"]
                columns["peak reserved MiB"] = summary.get("peak_reserved_mib")
            else:
                columns["peak RSS MiB"] = summary.get("peak_rss_mib")
    return columns


# --- the model profile ------------------------------------------------------------------------------------

def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:.1f}"


def markdown_table(results: Sequence[MethodProfile], environment: dict[str, Any], baseline: str = "max") -> str:
    measured = [r for r in results if r.ok]
    base = next((r for r in measured if r.method == baseline), None)
    on_gpu = any(r.peak_allocated_bytes is not None for r in measured)
    peak_head = "peak alloc MiB" if on_gpu else "peak RSS MiB (rise in step)"
    header = ["method", "forward ms", "backward ms", "train step ms", f"vs {baseline}", "clips/s",
              "saved for backward MiB", "pool saved MiB", peak_head, "params M", "GFLOPs"]
    rows = []
    for r in results:
        if not r.ok:  # no figure of a method that failed part-way means anything
            rows.append([r.method, r.status, r.status, r.status, *["-"] * 7])
            continue
        ratio = f"{r.step_ms / base.step_ms:.3f}x" if base is not None and base.step_ms > 0 else "-"
        peak = _mib(r.peak_allocated_bytes) if on_gpu else f"{_mib(r.peak_rss_bytes)} (+{_mib(r.peak_rss_increase_bytes)})"
        rows.append([r.method, f"{r.forward_ms:.1f} ± {r.forward_iqr_ms:.1f}",
                     f"{r.backward_ms:.1f} ± {r.backward_iqr_ms:.1f}", f"{r.step_ms:.1f} ± {r.step_iqr_ms:.1f}",
                     ratio, f"{r.clips_per_s:.2f}", _mib(r.saved_bytes), _mib(r.pool_saved_bytes), peak,
                     f"{r.params / 1e6:.2f}", f"{r.gflops:.2f}"])
    lines = [render_table(header, rows)]
    if results:
        r = results[0]
        env = environment
        lines += ["", f"{r.model}, input {r.input_shape} {env.get('dtype')}, AMP {env.get('amp')}; "
                      f"{env.get('device')}, {env.get('threads')} threads, torch {env.get('torch')}; "
                      f"medians ± interquartile range over {r.repeats} runs after {r.warmup} warm-up; "
                      f"GFLOPs of one inference forward (multiply-add = 2)"]
        if measured and not on_gpu:
            since = "over the timed steps" if all(r.peak_rss_since_reset for r in measured) else "lifetime"
            lines.append(f"peak RSS: the process's peak {since} (rise: above the RSS before the timed steps); memory the "
                         "allocator kept from earlier methods is included, so on the CPU it is an indication; "
                         "saved-for-backward bytes are the exact activation measure")
        for r in results:
            if not r.ok:
                lines.append(f"{r.status}: {r.method} ran out of memory ({r.failed_phase}): {r.error}")
    return "\n".join(lines)


def write_outputs(results: Sequence[MethodProfile], environment: dict[str, Any], out_dir: str | Path,
                  stem: str = "profile") -> list[Path]:
    out_dir = Path(out_dir)
    rows = [asdict(r) for r in results]
    md = write_text_atomic(out_dir / f"{stem}.md", markdown_table(results, environment) + "\n")
    env_columns = {f"env_{k}": v for k, v in environment.items()}
    csv_path = write_csv(out_dir / f"{stem}.csv", [{**row, **env_columns} for row in rows])
    json_path = write_json_atomic(out_dir / f"{stem}.json", {"environment": environment, "results": rows}, indent=1)
    png = out_dir / f"{stem}.png"
    plot(results, environment, png)
    return [md, csv_path, json_path, png]


def plot(results: Sequence[MethodProfile], environment: dict[str, Any], path: str | Path) -> None:
    """Two panels: latency per method (forward, backward, optimizer stacked) and memory per method;
    a method that failed has no bars and its status in its label."""
    names = [r.method if r.ok else f"{r.method} ({r.status})" for r in results]
    pos = list(range(len(names)))
    fig = new_figure(figsize=(max(6.5, 0.9 * len(names) + 3), 7.0), layout="constrained")
    ax_t, ax_m = fig.subplots(2, 1)
    # a method that failed gets no bars, only its label with the failure (e.g. "avg (OOM)")
    fwd = [r.forward_ms if r.ok else 0.0 for r in results]
    bwd = [r.backward_ms if r.ok else 0.0 for r in results]
    rest = [max(0.0, r.step_ms - f - b) if r.ok else 0.0 for r, f, b in zip(results, fwd, bwd, strict=True)]
    ax_t.bar(pos, fwd, label="forward")
    ax_t.bar(pos, bwd, bottom=fwd, label="backward")
    ax_t.bar(pos, rest, bottom=[f + b for f, b in zip(fwd, bwd, strict=True)], label="optimizer + rest of step")
    ax_t.set_ylabel("ms (median)")
    ax_t.set_xticks(pos, names, rotation=30, ha="right")
    ax_t.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    r0 = results[0]
    ax_t.set_title(f"{r0.model}: input {r0.input_shape} {environment.get('dtype')}, AMP {environment.get('amp')}, "
                   f"{environment.get('device')}, {environment.get('threads')} threads", fontsize=9)
    on_gpu = any(r.peak_allocated_bytes is not None for r in results)
    width = 0.4
    ax_m.bar([p - width / 2 for p in pos], [(r.saved_bytes or 0) / MIB for r in results], width,
             label="saved for backward")
    second = [(r.peak_allocated_bytes if on_gpu else r.peak_rss_increase_bytes) or 0 for r in results]
    ax_m.bar([p + width / 2 for p in pos], [v / MIB for v in second], width,
             label="peak allocated" if on_gpu else "process RSS rise during the steps")
    ax_m.set_ylabel("MiB")
    ax_m.set_xticks(pos, names, rotation=30, ha="right")
    ax_m.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save_figure(fig, path, dpi=110)
