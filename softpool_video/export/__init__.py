"""Export trained checkpoints to ONNX, torch.export (pt2), TorchScript and safetensors,
each checked against PyTorch after export, with a model card (loading checkpoints and
cards back: softpool_video.checkpoint)."""
from .api import FORMATS, ParityClipError, example_clip, export_checkpoint
from .onnx_export import ExportError

__all__ = ["FORMATS", "ExportError", "ParityClipError", "example_clip", "export_checkpoint"]
