"""Squeeze and Recursion Temporal Gates (Stergiou & Poppe, "Learn to cycle", 2021).

Per residual block:

1. squeeze: average each frame over space, giving a sequence s (B, T, C);
2. recursion: an LSTM runs over the T frames, giving h (B, T, C) in (-1, 1);
3. recalibration: r = x * h, h broadcast over each frame's H x W;
4. temporal gate: out = x + g * r, with g in {0, 1} per clip. g = 1 only where the
   squeezed and recurrent sequences are cycle-consistent: for (almost) every frame i,
   the soft nearest neighbour of s_i among the h frames has s_i as its nearest
   neighbour among the s frames, and the same from h to s (Dwibedi et al.,
   "Temporal cycle-consistency learning", CVPR 2019).

With `gates=False` the gate is always open (plain squeeze and recursion).

Placement: in a basic block the SRTG block runs on the block output (after the residual
sum and ReLU); in a bottleneck block it runs on the narrow features after the middle
convolution, because our depth-50 nets use the standard 4x expansion (2048 output
channels would make each 2-layer LSTM ~67M parameters). The LSTM has `lstm_layers`
layers (2 as published) of width C. Knobs: `gates`, `lstm_layers`, `gate_threshold`
(fraction of frames that must cycle back, 1.0 = all) and `gate_temperature`.

The published code's gate never fires: its consistency tensor is zeroed by an in-place
scatter before the check, and every model factory passes gates=False. Here the check is
computed from the sequences themselves, with no in-place writes and no data-dependent
Python branches (so the block traces and exports), and the gate decision of the last
eager forward is kept in `last_gate` (B,) for inspection.

Both sequences are compared after removing their temporal mean and L2-normalising each
frame: the features are post-ReLU (all frames point the same way) and h lives in
(-1, 1), so raw distances would compare scales, not temporal structure. With one or
two frames left (late stages of short clips) the check passes trivially: after mean
removal two frames are always antipodal. The gate is a hard decision, so the LSTM
learns only from the clips whose gate opened.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model
from .resnet3d import TINY, VideoResNet, video_resnet


def _frame_embeddings(seq: torch.Tensor) -> torch.Tensor:
    """(B, T, C): temporal mean removed, each frame L2-normalised."""
    return F.normalize(seq - seq.mean(dim=1, keepdim=True), dim=-1)


def cycles_back(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """(B, T) bool: frame i of `a` returns to i via its soft nearest neighbour in `b`.

    a, b: (B, T, C) frame embeddings. The soft nearest neighbour of a_i is
    sum_j softmax_j(-|a_i - b_j|^2 / temperature) b_j; it cycles back if its nearest
    frame of `a` (hard, by squared distance) is a_i itself.
    """
    weights = torch.softmax(-torch.cdist(a, b).pow(2) / temperature, dim=-1)  # (B, T, T)
    soft_nn = weights @ b
    back = torch.cdist(soft_nn, a).argmin(dim=-1)  # (B, T)
    return back == torch.arange(a.shape[1], device=a.device)


def cycle_consistency(squeezed: torch.Tensor, recurrent: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """(B,) fraction of frames that cycle back in both directions, s -> h -> s and h -> s -> h."""
    s, h = _frame_embeddings(squeezed), _frame_embeddings(recurrent)
    both = cycles_back(s, h, temperature) & cycles_back(h, s, temperature)
    return both.float().mean(dim=1)


class SqueezeRecursionGate(nn.Module):
    """The SRTG block: applied to a (B, C, T, H, W) feature map, returns the same shape."""

    def __init__(self, channels: int, lstm_layers: int = 2, gates: bool = True, threshold: float = 1.0,
                 temperature: float = 0.1) -> None:
        super().__init__()
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold (fraction of cycle-consistent frames) must be in (0, 1], got {threshold!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.lstm = nn.LSTM(channels, channels, num_layers=lstm_layers, batch_first=True)
        self.gates = gates
        self.threshold = threshold
        self.temperature = temperature
        self.last_gate: torch.Tensor | None = None

    def gate(self, squeezed: torch.Tensor, recurrent: torch.Tensor) -> torch.Tensor:
        """(B,) float 0/1: 1 where the clip's sequences pass the cycle-consistency check."""
        if not self.gates:
            return squeezed.new_ones(squeezed.shape[0])
        with torch.no_grad():  # a hard decision: no gradient flows through it
            consistent = cycle_consistency(squeezed.detach().float(), recurrent.detach().float(),
                                           self.temperature)
        return (consistent >= self.threshold).to(squeezed.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = x.mean(dim=(3, 4)).transpose(1, 2)  # (B, T, C)
        recurrent, _ = self.lstm(squeezed)  # (B, T, C)
        g = self.gate(squeezed, recurrent)
        if not torch.compiler.is_compiling():  # for inspection; a traced graph keeps no side state
            self.last_gate = g.detach()
        recalibrated = x * recurrent.transpose(1, 2)[..., None, None]
        return x + g.view(-1, 1, 1, 1, 1) * recalibrated

    def extra_repr(self) -> str:
        return f"gates={self.gates}, threshold={self.threshold}, temperature={self.temperature}"


def srtg_resnet(family: str, depth: int | None, num_classes: int, pooling: str = "max",
                gates: bool = True, lstm_layers: int = 2, gate_threshold: float = 1.0,
                gate_temperature: float = 0.1, **kwargs: Any) -> VideoResNet:
    """A VideoResNet with an SRTG block in every residual block."""
    def extra(channels: int) -> nn.Module:
        return SqueezeRecursionGate(channels, lstm_layers, gates, gate_threshold, gate_temperature)

    return video_resnet(family, depth, num_classes=num_classes, pooling=pooling, block_extra=extra, **kwargs)


def _register(name: str, family: str, depth: int | None, description: str,
              defaults: dict[str, Any] | None = None) -> None:
    def builder(num_classes: int, pooling: str = "max", **kwargs: Any) -> VideoResNet:
        return srtg_resnet(family, depth, num_classes, pooling, **{**(defaults or {}), **kwargs})

    builder.__name__ = builder.__qualname__ = name
    register_model(name, "srtg", description)(builder)


for _depth in (18, 34, 50):
    _register(f"srtg_r3d_{_depth}", "r3d", _depth, f"SRTG R3D-{_depth}: R3D-{_depth} with SRTG blocks")
    _register(f"srtg_r2plus1d_{_depth}", "r2plus1d", _depth,
              f"SRTG R(2+1)D-{_depth}: R(2+1)D-{_depth} with SRTG blocks")
_register("srtg_r2plus1d_tiny", "r2plus1d", None, "SRTG on r2plus1d_tiny (CPU demo size), 1-layer LSTM",
          {**TINY, "lstm_layers": 1})
