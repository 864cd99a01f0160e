"""The layer below training, export and inference that reads, writes and rebuilds: reading
checkpoints safely, rebuilding the model they hold, and the model card. (`checkpoint.io`,
the atomic Lightning CheckpointIO, is imported on its own: it needs Lightning.) What a
checkpoint's model is evaluated with lives in `softpool_video.evaluation`."""
from .card import build_card, load_exported, load_model
from .loaded import LoadedModel, load_checkpoint
from .reader import CheckpointError, read_checkpoint

__all__ = ["CheckpointError", "LoadedModel", "build_card", "load_checkpoint", "load_exported", "load_model",
           "read_checkpoint"]
