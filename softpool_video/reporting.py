"""Writing results: JSON, text, CSV, markdown tables and PNG figures.

Every file is written whole or not at all (a temporary file in the same folder, renamed
over the target): readers (other ranks, a resumed run, a test watching the folder) see
the old file or the new one, never half of one.

A write that finds its filesystem full raises `NoSpaceLeft`, whose message is one line naming
the file (`no_space_left`; the checkpoint writer and the commands use it too). The old file,
if any, is left as it was.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class NoSpaceLeft(OSError):
    """ENOSPC while writing `filename`: one line that names the file."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    def __str__(self) -> str:
        return (f"no space left on device writing {self.filename}; free space there and run again "
                "(files written before are unchanged)")


def no_space_left(err: BaseException, path: str | os.PathLike) -> BaseException:
    """`err` as a NoSpaceLeft naming `path` when the filesystem was full, else `err` itself."""
    if isinstance(err, OSError) and err.errno == errno.ENOSPC and not isinstance(err, NoSpaceLeft):
        return NoSpaceLeft(path)
    return err


def is_disk_full(err: BaseException, folder: str | os.PathLike) -> bool:
    """Whether `err`, raised by a writer into `folder`, means the filesystem is full. Writers
    in C++ or Rust (torch's zip writer, safetensors) do not raise OSError: their message says
    so ("os error 28"), or only "file write failed", when `folder` then has no space left."""
    chain: BaseException | None = err
    seen: set[int] = set()
    while chain is not None and id(chain) not in seen:
        seen.add(id(chain))
        if isinstance(chain, OSError) and chain.errno == errno.ENOSPC:
            return True
        text = str(chain)
        if "No space left on device" in text or "os error 28" in text:
            return True
        if "file write failed" in text:
            with contextlib.suppress(OSError):
                return os.statvfs(folder).f_bavail == 0
        chain = chain.__cause__ or chain.__context__
    return False


@contextlib.contextmanager
def _atomic(path: str | os.PathLike, mode: str = "w", newline: str | None = None) -> Iterator[IO]:
    """An open temporary file beside `path`, renamed over it on success, removed on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, newline=newline) as f:
            yield f
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        mapped = no_space_left(err, path)
        if mapped is not err:
            raise mapped from None
        raise


def write_json_atomic(path: str | os.PathLike, obj: Any, **dump_kwargs: Any) -> Path:
    """`obj` as JSON (json.dump keyword arguments as given) and a final newline."""
    with _atomic(path) as f:
        json.dump(obj, f, **dump_kwargs)
        f.write("\n")
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with _atomic(path) as f:
        f.write(text)
    return Path(path)


def write_csv(path: str | os.PathLike, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> Path:
    """Rows (dicts) as CSV; the columns default to every key in order of appearance (give them
    for a file that may have no rows)."""
    columns = list(columns or dict.fromkeys(k for row in rows for k in row))
    with _atomic(path, newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub markdown table, cells as given (already formatted).

    align: one letter per column, "l" (default, no marker) or "r" (right-aligned, `---:`).
    """
    align = align or "l" * len(header)
    if len(align) != len(header):
        raise ValueError(f"markdown_table: {len(align)} alignments for {len(header)} columns")
    rules = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "".join(f"{rule}|" for rule in rules)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def new_figure(**kwargs: Any) -> Figure:
    """A matplotlib Figure without pyplot (no global figure state; safe off the main thread)."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def save_figure(fig: Figure, path: str | os.PathLike, dpi: float | None = None) -> Path:
    """PNG (or the suffix's format) at `dpi` (default: the figure's own), no tight cropping, so the
    size is predictable."""
    path = Path(path)
    with _atomic(path, "wb") as f:
        fig.savefig(f, dpi=dpi or fig.dpi, format=path.suffix.lstrip(".") or "png")
    return path


def write_result_files(results: Sequence[Any], out_dir: str | os.PathLike, stem: str,
                       markdown: Callable[[Sequence[Any]], str], plot: Callable[[Sequence[Any], Path], None],
                       meta: dict[str, Any] | None = None) -> list[Path]:
    """A command's results (dataclasses) as <stem>.md, .csv, .json ({"meta"?, "results"}) and .png."""
    out_dir = Path(out_dir)
    rows = [asdict(r) for r in results]
    md = write_text_atomic(out_dir / f"{stem}.md", markdown(results) + "\n")
    csv_path = write_csv(out_dir / f"{stem}.csv", rows)
    payload = {"results": rows} if meta is None else {"meta": meta, "results": rows}
    json_path = write_json_atomic(out_dir / f"{stem}.json", payload, indent=1)
    png = out_dir / f"{stem}.png"
    plot(results, png)
    return [md, csv_path, json_path, png]
