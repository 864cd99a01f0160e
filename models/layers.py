"""Small building blocks shared by the model families.

Every pooling layer of every model is made by `make_pool`, which asks the
pooling registry; no model constructs a torch pooling class itself.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from softpool_video.pooling import build_adaptive_pool, build_pool
from softpool_video.pooling.arguments import pool_args, pooled_size
from softpool_video.pooling.registry import adaptive_pools, check_method

Triple = tuple[int, int, int]


def triple(value: int | Sequence[int], name: str) -> Triple:
    """(t, h, w) from an int or a 3-sequence; names the argument when it is neither."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value, value)
    try:
        values = tuple(value)
    except TypeError:
        raise ValueError(f"{name} must be an int or a sequence of 3 ints, got {value!r}") from None
    if len(values) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be an int or a sequence of 3 ints, got {value!r}")
    return values  # type: ignore[return-value]


def make_pool(method: str, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
              padding: int | Sequence[int] = 0, ceil_mode: bool = False,
              pool_args: Mapping[str, Any] | None = None) -> nn.Module:
    """A 3-d pooling site of the model: the registry's `method` with this geometry."""
    return build_pool(method, 3, kernel_size, stride, padding, ceil_mode, **dict(pool_args or {}))


def same_geometry(kernel_size: Triple, stride: Triple, name: str = "kernel_size") -> tuple[Triple, bool]:
    """(padding, ceil_mode) that give TensorFlow SAME's output size ceil(n / stride) for every n.

    Odd kernels pad (k - 1) / 2 on both sides with floor rounding. Even kernels pad
    (k - s) / 2 and let ceil_mode take the last, partial window (SAME pads the far side).
    The choice is checked against the pooled-size rule for n = 1..64 in every dim; a
    geometry no single (padding, ceil_mode) can express raises ValueError.
    """
    ceil_mode = any(k % 2 == 0 for k in kernel_size)
    padding = tuple((k - 1) // 2 if k % 2 else max(k - s, 0) // 2 for k, s in zip(kernel_size, stride))
    for k, s, p in zip(kernel_size, stride, padding):
        if any(pooled_size(n, k, s, p, 1, ceil_mode) != -(-n // s) for n in range(max(k - 2 * p, 1), 65)):
            raise ValueError(f"{name}={kernel_size!r} with stride={stride!r} has no SAME padding expressible "
                             f"as symmetric padding and one ceil_mode")
    return padding, ceil_mode  # type: ignore[return-value]


def make_head_pool(method: str = "avg") -> nn.Module:
    """The global (adaptive, output 1x1x1) pool of a classification head.

    Not a swap site: it is what lets any clip length and crop size reach the classifier.
    "avg" (the default) is nn.AdaptiveAvgPool3d; any method with an adaptive form works.
    """
    if method not in adaptive_pools():
        raise ValueError(f"head_pooling must be a method with an adaptive form ({', '.join(adaptive_pools())}), "
                         f"got {method!r}")
    return build_adaptive_pool(method, 3, 1)


class ClippedWindowHeadPool(nn.Module):
    """A head pool of a fixed `window` at stride 1 and no padding, each dim of the window
    clipped to the input's size, so any input works: a map smaller than the window in a
    dim is pooled whole in that dim (one position), a larger one gives n - window + 1
    positions. The method is any parameter-free registry method (default "avg").

    A head pool like the global ones: `adaptive` is True so that pool_sites lists it as
    the head, never as a swap site; `geometry` is the unclipped window. The clipped
    window depends only on the input's shape, static when tracing or exporting.
    """

    adaptive = True

    def __init__(self, method: str, window: int | Sequence[int]) -> None:
        super().__init__()
        check_method(method)
        self.method = method
        self.window = triple(window, "window")
        self.geometry = pool_args(3, self.window, 1)
        try:
            probe = build_pool(method, 3, self.window, 1)
        except (TypeError, ValueError) as err:
            raise ValueError(f"head_pooling {method!r} cannot pool the head window: {err}") from None
        if any(True for _ in probe.parameters()):
            raise ValueError(f"head_pooling {method!r} has parameters; a clipped window head takes a "
                             f"parameter-free method (e.g. avg, max, softpool); use the global head for it")

    def clipped_window(self, spatial: Sequence[int]) -> Triple:
        """The window for a (T, H, W) input: min(window, size) in each dim."""
        return tuple(min(k, int(n)) for k, n in zip(self.window, spatial))  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = build_pool(self.method, 3, self.clipped_window(x.shape[-3:]), 1)
        return pool.train(self.training)(x)

    def extra_repr(self) -> str:
        return f"method={self.method!r}, window={self.window} (clipped to the input), stride=1"


def check_model_args(num_classes: int, pooling: str, pool_args: Mapping[str, Any] | None) -> None:
    """Checks the arguments every model constructor shares."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    check_method(pooling)
    if pool_args is not None and not isinstance(pool_args, Mapping):
        raise ValueError(f"pool_args must be a dict of method arguments or None, got {pool_args!r}")


def init_weights(model: nn.Module) -> None:
    """He-normal Conv3d (zero bias), unit BatchNorm3d, N(0, 0.01) Linear. Nothing on the
    meta device (models built there only for sizing)."""
    if any(p.is_meta for p in model.parameters()):
        return
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def scaled(channels: int, width: float) -> int:
    """`channels` scaled by a width multiplier, never below 1."""
    return max(1, round(channels * width))


class ConvBnReLU(nn.Sequential):
    """Conv3d (no bias) -> BatchNorm3d -> ReLU: I3D's Unit3D and the ResNet stems."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                 bn_eps: float = 1e-5, relu: bool = True) -> None:
        layers: list[nn.Module] = [
            nn.Conv3d(in_channels, out_channels, kernel_size, stride, padding, bias=False),
            nn.BatchNorm3d(out_channels, eps=bn_eps),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


# --- the 3x3x3 convolution of a residual block, in its three factorisations -------------

def conv3d_full(in_planes: int, out_planes: int, mid_planes: int, stride: int) -> nn.Module:
    """Full 3x3x3 convolution (R3D); `mid_planes` is unused."""
    return nn.Conv3d(in_planes, out_planes, 3, stride, 1, bias=False)


def conv2plus1d(in_planes: int, out_planes: int, mid_planes: int, stride: int) -> nn.Module:
    """1x3x3 spatial conv -> BN -> ReLU -> 3x1x1 temporal conv (R(2+1)D)."""
    return nn.Sequential(
        nn.Conv3d(in_planes, mid_planes, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
        nn.BatchNorm3d(mid_planes),
        nn.ReLU(inplace=True),
        nn.Conv3d(mid_planes, out_planes, (3, 1, 1), (stride, 1, 1), (1, 0, 0), bias=False),
    )


def conv2d_only(in_planes: int, out_planes: int, mid_planes: int, stride: int) -> nn.Module:
    """1x3x3 convolution with no temporal extent (upper stages of MC3)."""
    return nn.Conv3d(in_planes, out_planes, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False)


@dataclass(frozen=True)
class ConvKind:
    """How a residual block convolves, and how its shortcut must stride to match."""

    name: str
    build: Callable[[int, int, int, int], nn.Module]
    strides_time: bool

    def shortcut_stride(self, stride: int) -> Triple:
        return (stride if self.strides_time else 1, stride, stride)


CONV_3D = ConvKind("3d", conv3d_full, strides_time=True)
CONV_2PLUS1D = ConvKind("2plus1d", conv2plus1d, strides_time=True)
CONV_2D = ConvKind("2d", conv2d_only, strides_time=False)


def factorised_planes(in_planes: int, out_planes: int, t: int = 3, d: int = 3) -> int:
    """Middle width M of a (2+1)D conv with (about) the parameters of the full t x d x d conv
    (Tran et al., CVPR 2018, eq. 1): M = floor(t d^2 N_in N_out / (d^2 N_in + t N_out)), with
    N_in, N_out the input and output channels it is given (see MID_CHANNELS for which ones)."""
    return (t * d * d * in_planes * out_planes) // (d * d * in_planes + t * out_planes)


# How the residual blocks size the middle width of their (2+1)D convs (unused by 3D/2D convs).
# "tran": Tran et al.'s formula from each conv's own channels. BasicBlock: conv1 (in_planes ->
#     planes) gets factorised_planes(in_planes, planes), conv2 (planes -> planes)
#     factorised_planes(planes, planes) = floor(9 planes / 4). Bottleneck: its middle conv
#     (planes -> planes) gets floor(9 planes / 4), so its parameters equal the 3x3x3 conv's (up
#     to rounding and the middle batch norm).
# "torchvision": torchvision's VideoResNet: every (2+1)D conv of a block gets
#     factorised_planes(in_planes, planes), in_planes being the block's input width. BasicBlock:
#     same as "tran" except conv2 of a stage's first (downsampling) block, which gets the narrower
#     factorised_planes(planes / 2, planes). Bottleneck: the middle conv gets
#     factorised_planes(4 planes, planes) (2 planes at a stage's first block, base_width in layer1's
#     first), wider than "tran" (177 vs 144 at planes=64).
# "auto": "torchvision" for BasicBlock (18/34 layers and the tiny nets: torchvision's exact state
#     dict), "tran" for Bottleneck (50 layers: R(2+1)D-50 about as large as R3D-50).
MID_CHANNELS = ("auto", "tran", "torchvision")


def block_mid_planes(mode: str, bottleneck: bool, in_planes: int, planes: int) -> tuple[int, int]:
    """(2+1)D middle widths of a block's (first, second) 3x3x3-position conv under `mode` (MID_CHANNELS).

    A Bottleneck has one such conv: use the first value."""
    if mode not in MID_CHANNELS:
        raise ValueError(f"mid_channels must be one of {', '.join(map(repr, MID_CHANNELS))}, got {mode!r}")
    if mode == "auto":
        mode = "tran" if bottleneck else "torchvision"
    if mode == "torchvision":
        mid = factorised_planes(in_planes, planes)
        return mid, mid
    if bottleneck:
        mid = factorised_planes(planes, planes)
        return mid, mid
    return factorised_planes(in_planes, planes), factorised_planes(planes, planes)
