"""Training and evaluation: the Lightning module, callbacks, optimisation, the LightningCLI
and the benchmark runner (the view aggregation it re-exports lives in checkpoint/views.py)."""
from softpool_video.checkpoint.views import (
                          AGGREGATIONS,
                          VideoScores,
                          ViewBuffer,
                          ViewScores,
                          combine_across_ranks,
                          combine_views,
                          merge_partials,
                          owned_views,
                          reduce_views,
)

from .configs import available_configs, resolve_config
from .module import VideoClassifier

__all__ = [
    "AGGREGATIONS", "VideoClassifier", "VideoScores", "ViewBuffer", "ViewScores", "available_configs",
    "combine_across_ranks", "combine_views", "merge_partials", "owned_views", "reduce_views", "resolve_config",
]
