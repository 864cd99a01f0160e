"""TorchScript by tracing, where the model allows it.

TorchScript is in maintenance in PyTorch; pt2 (torch.export) is its successor. A model
whose forward TorchScript cannot represent gets an ExportError that says so and points
to pt2 and ONNX. The compiled SoftPool op is a TorchScript op, so the file reloads with
torch.jit.load once `softpool_video` is imported.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .onnx_export import ExportError
from .verify import compare, describe

log = logging.getLogger(__name__)


def export_torchscript(net: nn.Module, example: torch.Tensor, path: Path, model_name: str = "model"
                       ) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation and tracer notices; the check below decides
        try:
            traced = torch.jit.trace(net.eval(), (example,), check_trace=False)
            traced = torch.jit.freeze(traced)
        except Exception as err:  # tracing fails in many ways: all mean "not representable"
            raise ExportError(
                f"TorchScript cannot represent {model_name}: {type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}. Export with --format pt2 or onnx "
                "instead") from err
        torch.jit.save(traced, str(path))
        reloaded = torch.jit.load(str(path), map_location="cpu")
    # Another batch size too: tracing can bake shapes in, which this catches.
    check = compare(net, reloaded, [example, torch.cat([example, example.flip(-1)])])
    if not check["passed"]:
        path.unlink(missing_ok=True)
        raise ExportError(f"TorchScript trace of {model_name} does not reproduce the model ({describe(check)}; "
                          "e.g. data-dependent control flow); export with --format pt2 or onnx instead")
    return {"files": [path], "verification": {"runtime": "torch.jit.load", **check}}
