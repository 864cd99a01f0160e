"""One study cell in a process of its own (the local launcher starts it):

    python -m softpool_video.studies.cell_process '{"cell": {...}, "base_args": [...], "out": ..., "force": false}'

Exit code 0 when the cell's result is written (or was there already), 1 when the cell failed.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    (spec,) = sys.argv[1:] if argv is None else argv
    spec = json.loads(spec)
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from ..third_party_warnings import silence_third_party_deprecations
    from .grid import Cell, run_cell

    silence_third_party_deprecations()  # an entry point, like the command line
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cell = Cell(**spec["cell"])
    try:
        run_cell(cell, spec["base_args"], Path(spec["out"]), spec["force"])
    except BaseException as err:
        if isinstance(err, SystemExit) and err.code in (0, None):
            return 0
        logging.getLogger(__name__).exception("%s failed", cell.name)
        print(f"{cell.name}: {type(err).__name__}: {err}", file=sys.stderr)  # the log's last line
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
