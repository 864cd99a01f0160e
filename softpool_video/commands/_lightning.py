"""What the LightningCLI commands (fit, validate, test, predict-dataset) share: run one, report bad input."""
from __future__ import annotations

import errno
import logging

from softpool_video.reporting import no_space_left
from softpool_video.training.cli import INPUT_ERRORS, one_line, run_cli
from softpool_video.training.rank_failures import failed_rank

from ._console import fail

log = logging.getLogger(__name__)


def run(subcommand: str, argv: list[str], command: str | None = None) -> int:
    """LightningCLI's `subcommand`; bad input ends with one line and exit code 2; a NaN loss, a
    full disk or a failed DDP rank with one line and 1.

    `command` is the name the user typed when it differs from LightningCLI's (predict-dataset).
    """
    try:
        return run_cli(subcommand, argv)
    except INPUT_ERRORS as err:
        log.debug("%s failed", command or subcommand, exc_info=True)
        return fail(command or subcommand, one_line(str(err)), code=1 if isinstance(err, FloatingPointError) else 2)
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        log.debug("%s failed", command or subcommand, exc_info=True)
        return fail(command or subcommand, no_space_left(err, err.filename or "the run folder"), code=1)
    except Exception as err:
        failed = failed_rank()
        if failed is None:
            raise
        log.debug("%s failed", command or subcommand, exc_info=True)  # the traceback, with -v
        hint = ("; a rank did not reach the collective within the process group's timeout "
                "(--trainer.strategy.init_args.timeout)") if "timed out" in str(err).lower() else ""
        return fail(command or subcommand, f"rank {failed['rank']} of {failed['world_size']} failed: "
                                           f"{type(err).__name__}: {str(err).strip()[:500]}{hint}", code=1)
