"""`softpool-video predict VIDEO... --model DIR_OR_CKPT`: top-k classes of each video.

    softpool-video predict clip.avi --model runs/demo/export            # safetensors + card
    softpool-video predict a.avi b.mp4 --model best.ckpt --top-k 3 --json

Each video is decoded and cut into the model's test views (uniform clips x crops, the
protocol its card or checkpoint records; --clips / --crops override), the views' scores
are combined as in testing, and the top-k class names are printed with probabilities.
A video that cannot be decoded is reported and skipped; the exit code is then 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from softpool_video.checkpoint import CheckpointError, LoadedModel, load_model
from softpool_video.evaluation import EvaluationProtocol
from softpool_video.inference import Prediction, predict_video

from ._console import console, fail, print_table, setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="softpool-video predict", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video files")
    parser.add_argument("--model", "-m", required=True,
                        help="Lightning checkpoint (.ckpt), or an export folder / model card (.json) "
                             "with safetensors weights")
    parser.add_argument("--top-k", "-k", type=int, default=5, help="classes to show per video (default 5)")
    parser.add_argument("--clips", type=int, default=None,
                        help="clips per video (default: the model's test protocol)")
    parser.add_argument("--crops", type=int, default=None,
                        help="crops per clip (default: the model's test protocol)")
    parser.add_argument("--batch-size", type=int, default=8, help="views per forward pass")
    parser.add_argument("--decoder", choices=("decord", "pyav"), default="decord", help="preferred decoder")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(verbose=False)
    from softpool_video.datamodules import DecodeError

    try:
        for name in ("top_k", "clips", "crops", "batch_size", "threads"):
            _positive(f"--{name.replace('_', '-')}", getattr(args, name))
        if args.threads:
            torch.set_num_threads(args.threads)
        model = load_model(args.model)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        return fail("predict", err)
    protocol = model.protocol
    protocol = replace(protocol, num_clips=args.clips or protocol.num_clips,
                       num_crops=args.crops or protocol.num_crops)
    results, failures = [], []
    for video in args.videos:
        if not Path(video).is_file():
            failures.append({"video": video, "error": "no such file"})
            continue
        try:
            results.append(predict_video(model, video, protocol, args.top_k, args.batch_size, args.decoder))
        except DecodeError as err:
            failures.append({"video": video, "error": str(err)})
    if args.json:
        print(json.dumps({"model": model.source, "protocol": protocol.to_dict(),
                          "predictions": [r.to_dict() for r in results], "failed": failures}, indent=2))
    else:
        _print_table(model, protocol, results, failures)
    return 1 if failures else 0


def _print_table(model: LoadedModel, protocol: EvaluationProtocol, results: list[Prediction], failures: list[dict]) -> None:
    from rich.table import Table

    table = Table(title=f"{model.arch} ({model.pooling}), {protocol.num_clips} clips x "
                        f"{protocol.num_crops} crops, {protocol.aggregation}")
    table.add_column("video")
    table.add_column("rank", justify="right")
    table.add_column("class")
    table.add_column("probability", justify="right")
    for r in results:
        for rank, (name, p) in enumerate(r.top, 1):
            table.add_row(r.video if rank == 1 else "", str(rank), name, f"{p:.4f}",
                          end_section=rank == len(r.top))
    out = console()
    print_table(table, out)
    for f in failures:  # part of the report, not an error of the command: the other videos were predicted
        out.print(f"skipped {f['video']}: {f['error']}", style="red", markup=False)
