"""Capturing a network with torch.export, and replacing the compiled SoftPool op by its
pure-PyTorch decomposition (`soft_pool_reference`).

The decomposition is explicit (a decomposition table entry for softpool::forward) rather
than relying on the ONNX exporter's "in export" flag, so ONNX and decomposed pt2 files
hold the same standard ops whichever exporter front end runs.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.export import Dim, ExportedProgram

from .. import _extension
from ..pooling import pool_args, soft_pool_reference

MAX_BATCH = 4096


def softpool_decomposition(x: torch.Tensor, kernel_size: Sequence[int], stride: Sequence[int],
                           padding: Sequence[int], dilation: Sequence[int], ceil_mode: bool
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """softpool::forward(x, ...) -> (out, lse) written with standard aten ops."""
    args = pool_args(len(kernel_size), tuple(kernel_size), tuple(stride), tuple(padding), tuple(dilation),
                     bool(ceil_mode))
    return soft_pool_reference(x, args)


def softpool_ops() -> list[torch._ops.OpOverload]:
    """The compiled op overloads a captured graph can hold (none without the extension)."""
    return [torch.ops.softpool.forward.default] if _extension.extension_loaded() else []


def capture(net: nn.Module, example: torch.Tensor, dynamic_batch: bool = True) -> ExportedProgram:
    """torch.export of `net(example)` with the batch dimension symbolic (1..MAX_BATCH)."""
    shapes = ({0: Dim("batch", min=1, max=MAX_BATCH)},) if dynamic_batch else None
    if dynamic_batch and example.shape[0] == 1:
        # torch.export specialises sizes 0 and 1; trace with two so the batch stays symbolic
        example = torch.cat([example, example])
    return torch.export.export(net.eval(), (example,), dynamic_shapes=shapes)


def holds_softpool_op(program: ExportedProgram) -> bool:
    ops = set(softpool_ops())
    return any(node.op == "call_function" and node.target in ops for node in program.graph.nodes)


def decompose_softpool(program: ExportedProgram) -> ExportedProgram:
    """The same program with every softpool::forward replaced by the reference ops."""
    ops = softpool_ops()
    if not ops or not holds_softpool_op(program):
        return program
    return program.run_decompositions({op: softpool_decomposition for op in ops})
