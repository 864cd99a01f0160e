"""Pure-PyTorch SoftPool with exactly the semantics of the compiled op.

It is the test oracle and the fallback when softpool_video._C is not built. ONNX and
pt2 export use the compact form in onnx_form.py instead.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from .arguments import PoolArgs, pooled_size


def window_stack(x: torch.Tensor, args: PoolArgs) -> torch.Tensor:
    """All windows of a (N, C, *spatial) tensor as (N, C, K, *pooled), K = prod(kernel).

    Positions outside the input (padding, and the tail of a ceil_mode window)
    are -inf, which gives them weight 0 in a softmax and never wins a max.
    """
    dims = args.dims
    sizes = x.shape[2:]
    outs = [pooled_size(sizes[i], args.kernel_size[i], args.stride[i], args.padding[i],
                        args.dilation[i], args.ceil_mode) for i in range(dims)]
    pad: list[int] = []
    for i in reversed(range(dims)):  # F.pad wants the last dim first
        needed = (outs[i] - 1) * args.stride[i] + args.dilation[i] * (args.kernel_size[i] - 1) + 1
        right = max(0, needed - sizes[i] - args.padding[i])
        pad += [args.padding[i], right]
    padded = F.pad(x, pad, value=float("-inf")) if any(pad) else x
    windows = []
    for offsets in itertools.product(*(range(k) for k in args.kernel_size)):
        index = [slice(None), slice(None)]
        for i, j in enumerate(offsets):
            start = j * args.dilation[i]
            index.append(slice(start, start + (outs[i] - 1) * args.stride[i] + 1, args.stride[i]))
        windows.append(padded[tuple(index)])
    return torch.stack(windows, dim=2)


def soft_pool_reference(x: torch.Tensor, args: PoolArgs) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (out, lse) for a (N, C, *spatial) input; differentiable by autograd.

    out = sum softmax(a) * a over each window, computed as m + weighted mean of
    (a - m) with m the window max, clamped to the window's [min, max].
    """
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    win = window_stack(x.to(acc), args)
    valid = win > float("-inf")
    m = win.amax(dim=2, keepdim=True)  # NaN in a window propagates here
    finite_m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    diff = torch.where(valid, win - finite_m, torch.full_like(win, float("-inf")))
    e = torch.exp(diff)
    sum_e = e.sum(dim=2, keepdim=True)
    diff_or_zero = torch.where(valid, diff, torch.zeros_like(diff))
    mean_diff = (e * diff_or_zero).sum(dim=2, keepdim=True) / sum_e
    lo = torch.where(valid, win, torch.full_like(win, float("inf"))).amin(dim=2, keepdim=True)
    # Strict comparisons so a tie keeps the gradient of the unclamped value.
    out = finite_m + mean_diff
    out = torch.where(out > finite_m, finite_m, out)
    out = torch.where(out < lo, lo, out)
    lse = finite_m + torch.log(sum_e)
    # Infinite maxima: the output is that max (as max_pool), lse marks it.
    infinite = torch.isinf(m)
    out = torch.where(infinite, m, out)
    lse = torch.where(infinite, m, lse)
    return out.squeeze(2).to(x.dtype), lse.squeeze(2)
