"""`make bench`: every benchmark, side by side, a summary in benchmarks/results/ each
(benchmarks/summary.py's layout) and a printed table.

Run as `python -m benchmarks.run [--quick] [--only softpool,data,...]`.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import torch

from benchmarks.summary import dated_environment, split_inputs, write_summary


def bench_softpool(device: str, quick: bool, results_dir: Path | None = None) -> str:
    from benchmarks import bench_softpool as b
    shape = (2, 32, 8, 56, 56) if quick else (4, 64, 16, 56, 56)
    repeats = 3 if quick else 7
    rows = b.run(shape=shape, device=device, repeats=repeats)
    table = b.markdown(rows)
    name = f"softpool_{device}"
    write_summary(name, {"input_shape": list(shape), "dtype": "float32", "repeats": repeats, "quick": quick},
                  {"rows": rows}, device=device, out=results_dir / f"{name}.json" if results_dir else None)
    return f"### SoftPool3d op, input {tuple(shape)} fp32, {device}\n\n{table}"


def report_checks(result: dict, out: Path) -> int:
    """Print a run's named checks (PASS/FAIL) and its verdict; the exit status (0: all passed).
    Shared by the runs that judge themselves (soak, fuzz)."""
    for name, ok in result["checks"].items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    print(f"{'PASSED' if result['passed'] else 'FAILED'} in {result['seconds']}s; wrote {out}")
    return 0 if result["passed"] else 1


# benchmarks/bench_<name>.py, each with run(quick), INPUTS (the keys of its result that say
# what was measured) and markdown(result) for its table
BENCH_MODULES = ("data", "setup", "pooling_zoo", "profiling", "export", "launchers")


def bench_module(name: str, quick: bool, results_dir: Path | None = None, **sizes) -> str:
    """Run benchmarks/bench_<name>.py (`sizes`: its run()'s own size arguments) and write its
    summary. A missing dependency fails the run: no benchmark drops out unseen."""
    module = importlib.import_module(f"benchmarks.bench_{name}")
    result = module.run(quick=quick, **sizes)
    inputs, results = split_inputs(result, module.INPUTS)
    write_summary(name, {**inputs, "quick": quick}, results, out=results_dir / f"{name}.json" if results_dir else None)
    return module.markdown(result) if hasattr(module, "markdown") else json.dumps(result, indent=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller inputs, fewer repeats")
    parser.add_argument("--only", default="", help="comma-separated subset, e.g. softpool,data")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args(argv)
    only = {s for s in args.only.split(",") if s}
    unknown = sorted(only - {"softpool", *BENCH_MODULES})
    if unknown:
        parser.error(f"--only: unknown benchmark(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(('softpool', *BENCH_MODULES))}")
    torch.set_num_threads(args.threads)
    sections = []
    if not only or "softpool" in only:
        sections.append(bench_softpool("cpu", args.quick))
        if torch.cuda.is_available():
            sections.append(bench_softpool("cuda", args.quick))
    for name in BENCH_MODULES:
        if not only or name in only:
            sections.append(bench_module(name, args.quick))
    env = dated_environment("cpu")
    print(f"# make bench — {env['processor']}, {env['threads']} threads, torch {env['torch']}\n")
    print("\n\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
