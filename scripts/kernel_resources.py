"""Registers, stack and spills of the CUDA kernels, and the integer divisions in their PTX.

Compiles cuda_ext/softpool_cuda.cu for one architecture (sm_90 by default) with
`nvcc -Xptxas -v` (ptxas' resource report) and reads the PTX it kept, where a 64-bit
division or remainder is still one `div.s64` / `rem.s64` instruction (ptxas turns each
into a call of a slow subroutine; a 32-bit one becomes a short inline sequence). Needs nvcc and this Python's torch headers; no GPU.

    python scripts/kernel_resources.py [--arch 90] [--json FILE]

Prints one markdown row per kernel instantiation (docs/gpu.md records the figures).
"""
from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "cuda_ext" / "softpool_cuda.cu"

# The scalar types AT_DISPATCH instantiates, as c++filt spells them.
DTYPES = {"float": "fp32", "double": "fp64", "c10::Half": "fp16", "c10::BFloat16": "bf16"}
INDEX_TYPES = {"int": "int32", "long": "int64"}


def nvcc_command(arch: str, out: Path, extra: list[str]) -> list[str]:
    from torch.utils import cpp_extension

    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise SystemExit("kernel_resources: no nvcc on PATH")
    includes = cpp_extension.include_paths(device_type="cuda") + [str(ROOT / "cuda_ext")]
    spec = importlib.util.find_spec("nvidia")  # the CUDA libraries' headers inside torch's wheel (setup.py)
    for root in (spec.submodule_search_locations or []) if spec else []:
        includes += sorted(glob.glob(os.path.join(root, "*", "include")))
    return [nvcc, "-O3", "-std=c++20", f"-gencode=arch=compute_{arch},code=sm_{arch}",
            *cpp_extension.COMMON_NVCC_FLAGS, "-DSOFTPOOL_WITH_CUDA", "-DTORCH_EXTENSION_NAME=_C",
            *[f"-I{d}" for d in includes], *extra, "-o", str(out), str(SOURCE)]


def kernel_label(mangled: str) -> str:
    """'forward fp32 int32' from the mangled name of forward_kernel<float, float, int>."""
    name = subprocess.run(["c++filt", mangled], capture_output=True, text=True, check=False).stdout.strip() or mangled
    m = re.search(r"(forward|backward)_kernel<([^>]*)>", name)
    if not m:
        return name
    args = [a.strip() for a in m.group(2).split(",")]
    index = INDEX_TYPES.get(args[2], args[2]) if len(args) > 2 else "int64"  # before the index template: int64
    return f"{m.group(1)} {DTYPES.get(args[0], args[0])} {index}"


def ptxas_report(text: str) -> dict[str, dict[str, int]]:
    """{mangled kernel: registers, stack_bytes, spill_stores, spill_loads} from `-Xptxas -v`."""
    kernels: dict[str, dict[str, int]] = {}
    current = None
    for line in text.splitlines():
        if m := re.search(r"Compiling entry function '(\w+)'", line):
            current = m.group(1)
            kernels[current] = {}
        elif current and (m := re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads",
                                           line)):
            kernels[current].update(stack_bytes=int(m.group(1)), spill_stores=int(m.group(2)),
                                    spill_loads=int(m.group(3)))
        elif current and (m := re.search(r"Used (\d+) registers", line)):
            kernels[current]["registers"] = int(m.group(1))
    return kernels


def ptx_divisions(ptx: str) -> dict[str, dict[str, int]]:
    """{mangled kernel: div64, div32} counted per `.entry` body of the PTX."""
    counts: dict[str, dict[str, int]] = {}
    for m in re.finditer(r"\.entry (\w+)\((.*?)\n}\n", ptx, re.S):
        body = m.group(2)
        counts[m.group(1)] = {"div64": len(re.findall(r"\b(?:div|rem)\.[su]64\b", body)),
                              "div32": len(re.findall(r"\b(?:div|rem)\.[su]32\b", body))}
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="90", help="compute capability without the dot (default 90)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        # one compile: --keep leaves the PTX that ptxas assembled beside the object
        obj = subprocess.run(nvcc_command(args.arch, Path(tmp) / "k.o", ["-c", "-Xptxas", "-v", "--keep",
                                                                          "--keep-dir", tmp]),
                             capture_output=True, text=True, check=False)
        if obj.returncode != 0:
            print(obj.stderr[-4000:], file=sys.stderr)
            return 1
        divisions: dict[str, dict[str, int]] = {}
        for ptx in Path(tmp).glob("*.ptx"):
            divisions.update(ptx_divisions(ptx.read_text()))
    report = ptxas_report(obj.stdout + obj.stderr)
    rows = []
    for mangled, res in report.items():
        rows.append({"kernel": kernel_label(mangled), **res, **divisions.get(mangled, {})})
    rows.sort(key=lambda r: r["kernel"])
    print(f"sm_{args.arch}, {subprocess.run(['nvcc', '--version'], capture_output=True, text=True).stdout.split()[-1]}")
    print("| kernel | registers | stack bytes | spill stores | spill loads | div/rem 64-bit (PTX) | div/rem 32-bit |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['kernel']} | {r.get('registers', '?')} | {r.get('stack_bytes', '?')} | {r.get('spill_stores', '?')} "
              f"| {r.get('spill_loads', '?')} | {r.get('div64', '?')} | {r.get('div32', '?')} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
