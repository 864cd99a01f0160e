"""torchvision and pytorchvideo backbones by name, their pools swapped for any registry method.

Each builder constructs the library's network without pretrained weights (local
weights load through create_model(..., weights=path)), then:

1. replaces the fixed-size average pool of the classification head with an adaptive
   one, so that any clip length and crop size work and the head is not a swap site;
2. asks `swap_pooling` (softpool_video.pooling.swap) to replace every remaining max
   and average pool with the chosen method at the same geometry ("max" too: the
   registry's max pool checks its input like every other method).

Output of every model: (B, num_classes) logits (pytorchvideo heads are built without
their softmax).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from .layers import check_model_args
from .registry import register_model

log = logging.getLogger(__name__)

_FIXED_AVG = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)


def adaptive_head(head: nn.Module) -> int:
    """Replaces every fixed-window average pool below `head` with a global adaptive one.

    Returns how many were replaced.
    """
    replaced = 0
    for parent in list(head.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, _FIXED_AVG):
                setattr(parent, child_name, nn.AdaptiveAvgPool3d(1))
                replaced += 1
    return replaced


def apply_pooling(model: nn.Module, pooling: str, pool_args: Mapping[str, Any] | None) -> nn.Module:
    """Swaps every max/avg pool of `model` (in place) for the registry's `pooling`."""
    from softpool_video.pooling.swap import swap_pooling  # lazily: the pooling zoo imports nothing from models

    report = swap_pooling(model, pooling, kinds=("max", "avg"), **dict(pool_args or {}))
    log.debug("%s: %d pools swapped to %r: %s", type(model).__name__, len(report), pooling,
              [s.name for s in report])
    return model


# --- torchvision ------------------------------------------------------------------------

def _torchvision(name: str, description: str) -> None:
    def builder(num_classes: int, pooling: str = "max", pool_args: Mapping[str, Any] | None = None,
                **kwargs: Any) -> nn.Module:
        check_model_args(num_classes, pooling, pool_args)
        from torchvision.models import video

        model = getattr(video, name)(weights=None, num_classes=num_classes, **kwargs)
        # r3d/mc3/r2plus1d already end in AdaptiveAvgPool3d; s3d's head pool is a fixed (2, 7, 7)
        if isinstance(model.avgpool, _FIXED_AVG):
            model.avgpool = nn.AdaptiveAvgPool3d(1)
        return apply_pooling(model, pooling, pool_args)

    builder.__name__ = builder.__qualname__ = f"tv_{name}"
    register_model(f"tv_{name}", "torchvision", description)(builder)


_torchvision("r3d_18", "torchvision r3d_18: no pools outside the head")
_torchvision("mc3_18", "torchvision mc3_18: no pools outside the head")
_torchvision("r2plus1d_18", "torchvision r2plus1d_18: no pools outside the head")
_torchvision("s3d", "torchvision S3D: separable Inception, 13 max pools")


# --- pytorchvideo -----------------------------------------------------------------------

def _pytorchvideo(name: str, description: str, make: Callable[..., nn.Module], defaults: dict[str, Any]) -> None:
    def builder(num_classes: int, pooling: str = "max", pool_args: Mapping[str, Any] | None = None,
                **kwargs: Any) -> nn.Module:
        check_model_args(num_classes, pooling, pool_args)
        model = make(**{**defaults, "model_num_class": num_classes, **kwargs})
        if adaptive_head(model.blocks[-1]) == 0:
            raise RuntimeError(f"ptv_{name}: found no head average pool to make adaptive in {type(model.blocks[-1])}")
        return apply_pooling(model, pooling, pool_args)

    builder.__name__ = builder.__qualname__ = f"ptv_{name}"
    register_model(f"ptv_{name}", "pytorchvideo", description)(builder)


def _create_resnet(**kwargs: Any) -> nn.Module:
    from pytorchvideo.models.resnet import create_resnet
    return create_resnet(**kwargs)


def _create_x3d(**kwargs: Any) -> nn.Module:
    from pytorchvideo.models.x3d import create_x3d
    return create_x3d(**kwargs)


def _create_csn(**kwargs: Any) -> nn.Module:
    from pytorchvideo.models.csn import create_csn
    return create_csn(**kwargs)


_pytorchvideo("slow_r50", "pytorchvideo Slow R50 (create_resnet): stem max pool", _create_resnet,
              {"model_depth": 50, "stem_conv_kernel_size": (1, 7, 7), "head_activation": None})
_pytorchvideo("i3d_r50", "pytorchvideo I3D R50 (create_resnet): stem and stage-1 temporal max pools",
              _create_resnet,
              {"model_depth": 50, "stem_conv_kernel_size": (5, 7, 7), "stage1_pool": nn.MaxPool3d,
               "stage_conv_a_kernel_size": ((3, 1, 1), [(3, 1, 1), (1, 1, 1)], [(3, 1, 1), (1, 1, 1)],
                                            [(1, 1, 1), (3, 1, 1)]),
               "head_activation": None})
# X3D-XS, -S and -M are one network fed different clip sizes; X3D-L is deeper.
for _name, _depth in (("x3d", 2.2), ("x3d_l", 5.0)):
    _pytorchvideo(_name, f"pytorchvideo X3D{'-L' if _depth == 5.0 else ' (XS/S/M)'} (create_x3d): "
                  "no pools outside the head", _create_x3d,
                  {"width_factor": 2.0, "depth_factor": _depth, "head_activation": None})
_pytorchvideo("csn_r101", "pytorchvideo ir-CSN-101 (create_csn): stem max pool", _create_csn,
              {"model_depth": 101, "stem_pool": nn.MaxPool3d, "head_activation": None})
