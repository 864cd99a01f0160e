"""`softpool-video retention`: how much of a real clip each pooling method keeps.

The SoftPool paper's first claim is that it retains more information when
downsampling. This measures it on video: every clip is pooled with each method
and kernel size (stride = kernel, ceil_mode so every pixel is covered),
upsampled back to its size (trilinear by default), and compared with the
original frames by SSIM and PSNR (torchmetrics.image, data range 1; SSIM is the
mean over frames, PSNR is taken from the mean squared error over all clips).

Clips come from a folder of videos (`--data`, searched recursively) or from the
built-in demo dataset (`--demo-root`, written if missing). `--clips` videos are
drawn with `--seed`, and `--frames` consecutive frames from the middle of each
are decoded (softpool_video.datamodules decoders; PyAV directly if those are
not available). Methods run in eval mode, so the random ones use their
expectation; learnable ones are at their initial values (seeded), which is what
"information retention" of an untrained layer means. Pixels are in [0, 1]; the
exponential methods (SoftPool, adaPool) are not scale invariant, so `--scale S`
pools S * clip and divides back (large S moves SoftPool towards max, small S
towards the mean).

Output: a markdown table (printed, and written), CSV, JSON and a PNG plot.
"""
from __future__ import annotations

import argparse
import logging
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from .outputs import write_result_files
from .registry import available_pools, build_pool

log = logging.getLogger(__name__)

DEFAULT_METHODS = ("max", "avg", "power", "stochastic", "s3", "mixed", "gated", "lip", "softpool", "adapool")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".m4v")


@dataclass
class Retention:
    method: str
    kernel_size: str
    ssim: float
    psnr: float
    clips: int
    frames: int
    scale: float
    device: str
    dtype: str
    threads: int
    torch_version: str


# --- clips ----------------------------------------------------------------------------------------------------

def find_video_files(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"--data must be a folder of videos, got {str(root)!r} (not a folder)")
    try:
        from softpool_video.datamodules import find_videos
        return [root / rel for rel in find_videos(root)]
    except ImportError:
        return sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)


