"""torch.library glue for the compiled ops: fake kernels and autograd.

The C++ library defines softpool::forward -> (out, lse) and
softpool::backward(grad_out, x, out, lse, ...) -> grad_x. Registering a fake
(meta) kernel lets torch.compile and torch.export trace them without running
them; registering autograd makes them differentiable.
"""
from __future__ import annotations

import torch
from torch._prims_common import suggest_memory_format

from .. import _extension
from .arguments import PoolArgs, pooled_size


def _pooled_shape(x: torch.Tensor, kernel_size, stride, padding, dilation, ceil_mode) -> list[int]:
    shape = list(x.shape[:2])
    for i, size in enumerate(x.shape[2:]):
        shape.append(pooled_size(size, kernel_size[i], stride[i], padding[i], dilation[i], ceil_mode))
    return shape


def _lse_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


if _extension.extension_loaded():

    @torch.library.register_fake("softpool::forward")
    def _forward_fake(x, kernel_size, stride, padding, dilation, ceil_mode):
        shape = _pooled_shape(x, kernel_size, stride, padding, dilation, ceil_mode)
        fmt = suggest_memory_format(x)  # the kernels allocate in the input's layout
        out = x.new_empty(shape).contiguous(memory_format=fmt)
        lse = x.new_empty(shape, dtype=_lse_dtype(x.dtype)).contiguous(memory_format=fmt)
        return out, lse

    @torch.library.register_fake("softpool::backward")
    def _backward_fake(grad_out, x, out, lse, kernel_size, stride, padding, dilation, ceil_mode):
        return torch.empty_like(x)

    def _setup_context(ctx, inputs, output):
        x, kernel_size, stride, padding, dilation, ceil_mode = inputs
        out, lse = output
        ctx.save_for_backward(x, out, lse)
        ctx.geometry = (kernel_size, stride, padding, dilation, ceil_mode)

    def _backward(ctx, grad_out, grad_lse):
        x, out, lse = ctx.saved_tensors
        # lse is an internal by-product: nothing downstream differentiates it.
        grad_x = torch.ops.softpool.backward(grad_out.contiguous(), x, out, lse, *ctx.geometry)
        return grad_x, None, None, None, None, None

    torch.library.register_autograd("softpool::forward", _backward, setup_context=_setup_context)


def compiled_forward(x: torch.Tensor, args: PoolArgs) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.ops.softpool.forward(x, list(args.kernel_size), list(args.stride), list(args.padding),
                                      list(args.dilation), args.ceil_mode)
