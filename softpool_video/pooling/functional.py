"""soft_pool1d/2d/3d: SoftPool with nn.MaxPool-style arguments.

Runs the compiled op when it is available, and the pure-PyTorch reference when
it is not, while exporting to ONNX (which has no SoftPool operator), or for
non-CUDA tensors when SOFTPOOL_VIDEO_CPU_KERNEL=reference (softpool_video._extension).
"""
from __future__ import annotations

import torch

from .. import _extension
from .arguments import IntOrTuple, PoolArgs, check_input, pool_args
from .reference import soft_pool_reference


def _use_reference(x: torch.Tensor | None = None) -> bool:
    """Whether soft_pool runs the pure-PyTorch reference (for `x`; None: a CPU tensor)."""
    if not _extension.extension_loaded() or torch.onnx.is_in_onnx_export():
        return True
    return _extension.use_reference_on_cpu() and (x is None or x.device.type != "cuda")


def soft_pool(x: torch.Tensor, args: PoolArgs, return_lse: bool = False):
    """SoftPool over the last `args.dims` dims of a batched or unbatched input."""
    x4, unbatched = check_input(x, args)
    if _use_reference(x4):
        out, lse = soft_pool_reference(x4, args)
    else:
        from .ops import compiled_forward
        out, lse = compiled_forward(x4, args)
    if unbatched:
        out, lse = out.squeeze(0), lse.squeeze(0)
    return (out, lse) if return_lse else out


def _functional(dims: int):
    def pool(x: torch.Tensor, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
             padding: IntOrTuple = 0, dilation: IntOrTuple = 1, ceil_mode: bool = False) -> torch.Tensor:
        return soft_pool(x, pool_args(dims, kernel_size, stride, padding, dilation, ceil_mode))

    pool.__name__ = pool.__qualname__ = f"soft_pool{dims}d"
    pool.__doc__ = (f"SoftPool over the last {dims} dim(s) of a (N, C, ...) or (C, ...) tensor: each "
                    "window's softmax-weighted mean. Arguments as nn.MaxPool" f"{dims}d.")
    return pool


soft_pool1d = _functional(1)
soft_pool2d = _functional(2)
soft_pool3d = _functional(3)
