"""SoftPool as a short chain of standard ops: the form exported to ONNX and decomposed pt2.

`soft_pool_reference` is the oracle; this is the same function written for exporters. It
never unfolds through a per-offset strided Slice (the ONNX optimizer's Slice-pair rewrite is
quadratic in the number of Slice nodes, which made an I3D with 13 SoftPool sites take minutes
to export), and it costs a few dozen standard ops per pool:

1. Windows, one spatial dim at a time. For each kernel offset j of dim i, `Pad` (negative
   pads crop, positive ones add -inf) aligns x[o*s + j*d - p] with output o; the k offsets
   are concatenated along the channel dim, and a stride > 1 keeps every s-th position with
   a kernel-1 max pool (an exact subsample: the max of one value). Doing the dims in turn
   takes k_t + k_h + k_w pads instead of k_t * k_h * k_w; the result, reshaped, holds every
   window as (N, K, C, *out) with positions outside the input (padding, the tail of a
   ceil_mode window) at -inf.
2. The stable SoftPool of each window, as in the reference: m = window max (ReduceMax),
   t = x - m (<= 0; -inf outside the input, clamped to the lowest finite value so that
   exp(t) * t is 0 * finite = 0, never NaN), e = exp(t), out = m + sum(e * t) / sum(e).
   Every window holds its max, whose e is exactly 1, so sum(e) >= 1: no underflow to 0 and
   no overflow whatever the values' range (the per-window shift the reference and the
   compiled op use, not a per-plane one that underflows on planes of a large range).
3. out is clamped below by the window min (a max pool of -x padded with -inf; a rounding
   of the weighted mean may pass it by an ulp) and an infinite window max gives that max, as max_pool
   does; lse = m + log(sum(e)).

fp16/bf16 are computed in fp32, fp64 in fp64. Dilation, padding and ceil_mode are exact.
NaN in a window gives NaN in PyTorch; ONNX runtimes' ReduceMax may not propagate NaN.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .arguments import PoolArgs, pooled_size

_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def _windows_along(x: torch.Tensor, dim: int, size_out: int, k: int, s: int, p: int, d: int) -> torch.Tensor:
    """(N, C', ..., S, ...) -> (N, k * C', ..., size_out, ...): the k offsets of spatial `dim`
    (an index into x.shape) aligned with the outputs, -inf outside the input."""
    size = x.shape[dim]
    span = (size_out - 1) * s + 1  # positions from the first to the last output's offset-j element
    spatial = x.dim() - 2
    crops = []
    for j in range(k):
        begin = j * d - p  # input index of offset j for output 0 (negative: in the padding)
        end = begin + span  # one past the last index needed
        if begin == 0 and end == size:
            crops.append(x)
            continue
        pad = [0] * (2 * spatial)
        at = 2 * (x.dim() - 1 - dim)  # F.pad lists the last dim first
        if begin >= size or end <= 0:  # only padding (dilation): crop everything, pad span
            pad[at], pad[at + 1] = (-size, span) if begin >= size else (span, -size)
        else:
            pad[at], pad[at + 1] = -begin, end - size  # negative amounts crop
        crops.append(F.pad(x, pad, value=float("-inf")))
    out = crops[0] if k == 1 else torch.cat(crops, dim=1)
    if s > 1:  # keep every s-th position: a max pool of one value per window is exact
        kernel = [1] * spatial
        stride = [1] * spatial
        stride[dim - 2] = s
        out = _MAX_POOL[spatial](out, kernel, stride)
    return out


def _pooled_sizes(x: torch.Tensor, args: PoolArgs) -> list[int]:
    return [pooled_size(x.shape[2 + i], args.kernel_size[i], args.stride[i], args.padding[i], args.dilation[i],
                        args.ceil_mode) for i in range(args.dims)]


def window_values(x: torch.Tensor, args: PoolArgs) -> torch.Tensor:
    """Every window of a (N, C, *spatial) tensor as (N, K, C, *pooled), -inf outside the input.

    The order of the K offsets differs from `reference.window_stack` (dims are done in turn),
    which nothing that sums or reduces over the windows can tell."""
    outs = _pooled_sizes(x, args)
    channels = x.shape[1]
    windows = x
    for i in range(args.dims):
        windows = _windows_along(windows, 2 + i, outs[i], args.kernel_size[i], args.stride[i], args.padding[i],
                                 args.dilation[i])
    kernel = 1
    for k in args.kernel_size:
        kernel *= k
    return windows.reshape(-1, kernel, channels, *outs)  # -1: the batch, symbolic when exporting


def window_min(x: torch.Tensor, args: PoolArgs) -> torch.Tensor:
    """The min of every window, as -max_pool(-x) over x padded explicitly with -inf (padding and
    the ceil_mode tail), so that the pool itself has no padding and no ceil_mode: runtimes agree
    on that, not on the shape of a ceil_mode pool (ONNX's rule differs from PyTorch's)."""
    outs = _pooled_sizes(x, args)
    pad: list[int] = []
    for i in reversed(range(args.dims)):  # F.pad lists the last dim first
        needed = (outs[i] - 1) * args.stride[i] + args.dilation[i] * (args.kernel_size[i] - 1) + 1
        pad += [args.padding[i], needed - x.shape[2 + i] - args.padding[i]]  # negative: crop
    neg = -x
    if any(pad):
        neg = F.pad(neg, pad, value=float("-inf"))
    return -_MAX_POOL[args.dims](neg, list(args.kernel_size), list(args.stride), 0, list(args.dilation))


def soft_pool_onnx(x: torch.Tensor, args: PoolArgs, with_lse: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(out, lse) of SoftPool for a (N, C, *spatial) input, as `soft_pool_reference` computes
    them, from standard ops only (Pad, Concat, Reshape, MaxPool, ReduceMax, Sub, Max, Exp, Mul,
    ReduceSum, Div, Add, Neg, IsInf, Where, Log); lse is None unless `with_lse` (a graph that
    only needs out is then three ops shorter). Not meant for training (no custom gradient)."""
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    xa = x.to(acc)
    win = window_values(xa, args)
    m = win.amax(dim=1, keepdim=True)  # the window max; NaN propagates in PyTorch
    t = (win - m).clamp_min(torch.finfo(acc).min)  # -inf (outside the input) -> lowest finite
    e = torch.exp(t)
    sum_e = e.sum(dim=1)
    mean_t = (e * t).sum(dim=1) / sum_e
    m = m.squeeze(1)
    out = m + mean_t
    out = torch.maximum(out, window_min(xa, args))  # out <= m holds already: mean_t <= 0 and m + (<= 0) rounds to <= m
    infinite = torch.isinf(m)
    out = torch.where(infinite, m, out)
    lse = torch.where(infinite, m, m + torch.log(sum_e)) if with_lse else None
    return out.to(x.dtype), lse
