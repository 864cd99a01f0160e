"""`softpool-video fit`: train a model (LightningCLI's `fit`, training/cli.py)."""
from __future__ import annotations

from ._lightning import run


def main(argv: list[str]) -> int:
    return run("fit", argv)
