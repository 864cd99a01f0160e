"""`softpool-video fit`: train a model (LightningCLI's `fit`, training/cli.py)."""
from __future__ import annotations

from softpool_video.training.cli import run_cli


def main(argv: list[str]) -> int:
    return run_cli("fit", argv)
