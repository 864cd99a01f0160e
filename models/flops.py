"""FLOP counting with torch.utils.flop_counter, the SoftPool op included.

Conventions are FlopCounterMode's: a multiply-add counts 2 FLOPs (convolutions,
matmuls, the LSTM's matmuls); elementwise ops, batch norm and torch's own pooling
count 0. So a "GFLOPs" column here is twice the "GMACs" many papers print.

SoftPool (torch.ops.softpool.forward) is counted, per output element with a window of
K input elements, as

    6 K + 2 FLOPs:  per window element: 1 max compare, 1 subtract and 1 exp (stable
                    exponent), 1 add to the exp sum, 1 multiply and 1 add for the
                    weighted sum; per output: 1 divide and 1 log (the saved lse).

K is the full kernel volume (windows clipped by padding count as full: an upper bound).
The backward op (torch.ops.softpool.backward) is counted as 6 K FLOPs per output too:
per window element one exp for the weight, and the products of w_i (1 + a_i - y) g.
The other pooling methods of the zoo count whatever their torch ops count (elementwise
work counts 0, like torch's own pools).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula

SOFTPOOL_FLOPS_PER_WINDOW_ELEMENT = 6
SOFTPOOL_FLOPS_PER_OUTPUT = 2


def softpool_forward_flops(x_shape, kernel_size, stride, padding, dilation, ceil_mode, *args,
                           out_shape=None, **kwargs) -> int:
    """FLOPs of softpool::forward(x, kernel_size, ...) -> (out, lse); see the module docstring."""
    outputs = math.prod(out_shape[0])
    window = math.prod(kernel_size)
    return outputs * (SOFTPOOL_FLOPS_PER_WINDOW_ELEMENT * window + SOFTPOOL_FLOPS_PER_OUTPUT)


def softpool_backward_flops(grad_shape, x_shape, out_shape_arg, lse_shape, kernel_size, *args,
                            out_shape=None, **kwargs) -> int:
    """FLOPs of softpool::backward(grad_out, x, out, lse, kernel_size, ...) -> grad_x."""
    return math.prod(grad_shape) * SOFTPOOL_FLOPS_PER_WINDOW_ELEMENT * math.prod(kernel_size)


def _softpool_ops() -> dict[Any, Any]:
    """{op packet: formula} for the compiled ops, empty when the extension is not loaded."""
    ns = getattr(torch.ops, "softpool")
    mapping = {}
    for op_name, formula in (("forward", softpool_forward_flops), ("backward", softpool_backward_flops)):
        try:
            mapping[getattr(ns, op_name)] = formula
        except (AttributeError, RuntimeError):
            continue
    return mapping


def register_softpool_flop_formulas() -> None:
    """Registers the SoftPool formulas with torch's global flop registry, for code that uses
    FlopCounterMode directly. Idempotent. `count_flops` does not need it."""
    from torch.utils.flop_counter import flop_registry

    for op, formula in _softpool_ops().items():
        if op not in flop_registry:
            register_flop_formula(op)(formula)


def count_flops(model: nn.Module, x: torch.Tensor, backward: bool = False) -> int:
    """FLOPs of one forward of `model` on `x` in eval mode, or with `backward`, of one
    training-mode forward and backward of the summed output.

    Works on the meta device (no arithmetic is run), which is how `softpool-video models`
    sizes the full networks.
    """
    was_training = model.training
    model.train(backward)  # inference counts in eval mode (batch norm with running stats)
    try:
        with FlopCounterMode(display=False, custom_mapping=_softpool_ops()) as counter:
            if backward:
                model(x).sum().backward()
            else:
                with torch.no_grad():
                    model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops()


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters; lazy pooling layers (lip, adapool) must have run one forward."""
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()):
        raise ValueError("the model has lazy parameters (a pooling method such as lip or adapool): run one "
                         "forward, e.g. softpool_video.pooling.swap.materialize(model, clip), before counting")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
