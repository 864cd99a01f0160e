"""`softpool-video profile-pooling`: latency and memory of each pooling method on one input.

The measurement is softpool_video.studies.pooling_profile's; this module parses the options,
runs it and prints/writes the table (.md, .csv, .json, .png).
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from softpool_video.pooling.registry import available_pools, check_methods
from softpool_video.studies.pooling_profile import DEFAULT_METHODS, markdown_table, profile_methods, write_outputs

from ._console import console, fail, setup_logging

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
           "float64": torch.float64}


def _int_list(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise ValueError(f"{name} must be positive integers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="softpool-video profile-pooling",
                                description="Latency and memory of each pooling method on one input.")
    p.add_argument("--input", default="2,16,8,32,32", help="input shape N,C,T,H,W (or N,C,H,W / N,C,L)")
    p.add_argument("--dtype", default="float32", choices=sorted(_DTYPES))
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help=f"comma-separated methods; available: {', '.join(available_pools())}")
    p.add_argument("--kernel", default="2", help="kernel size: one int or one per spatial dim (comma-separated)")
    p.add_argument("--stride", default=None, help="stride (default: the kernel size)")
    p.add_argument("--padding", default="0", help="padding: one int or one per spatial dim")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method-args", default="{}", help='JSON per method, e.g. \'{"power": {"p": 3}}\'')
    p.add_argument("--out", default="runs/profile-pooling", help="folder for .md/.csv/.json/.png")
    return p


def _geometry(text: str | None, name: str, dims: int, allow_zero: bool = False) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--{name} must be comma-separated integers, got {text!r}") from None
    if len(values) == 1:
        values *= dims
    if len(values) != dims or any(v < 0 or (v == 0 and not allow_zero) for v in values):
        raise ValueError(f"--{name} needs 1 or {dims} {'non-negative' if allow_zero else 'positive'} integers, "
                         f"got {text!r}")
    return tuple(values)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(verbose=False)
    try:
        shape = _int_list(args.input, "--input")
        if len(shape) not in (3, 4, 5):
            raise ValueError(f"--input must be N,C,L or N,C,H,W or N,C,T,H,W, got {args.input!r}")
        dims = len(shape) - 2
        methods = check_methods(args.methods, "--methods")
        try:
            method_args = json.loads(args.method_args)
        except json.JSONDecodeError as err:
            raise ValueError(f"--method-args must be JSON, got {args.method_args!r} ({err})") from None
        if not isinstance(method_args, dict) or not all(isinstance(v, dict) for v in method_args.values()):
            raise ValueError('--method-args must map method names to objects, e.g. {"power": {"p": 3}}')
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {args.device!r}: CUDA is not available on this machine")
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"--threads must be >= 1, got {args.threads}")
            torch.set_num_threads(args.threads)
        results = profile_methods(shape, methods, _DTYPES[args.dtype], device,
                                  _geometry(args.kernel, "kernel", dims), _geometry(args.stride, "stride", dims),
                                  _geometry(args.padding, "padding", dims, allow_zero=True), args.warmup,
                                  args.repeats, args.seed, method_args)
    except ValueError as err:
        return fail("profile-pooling", err)
    files = write_outputs(results, args.out)
    print(markdown_table(results))  # markdown, plain: pasted into reports as it is
    console().print(f"wrote {', '.join(str(f) for f in files)}", markup=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
