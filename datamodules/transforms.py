"""Clip transforms built from torchvision.transforms.v2.

A clip arrives from a decoder as uint8 (T, H, W, C) and leaves as float32 (C, T, H, W).
Everything runs on uint8 (cheap resizes and crops, a quarter of the memory) until the
last two steps: convert to float in [0, 1], then normalise.

- `TrainTransform`: a random resized crop (default) or a TSN-style multi-scale crop
  straight from the decoded frame, or a short-side resize and a centre crop; horizontal
  flip; normalise.
- `EvalTransform`: short-side resize, then crop number `crop_index` of `num_crops`
  spatial crops spread along the longer side (1 -> centre crop, 3 -> the usual
  left/centre/right three-crop); normalise.

All options are plain constructor arguments, so LightningCLI / jsonargparse can set them
from YAML.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

# Kinetics-400 statistics, as torchvision's video models are trained with.
KINETICS_MEAN: tuple[float, float, float] = (0.43216, 0.394666, 0.37645)
KINETICS_STD: tuple[float, float, float] = (0.22803, 0.22145, 0.216989)

TrainCrop = Literal["random_resized", "multi_scale", "centre"]
TRAIN_CROPS: tuple[str, ...] = ("random_resized", "multi_scale", "centre")


def _to_video(frames: torch.Tensor) -> tv_tensors.Video:
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3) or frames.dtype != torch.uint8:
        raise ValueError("expected uint8 frames of shape (T, H, W, C) with C in (1, 3), got "
                         f"{frames.dtype} {tuple(frames.shape)}")
    return tv_tensors.Video(frames.permute(0, 3, 1, 2))


def _to_cthw(video: torch.Tensor) -> torch.Tensor:
    return video.as_subclass(torch.Tensor).permute(1, 0, 2, 3).contiguous()


def _check_positive(name: str, value: int | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer{' or None' if allow_none else ''}, "
                         f"got {value!r}")


class MultiScaleCrop:
    """TSN-style multi-scale crop: crop width and height are each `scale * short side` for
    scales at most `max_distort` steps apart, at a random position, resized to `size`.

    Operates on a tv_tensors.Video (T, C, H, W); all frames get the same crop.
    """

    def __init__(self, size: int, scales: Sequence[float] = (1.0, 0.875, 0.75, 0.66),
                 max_distort: int = 1) -> None:
        _check_positive("size", size)
        if not scales or any(not 0 < s <= 1 for s in scales):
            raise ValueError(f"scales must be non-empty fractions in (0, 1], got {scales!r}")
        self.size = size
        self.scales = tuple(float(s) for s in scales)
        self.max_distort = int(max_distort)
        self._pairs = [(i, j) for i in range(len(self.scales)) for j in range(len(self.scales))
                       if abs(i - j) <= self.max_distort]

    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        h, w = video.shape[-2:]
        base = min(h, w)
        i, j = self._pairs[int(torch.randint(len(self._pairs), (1,)))]
        crop_h = max(1, min(h, int(base * self.scales[i])))
        crop_w = max(1, min(w, int(base * self.scales[j])))
        top = int(torch.randint(h - crop_h + 1, (1,)))
        left = int(torch.randint(w - crop_w + 1, (1,)))
        return F.resized_crop(video, top, left, crop_h, crop_w, [self.size, self.size],
                              antialias=True)

    def __repr__(self) -> str:
        return f"MultiScaleCrop(size={self.size}, scales={self.scales}, max_distort={self.max_distort})"


def spatial_crop_box(height: int, width: int, crop_size: int, crop_index: int,
                     num_crops: int) -> tuple[int, int]:
    """(top, left) of crop `crop_index` of `num_crops` square crops spread evenly along the
    longer side and centred on the shorter one."""
    if not 0 <= crop_index < num_crops:
        raise IndexError(f"crop_index must lie in [0, {num_crops - 1}], got {crop_index}")
    if crop_size > min(height, width):
        raise ValueError(f"crop_size={crop_size} exceeds the frame size {height}x{width}; "
                         "resize the short side to at least crop_size first")
    if num_crops == 1:
        return (height - crop_size) // 2, (width - crop_size) // 2
    pos = int(np.floor(np.linspace(0, max(height, width) - crop_size, num_crops)[crop_index] + 0.5))
    if width >= height:
        return (height - crop_size) // 2, pos
    return pos, (width - crop_size) // 2


class TrainTransform:
    """uint8 (T, H, W, C) -> normalised float (C, T, crop_size, crop_size), randomly augmented."""

    def __init__(self, crop_size: int = 112, resize_short: int | None = 128,
                 crop: TrainCrop = "random_resized",
                 scale: tuple[float, float] = (0.25, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 multi_scales: Sequence[float] = (1.0, 0.875, 0.75, 0.66),
                 flip: bool = True,
                 mean: Sequence[float] = KINETICS_MEAN,
                 std: Sequence[float] = KINETICS_STD) -> None:
        _check_positive("crop_size", crop_size)
        _check_positive("resize_short", resize_short, allow_none=True)
        if crop not in TRAIN_CROPS:
            raise ValueError(f"crop={crop!r} is not supported; choose one of {TRAIN_CROPS}")
        if crop == "centre" and resize_short is not None and resize_short < crop_size:
            raise ValueError(f"resize_short={resize_short} must be >= crop_size={crop_size} "
                             "for a centre crop")
        ops: list = []
        # The random resized and multi-scale crops choose their box as fractions of the
        # frame (area and aspect ratio, or of the short side), so resizing the whole frame
        # first would give the same boxes and only cost a second interpolation.
        if resize_short is not None and crop == "centre":
            ops.append(v2.Resize(resize_short, antialias=True))  # int -> short side
        if crop == "random_resized":
            ops.append(v2.RandomResizedCrop(crop_size, scale=tuple(scale), ratio=tuple(ratio),
                                            antialias=True))
        elif crop == "multi_scale":
            ops.append(MultiScaleCrop(crop_size, multi_scales))
        else:
            ops.append(v2.CenterCrop(crop_size))
        if flip:
            ops.append(v2.RandomHorizontalFlip())
        ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
        self.crop_size = crop_size
        self.pipeline = v2.Compose(ops)

    def __call__(self, frames: torch.Tensor, crop_index: int = 0) -> torch.Tensor:
        # crop_index is for evaluation views; training crops are random.
        return _to_cthw(self.pipeline(_to_video(frames)))

    def __repr__(self) -> str:
        return f"TrainTransform({self.pipeline})"


class EvalTransform:
    """uint8 (T, H, W, C) -> normalised float (C, T, crop_size, crop_size), deterministic.

    With `resize_short=None` the short side is resized to `crop_size`, so `num_crops` crops
    cover the whole long side (the SlowFast test protocol).
    """

    def __init__(self, crop_size: int = 112, resize_short: int | None = 128, num_crops: int = 1,
                 mean: Sequence[float] = KINETICS_MEAN,
                 std: Sequence[float] = KINETICS_STD) -> None:
        _check_positive("crop_size", crop_size)
        _check_positive("resize_short", resize_short, allow_none=True)
        _check_positive("num_crops", num_crops)
        resize_short = crop_size if resize_short is None else resize_short
        if resize_short < crop_size:
            raise ValueError(f"resize_short={resize_short} must be >= crop_size={crop_size}")
        self.crop_size = crop_size
        self.num_crops = num_crops
        self.resize = v2.Resize(resize_short, antialias=True)
        self.finish = v2.Compose([v2.ToDtype(torch.float32, scale=True),
                                  v2.Normalize(list(mean), list(std))])

    def __call__(self, frames: torch.Tensor, crop_index: int = 0) -> torch.Tensor:
        video = self.resize(_to_video(frames))
        top, left = spatial_crop_box(video.shape[-2], video.shape[-1], self.crop_size,
                                     crop_index, self.num_crops)
        video = F.crop(video, top, left, self.crop_size, self.crop_size)
        return _to_cthw(self.finish(video))

    def __repr__(self) -> str:
        return (f"EvalTransform(crop_size={self.crop_size}, num_crops={self.num_crops}, "
                f"{self.resize}, {self.finish})")
