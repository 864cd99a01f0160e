"""Loads the compiled kernels (softpool_video._C) once, or explains why not."""
from __future__ import annotations

import logging
import os
import warnings

import torch

log = logging.getLogger(__name__)

_LOAD_ERROR: str | None = None

try:
    if os.environ.get("SOFTPOOL_VIDEO_NO_EXTENSION") == "1":  # compare against the fallback
        raise ImportError("disabled by SOFTPOOL_VIDEO_NO_EXTENSION=1")
    from . import _C  # noqa: F401  (importing registers torch.ops.softpool.*)
except ImportError as err:  # not built, or built against another torch
    _LOAD_ERROR = str(err)
    warnings.warn(
        "softpool_video._C could not be loaded "
        f"({err}); SoftPool runs on the pure-PyTorch reference, which is correct but "
        "slower and uses more memory. Run `make build` to compile the extension.",
        RuntimeWarning,
        stacklevel=2,
    )


def extension_loaded() -> bool:
    return _LOAD_ERROR is None


def cuda_kernels_built() -> bool:
    """True when the extension was compiled with its CUDA kernels."""
    return extension_loaded() and torch._C._dispatch_has_kernel_for_dispatch_key("softpool::forward", "CUDA")


def extension_status() -> str:
    if not extension_loaded():
        return f"not loaded ({_LOAD_ERROR})"
    return "CPU+CUDA kernels" if cuda_kernels_built() else "CPU kernels"