def _middle(num_frames: int, frames: int) -> list[int]:
    start = max(0, (num_frames - frames) // 2)
    return list(range(start, start + frames))


def read_clip(path: str | Path, frames: int, backend: str = "decord") -> torch.Tensor | None:
    """`frames` consecutive frames from the middle of a video, as float (C, T, H, W) in [0, 1].

    None when the video is shorter than `frames` or cannot be decoded (logged).
    """
    try:
        from softpool_video.datamodules import DecodeError, open_video, read_frames
    except ImportError:
        return _read_clip_pyav(path, frames)
    try:
        reader = open_video(path, backend)
        try:
            num_frames = reader.num_frames
        finally:
            reader.close()
        if num_frames < frames:
            log.warning("skipping %s: %d frames, fewer than --frames %d", path, num_frames, frames)
            return None
        # read_frames falls back to the other backend when decoding (not only opening) fails
        clip, _ = read_frames(path, _middle(num_frames, frames), backend)
    except (DecodeError, IndexError) as err:
        log.warning("skipping %s: %s", path, err)
        return None
    return clip.permute(3, 0, 1, 2).float().div(255.0)


def _read_clip_pyav(path: str | Path, frames: int) -> torch.Tensor | None:
    import av
    try:
        with av.open(str(path)) as container:
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (av.error.FFmpegError, OSError) as err:
        log.warning("skipping %s: %s", path, err)
        return None
    if len(decoded) < frames:
        log.warning("skipping %s: %d frames, fewer than --frames %d", path, len(decoded), frames)
        return None
    chosen = [torch.from_numpy(decoded[i]) for i in _middle(len(decoded), frames)]
    return torch.stack(chosen).permute(3, 0, 1, 2).float().div(255.0)


def choose_videos(paths: Sequence[Path], count: int, seed: int) -> list[Path]:
    if count >= len(paths):
        return list(paths)
    return sorted(random.Random(seed).sample(list(paths), count))


# --- measurement -----------------------------------------------------------------------------------------------

def kernel_for(k: int, temporal_kernel: int) -> tuple[int, int, int]:
    return (k if temporal_kernel == 0 else temporal_kernel, k, k)


def build_eval_pool(method: str, kernel: tuple[int, int, int], seed: int) -> torch.nn.Module:
    """The method at `kernel` (stride = kernel, ceil_mode), in eval mode, with seeded initial parameters."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pool = build_pool(method, 3, kernel, kernel, 0, True)
    return pool.eval()


def measure(clips: Sequence[torch.Tensor], methods: Sequence[str], kernels: Sequence[int],
            temporal_kernel: int = 1, seed: int = 0, device: str | torch.device = "cpu",
            upsample: str = "trilinear", scale: float = 1.0) -> list[Retention]:
    """SSIM and PSNR of pool-then-upsample against each clip, per method and kernel.

    scale: the clip is pooled as scale * clip and divided back, because exponential
    weights (SoftPool, adaPool, LIP) depend on the activations' scale, not only their order.
    """
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

    if not clips:
        raise ValueError("no clips to measure")
    device = torch.device(device)
    results = []
    for method in methods:
        for k in kernels:
            kernel = kernel_for(k, temporal_kernel)
            pool = build_eval_pool(method, kernel, seed).to(device)
            ssim = StructuralSimilarityIndexMeasure(data_range=1.0).to(device)
            psnr = PeakSignalNoiseRatio(data_range=1.0).to(device)
            with torch.no_grad():
                for clip in clips:
                    x = clip.to(device).unsqueeze(0)  # (1, C, T, H, W)
                    y = pool(x * scale) / scale if scale != 1.0 else pool(x)
                    kw = {"align_corners": False} if upsample == "trilinear" else {}
                    back = F.interpolate(y, size=x.shape[2:], mode=upsample, **kw)
                    frames_back = back[0].transpose(0, 1)  # (T, C, H, W)
                    frames = x[0].transpose(0, 1)
                    ssim.update(frames_back, frames)
                    psnr.update(frames_back, frames)
            results.append(Retention(
                method=method, kernel_size="x".join(map(str, kernel)), ssim=float(ssim.compute()),
                psnr=float(psnr.compute()), clips=len(clips), frames=int(clips[0].shape[1]),
                scale=scale, device=str(device), dtype="float32", threads=torch.get_num_threads(),
                torch_version=torch.__version__))
            log.info("%s %s: SSIM %.4f PSNR %.2f", method, kernel, results[-1].ssim, results[-1].psnr)
    return results


# --- output ----------------------------------------------------------------------------------------------------

def markdown_table(results: Sequence[Retention]) -> str:
    kernels = list(dict.fromkeys(r.kernel_size for r in results))
    methods = list(dict.fromkeys(r.method for r in results))
    by = {(r.method, r.kernel_size): r for r in results}
    head = "| method | " + " | ".join(f"SSIM {k} | PSNR {k} dB" for k in kernels) + " |"
    lines = [head, "|---|" + "---|---|" * len(kernels)]
    best = {k: (max(r.ssim for r in results if r.kernel_size == k),
                max(r.psnr for r in results if r.kernel_size == k)) for k in kernels}
    for m in methods:
        cells = []
        for k in kernels:
            r = by[(m, k)]
            s = f"**{r.ssim:.4f}**" if r.ssim == best[k][0] else f"{r.ssim:.4f}"
            p = f"**{r.psnr:.2f}**" if r.psnr == best[k][1] else f"{r.psnr:.2f}"
            cells += [s, p]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    r = results[0]
    lines += ["", f"{r.clips} clips x {r.frames} frames (pixels in [0, 1], pooled at scale {r.scale:g}), "
                  f"pooled (stride = kernel, ceil_mode) and upsampled back; "
                  f"best per column in bold; device {r.device}, {r.threads} threads, torch {r.torch_version}"]
    return "\n".join(lines)


def plot(results: Sequence[Retention], path: str | Path) -> None:
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    kernels = list(dict.fromkeys(r.kernel_size for r in results))
    methods = list(dict.fromkeys(r.method for r in results))
    by = {(r.method, r.kernel_size): r for r in results}
    fig = Figure(figsize=(max(6.0, 0.8 * len(methods) + 2), 6.5), layout="constrained")
    axes = fig.subplots(2, 1)
    width = 0.8 / len(kernels)
    for ax, metric, label in ((axes[0], "ssim", "SSIM"), (axes[1], "psnr", "PSNR (dB)")):
        for i, k in enumerate(kernels):
            xs = [j + (i - (len(kernels) - 1) / 2) * width for j in range(len(methods))]
            ax.bar(xs, [getattr(by[(m, k)], metric) for m in methods], width, label=f"kernel {k}")
        values = [getattr(r, metric) for r in results]
        low, high = min(values), max(values)
        ax.set_ylim(low - 0.1 * (high - low + 1e-9), high + 0.05 * (high - low + 1e-9))
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
        ax.set_ylabel(label)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes[0].set_title(f"information retention: pool, upsample back, compare ({results[0].clips} clips)")
    fig.savefig(path, dpi=110)


def write_outputs(results: Sequence[Retention], out_dir: str | Path, meta: dict, stem: str = "retention"
                  ) -> list[Path]:
    return write_result_files(results, out_dir, stem, markdown_table, plot, meta=meta)


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
    p.add_argument("--backend", default="decord", choices=("decord", "pyav"))
    p.add_argument("--upsample", default="trilinear", choices=("trilinear", "nearest"))
    p.add_argument("--scale", type=float, default=1.0,
                   help="pool scale * clip (pixels in [0, 1]) and divide back: the exponential "
                        "methods depend on the activations' scale")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="runs/retention", help="folder for .md/.csv/.json/.png")
    return p


def _parse(args: argparse.Namespace) -> tuple[list[str], list[int]]:
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in available_pools()]
    if unknown or not methods:
        raise ValueError(f"unknown pooling method(s) {unknown}; available: {', '.join(available_pools())}")
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
    from rich.console import Console
    console = Console()
    try:
        methods, kernels = _parse(args)
        if args.data is not None:
            root = Path(args.data)
            paths = find_video_files(root)
        else:
            from softpool_video.datamodules import make_demo_dataset
            root = Path(args.demo_root)
            overwrite = (root / "demo_info.json").is_file()
            console.print(f"demo dataset in {make_demo_dataset(root, seed=0, overwrite=overwrite)}")
            paths = find_video_files(root)
        if not paths:
            raise ValueError(f"no video files under {str(root)!r}")
        chosen = choose_videos(paths, args.clips, args.seed)
        clips, used = [], []
        for path in chosen:
            clip = read_clip(path, args.frames, args.backend)
            if clip is not None:
                clips.append(clip)
                used.append(str(path))
        if not clips:
            raise ValueError(f"none of the {len(chosen)} chosen videos gave {args.frames} frames")
        results = measure(clips, methods, kernels, args.temporal_kernel, args.seed, args.device, args.upsample,
                          args.scale)
    except ValueError as err:
        console.print(f"[red]retention: {err}")
        return 2
    meta = {"videos": used, "skipped": len(chosen) - len(used), "frames": args.frames, "seed": args.seed,
            "temporal_kernel": args.temporal_kernel, "upsample": args.upsample, "scale": args.scale,
            "torch": torch.__version__,
            "device": args.device, "dtype": "float32", "threads": torch.get_num_threads()}
    files = write_outputs(results, args.out, meta)
    console.print(markdown_table(results), markup=False, highlight=False, soft_wrap=True)
    console.print(f"wrote {', '.join(str(f) for f in files)}", soft_wrap=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
