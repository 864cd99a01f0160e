"""The layer below training, export and inference: reading checkpoints safely, rebuilding the
model they hold, the evaluation protocol a datamodule defines, and combining the views of a
video into one prediction. (`checkpoint.io`, the atomic Lightning CheckpointIO, is imported
on its own: it needs Lightning.)"""
from .card import build_card, load_exported, load_model
from .evaluation import EvaluationProtocol, video_views
from .loaded import LoadedModel, load_checkpoint
from .reader import CheckpointError, read_checkpoint
from .views import AGGREGATIONS, class_probabilities, video_probabilities

__all__ = ["AGGREGATIONS", "CheckpointError", "EvaluationProtocol", "LoadedModel", "build_card",
           "class_probabilities", "load_checkpoint", "load_exported", "load_model", "read_checkpoint",
           "video_probabilities", "video_views"]
