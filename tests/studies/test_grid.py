"""The study grid: every pooling x split x seed cell, one table, finished cells skipped."""
from __future__ import annotations

import csv
import json
import math

import pytest
from run_args import tiny_cell_args as tiny

from softpool_video.commands import study as study_command
from softpool_video.studies.grid import Cell, make_grid, markdown_table, run_grid, summarize, write_outputs


def test_grid_names_and_bad_options():
    grid = make_grid(["max", "softpool"], [1, 2], [0])
    assert [c.name for c in grid] == ["max-split1-seed0", "max-split2-seed0", "softpool-split1-seed0",
                                      "softpool-split2-seed0"]
    assert make_grid(["avg"], [], [3]) == [Cell("avg", None, 3)]
    with pytest.raises(ValueError, match="--pooling: unknown pooling method 'median'"):
        make_grid(["max", "median"], [1], [0])


def test_main_rejects_bad_lists_naming_the_option(capsys):
    assert study_command.main(["--config", "demo", "--splits", "1,two"]) == 2
    assert "--splits" in capsys.readouterr().err
    assert study_command.main(["--config", "demo", "--pooling", "max,nope"]) == 2
    assert "--pooling: unknown pooling method 'nope'" in capsys.readouterr().err
    assert study_command.main(["--config", "no/such_config"]) == 2
    assert "no file or config named" in capsys.readouterr().err


def _cell(pooling: str, split: int, seed: int, video: float, clip: float, speed: float) -> dict:
    return {"name": f"{pooling}-{split}-{seed}", "cell": {"pooling": pooling, "split": split, "seed": seed},
            "metrics": {"test/video_acc1": video, "test/clip_acc1": clip}, "train_clips_per_s": speed,
            "peak_memory_mib": 100.0}


def test_table_is_mean_and_std_over_splits_and_seeds(tmp_path):
    cells = [_cell("max", 1, 0, 0.50, 0.40, 10.0), _cell("max", 2, 0, 0.70, 0.60, 12.0),
             _cell("softpool", 1, 0, 0.90, 0.80, 8.0)]
    rows = summarize(cells)
    assert [r["pooling"] for r in rows] == ["max", "softpool"]
    assert rows[0]["cells"] == 2
    assert rows[0]["video top-1 mean"] == pytest.approx(0.60)
    assert rows[0]["video top-1 std"] == pytest.approx(math.sqrt(0.02))  # sample std of 0.5, 0.7
    assert rows[1]["video top-1 std"] == 0.0
    assert math.isnan(rows[0]["video top-5 mean"])  # not measured: shown as a dash
    table = markdown_table(rows)
    assert "| max | 2 | 50.0 ± 14.1 |" in table  # clip top-1 column comes first
    assert "60.0 ± 14.1" in table and "–" in table
    rows, files = write_outputs(cells, tmp_path)
    assert files["plot"].stat().st_size > 1000
    with open(files["csv"], newline="") as f:
        assert [r["pooling"] for r in csv.DictReader(f)] == ["max", "softpool"]
    with open(files["cells_csv"], newline="") as f:
        assert len(list(csv.DictReader(f))) == 3


@pytest.mark.slow
def test_reruns_skip_finished_cells_and_resume_unfinished_ones(demo_root, tmp_path):
    out = tmp_path / "bench"
    first = run_grid("demo", ["max"], [1], [0], out, tiny(demo_root))
    assert (first.ran, first.skipped) == (1, 0)
    max_result = out / "cells" / "max-split1-seed0" / "result.json"
    stamp = max_result.stat().st_mtime_ns
    stored = json.loads(max_result.read_text())
    assert stored["status"] == "finished" and stored["global_step"] == 2
    assert stored["train_clips_per_s"] > 0 and stored["peak_memory_mib"] > 0
    assert 0.0 <= stored["metrics"]["test/video_acc1"] <= 1.0 and stored["metrics"]["test/num_videos"] == 4

    second = run_grid("demo", ["max", "avg"], [1], [0], out, tiny(demo_root))
    assert (second.ran, second.skipped) == (1, 1)
    assert max_result.stat().st_mtime_ns == stamp  # untouched
    assert second.cells[0]["metrics"] == stored["metrics"]
    table = (out / "results.md").read_text()
    assert "| max |" in table and "| avg |" in table
    assert (out / "results.png").stat().st_size > 1000

    # an interrupted cell (checkpoint, no result) resumes from its last.ckpt
    avg_result = out / "cells" / "avg-split1-seed0" / "result.json"
    avg_result.unlink()
    third = run_grid("demo", ["max", "avg"], [1], [0], out, tiny(demo_root))
    assert (third.ran, third.skipped) == (1, 1)
    resumed = json.loads(avg_result.read_text())
    assert resumed["resumed"] and resumed["global_step"] == 2

    # a different config is a different experiment: the cell runs again, from scratch
    fourth = run_grid("demo", ["max"], [1], [0], out, [*tiny(demo_root), "--model.optimisation.lr", "0.001"])
    assert (fourth.ran, fourth.skipped) == (1, 0)
    assert not json.loads(max_result.read_text())["resumed"]
