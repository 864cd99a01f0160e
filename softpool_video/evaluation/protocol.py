"""The evaluation protocol of a trained model: how a video becomes its test views (uniform
clips x spatial crops, resize, crop, normalisation) and how their scores are combined.

It is read from the datamodule's saved hyper-parameters (a checkpoint's
`datamodule_hyper_parameters`, a model card, or a live datamodule's `hparams`), grouped
(`sampling: {clip_len: ...}`, `transforms: {...}`) or flat as checkpoints written before the
grouping have them; what they do not record falls back to the datamodule's own defaults,
read from its argument groups rather than copied here. `views.video_views` applies it to one
file.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

# The datamodule arguments a protocol reads (its defaults fill what a checkpoint lacks).
_DATAMODULE_FIELDS = ("clip_len", "frame_interval", "crop_size", "resize_short", "mean", "std", "short_video")


@cache
def datamodule_defaults() -> dict[str, Any]:
    """VideoDataModule's default value of each argument the protocol reads (from its groups)."""
    from softpool_video.datamodules import ClipSampling, Transforms

    defaults = {**asdict(ClipSampling()), **asdict(Transforms())}
    return {name: defaults[name] for name in _DATAMODULE_FIELDS}


@dataclass(frozen=True)
class EvaluationProtocol:
    """How a video becomes the model's input, and how its views are combined (test protocol)."""

    clip_len: int
    frame_interval: int
    crop_size: int
    resize_short: int | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_clips: int = 1
    num_crops: int = 1
    short_video: str = "loop"
    aggregation: str = "mean_softmax"

    @classmethod
    def from_hparams(cls, data: Mapping[str, Any], aggregation: str = "mean_softmax") -> EvaluationProtocol:
        """From a datamodule's hyper-parameters, grouped or flat: the test views
        (test_clips x test_crops).

        Without recorded test views it is one clip and one crop (not the datamodule's 10 x 3):
        a model that does not say how it was tested is fed the cheapest view."""
        from softpool_video.datamodules import flatten_arguments

        data = flatten_arguments(data)
        d = datamodule_defaults()
        resize = data.get("test_resize_short") or data.get("resize_short", d["resize_short"])
        return cls(clip_len=int(data.get("clip_len", d["clip_len"])),
                   frame_interval=int(data.get("frame_interval", d["frame_interval"])),
                   crop_size=int(data.get("crop_size", d["crop_size"])),
                   resize_short=None if resize is None else int(resize),
                   mean=tuple(float(v) for v in data.get("mean", d["mean"])),
                   std=tuple(float(v) for v in data.get("std", d["std"])),
                   num_clips=int(data.get("test_clips", data.get("num_clips", 1))),
                   num_crops=int(data.get("test_crops", data.get("num_crops", 1))),
                   short_video=str(data.get("short_video", d["short_video"])), aggregation=aggregation)

    @classmethod
    def from_datamodule(cls, datamodule: Any, aggregation: str = "mean_softmax") -> EvaluationProtocol:
        """From a live datamodule (its saved init arguments, as a checkpoint records them)."""
        return cls.from_hparams(dict(datamodule.hparams), aggregation)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (3, self.clip_len, self.crop_size, self.crop_size)

    def groups(self) -> tuple[Any, Any]:
        """The datamodule's sampling and transforms groups that test under this protocol: their
        `sampler("test")` and `transform("test")` cut the views (one recipe, options.py)."""
        from softpool_video.datamodules import ClipSampling, Transforms

        sampling = ClipSampling(clip_len=self.clip_len, frame_interval=self.frame_interval,
                                test_clips=self.num_clips, short_video=self.short_video)
        transforms = Transforms(crop_size=self.crop_size, resize_short=self.resize_short, mean=self.mean,
                                std=self.std, test_crops=self.num_crops)
        return sampling, transforms
