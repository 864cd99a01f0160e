"""README and docs/ as a contract: every `softpool-video ...` line of their code blocks names a real command
and only options that command accepts (LightningCLI lines are parsed by the CLI's own parser,
the others checked against their --help); the cheap ones run for real on demo data. Also:
Lightning's cloud-logging advertisement stays out of a run's output."""
from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from softpool_video.cli import COMMANDS
from softpool_video.cli import main as softpool_video_main
from softpool_video.training.cli import silence_cloud_tips
from softpool_video.training.configs import expand_config_args

REPO = Path(__file__).resolve().parents[1]
PAGES = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
# command -> LightningCLI subcommand
LIGHTNING = {"fit": "fit", "validate": "validate", "test": "test", "predict-dataset": "predict"}


def readme_commands(pages=PAGES) -> list[str]:
    """Every command of a fenced code block of README and docs/ that starts with
    `softpool-video` (continued over lines ending in a backslash), comments removed."""
    lines = []
    for page in pages:
        in_block, command = False, None
        for line in page.read_text().splitlines():
            if line.lstrip().startswith("```"):
                in_block, command = not in_block, None
            elif in_block and (command is not None or line.strip().startswith("softpool-video")):
                part = line.split(" #", 1)[0].strip()
                command = part if command is None else f"{command} {part}"
                if command.endswith("\\"):
                    command = command[:-1].rstrip()
                else:
                    lines.append(command)
                    command = None
    return lines


COMMAND_LINES = readme_commands()


def is_lightning(argv: list[str]) -> bool:
    return argv[0] in LIGHTNING


def options(argv: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in argv if a.startswith("-") and a != "--" and not re.match(r"-\d", a)]


def help_text(argv: list[str], capsys) -> str:
    try:
        code = softpool_video_main([*argv, "--help"])
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    assert code in (0, None), out.err
    return out.out + out.err


def test_readme_has_the_commands_this_suite_checks():
    assert len(COMMAND_LINES) >= 15
    joined = "\n".join(COMMAND_LINES)
    for expected in ("softpool-video fit --config ucf101/r2plus1d_18_finetune", "--model.mixing.mixup_alpha",
                     "--trainer.precision bf16-mixed", "softpool-video study"):
        assert expected in joined


@pytest.mark.parametrize("line", COMMAND_LINES)
def test_readme_command_exists_and_accepts_its_options(line, fit_parser, capsys):
    argv = shlex.split(line)[1:]
    if argv == ["--help"]:
        assert "commands:" in help_text([], capsys)
        return
    assert argv and argv[0] in COMMANDS, f"unknown subcommand in README: {line}"
    before, _, after = " ".join(argv).partition(" -- ")
    argv, passthrough = shlex.split(before), shlex.split(after)
    if is_lightning(argv):
        # the CLI's own parser: options, their values and the named configs (must exist) are checked
        fit_parser.parse_args([LIGHTNING[argv[0]], *expand_config_args(argv[1:])])
        return
    accepted = help_text(argv[:2] if argv[0] == "predict" else argv[:1], capsys)
    for option in options(argv):
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", accepted), f"{option} not in {argv[0]} --help"
    if passthrough:  # study: everything after `--` goes to each run's LightningCLI fit
        config = argv[argv.index("--config") + 1]
        fit_parser.parse_args(["fit", *expand_config_args(["--config", config, *passthrough])])


def test_unknown_option_would_be_caught(fit_parser, capsys):
    # the checks above can fail: a misspelt option is refused by both kinds of check
    with pytest.raises(SystemExit):
        fit_parser.parse_args(["fit", *expand_config_args(["--config", "demo", "--model.mixup_alfa", "1"])])
    capsys.readouterr()
    assert not re.search(r"(?<![\w-])--top-kk(?![\w-])", help_text(["predict", "clip.avi"], capsys))


# Cheap README lines run for real: placeholders become demo data made by the README's own
# command, and fits of the demo are cut to a couple of steps.
FIT_LIMITS = ["--data.init_args.loading.num_workers", "0", "--data.init_args.sampling.clip_len", "4",
              "--data.init_args.transforms.crop_size", "32", "--data.init_args.transforms.resize_short", "32",
              "--data.init_args.loading.batch_size", "4", "--trainer.max_epochs", "1",
              "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
              "--trainer.enable_progress_bar", "false"]


def runnable(line: str) -> bool:
    argv = shlex.split(line)[1:]
    if argv[:1] in (["--help"], ["models"], ["profile-pooling"]):
        return True
    if argv[:2] == ["make-demo-data", "demo_data"] or argv[:1] == ["check-videos"]:
        return True
    return argv[:3] == ["fit", "--config", "demo"]


@pytest.mark.slow
def test_cheap_readme_commands_run_on_demo_data(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    lines = [line for line in COMMAND_LINES if runnable(line)]
    ran = [shlex.split(line)[1] for line in lines]
    assert ran.count("fit") >= 2 and {"make-demo-data", "check-videos", "models", "profile-pooling"} <= set(ran)
    # make-demo-data first: the other lines read its output
    lines.sort(key=lambda line: "make-demo-data" not in line)
    for line in lines:
        argv = shlex.split(line)[1:]
        argv = ["demo_data" if a in ("/data/UCF-101", "runs/demo/data") else a for a in argv]
        if argv[0] == "fit":
            argv += FIT_LIMITS
        assert softpool_video_main(argv) == 0, f"README command failed: {line}\n{capsys.readouterr().err}"
    assert (tmp_path / "demo_data").is_dir()
    assert list(tmp_path.glob("runs/demo_*/checkpoints/last*.ckpt"))  # runs/<config>_<pooling>


def test_cloud_logging_tips_are_filtered():
    from lightning_utilities.core import rank_zero

    silence_cloud_tips()
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = rank_zero.log  # the logger Lightning's rank_zero_info writes to
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        rank_zero.rank_zero_info("💡 Tip: try installing [litlogger](https://pypi.org/project/litlogger/)")
        rank_zero.rank_zero_info("GPU available: False")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert records == ["GPU available: False"]


@pytest.mark.slow
def test_a_fit_prints_no_litlogger_advertisement(tmp_path, tmp_path_factory):
    from softpool_video.datamodules import make_demo_dataset

    root = make_demo_dataset(tmp_path_factory.getbasetemp() / "training_demo_tiny", groups=22, clips_per_group=1,
                             width=32, height=32)
    command = [sys.executable, "-m", "softpool_video.cli", "fit", "--config", "demo", "--data.init_args.root",
               str(root), *FIT_LIMITS, "--trainer.default_root_dir", str(tmp_path / "run")]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "GPU available" in output  # Lightning's own start-up lines still print ...
    assert "litlogger" not in output and "litmodels" not in output  # ... its advertisements do not


def test_commands_continue_over_backslash_lines(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n```\nsoftpool-video study --config demo \\\n    --seeds 0  # two\nnot a command\n"
                    "softpool-video models\n```\nsoftpool-video outside a block\n")
    assert readme_commands([page]) == ["softpool-video study --config demo --seeds 0", "softpool-video models"]
