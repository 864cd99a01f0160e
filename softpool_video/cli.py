"""`softpool-video` command line: one entry point, one module per subcommand.

Each subcommand lives in the module that owns its job and exposes
`main(argv: list[str]) -> int`; this file only maps names to those functions,
importing lazily so `softpool-video --help` stays fast.
"""
from __future__ import annotations

import importlib
import sys

# name -> ("module:function", one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("softpool_video.demo:main", "run the built-in demo end to end"),
    "fit": ("softpool_video.training.cli:fit_main", "train a model (LightningCLI)"),
    "validate": ("softpool_video.training.cli:validate_main", "validate a checkpoint (LightningCLI)"),
    "test": ("softpool_video.training.cli:test_main", "multi-view test of a checkpoint (LightningCLI)"),
    "predict": ("softpool_video.training.cli:predict_main", "predict with a checkpoint (LightningCLI)"),
    "benchmark": ("softpool_video.training.benchmark:main", "train and test every pooling x split x seed"),
    "make-demo-data": ("softpool_video.datamodules.commands:make_demo_data_main",
                       "write the demo dataset in UCF-101 layout"),
    "check-videos": ("softpool_video.datamodules.commands:check_videos_main",
                     "probe every video under a dataset root and report bad ones"),
    "models": ("softpool_video.models.summary:main", "list models with size, GFLOPs and pooling sites"),
    "retention": ("softpool_video.pooling.retention:main", "information retention (SSIM/PSNR) per method"),
    "profile-pooling": ("softpool_video.pooling.profile:main", "latency and memory of each pooling method"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: softpool-video COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"softpool-video: unknown command {name!r}; choose one of: {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    module_name, func_name = COMMANDS[name][0].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            print(f"softpool-video: command {name!r} is not available in this build ({err})",
                  file=sys.stderr)
            return 2
        raise
    return int(getattr(module, func_name)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
