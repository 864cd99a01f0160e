"""Inference on video files: the multi-view test protocol and top-k predictions."""
from .predict import Prediction, predict_main, predict_video
from .views import combine_views, video_views

__all__ = ["Prediction", "combine_views", "predict_main", "predict_video", "video_views"]
