"""`softpool-video retention`: SSIM/PSNR of pooled-then-upsampled clips, per pooling method.

Clips come from a folder of videos (`--data`, searched recursively) or from the built-in
demo dataset (`--demo-root`, written if missing). `--clips` videos are drawn with `--seed`,
and `--frames` consecutive frames from the middle of each are decoded here (datamodules
decoders); the pooling library (softpool_video.studies.retention) only sees tensors.
"""
from __future__ import annotations

import argparse
import logging
import random
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from softpool_video.pooling.registry import available_pools, check_methods
from softpool_video.studies.retention import DEFAULT_METHODS, markdown_table, measure, write_outputs

from ._console import console, fail, setup_logging

log = logging.getLogger(__name__)


# --- clips ----------------------------------------------------------------------------------------------------

def find_video_files(root: str | Path) -> list[Path]:
    from softpool_video.datamodules import find_videos

    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"--data must be a folder of videos, got {str(root)!r} (not a folder)")
    return [root / rel for rel in find_videos(root)]


def middle_frames(num_frames: int, frames: int) -> list[int]:
    start = max(0, (num_frames - frames) // 2)
    return list(range(start, start + frames))


def read_clip(path: str | Path, frames: int, decoder: str = "decord") -> torch.Tensor | None:
    """`frames` consecutive frames from the middle of a video, as float (C, T, H, W) in [0, 1].

    None when the video is shorter than `frames` or cannot be decoded (logged).
    """
    from softpool_video.datamodules import DecodeError, open_video, read_frames

    try:
        reader = open_video(path, decoder)
        try:
            num_frames = reader.num_frames
        finally:
            reader.close()
        if num_frames < frames:
            log.warning("skipping %s: %d frames, fewer than --frames %d", path, num_frames, frames)
            return None
        # read_frames falls back to the other decoder when decoding (not only opening) fails
        clip, _ = read_frames(path, middle_frames(num_frames, frames), decoder)
    except (DecodeError, IndexError) as err:
        log.warning("skipping %s: %s", path, err)
        return None
    return clip.permute(3, 0, 1, 2).float().div(255.0)


def choose_videos(paths: Sequence[Path], count: int, seed: int) -> list[Path]:
    if count >= len(paths):
        return list(paths)
    return sorted(random.Random(seed).sample(list(paths), count))


# --- command line ----------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="softpool-video retention",
                                description="SSIM/PSNR of pooled-then-upsampled clips, per pooling method.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", default=None, help="folder of video files (searched recursively)")
    src.add_argument("--demo-root", default="runs/demo/data",
                     help="demo dataset folder, written if missing (default: the demo command's)")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help=f"comma-separated methods; available: {', '.join(available_pools())}")
    p.add_argument("--kernels", default="2,3", help="spatial kernel sizes (comma-separated)")
    p.add_argument("--temporal-kernel", type=int, default=1,
                   help="temporal kernel: 1 pools frames separately (default), 0 uses the spatial size")
    p.add_argument("--clips", type=int, default=6, help="videos to draw")
    p.add_argument("--frames", type=int, default=16, help="consecutive frames per clip")
    p.add_argument("--seed", type=int, default=0, help="draws the videos and the learnable methods' init")
    p.add_argument("--decoder", default="decord", choices=("decord", "pyav"))
    p.add_argument("--upsample", default="trilinear", choices=("trilinear", "nearest"))
    p.add_argument("--scale", type=float, default=1.0,
                   help="pool scale * clip (pixels in [0, 1]) and divide back: the exponential "
                        "methods depend on the activations' scale")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="runs/retention", help="folder for .md/.csv/.json/.png")
    return p


def _parse(args: argparse.Namespace) -> tuple[list[str], list[int]]:
    methods = check_methods(args.methods, "--methods")
    try:
        kernels = [int(k) for k in args.kernels.split(",") if k.strip()]
    except ValueError:
        raise ValueError(f"--kernels must be comma-separated integers, got {args.kernels!r}") from None
    if not kernels or any(k < 1 for k in kernels):
        raise ValueError(f"--kernels must be positive integers, got {args.kernels!r}")
    if args.temporal_kernel < 0:
        raise ValueError(f"--temporal-kernel must be >= 0, got {args.temporal_kernel}")
    if args.clips < 1 or args.frames < 1:
        raise ValueError(f"--clips and --frames must be >= 1, got {args.clips} and {args.frames}")
    return methods, kernels


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(verbose=False)
    out = console()
    try:
        methods, kernels = _parse(args)
        if args.data is not None:
            root = Path(args.data)
        else:
            from softpool_video.datamodules import make_demo_dataset
            root = Path(args.demo_root)
            overwrite = (root / "demo_info.json").is_file()
            out.print(f"demo dataset in {make_demo_dataset(root, seed=0, overwrite=overwrite)}", markup=False)
        paths = find_video_files(root)
        if not paths:
            raise ValueError(f"no video files under {str(root)!r}")
        chosen = choose_videos(paths, args.clips, args.seed)
        clips, used = [], []
        for path in chosen:
            clip = read_clip(path, args.frames, args.decoder)
            if clip is not None:
                clips.append(clip)
                used.append(str(path))
        if not clips:
            raise ValueError(f"none of the {len(chosen)} chosen videos gave {args.frames} frames")
        results = measure(clips, methods, kernels, args.temporal_kernel, args.seed, args.device, args.upsample,
                          args.scale)
    except ValueError as err:
        return fail("retention", err)
    meta = {"videos": used, "skipped": len(chosen) - len(used), "frames": args.frames, "seed": args.seed,
            "temporal_kernel": args.temporal_kernel, "upsample": args.upsample, "scale": args.scale,
            "torch": torch.__version__,
            "device": args.device, "dtype": "float32", "threads": torch.get_num_threads()}
    files = write_outputs(results, args.out, meta)
    print(markdown_table(results))  # markdown, plain: pasted into reports as it is
    out.print(f"wrote {', '.join(str(f) for f in files)}", markup=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
