"""`make readme-tables`: every results table of README and docs/, written by the command that
measures it.

Each table below is one or more commands (run as subprocesses, outputs under
runs/readme-tables/<name>/) and the markdown they print or write. The block is stored in
docs/tables/<name>.md with the command, the commit, the machine and the date it ran on,
then copied into the one page (README.md or docs/*.md) that holds
`<!-- readme-table: <name> -->` ... `<!-- /readme-table -->`. tests/test_readme_tables.py
checks that the page holds each file exactly, so a published table is always the output of
the last run of its command.

    python -m benchmarks.readme_tables                  # every table (about 2 hours on 2 cores)
    python -m benchmarks.readme_tables --only op,models # some
    python -m benchmarks.readme_tables --splice         # copy docs/tables/ into the pages only
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
TABLES_DIR = REPO / "docs" / "tables"
PAGES = (README, *sorted((REPO / "docs").glob("*.md")))  # where tables are published
RUNS = Path("runs") / "readme-tables"  # relative: commands run in the repository root
BEGIN, END = "<!-- readme-table: {name} -->", "<!-- /readme-table -->"
GENERATED = "<!-- written by `make readme-tables` (benchmarks/readme_tables.py); do not edit here -->"


@dataclass(frozen=True)
class Table:
    """What writes one README table: `commands` in order ({out}: this table's run folder,
    {runs}: the folder of every table's runs); the table is the markdown of `source` (the last
    command's stdout, or a file the commands wrote): whole but its headings (`tables=None`),
    or the markdown tables of it at those indices."""

    name: str
    commands: tuple[tuple[str, ...], ...]
    source: str = "stdout"
    tables: tuple[int, ...] | None = (0,)


CLI = ("softpool-video",)
BENCH = ("python", "-m", "benchmarks.run")
HARD_DEMO_DATA = ("softpool-video", "make-demo-data", "{out}/data", "--variant", "hard", "--overwrite")

TABLES: tuple[Table, ...] = (
    Table("demo", ((*CLI, "demo", "--out", "{out}", "--force"),), "{out}/study/results.md", None),
    Table("hard_demo", (HARD_DEMO_DATA,
                        (*CLI, "study", "--config", "demo_hard", "--pooling", "max,avg,softpool",
                         "--seeds", "0,1,2", "--out", "{out}/study", "--force", "--",
                         "--data.init_args.root", "{out}/data")),
          "{out}/study/results.md", None),
    Table("srtg_gate_gradient", (HARD_DEMO_DATA, ("python", "-m", "benchmarks.srtg_gate_gradient",
                                                  "--data", "{out}/data", "--out", "{out}")), tables=(0, 1)),
    Table("op", ((*BENCH, "--only", "softpool"),)),
    Table("pooling_profile", ((*CLI, "profile-pooling", "--input", "2,16,8,32,32", "--threads", "1",
                               "--repeats", "30", "--out", "{out}"),)),
    Table("retention", ((*CLI, "retention", "--demo-root", "{runs}/demo/data", "--out", "{out}"),)),
    Table("models", ((*CLI, "models", "--input", "1,3,16,112,112", "--markdown"),)),
    Table("model_profile", ((*CLI, "profile", "--model", "r2plus1d_tiny", "--pooling", "max,avg,softpool",
                             "--input", "8,3,16,112,112", "--threads", "1", "--out", "{out}"),)),
    Table("export", ((*BENCH, "--only", "export"),)),
    Table("data_loading", ((*BENCH, "--only", "data"),), tables=None),
    Table("setup", ((*BENCH, "--only", "setup"),), tables=None),
    Table("fuzz", (("python", "-m", "benchmarks.fuzz"),), tables=(0, 1)),
)
NAMES = tuple(t.name for t in TABLES)


def markdown_tables(text: str) -> list[str]:
    """The markdown tables of `text` (runs of lines starting with '|'), in order."""
    tables, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append("\n".join(current))
            current = []
    if current:
        tables.append("\n".join(current))
    return tables


def _argv(command: tuple[str, ...], out: Path) -> list[str]:
    argv = [part.format(out=out, runs=RUNS) for part in command]
    if argv[0] == "softpool-video":
        return [sys.executable, "-m", "softpool_video.cli", *argv[1:]]
    if argv[0] == "python":
        return [sys.executable, *argv[1:]]
    return argv


def _shown(command: tuple[str, ...], out: Path) -> str:
    return " ".join(part.format(out=out, runs=RUNS) for part in command)


def _commit() -> str:
    """HEAD, and whether tracked files differ from it; the pages do not count (this command
    writes them, and they measure nothing)."""
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                            ":(exclude)README.md", ":(exclude)docs/*.md", ":(exclude)docs/tables"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.strip()
    return f"{sha} with uncommitted changes" if dirty else sha


def _machine() -> str:
    import os

    from softpool_video.measure import cpu_name

    return f"{cpu_name()}, {os.cpu_count()} cores"


def run_table(table: Table, commit: str) -> str:
    """Run the table's commands; returns the block for docs/tables/<name>.md."""
    out = RUNS / table.name
    out.mkdir(parents=True, exist_ok=True)
    started, start = datetime.now(UTC), time.perf_counter()
    stdout = ""
    for command in table.commands:
        print(f"[{table.name}] {_shown(command, out)}", flush=True)
        done = subprocess.run(_argv(command, out), cwd=REPO, stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"[{table.name}] exit status {done.returncode}: {_shown(command, out)}")
        stdout = done.stdout
    text = stdout if table.source == "stdout" else (REPO / table.source.format(out=out)).read_text()
    found = markdown_tables(text)
    if table.tables is None:  # the whole text but its headings: the page has its own
        body = "\n".join(line for line in text.splitlines() if not line.startswith("#")).strip()
    elif len(found) <= max(table.tables):
        raise SystemExit(f"[{table.name}] found {len(found)} markdown table(s) in {table.source}, "
                         f"expected at least {max(table.tables) + 1}")
    else:
        body = "\n\n".join(found[i] for i in table.tables)
    commands = "; ".join(f"`{_shown(c, out)}`" for c in table.commands)
    seconds = time.perf_counter() - start
    provenance = (f"{commands} at commit {commit}; {_machine()}; "
                  f"{started:%Y-%m-%d %H:%M} UTC, {seconds / 60:.1f} min.")
    return f"{GENERATED}\n{provenance}\n\n{body}\n"


def splice(page: str, name: str, block: str) -> str:
    """`page` with the text between table `name`'s markers replaced by `block`."""
    begin = BEGIN.format(name=name)
    pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(END), re.DOTALL)
    if len(pattern.findall(page)) != 1:
        raise SystemExit(f"the page needs exactly one '{begin}' ... '{END}' block for table {name!r}")
    return pattern.sub(lambda _: f"{begin}\n{block}{END}", page)


