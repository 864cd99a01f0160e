"""FLOP counting with torch.utils.flop_counter, SoftPool included.

Conventions are FlopCounterMode's: a multiply-add counts 2 FLOPs (convolutions,
matmuls, the LSTM's matmuls); elementwise ops, batch norm and torch's own pooling
count 0. So a "GFLOPs" column here is twice the "GMACs" many papers print.

SoftPool is counted, per output element with a window of K input elements, as

    6 K + 2 FLOPs:  per window element: 1 max compare, 1 subtract and 1 exp (stable
                    exponent), 1 add to the exp sum, 1 multiply and 1 add for the
                    weighted sum; per output: 1 divide and 1 log (the saved lse).

K is the full kernel volume (windows clipped by padding count as full: an upper bound;
for an adaptive pool, the longest window). Its backward is counted as 6 K FLOPs per
output: per window element one exp for the weight, and the products of w_i (1 + a_i - y) g.

`count_flops` counts SoftPool per module, from the module's geometry and its output
size: SoftPool1d/2d/3d, the "softpool" method's temperature and adaptive forms
(WindowSoftPool) and AdaPool's SoftPool part. So the count is the same whether the
compiled op (torch.ops.softpool) or the pure-PyTorch reference runs, with or without
the extension (the reference's elementwise ops count 0, and the compiled op is not
counted a second time). A bare call of the functional soft_pool outside those modules
is not counted by `count_flops`; `register_softpool_flop_formulas` registers the same
formulas for the compiled op with torch's registry, for code that uses FlopCounterMode
directly (counted only where the op runs). The other pooling methods of the zoo count
whatever their torch ops count (elementwise work counts 0, like torch's own pools).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula

SOFTPOOL_FLOPS_PER_WINDOW_ELEMENT = 6
SOFTPOOL_FLOPS_PER_OUTPUT = 2


def softpool_flops(outputs: int, window: int, backward: bool = False) -> int:
    """FLOPs of SoftPool with `outputs` output elements of `window` input elements each:
    the forward (6 K + 2 per output), or with `backward` the backward (6 K per output)."""
    if backward:
        return outputs * SOFTPOOL_FLOPS_PER_WINDOW_ELEMENT * window
    return outputs * (SOFTPOOL_FLOPS_PER_WINDOW_ELEMENT * window + SOFTPOOL_FLOPS_PER_OUTPUT)


def softpool_forward_flops(x_shape, kernel_size, stride, padding, dilation, ceil_mode, *args,
                           out_shape=None, **kwargs) -> int:
    """FLOPs of softpool::forward(x, kernel_size, ...) -> (out, lse); see the module docstring."""
    return softpool_flops(math.prod(out_shape[0]), math.prod(kernel_size))


def softpool_backward_flops(grad_shape, x_shape, out_shape_arg, lse_shape, kernel_size, *args,
                            out_shape=None, **kwargs) -> int:
    """FLOPs of softpool::backward(grad_out, x, out, lse, kernel_size, ...) -> grad_x."""
    return softpool_flops(math.prod(grad_shape), math.prod(kernel_size), backward=True)


def _no_flops(*args, **kwargs) -> int:
    return 0


def _softpool_ops() -> dict[Any, Any]:
    """{op packet: formula} for the compiled ops, empty when the extension is not loaded."""
    ns = torch.ops.softpool
    mapping = {}
    for op_name, formula in (("forward", softpool_forward_flops), ("backward", softpool_backward_flops)):
        try:
            mapping[getattr(ns, op_name)] = formula
        except (AttributeError, RuntimeError):
            continue
    return mapping


def register_softpool_flop_formulas() -> None:
    """Registers the SoftPool formulas with torch's global flop registry, for code that uses
    FlopCounterMode directly (counted only where the compiled op runs). Idempotent.
    `count_flops` does not need it: it counts SoftPool per module, with or without the op."""
    from torch.utils.flop_counter import flop_registry

    for op, formula in _softpool_ops().items():
        if op not in flop_registry:
            register_flop_formula(op)(formula)


def softpool_window(module: nn.Module, x: torch.Tensor) -> int | None:
    """K, the window size SoftPool uses in `module` on input `x`; None for a module that does
    not compute SoftPool itself (its children are asked on their own)."""
    from softpool_video.pooling.adapool import AdaPool
    from softpool_video.pooling.basic import WindowSoftPool
    from softpool_video.pooling.softpool import SoftPool1d, SoftPool2d, SoftPool3d
    from softpool_video.pooling.windows import AdaptiveWindows

    if isinstance(module, (SoftPool1d, SoftPool2d, SoftPool3d)):
        return math.prod(module.kernel_size)
    if isinstance(module, (WindowSoftPool, AdaPool)):
        if not module.adaptive:
            return math.prod(module.geometry.kernel_size)
        return math.prod(AdaptiveWindows(x.shape[-module.dims:], module.geometry).window_size)
    return None


class _SoftPoolCounter:
    """A global module forward hook adding the SoftPool FLOPs of each SoftPool module call
    (modules built on the fly included), forward and, with `backward`, backward."""

    def __init__(self, backward: bool) -> None:
        self.backward = backward
        self.flops = 0

    def __call__(self, module: nn.Module, args: tuple, output: Any) -> None:
        if not args or not isinstance(args[0], torch.Tensor) or not isinstance(output, torch.Tensor):
            return
        window = softpool_window(module, args[0])
        if window is None:
            return
        self.flops += softpool_flops(output.numel(), window)
        if self.backward and args[0].requires_grad:  # the backward runs where the input needs a gradient
            self.flops += softpool_flops(output.numel(), window, backward=True)


def count_flops(model: nn.Module, x: torch.Tensor, backward: bool = False) -> int:
    """FLOPs of one forward of `model` on `x` in eval mode, or with `backward`, of one
    training-mode forward and backward of the summed output.

    Works on the meta device (no arithmetic is run), which is how `softpool-video models`
    sizes the full networks. SoftPool counts the same with or without the compiled op.
    """
    was_training = model.training
    model.train(backward)  # inference counts in eval mode (batch norm with running stats)
    softpool = _SoftPoolCounter(backward)
    hook = nn.modules.module.register_module_forward_hook(softpool)
    # the compiled op counts 0 here (it may be in torch's registry): its modules count it
    no_op_count = dict.fromkeys(_softpool_ops(), _no_flops)
    try:
        with FlopCounterMode(display=False, custom_mapping=no_op_count) as counter:
            if backward:
                model(x).sum().backward()
            else:
                with torch.no_grad():
                    model(x)
    finally:
        hook.remove()
        model.train(was_training)
    return counter.get_total_flops() + softpool.flops


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters; lazy pooling layers (lip, adapool) must have run one forward."""
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()):
        raise ValueError("the model has lazy parameters (a pooling method such as lip or adapool): run one "
                         "forward, e.g. softpool_video.pooling.swap.materialize(model, clip), before counting")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
