"""Squeeze and Recursion Temporal Gates (Stergiou & Poppe, "Learn to cycle: Time-consistent
feature discovery for action recognition", Pattern Recognition Letters 2021, arXiv 2006.08247).

The block, on a (B, C, T, H, W) feature map x:

1. squeeze: each frame is averaged over H x W, giving a sequence s_1..s_T of C-vectors;
2. recursion: a stacked LSTM (2 layers as published, hidden size C) runs over s, giving
   hidden states h_1..h_T in (-1, 1)^C;
3. fusion: the recalibrated features are x * h (h_t broadcast over frame t's H x W). They
   replace x where the temporal gate is open; where it is shut x passes unchanged. With
   `gates=False` x * h is always taken (the paper's plain Squeeze and Recursion block);
4. temporal gate: the squeezed and the recurrent sequences must be cycle-consistent in the
   sense of temporal cycle-consistency (Dwibedi et al., CVPR 2019). Frame i of a sequence a
   has the soft nearest neighbour b~_i = sum_j softmax_j(-|a_i - b_j|^2 / tau) b_j in the
   other sequence b; it cycles back when the frame of a nearest to b~_i is a_i itself. The
   check runs both ways, s -> h -> s and h -> s -> h.

Placement and layout, as in the published code (the June 2020 version that goes with the
paper): the block sits at the end of every residual block, after the shortcut sum and the
ReLU ("final" in the paper's placement study), in basic and bottleneck blocks alike. The
depth-50 bottleneck has no 4x expansion: its three convs are all `planes` wide (64, 128,
256, 512 per stage), so the LSTMs are as wide as in the depth-18/34 nets and the head sees
512 features; its (2+1)D middle width comes from the block's input width (torchvision's
rule). The SRTG ResNets have no stem pool; the pool after the stem was added to that code
later, for the multi-temporal-convolution paper. Here `stem_pool=False` is the default for
SRTG models and `stem_pool=True` adds the pooling site of the SoftPool study (the `pooling`
method from the registry, via resnet3d's make_pool).

What follows the published code and what is this project's own. Published: the placement
and layout above, the squeeze (spatial mean), the stacked LSTM with hidden size C, the fusion
x * h, and, in every released SRTG builder, `gates=False`: Squeeze and Recursion without the
temporal gate. That is the published setting, `gates=False` here. The gate itself exists in
the published code only in a form that does not train (below); the gate rule used here (per
frame, on normalised features, cycling back in both directions), its straight-through
gradient and the LSTM initialisation are this project's choices, made so that the gates open
on some clips and frames and every LSTM learns:

* Gate granularity (`gate_mode`). The published code decides per clip, on the raw
  features, and fuses a clip only when every frame cycles back in either direction. For
  T >= 4 that almost never happens, so the gates of the early stages stay shut and their
  LSTMs never learn. Cycle-consistency is a property of each frame (as in TCC), so by default
  ("frame") the gate decides per clip and per frame: frame t of clip b is recalibrated iff
  that frame cycles back both ways. "clip" decides per clip: open iff the fraction of frames
  that cycle back (both ways, normalised features) is at least `gate_threshold`; 1.0, every
  frame, is the nearest to the published rule, not the same.
* What is compared. The squeezed features are post-ReLU (non-negative) and h lives in
  (-1, 1), so raw distances compare magnitudes, not temporal structure. Both sequences
  have their temporal mean removed and each frame is L2-normalised first. With one or two
  frames left (late stages of short clips) the check passes trivially (two frames are then
  antipodal). A frame that ties with another frame (e.g. a sequence that does not change)
  does not cycle back. `gate_temperature` tau = 0.1, TCC's value for unit-norm embeddings.
* Gradients. The forward decision is the hard check above (exactly 0 or 1, so what the
  model computes is the paper's gate). The paper's check has no gradient, and the LSTM of a
  shut gate would learn nothing; backward therefore uses TCC's own differentiable
  relaxation as a straight-through estimate: the soft probability of cycling back (averaged
  over both directions, and over frames in "clip" mode). Every LSTM gets a gradient in
  every step: through x * h where the gate is open, through the gate where it is shut
  (with a single frame the recurrent weights have no earlier state to act on, so only
  their input weights and biases can learn there: the shipped configs keep T >= 2 in every
  stage, tests/training/test_training_configs.py). By default (`gate_gradient="recurrent"`)
  the decision comes from a second LSTM pass on detached features, so the relaxation's
  gradient trains the LSTM only; `gate_gradient="backbone"` lets it reach the backbone too,
  through the squeezed features. Measured on the hard demo
  (benchmarks/srtg_gate_gradient.py, 5 seeds): recurrent converged in every seed, backbone
  in 2 of 5, so recurrent is the default.
* LSTM initialisation. PyTorch's default makes h a small random-sign vector, so x * h
  starts as a ~20x shrinking with random channel signs, and the nets trained far slower than
  without SRTG. All four LSTM gate biases start at +1 (forget bias 1 as usual for LSTMs),
  so h starts positive (about 0.5 to 0.7) and x * h as a positive channel rescaling, like a
  squeeze-and-excitation gate.
* The gate is computed in float32, also under autocast.

Everything is tensor code with no data-dependent Python branch, so blocks and models trace
and export (torch.export, ONNX). `last_gate` keeps the decisions of the latest eager
forward ((B, T) in "frame" mode, (B,) in "clip" mode; ones with `gates=False`) and
`last_consistency` the fraction of frames that cycled back, (B,); `gate_open_rates(model)`
averages them per stage for logging.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .layers import CONV_2D, CONV_2PLUS1D, CONV_3D, ConvKind, factorised_planes, init_weights
from .registry import register_model
from .resnet3d import TINY, VideoResNet, video_resnet

GATE_MODES = ("frame", "clip")
GATE_GRADIENTS = ("backbone", "recurrent")  # where the gate's straight-through gradient may go
LSTM_BIAS = 1.0  # initial value of every LSTM gate bias (see the module docstring)


# --- cycle-consistency ------------------------------------------------------------------

def _frame_embeddings(seq: torch.Tensor) -> torch.Tensor:
    """(B, T, C): temporal mean removed, each frame L2-normalised."""
    return F.normalize(seq - seq.mean(dim=1, keepdim=True), dim=-1)


def _sq_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, T, T): squared Euclidean distance of every frame of a to every frame of b, (B, T, C) each."""
    dots = a @ b.transpose(1, 2)
    return (a.square().sum(-1, keepdim=True) + b.square().sum(-1).unsqueeze(1) - 2 * dots).clamp_min(0)


