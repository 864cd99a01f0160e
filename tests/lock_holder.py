"""A live process that holds a run lock (as a running fit or study cell does), for the
lock tests. A lock is per open file description, so the holder must be another process."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def hold_lock(path: Path, what: str) -> subprocess.Popen:
    """A child process holding the RunLock at `path` (described as `what`) until killed."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time\n"
        "from softpool_video.training.run_lock import RunLock\n"
        f"with RunLock({str(path)!r}, {what!r}):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(120)\n")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder
