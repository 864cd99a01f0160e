"""A user's run prints each warning at most once, and none from a library's own deprecated calls."""
from __future__ import annotations

import collections
import re
import subprocess
import sys

import pytest
from run_args import tiny_args, tiny_cell_args

# A Python warning ("file.py:12: FutureWarning: ...") or one of Lightning's checkpoint notices.
WARNING_LINE = re.compile(r"\.py:\d+: \w*(Warning|Deprecation)\w*:|weights_only|is deprecated")


def warning_lines(stderr: str) -> list[str]:
    return [line.strip() for line in stderr.splitlines() if WARNING_LINE.search(line)]


def assert_quiet(stderr: str) -> None:
    lines = warning_lines(stderr)
    repeated = {line: n for line, n in collections.Counter(lines).items() if n > 1}
    assert not repeated, f"warnings printed more than once: {repeated}"
    noisy = [line for line in lines if "weights_only" in line or "deprecated" in line]
    assert not noisy, f"third-party or checkpoint notices reached the user: {noisy}"


def test_warning_lines_are_recognised():
    """The check itself: it sees the two notices that used to repeat."""
    stderr = ("x/_pytree.py:21: FutureWarning: `isinstance(treespec, LeafSpec)` is deprecated\n"
              "`weights_only` was not set, defaulting to `False`.\nEpoch 0: loss 1.2\n")
    assert warning_lines(stderr) == ["x/_pytree.py:21: FutureWarning: `isinstance(treespec, LeafSpec)` is deprecated",
                                     "`weights_only` was not set, defaulting to `False`."]
    with pytest.raises(AssertionError, match="more than once"):
        assert_quiet(stderr + stderr)


@pytest.mark.slow
def test_fit_and_two_cell_benchmark_print_no_repeated_warning(demo_root, tmp_path):
    fit = subprocess.run([sys.executable, "-m", "softpool_video.cli", "fit",
                          *tiny_args(demo_root, tmp_path / "fit", epochs=3)],
                         capture_output=True, text=True, timeout=600)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert_quiet(fit.stderr)
    bench = subprocess.run([sys.executable, "-m", "softpool_video.cli", "study", "--config", "demo",
                            "--pooling", "max,softpool", "--seeds", "0", "--out", str(tmp_path / "bench"), "--",
                            *tiny_cell_args(demo_root)],
                           capture_output=True, text=True, timeout=600)
    assert bench.returncode == 0, bench.stderr[-3000:]
    assert_quiet(bench.stderr)
