"""The VideoDataModule's arguments in four groups: how videos are decoded (`Decoding`), which
frames make a clip (`ClipSampling`), what is done to a clip (`Transforms`) and how batches
are loaded (`Loading`).

Each group is a frozen dataclass whose fields keep the names the flat arguments had, and
checks its values when built, naming the group in its errors ("loading.batch_size must be a
positive integer, got 0"). On the command line and in configs a group is a nested mapping:

    --data.init_args.loading.batch_size 4 --data.init_args.sampling.clip_len 8

    data:
      class_path: softpool_video.datamodules.UCF101DataModule
      init_args:
        root: data/ucf101
        sampling: {clip_len: 16, frame_interval: 2}
        loading: {batch_size: 16, num_workers: 8}

Each group builds what it defines, for every stage: `ClipSampling.sampler(stage)`,
`Transforms.transform(stage)`, `Loading.loader_arguments()`; the test views of predict and
export parity are built by the same methods (softpool_video/evaluation/views.py).

Fields a config leaves out keep their defaults. In Python a group is passed as the
dataclass or as a plain dict (`loading={"batch_size": 4}`); the datamodule's saved
hyper-parameters hold plain dicts. `group_arguments` / `flatten_arguments` convert between
the grouped form and the flat one of checkpoints written before the grouping.

Lightning-free, like the rest of the package outside the DataModules.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from softpool_video import option_groups

from .clip_sampling import SHORT_VIDEO_MODES, ClipSampler
from .dataset import DEFAULT_DECODE_TIMEOUT
from .decoders import DECODERS
from .index_cache import PROBE_DEPTHS
from .transforms import KINETICS_MEAN, KINETICS_STD, TRAIN_CROPS, EvalTransform, TrainTransform

Stage = Literal["train", "val", "test"]


def _positive_int(group: str, name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{group}.{name} must be a positive integer, got {value!r}")


def _one_of(group: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{group}.{name}={value!r} is not supported; choose one of {choices}")


def _seconds_or_none(group: str, name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not value > 0):
        raise ValueError(f"{group}.{name} must be a positive number of seconds or None, got {value!r}")


def _as_tuple(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if not isinstance(value, tuple):
        object.__setattr__(obj, name, tuple(value))  # frozen: lists (YAML, JSON) become tuples


@dataclass(frozen=True)
class Decoding:
    """How videos are decoded and indexed.

    Args:
        decoder: 'decord' (default) or 'pyav'; the other decoder is the fallback.
        decode_threads: decoder threads per worker (1 suits DataLoader workers).
        decode_timeout: seconds after which a video still decoding is abandoned as hung,
            skipped and reported (None: wait forever).
        probe: how deeply the index checks each video once: 'header', 'fast', 'full'.
        cache_dir: where the video index lives (None: <root>/.softpool_video).
        index_workers: threads probing videos while building the index (None: auto).
    """

    decoder: Literal["decord", "pyav"] = "decord"
    decode_threads: int = 1
    decode_timeout: float | None = DEFAULT_DECODE_TIMEOUT
    probe: Literal["header", "fast", "full"] = "fast"
    cache_dir: str | Path | None = None
    index_workers: int | None = None

    def __post_init__(self) -> None:
        _one_of("decoding", "decoder", self.decoder, DECODERS)
        _positive_int("decoding", "decode_threads", self.decode_threads)
        _seconds_or_none("decoding", "decode_timeout", self.decode_timeout)
        _one_of("decoding", "probe", self.probe, PROBE_DEPTHS)
        if isinstance(self.cache_dir, Path):
            object.__setattr__(self, "cache_dir", str(self.cache_dir))  # plain data in hparams


@dataclass(frozen=True)
class ClipSampling:
    """Which frames make a clip, and how many clips a video gives in evaluation.

    Args:
        clip_len: frames per clip.
        frame_interval: take every `frame_interval`-th frame.
        val_clips: clips per video in validation (1: the centre clip).
        test_clips: clips per video in test / predict, spread uniformly (default 10).
        short_video: 'loop' or 'repeat_last' for videos shorter than a clip.
    """

    clip_len: int = 16
    frame_interval: int = 2
    val_clips: int = 1
    test_clips: int = 10
    short_video: Literal["loop", "repeat_last"] = "loop"

    def __post_init__(self) -> None:
        for name in ("clip_len", "frame_interval", "val_clips", "test_clips"):
            _positive_int("sampling", name, getattr(self, name))
        _one_of("sampling", "short_video", self.short_video, SHORT_VIDEO_MODES)

    def clips(self, stage: Stage) -> int:
        """Clips per video in `stage` (training takes one random clip)."""
        return {"train": 1, "val": self.val_clips, "test": self.test_clips}[stage]

    def sampler(self, stage: Stage) -> ClipSampler:
        """A random clip in training; in evaluation `clips(stage)` uniform clips, of which one
        is the centre clip (the same indices: clip_sampling.py)."""
        common = dict(clip_len=self.clip_len, frame_interval=self.frame_interval, short_video=self.short_video)
        if stage == "train":
            return ClipSampler("random", **common)
        clips = self.clips(stage)
        return ClipSampler("centre" if clips == 1 else "uniform", num_clips=clips, **common)


@dataclass(frozen=True)
class Transforms:
    """What is done to a decoded clip: resize, crops, flip, normalisation.

    Args:
        crop_size: side of the square crop fed to the model.
        resize_short: short side of the frames before the centre crop of training and before
            the evaluation crops (None: keep); the random training crops work from the
            decoded frame, whose scale they do not depend on.
        test_resize_short: short side before the test crops (None: same as resize_short).
        train_crop: 'random_resized', 'multi_scale' or 'centre'.
        train_scale: area range of the random resized crop.
        flip: random horizontal flip in training.
        mean: per-channel normalisation mean, applied last.
        std: per-channel normalisation standard deviation, applied last.
        val_crops: crops per clip in validation (1: the centre crop).
        test_crops: crops per clip in test / predict (default 3).
    """

    crop_size: int = 112
    resize_short: int | None = 128
    test_resize_short: int | None = None
    train_crop: Literal["random_resized", "multi_scale", "centre"] = "random_resized"
    train_scale: tuple[float, float] = (0.25, 1.0)
    flip: bool = True
    mean: tuple[float, float, float] = KINETICS_MEAN
    std: tuple[float, float, float] = KINETICS_STD
    val_crops: int = 1
    test_crops: int = 3

    def __post_init__(self) -> None:
        for name in ("crop_size", "val_crops", "test_crops"):
            _positive_int("transforms", name, getattr(self, name))
        _one_of("transforms", "train_crop", self.train_crop, TRAIN_CROPS)
        for name in ("train_scale", "mean", "std"):
            _as_tuple(self, name)

    @property
    def test_resize(self) -> int | None:
        """The short side before the test crops: test_resize_short, else resize_short."""
        return self.resize_short if self.test_resize_short is None else self.test_resize_short

    def crops(self, stage: Stage) -> int:
        """Crops per clip in `stage` (training takes one)."""
        return {"train": 1, "val": self.val_crops, "test": self.test_crops}[stage]

    def transform(self, stage: Stage) -> TrainTransform | EvalTransform:
        if stage == "train":
            return TrainTransform(self.crop_size, self.resize_short, crop=self.train_crop,
                                  scale=self.train_scale, flip=self.flip, mean=self.mean, std=self.std)
        resize = self.resize_short if stage == "val" else self.test_resize
        return EvalTransform(self.crop_size, resize or self.crop_size, num_crops=self.crops(stage),
                             mean=self.mean, std=self.std)


@dataclass(frozen=True)
class Loading:
    """How the DataLoaders batch clips (per device) and run their workers.

    Args:
        batch_size: clips per batch (per device).
        num_workers: DataLoader worker processes.
        pin_memory: pin batches for faster host-to-GPU copies (None: when CUDA is available).
        persistent_workers: keep workers alive between epochs (None: when num_workers > 0).
        prefetch_factor: batches each worker prepares ahead (None: PyTorch's default).
        drop_last: drop the last incomplete training batch.
        worker_timeout: seconds a DataLoader worker may go without sending a batch before it
            is taken as stuck (somewhere decode_timeout cannot reach), replaced and reported
            (None: no limit; with workers only).
    """

    batch_size: int = 8
    num_workers: int = 2
    pin_memory: bool | None = None
    persistent_workers: bool | None = None
    prefetch_factor: int | None = None
    drop_last: bool = True
    worker_timeout: float | None = None

    def __post_init__(self) -> None:
        _positive_int("loading", "batch_size", self.batch_size)
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"loading.num_workers must be a non-negative integer, got {self.num_workers!r}")
        _seconds_or_none("loading", "worker_timeout", self.worker_timeout)

    def loader_arguments(self) -> dict[str, Any]:
        """The DataLoader's batching and worker arguments, with the None defaults decided."""
        workers = self.num_workers
        arguments: dict[str, Any] = dict(
            batch_size=self.batch_size, num_workers=workers,
            pin_memory=torch.cuda.is_available() if self.pin_memory is None else self.pin_memory,
            persistent_workers=workers > 0 if self.persistent_workers is None else self.persistent_workers and workers > 0)
        if workers > 0 and self.prefetch_factor is not None:
            arguments["prefetch_factor"] = self.prefetch_factor
        if workers > 0 and self.worker_timeout is not None:
            arguments["timeout"] = float(self.worker_timeout)
        return arguments


# The VideoDataModule argument each group is passed as.
GROUPS: dict[str, type] = {"decoding": Decoding, "sampling": ClipSampling, "transforms": Transforms,
                           "loading": Loading}


def group_arguments(data: Mapping[str, Any]) -> dict[str, Any]:
    """Flat datamodule arguments (`batch_size=...`, as checkpoints written before the grouping
    record them) moved into their groups (`loading={"batch_size": ...}`)."""
    return option_groups.group_arguments(data, GROUPS)


def flatten_arguments(data: Mapping[str, Any]) -> dict[str, Any]:
    """Each group's fields at the top level, for readers of either form of hyper-parameters."""
    return option_groups.flatten_arguments(data, GROUPS)
