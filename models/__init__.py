"""Video networks whose every pooling site is a method of the pooling registry.

    from softpool_video.models import create_model, list_models
    model = create_model("r2plus1d_18", num_classes=101, pooling="softpool")

Families: I3D, R3D / MC3 / R(2+1)D (depths 18, 34, 50 and a tiny CPU size), SRTG, and
torchvision / pytorchvideo backbones with their pools swapped.
"""
from .registry import (
    ModelEntry,
    UnknownModelError,
    check_model,
    create_model,
    list_models,
    model_entry,
    register_model,
)

# importing the family modules registers their models
from . import i3d, resnet3d, srtg, third_party  # noqa: F401  isort: skip
from .flops import count_flops, count_parameters
from .pool_sites import PoolSite, pool_sites
from .weights import load_weights

__all__ = [
    "ModelEntry", "UnknownModelError", "check_model", "create_model", "list_models", "model_entry", "register_model",
    "count_flops", "count_parameters", "PoolSite", "pool_sites", "load_weights",
]
