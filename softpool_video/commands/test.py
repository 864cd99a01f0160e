"""`softpool-video test`: multi-view test of a checkpoint (LightningCLI's `test`, training/cli.py)."""
from __future__ import annotations

from ._lightning import run


def main(argv: list[str]) -> int:
    return run("test", argv)