def cycle_back(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Whether each frame of `a` returns to itself through its soft nearest neighbour in `b`.

    a, b: (B, T, C) frame embeddings. Returns (hard, soft), both (B, T): hard is True where
    a_i is strictly the nearest frame of `a` to the soft nearest neighbour of a_i in `b`;
    soft is the probability of landing on a_i, softmax_k(-|b~_i - a_k|^2 / temperature) at
    k = i (TCC's cycle-back classification).
    """
    weights = torch.softmax(-_sq_distances(a, b) / temperature, dim=-1)
    logits = -_sq_distances(weights @ b, a) / temperature  # (B, T, T): row i scores every a_k
    own = logits.diagonal(dim1=-2, dim2=-1)
    eye = torch.eye(a.shape[1], dtype=torch.bool, device=a.device)
    hard = own > logits.masked_fill(eye, float("-inf")).amax(dim=-1)
    return hard, torch.softmax(logits, dim=-1).diagonal(dim1=-2, dim2=-1)


def frame_consistency(squeezed: torch.Tensor, recurrent: torch.Tensor,
                      temperature: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """(hard, soft), (B, T) each: frame t cycles back both ways (s -> h -> s and h -> s -> h),
    and the mean of the two soft cycle-back probabilities."""
    s, h = _frame_embeddings(squeezed), _frame_embeddings(recurrent)
    hard_s, soft_s = cycle_back(s, h, temperature)
    hard_h, soft_h = cycle_back(h, s, temperature)
    return hard_s & hard_h, (soft_s + soft_h) / 2


def cycle_consistency(squeezed: torch.Tensor, recurrent: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """(B,): fraction of frames that cycle back in both directions."""
    return frame_consistency(squeezed, recurrent, temperature)[0].float().mean(dim=1)


# --- the block ----------------------------------------------------------------------------

def check_gate_args(threshold: float, temperature: float, mode: str, gradient: str = "recurrent") -> None:
    """ValueError naming the first bad gate argument."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold (fraction of cycle-consistent frames) must be in (0, 1], got {threshold!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if mode not in GATE_MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, GATE_MODES))}, got {mode!r}")
    if gradient not in GATE_GRADIENTS:
        raise ValueError(f"gate_gradient must be one of {', '.join(map(repr, GATE_GRADIENTS))}, got {gradient!r}")


class SqueezeRecursionGate(nn.Module):
    """The SRTG block: maps a (B, C, T, H, W) feature map to one of the same shape."""

    def __init__(self, channels: int, lstm_layers: int = 2, gates: bool = True, threshold: float = 1.0,
                 temperature: float = 0.1, mode: str = "frame", gradient: str = "recurrent") -> None:
        super().__init__()
        check_gate_args(threshold, temperature, mode, gradient)
        self.lstm = nn.LSTM(channels, channels, num_layers=lstm_layers, batch_first=True)
        self.gates = gates
        self.threshold = threshold
        self.temperature = temperature
        self.mode = mode
        self.gradient = gradient
        self.last_gate: torch.Tensor | None = None
        self.last_consistency: torch.Tensor | None = None
        with torch.no_grad():  # PyTorch's init for the weights; every gate bias at LSTM_BIAS (two vectors add up)
            for name, param in self.lstm.named_parameters():
                if name.startswith("bias_"):
                    param.fill_(LSTM_BIAS / 2)

    def gate(self, squeezed: torch.Tensor, recurrent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(gate, consistency). gate: (B, T) ("frame") or (B,) ("clip"), exactly 0 or 1 in the forward
        pass, the soft cycle-back probability's gradient in the backward pass; consistency: (B,)
        fraction of frames that cycle back."""
        with _full_precision(squeezed.device):
            hard, soft = frame_consistency(squeezed.float(), recurrent.float(), self.temperature)
        consistency = hard.float().mean(dim=1)
        if self.mode == "frame":
            opened, surrogate = hard.float(), soft
        else:
            opened, surrogate = (consistency >= self.threshold).float(), soft.mean(dim=1)
        return opened + (surrogate - surrogate.detach()), consistency

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = x.mean(dim=(3, 4)).transpose(1, 2)  # (B, T, C)
        recurrent, _ = self.lstm(squeezed)  # (B, T, C)
        recalibrated = x * recurrent.transpose(1, 2)[..., None, None].to(x.dtype)
        if not self.gates:
            self._keep(x.new_ones(x.shape[0]), None)
            return recalibrated
        if self.gradient == "recurrent" and torch.is_grad_enabled():
            # The same decision, from an LSTM pass on detached features: the straight-through
            # gradient then trains the LSTM only, and never reaches the backbone. Without
            # autograd both passes give the same values, so inference runs the LSTM once.
            g, consistency = self.gate(squeezed.detach(), self.lstm(squeezed.detach())[0])
        else:
            g, consistency = self.gate(squeezed, recurrent)
        self._keep(g, consistency)
        g = g.to(x.dtype).view(x.shape[0], 1, -1, 1, 1)  # per frame, or per clip broadcast over frames
        return x + g * (recalibrated - x)

    def _keep(self, gate: torch.Tensor, consistency: torch.Tensor | None) -> None:
        """Keeps the latest decisions for inspection; a traced or compiled graph keeps no side state."""
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return
        self.last_gate = gate.detach()
        self.last_consistency = None if consistency is None else consistency.detach()

    def extra_repr(self) -> str:
        return (f"gates={self.gates}, mode={self.mode!r}, threshold={self.threshold}, "
                f"temperature={self.temperature}, gradient={self.gradient!r}")


def _full_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast off (float32 distances and argmax) where the device has autocast at all."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def gate_open_rates(model: nn.Module) -> dict[str, torch.Tensor]:
    """Stage name ("layer1".."layer4") -> fraction of the gate decisions that were open in the
    model's most recent forward, averaged over the SRTG blocks of that stage (detached float
    scalar tensors). A block with `gates=False` counts as always open; blocks that have not run
    yet are left out; {} for a model without SRTG blocks."""
    rates: dict[str, list[torch.Tensor]] = {}
    for name, module in model.named_modules():
        if isinstance(module, SqueezeRecursionGate) and module.last_gate is not None:
            rates.setdefault(_stage_of(name), []).append(module.last_gate.float().mean())
    return {stage: torch.stack(values).mean().detach() for stage, values in rates.items()}


def _stage_of(name: str) -> str:
    """"layer2" for "layer2.1.extra" (also under a prefix such as "model."), else the block's parent path."""
    parts = name.split(".")
    stage = next((p for p in parts if re.fullmatch(r"layer\d+", p)), None)
    return stage or ".".join(parts[:-1]) or name


# --- the published depth-50 block -----------------------------------------------------------

class SRTGBottleneck(nn.Module):
    """1x1x1 -> 3x3x3 (or (2+1)D) -> 1x1x1 convs, all `planes` wide (no expansion), a shortcut,
    ReLU, then `extra` (the SRTG block) on the block output, as in the published SRTG code."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, conv: ConvKind, stride: int = 1,
                 extra: Callable[[int], nn.Module] | None = None) -> None:
        super().__init__()
        mid = factorised_planes(in_planes, planes)  # (2+1)D middle width from the block's input width
        self.conv1 = nn.Sequential(nn.Conv3d(in_planes, planes, 1, bias=False), nn.BatchNorm3d(planes),
                                   nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv.build(planes, planes, mid, stride), nn.BatchNorm3d(planes),
                                   nn.ReLU(inplace=True))
        self.conv3 = nn.Sequential(nn.Conv3d(planes, planes, 1, bias=False), nn.BatchNorm3d(planes))
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_planes, planes, 1, conv.shortcut_stride(stride), bias=False), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.extra = extra(planes) if extra is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.conv3(self.conv2(self.conv1(x))) + identity)
        return out if self.extra is None else self.extra(out)


# --- models ---------------------------------------------------------------------------------

_CONVS: dict[str, tuple[ConvKind, ...]] = {"r3d": (CONV_3D,) * 4, "r2plus1d": (CONV_2PLUS1D,) * 4,
                                           "mc3": (CONV_3D,) + (CONV_2D,) * 3}
_DEPTHS: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}


def srtg_resnet(family: str, depth: int | None, num_classes: int, pooling: str = "max", gates: bool = True,
                lstm_layers: int = 2, gate_mode: str = "frame", gate_threshold: float = 1.0,
                gate_temperature: float = 0.1, gate_gradient: str = "recurrent", stem_pool: bool = False,
                **kwargs: Any) -> VideoResNet:
    """A VideoResNet of `family` with an SRTG block at the end of every residual block.

    depth 18/34: basic blocks; 50: the published bottleneck (SRTGBottleneck); None: the
    `layers` given (basic blocks). Other kwargs (layers, base_width, dropout, pool_args,
    stem_pool_kernel, ...) go to VideoResNet.
    """
    def extra(channels: int) -> nn.Module:
        return SqueezeRecursionGate(channels, lstm_layers, gates, gate_threshold, gate_temperature, gate_mode,
                                    gate_gradient)

    check_gate_args(gate_threshold, gate_temperature, gate_mode, gate_gradient)
    block = "basic"
    if depth is not None:
        block, layers = _DEPTHS[depth]
        kwargs.setdefault("layers", layers)
    kwargs.update(num_classes=num_classes, pooling=pooling, stem_pool=stem_pool)
    if block == "basic":
        return video_resnet(family, None, block_extra=extra, **kwargs)
    # VideoResNet builds basic-block stages of the same widths (expansion 1), then the published
    # bottleneck stages replace them.
    model = video_resnet(family, None, **kwargs)
    in_planes = width = kwargs.get("base_width", 64)
    for i, (blocks, conv) in enumerate(zip(kwargs["layers"], _CONVS[family])):
        planes = width * 2 ** i
        stage = []
        for j in range(blocks):
            stride = 2 if i > 0 and j == 0 else 1
            stage.append(SRTGBottleneck(in_planes, planes, conv, stride, extra))
            in_planes = planes
        setattr(model, f"layer{i + 1}", _initialised(nn.Sequential(*stage), kwargs.get("zero_init_residual", False)))
    return model


def _initialised(stage: nn.Sequential, zero_init_residual: bool) -> nn.Sequential:
    init_weights(stage)  # the project's conv / batch-norm init (skips the meta device)
    for block in stage:
        if zero_init_residual and not block.conv3[1].weight.is_meta:
            nn.init.zeros_(block.conv3[1].weight)
    return stage


def _register(name: str, family: str, depth: int | None, description: str,
              defaults: dict[str, Any] | None = None) -> None:
    def builder(num_classes: int, pooling: str = "max", **kwargs: Any) -> VideoResNet:
        return srtg_resnet(family, depth, num_classes, pooling, **{**(defaults or {}), **kwargs})

    builder.__name__ = builder.__qualname__ = name
    register_model(name, "srtg", description)(builder)


for _depth in (18, 34, 50):
    _register(f"srtg_r3d_{_depth}", "r3d", _depth, f"SRTG R3D-{_depth}: R3D-{_depth} with SRTG blocks, no stem pool")
    _register(f"srtg_r2plus1d_{_depth}", "r2plus1d", _depth,
              f"SRTG R(2+1)D-{_depth}: R(2+1)D-{_depth} with SRTG blocks, no stem pool")
_register("srtg_r2plus1d_tiny", "r2plus1d", None, "SRTG on r2plus1d_tiny (CPU demo size), 1-layer LSTM, no stem pool",
          {**TINY, "lstm_layers": 1})
