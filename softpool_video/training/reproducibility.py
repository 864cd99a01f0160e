"""Run records: what produced a result (config, versions, device, git commit), written beside it."""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from softpool_video.measure import environment
from softpool_video.reporting import write_json_atomic

_PACKAGES = ("torch", "torchvision", "pytorch-lightning", "torchmetrics", "jsonargparse", "numpy",
             "decord2", "av", "softpool-video")


def write_record(path: str | os.PathLike, record: Any) -> Path:
    """A run record or result as sorted, indented JSON, written atomically."""
    return write_json_atomic(path, record, indent=2, sort_keys=True, default=str)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """Commit and dirty flag of the checkout containing `path` (default: this package), read-only."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    # --no-optional-locks: `git status` must not refresh the index of the checkout it reads
    base = ["git", "--no-optional-locks", "-C", str(where)]
    try:
        commit = subprocess.run([*base, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        status = subprocess.run([*base, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def run_record(config: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Everything needed to tell how a result was produced."""
    from softpool_video import extension_status
    return {
        "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "config": config,
        "versions": {"python": platform.python_version(), **package_versions()},
        "softpool_extension": extension_status(),
        # the same record every measurement carries (processor, threads, CUDA devices)
        "device": environment("cuda" if torch.cuda.is_available() else "cpu"),
        "git": git_commit(),
        "host": platform.node(),
        **extra,
    }
