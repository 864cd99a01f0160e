"""Export trained checkpoints to ONNX, torch.export (pt2), TorchScript and safetensors,
each checked against PyTorch after export; safe loading of checkpoints and model cards."""
from .api import FORMATS, ParityClipError, example_clip, export_checkpoint
from .card import Protocol, load_exported, load_model
from .checkpoint import CheckpointError, LoadedModel, load_checkpoint, safe_load
from .onnx_export import ExportError

__all__ = ["FORMATS", "CheckpointError", "ExportError", "LoadedModel", "ParityClipError", "Protocol", "example_clip",
           "export_checkpoint", "load_checkpoint", "load_exported", "load_model", "safe_load"]
