"""R3D, MC3 and R(2+1)D video ResNets (Tran et al., CVPR 2018) at depths 18, 34 and 50.

Laid out as the SoftPool and SRTG papers used them: a stem convolution, then a stem
pool (the swap point: max by default, any method of the pooling registry), four
residual stages, and a head on adaptive average pooling so that any clip length and
crop size work. With `stem_pool=False` the layout (and parameter count) is
torchvision's `r3d_18`, `mc3_18` and `r2plus1d_18`, and for depths 34 and 50
torchvision's VideoResNet class with its BasicBlock / Bottleneck (`r2plus1d_50` only
with `mid_channels="torchvision"`).

The middle width of each (2+1)D conv (`mid_channels`, see layers.MID_CHANNELS):
"tran" sizes each conv by Tran et al.'s formula from its own input and output widths;
"torchvision" sizes every conv of a block from the block's input width, as torchvision
does. The default "auto" is "torchvision" for BasicBlock nets (18, 34 and the tiny
nets keep torchvision's state dict) and "tran" for Bottleneck nets: R(2+1)D-50 then has
47.0M parameters like R3D-50's 47.0M ("torchvision": 53.9M).

Knobs: `base_width` (stage widths are base_width x 1, 2, 4, 8), `layers` (blocks per
stage), `stem_pool_kernel`/`stem_pool_stride` (padded for SAME output sizes), `stem_pool_placement`
("equal": those for every method; "paper": the SoftPool paper's published geometry, 2x2x2
stride 2 for SoftPool and 3x3x3 stride 2 padding 1 for the others),
`head_pooling`, `dropout`, `mid_channels`, `block_extra` (a module factory applied
inside every block; SRTG uses it).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .layers import (
    CONV_2D,
    CONV_2PLUS1D,
    CONV_3D,
    MID_CHANNELS,
    ConvKind,
    block_mid_planes,
    check_model_args,
    init_weights,
    make_head_pool,
    make_pool,
    same_geometry,
    scaled,
    triple,
)
from .registry import register_model

# channels -> module mapping a (B, C, T, H, W) tensor to one of the same shape
BlockExtra = Callable[[int], nn.Module]


class BasicBlock(nn.Module):
    """Two 3x3x3 (or factorised) convs with an identity or 1x1x1 shortcut.

    `extra`, if given, runs on the block output (after the residual sum and ReLU).
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, conv: ConvKind, stride: int = 1,
                 extra: BlockExtra | None = None, mid_channels: str = "auto") -> None:
        super().__init__()
        mid1, mid2 = block_mid_planes(mid_channels, False, in_planes, planes)  # "auto": torchvision's
        self.conv1 = nn.Sequential(conv.build(in_planes, planes, mid1, stride), nn.BatchNorm3d(planes),
                                   nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv.build(planes, planes, mid2, 1), nn.BatchNorm3d(planes))
        self.downsample = _downsample(in_planes, planes * self.expansion, conv, stride)
        self.relu = nn.ReLU(inplace=True)
        self.extra = extra(planes * self.expansion) if extra is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.conv2(self.conv1(x)) + identity)
        return out if self.extra is None else self.extra(out)


class Bottleneck(nn.Module):
    """1x1x1 reduce -> 3x3x3 (or factorised) -> 1x1x1 expand (x4), with a shortcut.

    `extra`, if given, runs on the narrow features after the middle conv, where the
    width is at most 8 x base_width (a recurrent gate on the 4x wider output would
    cost 16x the parameters).
    """

    expansion = 4

    def __init__(self, in_planes: int, planes: int, conv: ConvKind, stride: int = 1,
                 extra: BlockExtra | None = None, mid_channels: str = "auto") -> None:
        super().__init__()
        mid, _ = block_mid_planes(mid_channels, True, in_planes, planes)  # "auto": Tran et al.'s
        out_planes = planes * self.expansion
        self.conv1 = nn.Sequential(nn.Conv3d(in_planes, planes, 1, bias=False), nn.BatchNorm3d(planes),
                                   nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv.build(planes, planes, mid, stride), nn.BatchNorm3d(planes),
                                   nn.ReLU(inplace=True))
        self.extra = extra(planes) if extra is not None else None
        self.conv3 = nn.Sequential(nn.Conv3d(planes, out_planes, 1, bias=False), nn.BatchNorm3d(out_planes))
        self.downsample = _downsample(in_planes, out_planes, conv, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.conv1(x))
        if self.extra is not None:
            out = self.extra(out)
        return self.relu(self.conv3(out) + identity)


