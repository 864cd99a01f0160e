"""The demo's settings (config, pooling methods, target accuracy) and its export step.

`softpool-video demo` (softpool_video/commands/demo.py) runs it end to end.
"""
from __future__ import annotations

from pathlib import Path

DEMO_CONFIG = "demo"
DEMO_POOLING = ("max", "softpool")
TARGET_VIDEO_ACC = 0.90


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path, metrics: dict[str, float] | None = None
                      ) -> list[Path]:
    """Export the demo's best checkpoint to safetensors + model card and to ONNX
    (verified against PyTorch with onnxruntime). Returns the files written."""
    from softpool_video.export import export_checkpoint as export

    files: list[Path] = []
    for fmt in ("safetensors", "onnx"):
        result = export(checkpoint, fmt, out_dir, metrics=metrics)
        files += [Path(f) for f in result["files"]]
    return files
