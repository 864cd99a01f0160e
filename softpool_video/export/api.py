"""`export_checkpoint`: one checkpoint to one format, verified, with a model card."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from .card import build_card, protocol_of
from .checkpoint import LoadedModel, load_checkpoint
from .metrics import find_test_metrics

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("onnx", "pt2", "torchscript", "safetensors")
SUFFIX = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".torchscript.pt"}
VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".webm", ".mov")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r} is not supported; choose one of {', '.join(FORMATS)}")
    return fmt


def _videos_under(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.lower().endswith(VIDEO_SUFFIXES):
                yield Path(folder) / name


def example_clip(model: LoadedModel, video: str | Path | None = None, seed: int = 0
                 ) -> tuple[torch.Tensor, str]:
    """One input clip (1, 3, T, H, W) for tracing and parity checks, and where it came from.

    A real clip: `video`, else the first video under the checkpoint's dataset root, decoded
    with the test protocol's first view; random values only when neither exists.
    """
    from dataclasses import replace

    from ..inference.views import video_views

    protocol = replace(protocol_of(model), num_clips=1, num_crops=1)
    candidates: list[Path] = []
    if video is not None:
        if not Path(video).is_file():
            raise FileNotFoundError(f"video={str(video)!r} does not exist")
        candidates = [Path(video)]
    elif model.data.get("root") and Path(str(model.data["root"])).is_dir():
        candidates = [p for _, p in zip(range(5), _videos_under(Path(str(model.data["root"]))))]
    from ..datamodules import DecodeError

    for path in candidates:
        try:
            return video_views(path, protocol)[:1], str(path)
        except DecodeError as err:
            if video is not None:
                raise
            log.warning("cannot use %s as the example clip: %s", path, err.reason)
    generator = torch.Generator().manual_seed(seed)
    log.warning("no video to take an example clip from (pass video=...); using random values")
    return torch.randn(1, *protocol.input_shape, generator=generator), "random normal values"


def export_checkpoint(ckpt_path: str | Path, fmt: str, out_dir: str | Path, *, video: str | Path | None = None,
                      decompose: bool = False, opset: int | None = None, verify: bool = True,
                      metrics: Mapping[str, float] | None = None, name: str | None = None) -> dict[str, Any]:
    """Exports a VideoClassifier checkpoint and checks the result against PyTorch.

    Args:
        ckpt_path: Lightning checkpoint (loaded with weights_only=True).
        fmt: "onnx", "pt2", "torchscript" or "safetensors".
        out_dir: created if needed.
        video: a video for the parity check (default: one from the checkpoint's dataset).
        decompose: pt2 only: replace the SoftPool op by standard aten ops.
        opset: ONNX opset (default: the exporter's).
        verify: run the exported file and compare (ONNX; the other formats always reload).
        metrics: test metrics for the card (default: found beside the checkpoint).
        name: file stem (default: <arch>_<pooling>).

    Returns a dict: format, files (paths written), card (path), verification (max_abs_diff,
    tolerance, passed, runtime, batch_sizes), input (where the example clip came from).
    """
    from .onnx_export import ExportError, export_onnx
    from .pt2_export import export_pt2
    from .safetensors_export import export_safetensors
    from .torchscript_export import export_torchscript

    check_format(fmt)
    model = load_checkpoint(ckpt_path)
    if metrics is None:
        found, origin = find_test_metrics(ckpt_path)
        metrics = found
        if origin:
            log.info("test metrics from %s", origin)
    model.metrics = dict(metrics)
    name = name or f"{model.arch}_{model.pooling}"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    example, source = example_clip(model, video)
    with torch.no_grad():
        if fmt == "safetensors":
            result = export_safetensors(model, example, out, name, model.metrics)
            card_path = result["files"][1]
        else:
            stem = f"{name}.decomposed" if fmt == "pt2" and decompose else name
            path = out / f"{stem}{SUFFIX[fmt]}"
            if fmt == "onnx":
                result = export_onnx(model.net, example, path, opset=opset, verify=verify)
            elif fmt == "pt2":
                result = export_pt2(model.net, example, path, decompose=decompose)
            else:
                result = export_torchscript(model.net, example, path, model_name=f"{model.arch} ({model.pooling})")
            card_path = path.with_name(path.name + ".json")
            card_path.write_text(json.dumps(build_card(model, path, model.metrics, fmt), indent=2) + "\n")
            result["files"] = [*result["files"], card_path]
    check = result.get("verification")
    if check is not None and not check["passed"]:
        raise ExportError(f"{fmt} export of {ckpt_path} does not match PyTorch: max abs diff "
                          f"{check['max_abs_diff']:.3g} >= {check['tolerance']:g}")
    result.update({"format": fmt, "card": card_path, "input": source, "metrics": model.metrics,
                   "files": [Path(f) for f in result["files"]]})
    return result
