"""pt2: a torch.export ExportedProgram saved with torch.export.save.

By default the compiled SoftPool op stays in the graph (the file reloads with
torch.export.load once `softpool_video` is imported, which registers the op); with
`decompose=True` SoftPool is captured in the standard-op form ONNX files hold too
(pooling/onnx_form.py) and the file needs only torch.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .decompose import capture, holds_softpool_op
from .verify import compare

log = logging.getLogger(__name__)


def export_pt2(net: nn.Module, example: torch.Tensor, path: Path, decompose: bool = False) -> dict[str, Any]:
    program = capture(net, example, decompose=decompose)
    torch.export.save(program, str(path))
    reloaded = torch.export.load(str(path)).module()
    check = compare(net, reloaded, [example, torch.cat([example, example.flip(-1)])])
    return {"files": [path], "softpool_op_kept": holds_softpool_op(program), "decomposed": decompose,
            "verification": {"runtime": "torch.export.load", **check}}
