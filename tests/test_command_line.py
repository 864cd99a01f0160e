import subprocess
import sys

import pytest

from softpool_video import cli
from softpool_video.commands import _console
from softpool_video.commands._tables import print_grid_table


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_unknown_command_names_the_choices(capsys):
    assert cli.main(["trian"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("softpool-video: error: unknown command 'trian'") and "fit" in err
    assert err.count("\n") == 1


def test_a_renamed_command_is_refused_with_its_new_name(capsys):
    # `benchmark` named both the study grid and the speed benchmarks; the grid is `study` now
    assert cli.main(["benchmark", "--config", "demo", "--seeds", "0"]) == 2
    err = capsys.readouterr().err
    assert err == ("softpool-video: error: command 'benchmark' is now 'study' (same options); "
                   "run: softpool-video study --config demo --seeds 0\n")
    assert "benchmark" not in cli.COMMANDS


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "softpool_video.cli", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "make-demo-data" in result.stdout


# --- one output layer: errors on stderr, one line, argparse's form -------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["check-videos", "{tmp}/no_such_root"],
    ["prepare", "{tmp}/no_such_root", "{tmp}/dst"],
    ["make-demo-data", "{tmp}/busy"],  # a folder that is not a demo dataset
    ["models", "no_such_model"],
    ["profile", "--model", "no_such_model", "--out", "{tmp}/out"],
    ["profile-pooling", "--input", "1,2", "--out", "{tmp}/out"],
    ["retention", "--data", "{tmp}/no_such_root", "--out", "{tmp}/out"],
    ["predict", "clip.avi", "--model", "{tmp}/missing.ckpt"],
    ["export", "{tmp}/missing.ckpt", "--format", "onnx", "--out", "{tmp}/out"],
    ["study", "--config", "demo", "--splits", "1,two"],
    ["fit", "--config", "ucf101/no_such_model"],
], ids=lambda argv: argv[0])
def test_an_error_is_one_line_on_stderr(argv, tmp_path, capsys):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("not a demo dataset\n")
    code = cli.main([a.format(tmp=tmp_path) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2  # bad input, as argparse exits
    assert out == ""
    assert err.startswith(f"softpool-video {argv[0]}: error: ") and err.count("\n") == 1 and err.endswith("\n"), err


def test_fail_joins_a_multi_line_message_and_returns_the_code(capsys):
    assert _console.fail("demo", "first line\n  second line\n", code=1) == 1
    assert capsys.readouterr().err == "softpool-video demo: error: first line second line\n"


def test_captured_output_is_not_squeezed_to_80_columns(capsys):
    """Piped or captured, a table keeps its natural width and a long line is not wrapped."""
    from softpool_video.studies.grid import summarize

    assert _console.console().width >= _console.PIPE_WIDTH
    cells = [{"name": f"{p}-1-{seed}", "cell": {"pooling": p, "split": 1, "seed": seed},
              "metrics": {"test/video_acc1": acc + seed / 10, "test/clip_acc1": acc}, "train_clips_per_s": 10.0,
              "peak_memory_mib": 100.0} for p, acc in (("max", 0.5), ("softpool", 0.7)) for seed in (0, 1)]
    print_grid_table(summarize(cells), "demo: 4 cells run, 0 skipped")
    lines = capsys.readouterr().out.splitlines()
    assert "demo: 4 cells run, 0 skipped" in lines[0]
    header = next(line for line in lines if "pooling" in line)
    assert "clip@1" in header and "clips/s" in header and "MiB" in header  # every column on one row
    verdict = [line for line in lines if line.startswith("softpool vs max, video top-1: higher by 20.0 points")]
    assert len(verdict) == 1 and verdict[0].endswith("no t-test)")  # one line, however long
