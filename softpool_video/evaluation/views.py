"""A file's test views under an `EvaluationProtocol`, cut by the datamodule's own groups
(`ClipSampling.sampler("test")`, `Transforms.transform("test")`), so predict and export
parity see what `test` sees."""
from __future__ import annotations

from pathlib import Path

import torch

from .protocol import EvaluationProtocol


def video_views(path: str | Path, protocol: EvaluationProtocol, decoder: str = "decord") -> torch.Tensor:
    """All views of a video as one float batch (num_clips * num_crops, 3, T, H, W), decoded
    and transformed as the test DataModule does (same sampler, same EvalTransform).

    Raises DecodeError when no decoder can read the file.
    """
    from softpool_video.datamodules import open_video

    sampling, transforms = protocol.groups()
    sampler, transform = sampling.sampler("test"), transforms.transform("test")
    views = []
    with open_video(path, decoder) as reader:
        num_frames = reader.num_frames
        for clip in range(protocol.num_clips):
            frames = reader.get(sampler(num_frames, clip))
            views += [transform(frames, crop) for crop in range(protocol.num_crops)]
    return torch.stack(views)
