"""Downloads the wheels that the lent GPU machine's image lacks, for its Python (cp312, x86-64).

That machine reaches no package index and runs its image's python3 3.12 with torch 2.11,
torchvision, pytorch-lightning, torchmetrics, numpy, pyyaml, hypothesis and pytest
(the device tool's KINDS.md lists the image). What gpu_check's stages import beyond those
is carried as wheels in a git-ignored folder and installed there with `pip install
--no-index --target` (docs/gpu.md). Versions come from setup.cfg's pins where it pins
the package. Each wheel is fetched with --no-deps (pip cannot resolve against the image),
so every requirement of a carried wheel must be carried too or be in the image: this
script checks that, and the total size, before it says done.

    python scripts/gpu_wheels.py [DIR]        (default .whl)
"""
from __future__ import annotations

import argparse
import configparser
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What the stages need that the image lacks: torchdata (datamodules import it), jsonargparse with
# its `signatures` extra (LightningCLI: the fit stage), av (demo data is written with it, and read
# with it where decord is missing: open_video falls back) and their requirements that the image
# lacks. Not decord2 (25 MiB: av and it would not fit the 40 MiB the tree can spare). And
# setuptools: the build needs >= 84 (pyproject.toml; setup.cfg's PEP 639 license_expression), the image's may be older.
CARRIED = ("torchdata", "jsonargparse", "docstring-parser", "typeshed-client", "importlib-resources", "av",
           "setuptools")
# Versions for the packages setup.cfg does not pin (requirements of the pinned ones, setuptools).
UNPINNED = {"docstring-parser": "0.17.0", "typeshed-client": "2.8.2", "importlib-resources": "6.5.2",
            "setuptools": "84.2.1"}
# The image's packages that carried wheels require (KINDS.md, "Python packages already there").
IN_IMAGE = {"torch", "numpy", "pyyaml", "requests", "urllib3", "typing-extensions", "packaging", "setuptools",
            "filelock", "fsspec", "pillow"}
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "manylinux_2_24_x86_64", "manylinux_2_31_x86_64", "manylinux_2_34_x86_64",
             "manylinux_2_35_x86_64")
MAX_MIB = 40


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_versions() -> dict[str, str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    deps = [line for line in config["options"]["install_requires"].splitlines() if line.strip()]
    pins = {}
    for dep in deps:
        if m := re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^;\s]+)", dep.strip()):
            pins[normalise(m.group(1))] = m.group(2)
    return pins


def requirements(wheel: Path) -> list[str]:
    """Names a wheel requires for Python 3.12 on Linux, extras left out."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    names = []
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        spec = line.split(":", 1)[1].strip()
        name, _, marker = spec.partition(";")
        if "extra" in marker or "python_version < \"3.1" in marker.replace("'", '"'):
            continue  # extras, and back-ports for Pythons older than 3.12 (a rough reading of the marker)
        names.append(normalise(re.split(r"[\s<>=!~\[(]", name.strip())[0]))
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir", nargs="?", default=str(ROOT / ".whl"), help="where the wheels go (default .whl)")
    args = parser.parse_args(argv)
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    versions = {**pinned_versions(), **UNPINNED}
    wanted = [f"{name}=={versions[name]}" for name in CARRIED]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", *[f"--platform={p}" for p in PLATFORMS], "-d", str(out), *wanted]
    print("gpu-wheels:", " ".join(wanted), flush=True)
    subprocess.run(cmd, check=True)
    wheels = sorted(out.glob("*.whl"))
    by_name = {normalise(w.name.split("-")[0]): w for w in wheels}
    stale = [w.name for name, w in by_name.items() if name not in CARRIED]
    if stale or len(by_name) != len(wheels):
        print(f"gpu-wheels: {out} holds wheels beyond this list or two versions of one: {stale or wheels}; "
              "empty it and run again (two versions stop the install there)", file=sys.stderr)
        return 1
    missing = sorted({(w.name, r) for w in wheels for r in requirements(w) if r not in by_name and r not in IN_IMAGE})
    if missing:
        print("gpu-wheels: requirements neither carried nor in the image: "
              + ", ".join(f"{r} (of {w})" for w, r in missing), file=sys.stderr)
        return 1
    mib = sum(w.stat().st_size for w in wheels) / 2**20
    for w in wheels:
        print(f"  {w.stat().st_size / 2**20:6.1f} MiB  {w.name}")
    print(f"gpu-wheels: {len(wheels)} wheels, {mib:.1f} MiB in {out}")
    if mib > MAX_MIB:
        print(f"gpu-wheels: over {MAX_MIB} MiB: the working tree that travels has 64 MiB in all", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