def _downsample(in_planes: int, out_planes: int, conv: ConvKind, stride: int) -> nn.Module | None:
    if stride == 1 and in_planes == out_planes:
        return None
    return nn.Sequential(nn.Conv3d(in_planes, out_planes, 1, conv.shortcut_stride(stride), bias=False),
                         nn.BatchNorm3d(out_planes))


def r3d_stem(in_channels: int, width: int) -> nn.Module:
    """3x7x7 conv, spatial stride 2."""
    return nn.Sequential(nn.Conv3d(in_channels, width, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
                         nn.BatchNorm3d(width), nn.ReLU(inplace=True))


def r2plus1d_stem(in_channels: int, width: int) -> nn.Module:
    """1x7x7 spatial conv then 3x1x1 temporal conv; 45 middle channels at width 64 (as published)."""
    mid = scaled(45, width / 64)
    return nn.Sequential(
        nn.Conv3d(in_channels, mid, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
        nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
        nn.Conv3d(mid, width, (3, 1, 1), 1, (1, 0, 0), bias=False),
        nn.BatchNorm3d(width), nn.ReLU(inplace=True))


STEMS: dict[str, Callable[[int, int], nn.Module]] = {"r3d": r3d_stem, "r2plus1d": r2plus1d_stem}
BLOCKS: dict[str, type[BasicBlock | Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


# "equal": every method pools the stem with stem_pool_kernel / stem_pool_stride (the fair
# comparison, this suite's default). "paper": the geometry of the SoftPool paper's published
# code (its SRTG/ResNet video models), which differs per method: `paper_stem_pool`.
STEM_POOL_PLACEMENTS: tuple[str, ...] = ("equal", "paper")


def paper_stem_pool(pooling: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(kernel, stride) of the stem pool as the SoftPool paper's code placed it: SoftPool3d with a
    2x2x2 kernel and stride 2, every other method as its MaxPool3d(3, 2, 1), so both halve time
    as well as space (SAME padding gives the 1 of the 3x3x3 kernel)."""
    return ((2, 2, 2), (2, 2, 2)) if pooling == "softpool" else ((3, 3, 3), (2, 2, 2))


class VideoResNet(nn.Module):
    """Stem -> stem pool -> 4 residual stages -> adaptive average pool -> dropout -> linear.

    Pooling sites: `stem_pool` (unless `stem_pool=False`). `head_pool` is the global
    pool (adaptive average unless `head_pooling` names another method) that makes any
    input size work; it is not a swap site.
    """

    def __init__(self, block: str, convs: Sequence[ConvKind], layers: Sequence[int], stem: str,
                 num_classes: int, pooling: str = "max", pool_args: Mapping[str, Any] | None = None,
                 stem_pool: bool = True, stem_pool_kernel: int | Sequence[int] = (1, 3, 3),
                 stem_pool_stride: int | Sequence[int] = (1, 2, 2), stem_pool_placement: str = "equal",
                 base_width: int = 64,
                 dropout: float = 0.0, block_extra: BlockExtra | None = None, in_channels: int = 3,
                 zero_init_residual: bool = False, head_pooling: str = "avg", mid_channels: str = "auto") -> None:
        super().__init__()
        check_model_args(num_classes, pooling, pool_args)
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {sorted(BLOCKS)}, got {block!r}")
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {sorted(STEMS)}, got {stem!r}")
        layers = tuple(layers)
        if len(layers) != 4 or not all(isinstance(n, int) and n >= 1 for n in layers):
            raise ValueError(f"layers must be 4 positive ints (blocks per stage), got {layers!r}")
        if len(convs) != 4:
            raise ValueError(f"convs must give one ConvKind per stage (4), got {len(convs)}")
        if not isinstance(base_width, int) or base_width < 1:
            raise ValueError(f"base_width must be a positive int, got {base_width!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if mid_channels not in MID_CHANNELS:
            raise ValueError(f"mid_channels must be one of {', '.join(map(repr, MID_CHANNELS))}, "
                             f"got {mid_channels!r}")
        block_cls = BLOCKS[block]
        self.pooling = pooling
        self.mid_channels = mid_channels

        self.stem = STEMS[stem](in_channels, base_width)
        if stem_pool_placement not in STEM_POOL_PLACEMENTS:
            raise ValueError(f"stem_pool_placement must be one of {STEM_POOL_PLACEMENTS}, got {stem_pool_placement!r}")
        if stem_pool:
            if stem_pool_placement == "paper":
                stem_pool_kernel, stem_pool_stride = paper_stem_pool(pooling)
            kernel = triple(stem_pool_kernel, "stem_pool_kernel")
            stride = triple(stem_pool_stride, "stem_pool_stride")
            padding, ceil_mode = same_geometry(kernel, stride, "stem_pool_kernel")
            self.stem_pool = make_pool(pooling, kernel, stride, padding, ceil_mode, pool_args=pool_args)
        else:
            self.stem_pool = nn.Identity()

        in_planes = base_width
        stages = []
        for i, (blocks, conv) in enumerate(zip(layers, convs)):
            planes = base_width * 2 ** i
            stride = 1 if i == 0 else 2
            stage = []
            for j in range(blocks):
                stage.append(block_cls(in_planes, planes, conv, stride if j == 0 else 1, block_extra, mid_channels))
                in_planes = planes * block_cls.expansion
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

        self.head_pool = make_head_pool(head_pooling)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_planes, num_classes)
        self.num_features = in_planes
        _init_weights(self, zero_init_residual)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_pool(self.stem(x))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head_pool(self.forward_features(x)).flatten(1)
        return self.fc(self.dropout(x))


def _init_weights(model: nn.Module, zero_init_residual: bool) -> None:
    init_weights(model)
    if zero_init_residual and not any(p.is_meta for p in model.parameters()):  # each block starts as its shortcut
        for m in model.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.conv2[1].weight)
            elif isinstance(m, Bottleneck):
                nn.init.zeros_(m.conv3[1].weight)


# --- named variants -----------------------------------------------------------------------

_DEPTHS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
}
_FAMILIES: dict[str, tuple[str, tuple[ConvKind, ...]]] = {
    "r3d": ("r3d", (CONV_3D,) * 4),
    "mc3": ("r3d", (CONV_3D,) + (CONV_2D,) * 3),
    "r2plus1d": ("r2plus1d", (CONV_2PLUS1D,) * 4),
}
# Small enough to train on 2 CPU cores in minutes, still with temporal convs in every stage.
TINY: dict[str, Any] = {"layers": (1, 1, 1, 1), "base_width": 8}


def video_resnet(family: str, depth: int | None = None, **kwargs: Any) -> VideoResNet:
    """A VideoResNet of `family` ("r3d", "mc3", "r2plus1d"); `depth` picks block and layers,
    any of which kwargs may override."""
    stem, convs = _FAMILIES[family]
    config: dict[str, Any] = {"stem": stem, "convs": convs, "block": "basic"}
    if depth is not None:
        block, layers = _DEPTHS[depth]
        config.update(block=block, layers=layers)
    config.update(kwargs)
    return VideoResNet(**config)


def _register(name: str, family: str, depth: int | None, description: str,
              defaults: Mapping[str, Any] | None = None) -> None:
    def builder(num_classes: int, pooling: str = "max", **kwargs: Any) -> VideoResNet:
        return video_resnet(family, depth, num_classes=num_classes, pooling=pooling,
                            **{**dict(defaults or {}), **kwargs})

    builder.__name__ = builder.__qualname__ = name
    register_model(name, family, description)(builder)


for _depth in (18, 34, 50):
    _register(f"r3d_{_depth}", "r3d", _depth, f"R3D-{_depth}: 3x3x3 residual net, stem pool")
    _register(f"r2plus1d_{_depth}", "r2plus1d", _depth,
              f"R(2+1)D-{_depth}: (1x3x3 then 3x1x1) residual net, stem pool")
_register("mc3_18", "mc3", 18, "MC3-18: 3D convs in stage 1, 2D convs above, stem pool")
_register("r3d_tiny", "r3d", None, "R3D, width 8, one block per stage (CPU demo size)", TINY)
_register("r2plus1d_tiny", "r2plus1d", None, "R(2+1)D, width 8, one block per stage (CPU demo size)", TINY)
