"""`make bench`: every benchmark, side by side, JSON in benchmarks/results/ and a printed table.

Run as `python -m benchmarks.run [--quick] [--only softpool,data,...]`.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import torch

from softpool_video.measure import environment
from softpool_video.reporting import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def dated_environment(device: str) -> dict:
    """measure.environment and when: the envelope of every benchmarks/results/*.json."""
    return {**environment(device), "date": datetime.now(UTC).isoformat(timespec="seconds")}


def bench_softpool(device: str, quick: bool) -> str:
    from benchmarks import bench_softpool as b
    shape = (2, 32, 8, 56, 56) if quick else (4, 64, 16, 56, 56)
    rows = b.run(shape=shape, device=device, repeats=3 if quick else 7)
    table = b.markdown(rows)
    _write(f"softpool_{device}", {"env": dated_environment(device), "input_shape": list(shape), "rows": rows})
    return f"### SoftPool3d op, input {tuple(shape)} fp32, {device}\n\n{table}"


def report_checks(result: dict, out: Path) -> int:
    """Print a run's named checks (PASS/FAIL) and its verdict; the exit status (0: all passed).
    Shared by the runs that judge themselves (soak, fuzz)."""
    for name, ok in result["checks"].items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    print(f"{'PASSED' if result['passed'] else 'FAILED'} in {result['seconds']}s; wrote {out}")
    return 0 if result["passed"] else 1


# benchmarks/bench_<name>.py, each with run(quick) (and markdown(result) for its table)
BENCH_MODULES = ("data", "setup", "pooling_zoo", "profiling", "export", "launchers")


def bench_module(name: str, quick: bool) -> str:
    """Run benchmarks/bench_<name>.py. A missing dependency fails the run: no benchmark drops out unseen."""
    module = importlib.import_module(f"benchmarks.bench_{name}")
    result = module.run(quick=quick)
    _write(name, {"env": dated_environment("cpu"), "result": result})
    return module.markdown(result) if hasattr(module, "markdown") else json.dumps(result, indent=1)


def _write(name: str, payload: dict) -> None:
    write_json_atomic(RESULTS / f"{name}.json", payload, indent=1)


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
