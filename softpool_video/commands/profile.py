"""`softpool-video profile`: latency, throughput and memory of a model, per pooling method.

The measurement is softpool_video.studies.model_profile's; this module parses and checks
the options, runs it and prints/writes the table (profile.md, .csv, .json, .png).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from softpool_video.profiling.report import markdown_table, write_outputs
from softpool_video.studies.model_profile import DEFAULT_METHODS, DTYPES, profile_model

from ._console import console, fail, setup_logging


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="softpool-video profile",
                                description="Latency, throughput and memory of a model, per pooling method.")
    p.add_argument("--model", default="r2plus1d_tiny", help="model name (softpool-video models lists them)")
    p.add_argument("--pooling", default=",".join(DEFAULT_METHODS), help="comma-separated pooling methods")
    p.add_argument("--input", default="2,3,8,112,112", help="input shape N,C,T,H,W")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    p.add_argument("--amp", action="store_true", help="autocast the forward (float16 on CUDA, bfloat16 on CPU)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model-args", default="{}", help='JSON keyword arguments for the model, e.g. \'{"base_width": 32}\'')
    p.add_argument("--out", default="runs/profile", help="folder for profile.md/.csv/.json/.png")
    return p


def _shape(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--input must be comma-separated integers N,C,T,H,W, got {text!r}") from None
    if len(values) != 5 or any(v <= 0 for v in values):
        raise ValueError(f"--input must be 5 positive integers N,C,T,H,W, got {text!r}")
    return values


def parse_options(args: argparse.Namespace) -> dict[str, Any]:
    """Checks the parsed options; ValueError naming the option, the value and what is allowed."""
    from softpool_video.models import check_model
    from softpool_video.pooling import check_methods

    check_model(args.model, "--model")
    methods = check_methods(args.pooling, "--pooling")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device!r}: CUDA is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu, cuda or cuda:N, got {args.device!r}")
    if args.warmup < 0 or args.repeats < 1:
        raise ValueError(f"--warmup must be >= 0 and --repeats >= 1, got {args.warmup} and {args.repeats}")
    if args.num_classes < 2:
        raise ValueError(f"--num-classes must be >= 2, got {args.num_classes}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    try:
        model_kwargs = json.loads(args.model_args)
    except json.JSONDecodeError as err:
        raise ValueError(f"--model-args must be a JSON object, got {args.model_args!r} ({err})") from None
    if not isinstance(model_kwargs, dict):
        raise ValueError(f"--model-args must be a JSON object, got {args.model_args!r}")
    return {"model_name": args.model, "methods": methods, "shape": _shape(args.input), "device": device,
            "dtype": DTYPES[args.dtype], "amp": args.amp, "warmup": args.warmup, "repeats": args.repeats,
            "num_classes": args.num_classes, "seed": args.seed, "model_kwargs": model_kwargs}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(verbose=False)
    try:
        options = parse_options(args)
    except ValueError as err:
        return fail("profile", err)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    results, env = profile_model(**options)
    files = write_outputs(results, env, Path(args.out))
    print(markdown_table(results, env))  # markdown, plain: pasted into reports as it is
    console().print(f"wrote {', '.join(str(f) for f in files)}", markup=False)
    failed = [r for r in results if not r.ok]
    if failed and len(failed) == len(results):
        phases = ", ".join(f"{r.method}: {r.failed_phase}" for r in failed)
        return fail("profile", f"every method ran out of memory on {args.device} with --input {args.input} ({phases}); "
                               "try a smaller batch or resolution in --input, --amp or --dtype bfloat16, "
                               "or another --device", code=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
