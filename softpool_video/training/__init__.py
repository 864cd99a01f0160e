"""Training and evaluation: the Lightning module, multi-view aggregation, optimisation,
the LightningCLI entry points and the benchmark runner."""
from .aggregation import (AGGREGATIONS, VideoScores, ViewBuffer, ViewScores, combine_across_ranks,
                          combine_views, merge_partials, owned_views, reduce_views)
from .configs import available_configs, resolve_config
from .module import VideoClassifier

__all__ = [
    "AGGREGATIONS", "VideoClassifier", "VideoScores", "ViewBuffer", "ViewScores", "available_configs",
    "combine_across_ranks", "combine_views", "merge_partials", "owned_views", "reduce_views", "resolve_config",
]
