"""`softpool-video predict-dataset`: predict over a datamodule's videos (LightningCLI's `predict`, training/cli.py)."""
from __future__ import annotations

from ._lightning import run


def main(argv: list[str]) -> int:
    return run("predict", argv, command="predict-dataset")
