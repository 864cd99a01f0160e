"""The one layout of every benchmark's summary, `benchmarks/results/<name>.json`:

    {"benchmark": name, "environment": {versions, processor, threads, date},
     "inputs": {what was measured, at which size}, "results": {what it found}}

A summary stays small: it is committed and the docs cite it. Bulky records (per epoch, per
file) go to `runs/bench/<name>/<name>.details.json`, an ignored folder, and the summary
names that file under "details".
"""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from softpool_video.measure import environment
from softpool_video.reporting import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DETAILS = REPO / "runs" / "bench"
LAYOUT = ("benchmark", "environment", "inputs", "results")


def dated_environment(device: str) -> dict[str, Any]:
    """measure.environment (versions, processor, threads) and when."""
    return {**environment(device), "date": datetime.now(UTC).isoformat(timespec="seconds")}


def write_summary(name: str, inputs: dict[str, Any], results: dict[str, Any], *, device: str = "cpu",
                  details: dict[str, Any] | None = None, out: Path | None = None) -> Path:
    """Write `name`'s summary to `out` (default benchmarks/results/<name>.json) and, when given,
    its bulky `details` to `details_file(name, out)`; returns the summary's path."""
    out = Path(out) if out is not None else RESULTS / f"{name}.json"
    summary: dict[str, Any] = {"benchmark": name, "environment": dated_environment(device), "inputs": inputs,
                               "results": results}
    if details is not None:
        details_path = details_file(name, out)
        write_json_atomic(details_path, details, indent=1)
        summary["details"] = str(details_path.relative_to(REPO) if details_path.is_relative_to(REPO) else details_path)
    write_json_atomic(out, summary, indent=1)
    return out


def details_file(name: str, out: Path | None = None) -> Path:
    """Where the details of the summary `out` go: runs/bench/<name>/ for a committed summary,
    beside `out` for one written elsewhere."""
    out = Path(out) if out is not None else RESULTS / f"{name}.json"
    return (out.parent if out.parent != RESULTS else DETAILS / name) / f"{out.stem}.details.json"


def split_inputs(result: dict[str, Any], input_keys: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A benchmark's result dict as (inputs, results): `input_keys` say what was asked for; its
    own name ("benchmark", "name") is the summary's "benchmark" already."""
    kept = {k: v for k, v in result.items() if k not in ("benchmark", "name")}
    return ({k: v for k, v in kept.items() if k in input_keys},
            {k: v for k, v in kept.items() if k not in input_keys})
