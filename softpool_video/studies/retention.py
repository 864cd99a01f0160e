"""Information retention: how much of a real clip each pooling method keeps.

The SoftPool paper's first claim is that it retains more information when
downsampling. This measures it on video: every clip is pooled with each method
and kernel size (stride = kernel, ceil_mode so every pixel is covered),
upsampled back to its size (trilinear by default), and compared with the
original frames by SSIM and PSNR (torchmetrics.image, data range 1; SSIM is the
mean over frames, PSNR is taken from the mean squared error over all clips).

`measure` takes decoded clips as tensors; reading videos is the `softpool-video
retention` command's job (softpool_video.commands.retention), so this op-level
module never touches files or decoders. Methods run in eval mode, so the random ones use their
expectation; learnable ones are at their initial values (seeded), which is what
"information retention" of an untrained layer means. Pixels are in [0, 1]; the
exponential methods (SoftPool, adaPool) are not scale invariant, so `scale=S`
pools S * clip and divides back (large S moves SoftPool towards max, small S
towards the mean).

Output: a markdown table (printed, and written), CSV, JSON and a PNG plot.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from softpool_video.pooling.registry import build_pool
from softpool_video.reporting import markdown_table as render_table
from softpool_video.reporting import new_figure, save_figure, write_result_files

log = logging.getLogger(__name__)

DEFAULT_METHODS = ("max", "avg", "power", "stochastic", "s3", "mixed", "gated", "lip", "softpool", "adapool")


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
    header = ["method"] + [cell for k in kernels for cell in (f"SSIM {k}", f"PSNR {k} dB")]
    best = {k: (max(r.ssim for r in results if r.kernel_size == k),
                max(r.psnr for r in results if r.kernel_size == k)) for k in kernels}
    rows = []
    for m in methods:
        cells = [m]
        for k in kernels:
            r = by[(m, k)]
            cells.append(f"**{r.ssim:.4f}**" if r.ssim == best[k][0] else f"{r.ssim:.4f}")
            cells.append(f"**{r.psnr:.2f}**" if r.psnr == best[k][1] else f"{r.psnr:.2f}")
        rows.append(cells)
    lines = [render_table(header, rows)]
    r = results[0]
    lines += ["", f"{r.clips} clips x {r.frames} frames (pixels in [0, 1], pooled at scale {r.scale:g}), "
                  f"pooled (stride = kernel, ceil_mode) and upsampled back; "
                  f"best per column in bold; device {r.device}, {r.threads} threads, torch {r.torch_version}"]
    return "\n".join(lines)


def plot(results: Sequence[Retention], path: str | Path) -> None:
    kernels = list(dict.fromkeys(r.kernel_size for r in results))
    methods = list(dict.fromkeys(r.method for r in results))
    by = {(r.method, r.kernel_size): r for r in results}
    fig = new_figure(figsize=(max(6.0, 0.8 * len(methods) + 2), 6.5), layout="constrained")
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
    save_figure(fig, path, dpi=110)


def write_outputs(results: Sequence[Retention], out_dir: str | Path, meta: dict, stem: str = "retention"
                  ) -> list[Path]:
    return write_result_files(results, out_dir, stem, markdown_table, plot, meta=meta)
