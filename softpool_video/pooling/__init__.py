"""Pooling: the SoftPool op and the pooling zoo it is compared with."""
from .arguments import PoolArgs, pool_args
from .functional import soft_pool, soft_pool1d, soft_pool2d, soft_pool3d
from .reference import soft_pool_reference
from .softpool import SoftPool1d, SoftPool2d, SoftPool3d

__all__ = [
    "PoolArgs", "pool_args", "soft_pool", "soft_pool1d", "soft_pool2d", "soft_pool3d",
    "soft_pool_reference", "SoftPool1d", "SoftPool2d", "SoftPool3d",
]

from .registry import available_pools, build_pool, register_pool

__all__ += ["available_pools", "build_pool", "register_pool"]

from .basic import AdaptiveSoftPool1d, AdaptiveSoftPool2d, AdaptiveSoftPool3d  # noqa: E402
from .registry import UnknownPoolingError, adaptive_pools, build_adaptive_pool, check_method, check_methods, pool_method  # noqa: E402
from .swap import Swap, swap_pooling  # noqa: E402

__all__ += ["AdaptiveSoftPool1d", "AdaptiveSoftPool2d", "AdaptiveSoftPool3d", "adaptive_pools",
            "build_adaptive_pool", "check_method", "check_methods", "pool_method", "Swap", "swap_pooling",
            "UnknownPoolingError"]
