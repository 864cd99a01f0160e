"""SoftPool3d against max_pool3d, avg_pool3d and the composite formula.

Forward+backward time (median after warm-up) and bytes saved for backward,
all measured side by side in one process on the same input.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from softpool_video import soft_pool3d
from softpool_video.measure import saved_tensor_bytes, time_callable
from softpool_video.reporting import markdown_table


def composite_softpool3d(x, kernel_size, stride, padding):
    """The usual pure-PyTorch SoftPool: avg_pool(x * e) / avg_pool(e), e = exp(x - max)."""
    e = torch.exp(x - x.amax(dim=(2, 3, 4), keepdim=True))
    num = F.avg_pool3d(x * e, kernel_size, stride, padding)
    return num / F.avg_pool3d(e, kernel_size, stride, padding).clamp_min(1e-30)


METHODS = {
    "max_pool3d": lambda x, k, s, p: F.max_pool3d(x, k, s, p),
    "avg_pool3d": lambda x, k, s, p: F.avg_pool3d(x, k, s, p),
    "composite": composite_softpool3d,
    "softpool3d": lambda x, k, s, p: soft_pool3d(x, k, s, p),
}

CASES = [
    {"name": "k2s2", "kernel": 2, "stride": 2, "padding": 0},
    {"name": "k3s2p1", "kernel": 3, "stride": 2, "padding": 1},
]


def measure_method(method, x: torch.Tensor, k: int, s: int, p: int, repeats: int) -> dict:
    """Forward+backward and forward-only times, and bytes saved for backward, of one method."""
    leaf = x.clone().requires_grad_()

    def step():
        leaf.grad = None
        out = method(leaf, k, s, p)
        out.backward(torch.ones_like(out))

    def forward_only():
        with torch.no_grad():
            method(x, k, s, p)

    return {"fwd_bwd": time_callable(step, repeats=repeats).as_dict(),
            "fwd": time_callable(forward_only, repeats=repeats).as_dict(),
            "saved_bytes": saved_tensor_bytes(lambda: method(leaf, k, s, p))[1],
            "input_bytes": x.numel() * x.element_size()}


def run(shape=(4, 64, 16, 56, 56), device: str = "cpu", repeats: int = 7) -> list[dict]:
    x = torch.randn(*shape, device=device)
    rows = []
    for case in CASES:
        k, s, p = case["kernel"], case["stride"], case["padding"]
        for name, method in METHODS.items():
            rows.append({"case": case["name"], "method": name, **measure_method(method, x, k, s, p, repeats)})
    for case in CASES:
        base = next(r for r in rows if r["case"] == case["name"] and r["method"] == "max_pool3d")
        for r in rows:
            if r["case"] == case["name"]:
                r["fwd_bwd_vs_max"] = r["fwd_bwd"]["median_ms"] / base["fwd_bwd"]["median_ms"]
                r["saved_vs_input"] = r["saved_bytes"] / r["input_bytes"]
    return rows


def markdown(rows: list[dict]) -> str:
    header = ["case", "method", "fwd+bwd ms (median)", "fwd ms", "fwd+bwd / max_pool3d", "saved for backward / input"]
    return markdown_table(header, [[r["case"], r["method"], f"{r['fwd_bwd']['median_ms']:.1f}",
                                    f"{r['fwd']['median_ms']:.1f}", f"{r['fwd_bwd_vs_max']:.2f}x",
                                    f"{r['saved_vs_input']:.2f}"] for r in rows], align="llrrrr")
