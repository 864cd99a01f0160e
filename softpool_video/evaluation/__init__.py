"""Evaluation, shared by testing, predict and export: the protocol a datamodule defines
(`protocol.py`), a file cut into its test views (`views.py`), and the views of a video
combined into one prediction, across DDP ranks too (`aggregation.py`)."""
from .aggregation import (
    AGGREGATIONS,
    VideoScores,
    ViewBuffer,
    ViewScores,
    class_probabilities,
    combine_across_ranks,
    combine_views,
    merge_partials,
    owned_views,
    reduce_views,
    video_probabilities,
)
from .protocol import EvaluationProtocol
from .views import video_views

__all__ = ["AGGREGATIONS", "EvaluationProtocol", "VideoScores", "ViewBuffer", "ViewScores", "class_probabilities",
           "combine_across_ranks", "combine_views", "merge_partials", "owned_views", "reduce_views",
           "video_probabilities", "video_views"]
