"""`softpool-video validate`: validate a checkpoint (LightningCLI's `validate`, training/cli.py)."""
from __future__ import annotations

from ._lightning import run


def main(argv: list[str]) -> int:
    return run("validate", argv)
