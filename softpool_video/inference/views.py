"""The multi-view test protocol on one video file: `num_clips` uniformly spread clips x
`num_crops` spatial crops, decoded and transformed exactly as the test DataModule does
(same sampler, same EvalTransform), and the rule that combines the views' scores.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..export.card import Protocol


def video_views(path: str | Path, protocol: Protocol, decoder: str = "decord") -> torch.Tensor:
    """All views of a video as one float batch (num_clips * num_crops, 3, T, H, W).

    Raises DecodeError when no backend can read the file.
    """
    from ..datamodules import ClipSampler, EvalTransform, open_video

    sampler = ClipSampler("uniform", clip_len=protocol.clip_len, frame_interval=protocol.frame_interval,
                          num_clips=protocol.num_clips, short_video=protocol.short_video)
    transform = EvalTransform(crop_size=protocol.crop_size, resize_short=protocol.resize_short,
                              num_crops=protocol.num_crops, mean=protocol.mean, std=protocol.std)
    views = []
    with open_video(path, decoder) as reader:
        num_frames = reader.num_frames
        for clip in range(protocol.num_clips):
            frames = reader.get(sampler(num_frames, clip))
            views += [transform(frames, crop) for crop in range(protocol.num_crops)]
    return torch.stack(views)


def combine_views(logits: torch.Tensor, aggregation: str) -> torch.Tensor:
    """Class probabilities of one video from its views' logits (V, K) -> (K,)."""
    if aggregation == "mean_softmax":
        return logits.float().softmax(dim=1).mean(dim=0)
    if aggregation == "mean_logits":
        return logits.float().mean(dim=0).softmax(dim=0)
    if aggregation == "max":
        # each class's best view, renormalised so the result still reads as probabilities
        best = logits.float().softmax(dim=1).amax(dim=0)
        return best / best.sum()
    raise ValueError(f"aggregation={aggregation!r} is not supported; choose mean_softmax, mean_logits or max")
