"""Finding the test accuracy of a checkpoint for its model card.

A Lightning checkpoint is written before the model is tested, so the numbers live beside
it: the study grid's `<run>/result.json` (metrics of the test run of its best
checkpoint) and the CLI's run records `<run>/logs/version_N/run.json` (results.test of a
`softpool-video test --ckpt_path ...`). Only a record that names this very checkpoint
counts; anything else could describe another model.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _same_file(a: Any, b: Path) -> bool:
    if not isinstance(a, str) or not a:
        return False
    try:
        return Path(a).resolve() == b.resolve()
    except OSError:
        return False


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _test_scalars(metrics: Any) -> dict[str, float]:
    if not isinstance(metrics, dict):
        return {}
    return {k: float(v) for k, v in metrics.items()
            if k.startswith("test/") and isinstance(v, (int, float)) and not isinstance(v, bool)}


def find_test_metrics(checkpoint: str | Path) -> tuple[dict[str, float], str | None]:
    """(test metrics, the file they came from) for `checkpoint`, or ({}, None)."""
    checkpoint = Path(checkpoint)
    run_dir = checkpoint.parent.parent  # <run>/checkpoints/<file>.ckpt
    result = _read(run_dir / "result.json")
    if result and _same_file(result.get("best_checkpoint"), checkpoint):
        metrics = _test_scalars(result.get("metrics"))
        if metrics:
            return metrics, str(run_dir / "result.json")
    records = sorted((run_dir / "logs").glob("*/run.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in records:
        record = _read(path)
        results = record.get("results") or {}
        config = record.get("config") or {}
        names = [config.get("ckpt_path") if isinstance(config, dict) else None]
        names.append((results.get("fit") or {}).get("best_checkpoint") if isinstance(results, dict) else None)
        metrics = _test_scalars(results.get("test")) if isinstance(results, dict) else {}
        if metrics and any(_same_file(n, checkpoint) for n in names):
            return metrics, str(path)
    log.info("no test results found for %s (looked for %s and %s)", checkpoint, run_dir / "result.json",
             run_dir / "logs/*/run.json")
    return {}, None