def readme_block(page: str, name: str) -> str | None:
    """The text a page holds between table `name`'s markers (None: no such block)."""
    begin = BEGIN.format(name=name)
    found = re.findall(re.escape(begin) + r"\n(.*?)" + re.escape(END), page, re.DOTALL)
    return found[0] if len(found) == 1 else None


def page_of(name: str) -> Path:
    """The one page (README or docs/*.md) that publishes table `name`."""
    marker = BEGIN.format(name=name)
    holding = [page for page in PAGES if marker in page.read_text()]
    if len(holding) != 1:
        where = ", ".join(str(p.relative_to(REPO)) for p in holding) or "none"
        raise SystemExit(f"table {name!r} must be published by exactly one page of README.md and docs/*.md "
                         f"(found: {where})")
    return holding[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.readme_tables", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help=f"comma-separated tables of: {', '.join(NAMES)}")
    parser.add_argument("--splice", action="store_true", help="run nothing: copy docs/tables/ into the pages")
    args = parser.parse_args(argv)
    only = [n for n in args.only.split(",") if n]
    unknown = sorted(set(only) - set(NAMES))
    if unknown:
        parser.error(f"--only: unknown table(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    TABLES_DIR.mkdir(parents=True, exist_ok=True)
    if not args.splice:
        commit = _commit()  # the code that measures: a change made while it runs is not it
        for table in TABLES:
            if not only or table.name in only:
                (TABLES_DIR / f"{table.name}.md").write_text(run_table(table, commit))
    for name in NAMES:
        path = TABLES_DIR / f"{name}.md"
        if path.is_file():
            page = page_of(name)
            page.write_text(splice(page.read_text(), name, path.read_text()))
    print(f"{sum((TABLES_DIR / f'{n}.md').is_file() for n in NAMES)} tables from {TABLES_DIR} copied into their pages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
