"""Parity checks: an exported artifact against the PyTorch network on the same input.

The rule (`check_logits`), for a batch of logit rows a (export) and b (PyTorch):

1. Values, as `torch.testing.assert_close` compares them, |a - b| <= atol + rtol * |b|
   elementwise, except that |b| is the largest |logit| of b's row rather than of the element:

       |a_ij - b_ij| <= atol + rtol * max_j' |b_ij'|

   The rounding error of a logit follows the magnitude of what was summed to make it, which
   is the row's scale, not the logit's own value: a logit near 0 in a row that reaches 365
   carries the error of the 365 one (and an absolute tolerance alone judges nothing: 1e-4 is
   loose for logits of 1 and below float32's own error for logits of 365). Never tighter than
   assert_close's elementwise rule, nor than the old absolute 1e-4 for fp32.
2. Ranking: the ordered top-k classes of each row (k = min(5, classes)) agree. The class the
   export ranks r-th must be one whose reference logit is within that row's tolerance of the
   reference's r-th largest: exact ties and near-ties (closer than the tolerance) may come in
   either order or either side of the top-k boundary; any other swap, or a class entering
   the top-k from further down, fails, however small the value difference that caused it.

Tolerances by the reference's dtype (`TOLERANCES`); see the comment there for the numbers.
Both the largest absolute and the largest (elementwise) relative difference are reported.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

TOP_K = 5


@dataclass(frozen=True)
class Tolerance:
    """|a - b| <= atol + rtol * (largest |b| of the row)."""

    rtol: float
    atol: float

    def bound(self, expected: torch.Tensor) -> torch.Tensor:
        """Per-row bound, shaped to broadcast against (rows, classes)."""
        scale = expected.abs().amax(dim=-1, keepdim=True) if expected.numel() else expected.abs()
        return self.atol + self.rtol * scale


# float32: PyTorch's and onnxruntime's float32 logits differ from a float64 evaluation of the
# same network by ~2-4 ulp of the row's scale (an I3D with logits of 365: 9.4e-5 and 6.2e-5,
# 1.5e-4 between the two, i.e. 4e-7 relative); rtol 1e-4 leaves a 250x margin for deeper
# networks, other kernels and other batch sizes, and still fails a logit off by 0.01% of the
# row's scale. atol 1e-4 covers rows of tiny logits (whose error follows the O(1) activations
# before the classifier) and equals the old absolute tolerance. float16/bfloat16 have 3 and 2
# significant digits, float64 about 16: the same margin over their own rounding.
TOLERANCES: dict[torch.dtype, Tolerance] = {
    torch.float64: Tolerance(rtol=1e-10, atol=1e-10),
    torch.float32: Tolerance(rtol=1e-4, atol=1e-4),
    torch.float16: Tolerance(rtol=1e-2, atol=1e-2),
    torch.bfloat16: Tolerance(rtol=5e-2, atol=5e-2),
}


def tolerance_for(dtype: torch.dtype) -> Tolerance:
    if dtype not in TOLERANCES:
        raise ValueError(f"no parity tolerance for dtype {dtype}; floating point logits expected")
    return TOLERANCES[dtype]


def _tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return (x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))).detach().cpu()


def _rows(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(1, -1) if x.dim() < 2 else x.reshape(-1, x.shape[-1])


def max_abs_diff(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    a, b = _tensor(a).double(), _tensor(b).double()
    if a.shape != b.shape:
        raise ValueError(f"outputs differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    return float((a - b).abs().max()) if a.numel() else 0.0


def topk_mismatches(got: torch.Tensor, expected: torch.Tensor, bound: torch.Tensor, k: int) -> list[str]:
    """Ranks where the export's class is not one the reference ties (within `bound`) with
    its own class of that rank; each as 'row i rank r: class c (ref x) where ref has class c' (y)'."""
    problems = []
    got_idx = got.topk(k, dim=-1).indices
    ref_val, ref_idx = expected.topk(k, dim=-1)
    for i in range(expected.shape[0]):
        limit = float(bound[i, 0])
        for r in range(k):
            c = int(got_idx[i, r])
            gap = abs(float(expected[i, c]) - float(ref_val[i, r]))
            if not gap <= limit:  # NaN fails too
                problems.append(f"row {i} rank {r + 1}: class {c} (reference logit {float(expected[i, c]):.6g}) "
                                f"where the reference ranks class {int(ref_idx[i, r])} ({float(ref_val[i, r]):.6g}); "
                                f"gap {gap:.3g} > tolerance {limit:.3g}")
    return problems


