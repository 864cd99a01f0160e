"""`softpool-video test`: multi-view test of a checkpoint (LightningCLI's `test`, training/cli.py)."""
from __future__ import annotations

from softpool_video.training.cli import run_cli


def main(argv: list[str]) -> int:
    return run_cli("test", argv)
