"""`softpool-video predict-dataset`: predict over a datamodule's videos (LightningCLI's `predict`, training/cli.py)."""
from __future__ import annotations

from softpool_video.training.cli import run_cli


def main(argv: list[str]) -> int:
    return run_cli("predict", argv, command="predict-dataset")
