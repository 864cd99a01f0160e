"""`softpool-video models`: every model with its size, GFLOPs and pooling sites.

Models are built on the meta device by default, so sizing the full networks runs no
arithmetic and takes seconds. GFLOPs follow torch's FlopCounterMode (a multiply-add is
2 FLOPs; see models/flops.py for how SoftPool is counted), for one clip in eval mode.
"""
from __future__ import annotations

import argparse
import re
from collections import Counter
from dataclasses import dataclass, field, replace

import torch

from ..pooling.registry import available_pools
from .flops import count_flops, count_parameters
from .pool_sites import PoolSite, pool_sites
from .registry import create_model, list_models, model_entry


@dataclass
class ModelRow:
    name: str
    family: str
    params: int | None = None
    flops: int | None = None
    sites: list[PoolSite] = field(default_factory=list)
    error: str | None = None

    @property
    def swap_sites(self) -> list[PoolSite]:
        return [s for s in self.sites if not s.adaptive]


def measure(name: str, pooling: str, num_classes: int, clip: tuple[int, int, int], device: str,
            batch: int = 1) -> ModelRow:
    """Builds `name` on `device` and counts its parameters, FLOPs and pooling sites."""
    row = ModelRow(name, model_entry(name).family)
    try:
        with torch.device(device):
            model = create_model(name, num_classes, pooling)
            x = torch.zeros(batch, 3, *clip)
        row.flops = count_flops(model, x)  # first: the forward gives lazy pools their parameters
        row.params = count_parameters(model)
        row.sites = pool_sites(model)
    except (ImportError, RuntimeError, ValueError, NotImplementedError) as err:
        row.error = f"{type(err).__name__}: {err}"
    return row


def where(sites: list[PoolSite]) -> str:
    """Site names, repeated patterns collapsed: "pool2a, mixed*.branch3.0 (x9)"."""
    groups: dict[str, list[str]] = {}
    for site in sites:
        parts = site.name.split(".")
        for i, part in enumerate(parts):
            if re.search(r"\d", part):
                parts[i] = re.sub(r"\d+[a-z]?", "*", part, count=1)
                break
        groups.setdefault(".".join(parts), []).append(site.name)
    return ", ".join(names[0] if len(names) == 1 else f"{key} (x{len(names)})" for key, names in groups.items())


def methods(sites: list[PoolSite]) -> str:
    counts = Counter(s.method for s in sites)
    return ", ".join(f"{m} x{n}" for m, n in counts.items()) or "-"


def _cells(row: ModelRow) -> list[str]:
    if row.error:
        return [row.name, row.family, "-", "-", "-", "-", f"error: {row.error}"]
    head = [s for s in row.sites if s.adaptive]
    places = where(row.swap_sites) or "-"
    return [row.name, row.family, f"{row.params / 1e6:.2f}", f"{row.flops / 1e9:.2f}",
            str(len(row.swap_sites)), methods(row.swap_sites),
            places + (f"; head: {where(head)}" if head else "")]


def _site_geometry(site: PoolSite) -> str:
    """The site's geometry; a head pool is "global", or its window when it has one (I3D's
    original head: clipped to the feature map)."""
    if not site.adaptive:
        return site.geometry()
    if site.kernel_size is not None:
        return replace(site, adaptive=False).geometry() + " clipped to the map (head, not swapped)"
    return site.geometry() + " (head, not swapped)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="softpool-video models", description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="models to show (default: all; glob patterns allowed)")
    p.add_argument("--pooling", default="max", choices=sorted(available_pools()),
                   help="pooling method for every site (default: max)")
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--clip", type=int, nargs=3, default=(16, 112, 112), metavar=("T", "H", "W"),
                       help="input clip frames, height, width (default: 16 112 112)")
    shape.add_argument("--input", type=_input_shape, metavar="N,C,T,H,W",
                       help="input shape instead of --clip, as `softpool-video profile` takes it (C must be 3)")
    p.add_argument("--num-classes", type=int, default=400)
    p.add_argument("--family", help="only this family (r3d, r2plus1d, mc3, i3d, srtg, torchvision, pytorchvideo)")
    p.add_argument("--device", default="meta", help="device to build on (default: meta, runs no arithmetic)")
    p.add_argument("--sites", action="store_true", help="also list every pooling site with its geometry")
    p.add_argument("--markdown", action="store_true", help="print a markdown table instead")
    return p


def _input_shape(text: str) -> tuple[int, int, int, int, int]:
    """N,C,T,H,W for --input; argparse reports the ValueError as a usage error."""
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers N,C,T,H,W, got {text!r}") from None
    if len(shape) != 5 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"must be 5 positive integers N,C,T,H,W, got {text!r}")
    if shape[1] != 3:
        raise argparse.ArgumentTypeError(f"the models take 3-channel clips: C must be 3, got {text!r}")
    return shape  # type: ignore[return-value]


def _select(patterns: list[str], family: str | None) -> list[str]:
    if not patterns:
        return list_models(family=family)
    names: list[str] = []
    for pattern in patterns:
        found = list_models(pattern, family)
        if not found:
            model_entry(pattern)  # raises with the list of models
        names += [n for n in found if n not in names]
    return names


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        names = _select(args.names, args.family)
    except ValueError as err:
        print(f"softpool-video models: {err}")
        return 2
    batch, clip = (args.input[0], tuple(args.input[2:])) if args.input else (1, tuple(args.clip))
    rows = [measure(n, args.pooling, args.num_classes, clip, args.device, batch) for n in names]
    title = (f"models with pooling={args.pooling!r}: params, GFLOPs at {batch}x3x{clip[0]}x{clip[1]}x{clip[2]} "
             "(FlopCounterMode, multiply-add = 2 FLOPs), pooling sites")
    header = ["model", "family", "params (M)", "GFLOPs", "sites", "methods", "where"]
    if args.markdown:
        print(f"<!-- {title} -->")
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            print("| " + " | ".join(c.replace("|", "\\|") for c in _cells(row)) + " |")
    else:
        _print_rich(title, header, rows, args.sites)
    return 1 if any(r.error for r in rows) else 0


def _print_rich(title: str, header: list[str], rows: list[ModelRow], sites: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped or captured: do not wrap at 80 columns
        console = Console(width=200)
    table = Table(title=title)
    for i, column in enumerate(header):
        table.add_column(column, justify="right" if i in (2, 3, 4) else "left", overflow="fold")
    for row in rows:
        table.add_row(*_cells(row))
    console.print(table)
    if sites:
        for row in rows:
            detail = Table(title=f"{row.name}: pooling sites", show_edge=False)
            for column in ("site", "method", "type", "geometry"):
                detail.add_column(column)
            for site in row.sites:
                detail.add_row(site.name, site.method, site.type_name, _site_geometry(site))
            console.print(detail)
