"""What the data commands share: a rich console for the report and logging set up once."""
from __future__ import annotations

import logging
from typing import Any


def console() -> Any:
    """A rich Console that wraps softly and does not colour numbers on its own."""
    from rich.console import Console

    return Console(soft_wrap=True, highlight=False)


def setup_logging(verbose: bool) -> None:
    """INFO (with -v) or WARNING through rich, unless the caller configured logging already."""
    if not logging.getLogger().handlers:
        from rich.logging import RichHandler

        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                            handlers=[RichHandler(show_path=False)])
