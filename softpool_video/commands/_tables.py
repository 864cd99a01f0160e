"""Rich tables shared by several commands (the library returns the rows, the commands print)."""
from __future__ import annotations

from typing import Any

from softpool_video.studies.grid import METRICS, format_metric, headline_verdicts, pooling_label
from softpool_video.training.protocol import SELECTED_ON_TEST_NOTE

from ._console import console, print_table


def print_grid_table(rows: list[dict[str, Any]], title: str) -> None:
    """The study grid's summary rows (`study`, `demo`): the short-header metrics, then the
    headline verdicts; results.md / results.csv have every column."""
    from rich.table import Table

    with_std = any(row["cells"] > 1 for row in rows)  # one run per method: no spread to show
    shown = [(m.column, m.percent, m.header) for m in METRICS if m.header]
    caption = "accuracy in %" + (", mean ± std over splits and seeds" if with_std else "")
    table = Table(title=title, caption=caption + "; all columns in results.md / results.csv")
    table.add_column("pooling", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    for _, _, header in shown:
        table.add_column(header, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(pooling_label(row), str(row["cells"]),
                      *(format_metric(row, column, percent, with_std) for column, percent, _ in shown))
    out = console()
    print_table(table, out)
    if any(row.get("selected_on_test") for row in rows):
        out.print(f"† {SELECTED_ON_TEST_NOTE}", markup=False)
    for line in headline_verdicts(rows):
        out.print(line, markup=False)
