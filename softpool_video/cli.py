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
    "predict": ("softpool_video.training.cli:predict_main",
                "predict VIDEO... --model CKPT_OR_DIR (top-k classes), or LightningCLI predict with --config"),
    "benchmark": ("softpool_video.training.benchmark:main", "train and test every pooling x split x seed"),
    "make-demo-data": ("softpool_video.datamodules.commands:make_demo_data_main",
                       "write the demo dataset in UCF-101 layout"),
    "check-videos": ("softpool_video.datamodules.commands:check_videos_main",
                     "probe every video under a dataset root and report bad ones"),
    "prepare": ("softpool_video.datamodules.prepare:main",
                "write a drop-in copy of a dataset root with videos re-encoded small and fast to decode"),
    "models": ("softpool_video.models.summary:main", "list models with size, GFLOPs and pooling sites"),
    "retention": ("softpool_video.pooling.retention:main", "information retention (SSIM/PSNR) per method"),
    "profile-pooling": ("softpool_video.pooling.profile:main", "latency and memory of each pooling method"),
    "profile": ("softpool_video.profiling.model_profile:main",
                "latency, throughput and memory of a model per pooling method"),
    "export": ("softpool_video.export.cli:export_main", "export a checkpoint to onnx, pt2, torchscript or safetensors"),
}

# `predict VIDEO...` (positional videos) is the video predictor; options first
# (--config, --ckpt_path, ...) mean LightningCLI's predict over a datamodule.
VIDEO_PREDICT = "softpool_video.inference.predict:predict_main"


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
    target = COMMANDS[name][0]
    if name == "predict" and rest and not rest[0].startswith("-"):
        target = VIDEO_PREDICT
    module_name, func_name = target.split(":")
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
