"""Training: the Lightning module, callbacks, optimisation, the LightningCLI, run locks
and requeueing. The view aggregation it evaluates with lives in `softpool_video.evaluation`."""
from .configs import available_configs, resolve_config
from .module import VideoClassifier

__all__ = ["VideoClassifier", "available_configs", "resolve_config"]
