"""Inference on video files: top-k predictions under the model's multi-view test protocol."""
from .predict import Prediction, predict_video

__all__ = ["Prediction", "predict_video"]
