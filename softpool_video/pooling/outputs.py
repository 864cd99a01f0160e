"""Writes a command's results as markdown, CSV, JSON and a PNG, side by side."""
from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence


def write_result_files(results: Sequence[Any], out_dir: str | Path, stem: str,
                       markdown_table: Callable[[Sequence[Any]], str],
                       plot: Callable[[Sequence[Any], Path], None], meta: dict | None = None) -> list[Path]:
    """`results` are dataclasses; returns the .md, .csv, .json and .png written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [asdict(r) for r in results]
    md = out_dir / f"{stem}.md"
    md.write_text(markdown_table(results) + "\n")
    csv_path = out_dir / f"{stem}.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    payload = {"results": rows} if meta is None else {"meta": meta, "results": rows}
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(payload, indent=1) + "\n")
    png = out_dir / f"{stem}.png"
    plot(results, png)
    return [md, csv_path, json_path, png]
