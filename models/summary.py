"""Every model with its size, GFLOPs and pooling sites (the library of `softpool-video models`).

Models are built on the meta device by default, so sizing the full networks runs no
arithmetic and takes seconds. GFLOPs follow torch's FlopCounterMode (a multiply-add is
2 FLOPs; see models/flops.py for how SoftPool is counted), for one clip in eval mode.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace

import torch

from .flops import count_flops, count_parameters
from .pool_sites import PoolSite, pool_sites
from .registry import check_model, create_model, list_models, model_entry


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


def row_cells(row: ModelRow) -> list[str]:
    """The table cells of `row`, in HEADER's order."""
    if row.error:
        return [row.name, row.family, "-", "-", "-", "-", f"error: {row.error}"]
    head = [s for s in row.sites if s.adaptive]
    places = where(row.swap_sites) or "-"
    return [row.name, row.family, f"{row.params / 1e6:.2f}", f"{row.flops / 1e9:.2f}",
            str(len(row.swap_sites)), methods(row.swap_sites),
            places + (f"; head: {where(head)}" if head else "")]


def site_geometry(site: PoolSite) -> str:
    """The site's geometry; a head pool is "global", or its window when it has one (I3D's
    original head: clipped to the feature map)."""
    if not site.adaptive:
        return site.geometry()
    if site.kernel_size is not None:
        return replace(site, adaptive=False).geometry() + " clipped to the map (head, not swapped)"
    return site.geometry() + " (head, not swapped)"


def select_models(patterns: list[str], family: str | None = None) -> list[str]:
    """Model names matching `patterns` (globs; all models when empty), in registry order;
    raises ValueError naming the models when a pattern matches none."""
    if not patterns:
        return list_models(family=family)
    names: list[str] = []
    for pattern in patterns:
        found = list_models(pattern, family)
        if not found:
            check_model(pattern)  # raises with the list of models
        names += [n for n in found if n not in names]
    return names


HEADER = ["model", "family", "params (M)", "GFLOPs", "sites", "methods", "where"]


def table_title(pooling: str, batch: int, clip: tuple[int, int, int]) -> str:
    return (f"models with pooling={pooling!r}: params, GFLOPs at {batch}x3x{clip[0]}x{clip[1]}x{clip[2]} "
            "(FlopCounterMode, multiply-add = 2 FLOPs), pooling sites")


def markdown_table(title: str, rows: list[ModelRow]) -> str:
    lines = [f"<!-- {title} -->", "| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row_cells(row)) + " |" for row in rows]
    return "\n".join(lines)
