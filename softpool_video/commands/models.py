"""`softpool-video models`: every model with its size, GFLOPs and pooling sites.

Models are built on the meta device by default, so sizing the full networks runs no
arithmetic and takes seconds (softpool_video.models.summary does the counting).
"""
from __future__ import annotations

import argparse

from softpool_video.models.summary import (
    HEADER,
    ModelRow,
    markdown_table,
    measure,
    row_cells,
    select_models,
    site_geometry,
    table_title,
)
from softpool_video.pooling.registry import available_pools

from ._console import console, fail, print_table, setup_logging


def _input_shape(text: str) -> tuple[int, int, int, int, int]:
    """N,C,T,H,W for --input; argparse reports the ArgumentTypeError as a usage error."""
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers N,C,T,H,W, got {text!r}") from None
    if len(shape) != 5 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"must be 5 positive integers N,C,T,H,W, got {text!r}")
    if shape[1] != 3:
        raise argparse.ArgumentTypeError(f"the models take 3-channel clips: C must be 3, got {text!r}")
    return shape  # type: ignore[return-value]


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


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    setup_logging(verbose=False)
    try:
        names = select_models(args.names, args.family)
    except ValueError as err:
        return fail("models", err)
    batch, clip = (args.input[0], tuple(args.input[2:])) if args.input else (1, tuple(args.clip))
    rows = [measure(n, args.pooling, args.num_classes, clip, args.device, batch) for n in names]
    title = table_title(args.pooling, batch, clip)
    if args.markdown:
        print(markdown_table(title, rows))  # plain: meant to be pasted or parsed
    else:
        _print_table(title, rows, args.sites)
    return 1 if any(r.error for r in rows) else 0


def _print_table(title: str, rows: list[ModelRow], sites: bool = False) -> None:
    """The rich table of `rows`; with `sites`, one more table per model listing every pooling site."""
    from rich.table import Table

    table = Table(title=title)
    for i, column in enumerate(HEADER):
        table.add_column(column, justify="right" if i in (2, 3, 4) else "left", overflow="fold")
    for row in rows:
        table.add_row(*row_cells(row))
    out = console()
    print_table(table, out)
    if sites:
        for row in rows:
            detail = Table(title=f"{row.name}: pooling sites", show_edge=False)
            for column in ("site", "method", "type", "geometry"):
                detail.add_column(column)
            for site in row.sites:
                detail.add_row(site.name, site.method, site.type_name, site_geometry(site))
            print_table(detail, out)
