"""Should SRTG's straight-through gate gradient reach the backbone? Measured on the hard demo.

Two benchmark grids on the same data, seeds and config (`demo_hard` with
srtg_r2plus1d_tiny, 16 frames at interval 1 so no stage has T=1), one per
`gate_gradient`: "backbone" (the gradient through the gate's soft cycle-back probability
also reaches the features it was computed from) and "recurrent" (it trains the LSTM only).
Each seed's two runs share everything else, so they are compared seed by seed
(statistics.paired_difference) on video top-1, as the benchmark compares pooling methods.

    python -m benchmarks.srtg_gate_gradient --data runs/demo_hard/data --out runs/srtg_gate_gradient
"""
from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

from softpool_video.studies.grid import read_json
from softpool_video.studies.statistics import paired_difference

VARIANTS = ("backbone", "recurrent")
SEEDS = "0,1,2,3,4"
# 24 epochs: the length the comparison was measured with (demo_hard itself trains longer since)
SRTG = ["--model.arch", "srtg_r2plus1d_tiny", "--data.init_args.sampling.clip_len", "16",
        "--data.init_args.sampling.frame_interval", "1", "--trainer.max_epochs", "24"]


def run_grid(variant: str, data: Path, out: Path) -> dict[tuple, float]:
    """Video top-1 per (split, seed) cell of one variant's grid."""
    subprocess.run([sys.executable, "-m", "softpool_video.cli", "study", "--config", "demo_hard",
                    "--pooling", "max", "--seeds", SEEDS, "--out", str(out / variant), "--force", "--",
                    "--data.init_args.root", str(data), *SRTG, "--model.model_kwargs.gate_gradient", variant],
                   check=True, stdout=subprocess.DEVNULL)
    values = {}
    for path in sorted((out / variant / "cells").glob("*/result.json")):
        result = read_json(path)
        if result and result.get("status") == "finished":
            values[(result["cell"]["split"], result["cell"]["seed"])] = float(result["metrics"]["test/video_acc1"])
    return values


def markdown(values: dict[str, dict[tuple, float]]) -> str:
    def spread(v: dict[tuple, float]) -> str:
        xs = [100 * x for x in v.values()]
        mean = sum(xs) / len(xs)
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
        return f"{mean:.1f} ± {std:.1f}"

    d = paired_difference("recurrent", values["recurrent"], "backbone", values["backbone"])
    detectable = d.detectable()
    lines = ["| gate_gradient | cells | video top-1 (%) |", "|---|---|---|",
             *(f"| {name} | {len(v)} | {spread(v)} |" for name, v in values.items()), "",
             "| comparison | difference | 95% CI | p | pairs | smallest detectable (80% power) |",
             "|---|---|---|---|---|---|",
             f"| recurrent - backbone | {100 * d.mean:+.1f} | {100 * d.ci_low:+.1f} to {100 * d.ci_high:+.1f} | "
             f"{'–' if d.p_value is None else f'{d.p_value:.3g}'} | {d.n} | "
             f"{'–' if detectable is None else f'{100 * detectable:.1f}'} |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the hard demo's root (make-demo-data --variant hard)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the two grids")
    args = parser.parse_args(argv)
    values = {variant: run_grid(variant, args.data, args.out) for variant in VARIANTS}
    print(markdown(values))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
