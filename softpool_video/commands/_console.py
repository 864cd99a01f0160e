"""The output of every `softpool-video` command, in one place.

- reports go to stdout through `console()`, a rich Console, tables through `print_table`;
- machine-readable output (`--json`, `--markdown`) goes to stdout through plain `print`,
  so it stays unstyled and unwrapped;
- errors go to stderr through `fail`, as one line `softpool-video <command>: error: <message>`
  (argparse's form, so a usage error and a bad value read alike);
- logs go to stderr through `setup_logging`.
"""
from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

# Output that is not a terminal (a pipe, a log file, a test's capture) has no width of its own
# and rich would assume 80 columns: tables would be squeezed and folded.
PIPE_WIDTH = 200


def console() -> Console:
    """A rich Console that wraps softly, does not colour numbers on its own and, when not
    writing to a terminal, lays out PIPE_WIDTH columns (or COLUMNS, if wider)."""
    from rich.console import Console

    out = Console(soft_wrap=True, highlight=False)
    if not out.is_terminal:
        out.width = max(out.width, PIPE_WIDTH)
    return out


def print_table(table: Table, out: Console | None = None) -> None:
    """Print a rich table laid out as rich lays it out (title and caption centred, long cells
    folded): the console's soft wrap is meant for lines of text."""
    (out or console()).print(table, soft_wrap=False)


def fail(command: str, message: object, code: int = 2) -> int:
    """Print `softpool-video <command>: error: <message>` as one line to stderr; return `code`.

    2 (the default) is a bad argument or input, as argparse exits; 1 is a run that failed.
    """
    # an exception's message may span lines (a traceback-like detail): one line keeps it greppable
    text = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
    print(f"softpool-video {command}: error: {text}", file=sys.stderr)
    return code


def setup_logging(verbose: bool) -> None:
    """INFO (with -v) or WARNING through rich on stderr, unless the caller configured logging already."""
    if not logging.getLogger().handlers:
        from rich.console import Console
        from rich.logging import RichHandler

        # rich's own width, not PIPE_WIDTH: a record is a full-width grid, every line would be padded to it
        handler = RichHandler(console=Console(stderr=True), show_path=False)
        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                            handlers=[handler])
