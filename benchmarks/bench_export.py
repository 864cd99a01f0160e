"""Export + verify time: full-size I3D (13 pool sites) and R(2+1)D-50 (one), max pool and SoftPool.

Each case runs in a fresh interpreter, as `softpool-video export` does: import, build the
network (random weights, 101 classes), then `export_onnx` (torch.export capture with a
symbolic batch, SoftPool in its standard-op form, the dynamo ONNX exporter, save) and its
verification (onnxruntime against PyTorch on batches of 1 and 3), and, for the pt2 rows,
`export_pt2(decompose=True)` (capture, save, reload, compare). The clip is the demo
config's (8 x 64 x 64). Wall time is for the whole process (imports included); CPU time is
the process's user + system time, a steadier figure where the cores are shared. Target
(SOFTPOOL.md, issue 15): i3d + SoftPool to ONNX, exported and verified, under 60 s on 2 cores.

    python -m benchmarks.bench_export            # writes benchmarks/results/export.json
    python -m benchmarks.bench_export --quick    # i3d only
    python -m benchmarks.bench_export --reference   # also i3d + SoftPool through the old
                                                    # window-unfolding form (minutes)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

INPUTS = ("clip", "num_classes", "threads", "torch", "target_s")  # run()'s keys saying what was measured
CLIP = (8, 64, 64)
NUM_CLASSES = 101
TARGET_S = 60.0
CASES = [(arch, pooling, fmt) for arch in ("i3d", "r2plus1d_50") for pooling in ("max", "softpool")
         for fmt in ("onnx", "pt2")]
QUICK_CASES = [c for c in CASES if c[0] == "i3d"]


def _cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _one(arch: str, pooling: str, fmt: str, threads: int, form: str) -> dict[str, Any]:
    """In the child process: one export, timed by phase."""
    torch.set_num_threads(threads)
    started, cpu0 = time.perf_counter(), _cpu_s()
    import softpool_video  # noqa: F401
    from softpool_video.export.onnx_export import export_onnx
    from softpool_video.export.pt2_export import export_pt2
    from softpool_video.models import create_model

    if form == "reference":  # the formulation before issue 15, for the before/after row
        from softpool_video.export import decompose
        from softpool_video.pooling import soft_pool_reference

        decompose.soft_pool_onnx = lambda x, args, with_lse=True: soft_pool_reference(x, args)
        decompose.export_form = lambda net: net  # the op stays in the capture, decomposed after
    imported = time.perf_counter()
    torch.manual_seed(0)
    net = create_model(arch, NUM_CLASSES, pooling=pooling).eval()
    clip = torch.randn(1, 3, *CLIP)
    built, cpu1 = time.perf_counter(), _cpu_s()
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        if fmt == "onnx":
            result = export_onnx(net, clip, Path(tmp) / "model.onnx")
        else:
            result = export_pt2(net, clip, Path(tmp) / "model.pt2", decompose=True)
        size = sum(f.stat().st_size for f in Path(tmp).iterdir())
    done, cpu2 = time.perf_counter(), _cpu_s()
    check = result["verification"]
    return {"import_s": imported - started, "build_s": built - imported, "export_verify_s": done - built,
            "export_verify_cpu_s": cpu2 - cpu1, "process_cpu_s": cpu2 - cpu0, "file_mib": size / 2**20,
            "passed": check["passed"], "max_abs_diff": check["max_abs_diff"], "max_rel_diff": check["max_rel_diff"],
            "top_k_match": check["top_k_match"], "pool_sites": _sites(net)}


def _sites(net: torch.nn.Module) -> int:
    from softpool_video.models import pool_sites
    return len([s for s in pool_sites(net) if not s.adaptive])


def measure(arch: str, pooling: str, fmt: str, form: str = "standard_ops", threads: int | None = None,
            timeout_s: float = 1800) -> dict[str, Any]:
    """One case in a fresh interpreter; wall and CPU time of the whole process."""
    threads = threads or torch.get_num_threads()
    argv = [sys.executable, "-m", "benchmarks.bench_export", "--case", arch, pooling, fmt, "--threads", str(threads),
            "--form", form]
    cpu0, t0 = _cpu_s(), time.perf_counter()
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout_s,
                          cwd=Path(__file__).resolve().parent.parent, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    if done.returncode != 0:
        return {"arch": arch, "pooling": pooling, "format": fmt, "form": form, "error": done.stderr[-2000:]}
    phases = json.loads(done.stdout.strip().splitlines()[-1])
    return {"arch": arch, "pooling": pooling, "format": fmt, "form": form, "wall_s": wall, "cpu_s": cpu,
            "threads": threads, **phases}


def run(quick: bool = False, reference: bool = False, cases: list[tuple[str, str, str]] | None = None) -> dict[str, Any]:
    rows = [measure(*case) for case in (cases or (QUICK_CASES if quick else CASES))]
    if reference:
        rows.append(measure("i3d", "softpool", "onnx", form="reference"))
    i3d = next((r for r in rows if (r["arch"], r["pooling"], r["format"], r["form"])
                == ("i3d", "softpool", "onnx", "standard_ops")), {})
    return {"name": "export", "clip": list(CLIP), "num_classes": NUM_CLASSES, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "target_s": TARGET_S, "rows": rows,
            "i3d_softpool_onnx_wall_s": i3d.get("wall_s"),
            "i3d_softpool_onnx_meets_target": bool(i3d.get("wall_s") is not None and i3d["wall_s"] < TARGET_S)}


def markdown(result: dict[str, Any]) -> str:
    lines = [(f"### Export + verify, clip {tuple(result['clip'])}, {result['threads']} threads "
              f"(target: i3d SoftPool ONNX < {result['target_s']:.0f} s)"), "",
             ("| model | pooling | format | SoftPool form | process wall s | process CPU s | export+verify s "
              "| export+verify CPU s | max abs / rel diff | passed |"),
             "|---|---|---|---|---:|---:|---:|---:|---|---|"]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['arch']} | {r['pooling']} | {r['format']} | {r['form']} | failed | | | | | |")
            continue
        lines.append(f"| {r['arch']} | {r['pooling']} | {r['format']} | {r['form']} | {r['wall_s']:.1f} | "
                     f"{r['cpu_s']:.1f} | {r['export_verify_s']:.1f} | {r['export_verify_cpu_s']:.1f} | "
                     f"{r['max_abs_diff']:.1e} / {r['max_rel_diff']:.1e} | {r['passed']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="i3d only")
    parser.add_argument("--reference", action="store_true", help="also the old SoftPool form (slow)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--case", nargs=3, metavar=("ARCH", "POOLING", "FORMAT"), help=argparse.SUPPRESS)
    parser.add_argument("--form", default="standard_ops", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(_one(*args.case, threads=args.threads, form=args.form)))
        return 0
    torch.set_num_threads(args.threads)
    from .summary import split_inputs, write_summary

    result = run(quick=args.quick, reference=args.reference)
    inputs, results = split_inputs(result, INPUTS)
    write_summary("export", {**inputs, "quick": args.quick, "reference": args.reference}, results)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
