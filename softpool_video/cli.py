"""`softpool-video` command line: one entry point, one module per subcommand.

Each subcommand lives in the module that owns its job and exposes
`main(argv: list[str]) -> int`; this file only maps names to those functions,
importing lazily so `softpool-video --help` stays fast.
"""
from __future__ import annotations

import importlib
import sys

from softpool_video.third_party_warnings import silence_third_party_deprecations

# name -> ("module:function", one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("softpool_video.commands.demo:main", "run the built-in demo end to end"),
    "fit": ("softpool_video.commands.fit:main", "train a model (LightningCLI)"),
    "validate": ("softpool_video.commands.validate:main", "validate a checkpoint (LightningCLI)"),
    "test": ("softpool_video.commands.test:main", "multi-view test of a checkpoint (LightningCLI)"),
    "predict": ("softpool_video.commands.predict:main",
                "predict VIDEO... --model CKPT_OR_DIR: top-k classes of each video"),
    "predict-dataset": ("softpool_video.commands.predict_dataset:main",
                        "predict a datamodule's videos from a checkpoint, to predictions.csv (LightningCLI)"),
    "study": ("softpool_video.commands.study:main", "the study grid: train and test every pooling x split x seed"),
    "make-demo-data": ("softpool_video.commands.make_demo_data:main",
                       "write the demo dataset in UCF-101 layout"),
    "check-videos": ("softpool_video.commands.check_videos:main",
                     "probe every video under a dataset root and report bad ones"),
    "prepare": ("softpool_video.commands.prepare:main",
                "write a drop-in copy of a dataset root with videos re-encoded small and fast to decode"),
    "models": ("softpool_video.commands.models:main", "list models with size, GFLOPs and pooling sites"),
    "retention": ("softpool_video.commands.retention:main", "information retention (SSIM/PSNR) per method"),
    "profile-pooling": ("softpool_video.commands.profile_pooling:main", "latency and memory of each pooling method"),
    "profile": ("softpool_video.commands.profile:main",
                "latency, throughput and memory of a model per pooling method"),
    "export": ("softpool_video.commands.export:main", "export a checkpoint to onnx, pt2, torchscript or safetensors"),
}

# Old names that now mean something else or nothing: refused with the new name, never run.
RENAMED = {"benchmark": "study"}  # the speed benchmarks are `make bench`; the grid is a study


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
    if name in RENAMED:
        print(f"softpool-video: error: command {name!r} is now {RENAMED[name]!r} (same options); "
              f"run: softpool-video {RENAMED[name]} {' '.join(rest)}".rstrip(), file=sys.stderr)
        return 2
    if name not in COMMANDS:
        print(f"softpool-video: error: unknown command {name!r}; choose one of: {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    silence_third_party_deprecations()
    target = COMMANDS[name][0]
    module_name, func_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            print(f"softpool-video: error: command {name!r} is not available in this build ({err})",
                  file=sys.stderr)
            return 2
        raise
    return int(getattr(module, func_name)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