def check_logits(got: torch.Tensor | np.ndarray, expected: torch.Tensor | np.ndarray,
                 tolerance: Tolerance | None = None, top_k: int = TOP_K) -> dict[str, Any]:
    """The parity rule of the module docstring for one output; `passed` says whether it holds."""
    got_t, exp_t = _tensor(got), _tensor(expected)
    if tuple(got_t.shape) != tuple(exp_t.shape):
        raise ValueError(f"outputs differ in shape: {tuple(got_t.shape)} vs {tuple(exp_t.shape)}")
    tol = tolerance or tolerance_for(exp_t.dtype)
    a, b = _rows(got_t.double()), _rows(exp_t.double())
    diff = (a - b).abs()
    bound = tol.bound(b)
    finite = bool(torch.isfinite(a).all() and torch.isfinite(b).all())
    values_ok = finite and bool((diff <= bound).all())
    rel = diff / b.abs()
    rel = torch.where(diff == 0, torch.zeros_like(rel), rel)  # 0/0 counts as no difference
    k = min(top_k, b.shape[-1]) if b.numel() else 0
    ranks = topk_mismatches(a, b, bound, k) if k and finite else []
    failures = []
    if not finite:
        failures.append("non-finite logits")
    elif not values_ok:
        worst = int((diff - bound).flatten().argmax())
        row, col = divmod(worst, b.shape[-1])
        failures.append(f"logit [{row}, {col}]: export {float(a[row, col]):.7g} vs PyTorch {float(b[row, col]):.7g}, "
                        f"|diff| {float(diff[row, col]):.3g} > {float(bound[row, 0]):.3g} "
                        f"(atol {tol.atol:g} + rtol {tol.rtol:g} x row scale)")
    failures += ranks[:5]
    return {"passed": values_ok and not ranks,
            "max_abs_diff": float(diff.max()) if diff.numel() else 0.0,
            "max_rel_diff": float(rel.max()) if rel.numel() else 0.0,
            "max_diff_over_bound": float((diff / bound).max()) if diff.numel() else 0.0,
            "rtol": tol.rtol, "atol": tol.atol, "top_k": k, "top_k_match": finite and not ranks,
            "failures": failures}


def compare(reference: nn.Module, run: Callable[[torch.Tensor], Any], inputs: Sequence[torch.Tensor],
            tolerance: Tolerance | None = None, top_k: int = TOP_K) -> dict[str, Any]:
    """Runs both on every input (different batch sizes check a dynamic batch dim) and applies
    `check_logits` to each; the worst differences over all inputs are reported."""
    checks = []
    with torch.no_grad():
        for x in inputs:
            checks.append(check_logits(run(x), reference(x), tolerance, top_k))
    first = checks[0]
    return {"passed": all(c["passed"] for c in checks),
            "max_abs_diff": max(c["max_abs_diff"] for c in checks),
            "max_rel_diff": max(c["max_rel_diff"] for c in checks),
            "max_diff_over_bound": max(c["max_diff_over_bound"] for c in checks),
            "rtol": first["rtol"], "atol": first["atol"], "top_k": first["top_k"],
            "top_k_match": all(c["top_k_match"] for c in checks),
            "failures": [f for c in checks for f in c["failures"]],
            "batch_sizes": [int(x.shape[0]) for x in inputs]}


def describe(check: dict[str, Any]) -> str:
    """One line for errors and tables: the differences, the rule and what failed."""
    text = (f"max abs diff {check['max_abs_diff']:.3g}, max rel diff {check['max_rel_diff']:.3g} "
            f"(rtol {check['rtol']:g}, atol {check['atol']:g} of the row scale; top-{check['top_k']} "
            f"{'same' if check['top_k_match'] else 'differ'})")
    if not check["passed"] and check.get("failures"):
        text += ": " + "; ".join(check["failures"][:3])
    return text


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
