"""Parity checks: an exported artifact against the PyTorch network on the same input."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

# fp32 budget for the largest absolute logit difference of an export.
FP32_TOLERANCE = 1e-4


def max_abs_diff(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    a = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).detach().double()
    b = torch.as_tensor(np.asarray(b) if not isinstance(b, torch.Tensor) else b).detach().double()
    if a.shape != b.shape:
        raise ValueError(f"outputs differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    return float((a - b).abs().max())


def compare(reference: nn.Module, run: Callable[[torch.Tensor], Any], inputs: list[torch.Tensor],
            tolerance: float = FP32_TOLERANCE) -> dict[str, Any]:
    """Runs both on every input (different batch sizes check a dynamic batch dim)."""
    diffs = []
    with torch.no_grad():
        for x in inputs:
            diffs.append(max_abs_diff(run(x), reference(x)))
    worst = max(diffs)
    return {"max_abs_diff": worst, "tolerance": tolerance, "passed": bool(worst < tolerance),
            "batch_sizes": [int(x.shape[0]) for x in inputs]}


def onnxruntime_runner(path: str | Path) -> Callable[[torch.Tensor], np.ndarray]:
    """A CPU onnxruntime session as a function of one input tensor."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> np.ndarray:
        return session.run(None, {name: x.detach().cpu().numpy().astype(np.float32)})[0]

    return run
