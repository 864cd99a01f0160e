"""Latency and memory of every pooling method side by side (the paper's cost table).

`run(quick)` returns a dict with the input, one row per method (forward/backward
median ms, bytes saved for backward, peak memory) and the markdown table; the
same measurement as `softpool-video profile-pooling`.
"""
from __future__ import annotations

from dataclasses import asdict

import torch

from softpool_video.studies.pooling_profile import DEFAULT_METHODS, markdown_table, profile_methods

INPUTS = ("input", "kernel_size", "device", "threads", "torch")  # the rest of run()'s dict is results
QUICK_INPUT = (2, 16, 8, 32, 32)
FULL_INPUT = (2, 32, 16, 56, 56)


def run(quick: bool = False) -> dict:
    shape = QUICK_INPUT if quick else FULL_INPUT
    device = "cuda" if torch.cuda.is_available() else "cpu"
    results = profile_methods(shape, DEFAULT_METHODS, torch.float32, device, kernel_size=2,
                              warmup=1 if quick else 3, repeats=3 if quick else 10)
    return {"name": "pooling_zoo", "input": list(shape), "kernel_size": 2, "device": results[0].device,
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "results": [asdict(r) for r in results], "table": markdown_table(results)}


def markdown(result: dict) -> str:
    return result["table"]


if __name__ == "__main__":
    import sys
    print(run(quick="--quick" in sys.argv)["table"])
