"""Capturing a network with torch.export, and replacing the compiled SoftPool op by its
standard-op form (`softpool_video.pooling.onnx_form.soft_pool_onnx`).

The decomposition is explicit (a decomposition table entry for softpool::forward) rather
than relying on the ONNX exporter's "in export" flag, so ONNX and decomposed pt2 files
hold the same standard ops whichever exporter front end runs. `capture(decompose=True)`
traces a copy of the network whose SoftPool modules already compute that form, so the
graph is traced once; the decomposition table catches the op wherever else it is called.
The form costs a few dozen
ops per pool (Pad, Concat, Reshape, MaxPool, ReduceMax/Sum, elementwise) and no strided
Slice: the window-unfolding reference (`soft_pool_reference`, 27 strided slices per 3x3x3
pool) made the ONNX optimizer's pairwise Slice rewrite run for minutes on an I3D.
"""
from __future__ import annotations

from collections.abc import Sequence
from copy import deepcopy

import torch
from torch import nn
from torch.export import Dim, ExportedProgram

from .. import _extension
from ..pooling import PoolArgs, pool_args
from ..pooling.arguments import check_input
from ..pooling.onnx_form import soft_pool_onnx
from ..pooling.softpool import _SoftPoolNd

MAX_BATCH = 4096


def softpool_decomposition(x: torch.Tensor, kernel_size: Sequence[int], stride: Sequence[int],
                           padding: Sequence[int], dilation: Sequence[int], ceil_mode: bool
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """softpool::forward(x, ...) -> (out, lse) written with standard aten ops (traced once per
    pool site by run_decompositions)."""
    args = pool_args(len(kernel_size), tuple(kernel_size), tuple(stride), tuple(padding), tuple(dilation),
                     bool(ceil_mode))
    return soft_pool_onnx(x, args)


def softpool_ops() -> list[torch._ops.OpOverload]:
    """The compiled op overloads a captured graph can hold (none without the extension)."""
    return [torch.ops.softpool.forward.default] if _extension.extension_loaded() else []


class ExportSoftPool(nn.Module):
    """Stands in for a SoftPool1d/2d/3d module while capturing a decomposed graph: the same
    geometry, computed by `soft_pool_onnx` (standard ops) instead of the compiled op."""

    def __init__(self, args: PoolArgs) -> None:
        super().__init__()
        self.args = args

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x4, unbatched = check_input(x, self.args)
        out = soft_pool_onnx(x4, self.args, with_lse=False)[0]
        return out.squeeze(0) if unbatched else out


def export_form(net: nn.Module) -> nn.Module:
    """A copy of `net` (in eval mode) whose SoftPool modules compute the standard-op form, so
    that one torch.export trace yields the decomposed graph (no second trace to decompose)."""
    if not any(isinstance(m, _SoftPoolNd) for m in net.modules()):
        return net
    copy = deepcopy(net).eval()
    for name, module in list(copy.named_modules()):
        if isinstance(module, _SoftPoolNd):
            parent_name, _, attr = name.rpartition(".")
            setattr(copy.get_submodule(parent_name) if parent_name else copy, attr, ExportSoftPool(module.args))
    return copy


def capture(net: nn.Module, example: torch.Tensor, dynamic_batch: bool = True, decompose: bool = False
            ) -> ExportedProgram:
    """torch.export of `net(example)` with the batch dimension symbolic (1..MAX_BATCH); with
    `decompose`, SoftPool in its standard-op form (the compiled op nowhere in the graph)."""
    shapes = ({0: Dim("batch", min=1, max=MAX_BATCH)},) if dynamic_batch else None
    if dynamic_batch and example.shape[0] == 1:
        # torch.export specialises sizes 0 and 1; trace with two so the batch stays symbolic
        example = torch.cat([example, example])
    program = torch.export.export((export_form(net) if decompose else net).eval(), (example,), dynamic_shapes=shapes)
    # the op can also be reached other than through a SoftPool module (functional calls)
    return decompose_softpool(program) if decompose else program


def holds_softpool_op(program: ExportedProgram) -> bool:
    ops = set(softpool_ops())
    return any(node.op == "call_function" and node.target in ops for node in program.graph.nodes)


def decompose_softpool(program: ExportedProgram) -> ExportedProgram:
    """The same program with every softpool::forward replaced by the standard-op form."""
    ops = softpool_ops()
    if not ops or not holds_softpool_op(program):
        return program
    return program.run_decompositions({op: softpool_decomposition for op in ops})
