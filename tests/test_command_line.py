import subprocess
import sys

from softpool_video import cli


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_unknown_command_names_the_choices(capsys):
    assert cli.main(["trian"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'trian'" in err and "fit" in err


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "softpool_video.cli", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "make-demo-data" in result.stdout
