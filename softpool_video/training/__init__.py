"""Training: the Lightning module, callbacks, optimisation, the LightningCLI, run locks
and requeueing. The view aggregation it evaluates with lives in `softpool_video.evaluation`."""
from .configs import available_configs, resolve_config
from .module import VideoClassifier
from .options import Head, Mixing, Optimisation, Schedule

__all__ = ["Head", "Mixing", "Optimisation", "Schedule", "VideoClassifier", "available_configs", "resolve_config"]
