"""ONNX: SoftPool in its standard-op form, standard ONNX ops, dynamic batch.

The graph is captured with torch.export with SoftPool already in the form of
`pooling/onnx_form.py` (see decompose.py), and the dynamo-based ONNX exporter translates
the result. After saving, every node is checked to be in the standard ONNX domain, and
onnxruntime's logits are checked against PyTorch's (verify.py: atol + rtol x the row's
scale, and the same top-5).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .decompose import capture, holds_softpool_op
from .verify import compare, onnxruntime_runner

log = logging.getLogger(__name__)

INPUT_NAME = "video"
OUTPUT_NAME = "logits"


class ExportError(RuntimeError):
    """A model that cannot be exported to the requested format; the message says why."""


def _name_batch_dim(program: Any) -> None:
    """torch.export calls the symbolic batch size s0, s77...; ONNX readers see 'batch'."""
    import onnx_ir as ir

    graph = program.model.graph
    first = graph.inputs[0].shape[0] if graph.inputs and graph.inputs[0].shape is not None else None
    if first is None or isinstance(first, int):
        return
    old = str(first)
    for value in [*graph.inputs, *graph.outputs]:
        if value.shape is not None:
            value.shape = ir.Shape(["batch" if str(d) == old else d for d in value.shape])


def standard_domains_only(path: Path) -> list[str]:
    """Op types of nodes outside the standard ONNX domain (an empty list is what we want)."""
    import onnx

    model = onnx.load(str(path))
    return sorted({f"{n.domain}::{n.op_type}" for n in model.graph.node if n.domain not in ("", "ai.onnx")})


def export_onnx(net: nn.Module, example: torch.Tensor, path: Path, opset: int | None = None,
                verify: bool = True) -> dict[str, Any]:
    program = capture(net, example, decompose=True)
    if holds_softpool_op(program):
        raise ExportError("the SoftPool op is still in the graph after decomposition")
    kwargs: dict[str, Any] = {"dynamo": True, "input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME],
                              "verbose": False}
    if opset is not None:
        kwargs["opset_version"] = opset
    onnx_program = torch.onnx.export(program, **kwargs)
    _name_batch_dim(onnx_program)
    onnx_program.save(str(path))
    foreign = standard_domains_only(path)
    if foreign:
        raise ExportError(f"{path} holds non-standard ONNX ops: {', '.join(foreign)}")
    result: dict[str, Any] = {"files": [path], "opset": _opset(path)}
    if verify:
        # a second batch size (3) exercises the dynamic batch dim; flips make the clips differ
        others = torch.cat([example, example.flip(-1), example.flip(-2)])
        check = compare(net, onnxruntime_runner(path), [example, others])
        result["verification"] = {"runtime": "onnxruntime", **check}
    return result


def _opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
