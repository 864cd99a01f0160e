"""Video-level prediction from many views: N clips x M crops -> one score per video.

The test loader yields every view of every video as its own sample, tagged with
(video_index, clip_index, crop_index). Combining them is done in three pure steps
that also work when the views of one video are spread over several DDP ranks:

1. `owned_views`: each rank keeps the views no lower rank also holds, so a view that
   a DistributedSampler repeated to pad the last batch is counted once.
2. `reduce_views`: per video, the sum (or max) of its view scores and a view count.
3. `merge_partials` + `finalize`: the per-rank partial results are reduced again by
   video index and turned into one score per video.

Only keys (3 ints per view) and per-video partials (one row per video) cross ranks,
never the full per-view score matrix.

`combine_views` / `combine_across_ranks` keep each method's own score (mean logits for
mean_logits); `class_probabilities` turns those into probabilities, and
`video_probabilities` is the one-video rule `predict VIDEO...` reports.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Aggregation = Literal["mean_softmax", "mean_logits", "max"]
AGGREGATIONS: tuple[str, ...] = ("mean_softmax", "mean_logits", "max")


def check_aggregation(method: str) -> str:
    if method not in AGGREGATIONS:
        raise ValueError(f"aggregation: unknown method {method!r}; choose one of {', '.join(AGGREGATIONS)}")
    return method


@dataclass
class ViewScores:
    """Per-view logits, one row per (video, clip, crop) view."""

    video_index: Tensor  # (N,) int64
    clip_index: Tensor  # (N,) int64
    crop_index: Tensor  # (N,) int64
    logits: Tensor  # (N, C) float
    label: Tensor  # (N,) int64

    def __len__(self) -> int:
        return int(self.video_index.numel())

    def keys(self) -> Tensor:
        """(N, 3) int64: the identity of each view."""
        return torch.stack([self.video_index, self.clip_index, self.crop_index], dim=1)

    def select(self, mask: Tensor) -> ViewScores:
        return ViewScores(self.video_index[mask], self.clip_index[mask], self.crop_index[mask],
                          self.logits[mask], self.label[mask])

    @staticmethod
    def cat(parts: list[ViewScores], num_classes: int) -> ViewScores:
        if not parts:
            empty = torch.zeros(0, dtype=torch.long)
            return ViewScores(empty, empty, empty, torch.zeros(0, num_classes), empty)
        return ViewScores(*(torch.cat([getattr(p, f) for p in parts]) for f in
                            ("video_index", "clip_index", "crop_index", "logits", "label")))


@dataclass
class VideoScores:
    """One row per video: `score` is the combined score, or a running sum/max in a partial."""

    video_index: Tensor  # (V,) int64, sorted
    score: Tensor  # (V, C) float
    num_views: Tensor  # (V,) int64
    label: Tensor  # (V,) int64
    # (V,) int64: views whose own top-1 is the label, for clip accuracy per class (per_class.py);
    # counted over the same deduplicated views as num_views
    clip_correct: Tensor | None = None


class ViewBuffer:
    """Collects the views of an evaluation epoch on the CPU, batch by batch."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self._parts: list[ViewScores] = []

    def reset(self) -> None:
        self._parts = []

    def add(self, video_index: Tensor, clip_index: Tensor, crop_index: Tensor, logits: Tensor,
            label: Tensor) -> None:
        self._parts.append(ViewScores(*(t.detach().to("cpu", torch.long) for t in
                                        (video_index, clip_index, crop_index)),
                                      logits.detach().float().cpu(), label.detach().to("cpu", torch.long)))

    def collect(self) -> ViewScores:
        return ViewScores.cat(self._parts, self.num_classes)


def _encode(keys: Tensor, radix: Tensor) -> Tensor:
    """One int64 per (video, clip, crop) key, for set membership with torch.isin."""
    return (keys[:, 0] * radix[1] + keys[:, 1]) * radix[2] + keys[:, 2]


def owned_views(keys_per_rank: list[Tensor], rank: int) -> Tensor:
    """Mask over rank `rank`'s views: True where no lower rank and no earlier row holds the same key."""
    mine = keys_per_rank[rank]
    if mine.numel() == 0:
        return torch.zeros(0, dtype=torch.bool)
    every = torch.cat([k for k in keys_per_rank if k.numel()])
    if (every < 0).any():
        raise ValueError("video_index, clip_index and crop_index must be non-negative")
    radix = every.max(dim=0).values + 1
    codes = _encode(mine, radix)
    # first occurrence of each code within this rank
    uniq, inverse = torch.unique(codes, return_inverse=True)
    positions = torch.arange(codes.numel())
    first = torch.full((uniq.numel(),), codes.numel(), dtype=torch.long).scatter_reduce(
        0, inverse, positions, reduce="amin")
    keep = torch.zeros(codes.numel(), dtype=torch.bool)
    keep[first] = True
    lower = [k for k in keys_per_rank[:rank] if k.numel()]
    if lower:
        keep &= ~torch.isin(codes, _encode(torch.cat(lower), radix))
    return keep


def _view_scores(logits: Tensor, method: str) -> Tensor:
    return logits.float() if method == "mean_logits" else logits.float().softmax(dim=1)


def _reduce_by_video(video_index: Tensor, score: Tensor, num_views: Tensor, label: Tensor,
                     method: str, clip_correct: Tensor) -> VideoScores:
    videos, inverse = torch.unique(video_index, return_inverse=True)
    n_videos, n_classes = videos.numel(), score.shape[1]
    if method == "max":
        combined = torch.full((n_videos, n_classes), float("-inf")).scatter_reduce(
            0, inverse[:, None].expand_as(score), score, reduce="amax")
    else:
        combined = torch.zeros(n_videos, n_classes).index_add_(0, inverse, score)
    counts = torch.zeros(n_videos, dtype=torch.long).index_add_(0, inverse, num_views)
    correct = torch.zeros(n_videos, dtype=torch.long).index_add_(0, inverse, clip_correct)
    video_label = torch.zeros(n_videos, dtype=torch.long).scatter_(0, inverse, label)
    clash = video_label[inverse] != label
    if clash.any():
        bad = int(video_index[clash][0])
        raise ValueError(f"video_index {bad} has views with different labels; "
                         "every view of a video must carry the video's label")
    return VideoScores(videos, combined, counts, video_label, correct)


def reduce_views(views: ViewScores, method: str = "mean_softmax") -> VideoScores:
    """Per video: sum (mean_*) or max (max) of its views' scores, and how many views it had."""
    check_aggregation(method)
    ones = torch.ones(len(views), dtype=torch.long)
    correct = (views.logits.argmax(dim=1) == views.label).long()
    return _reduce_by_video(views.video_index, _view_scores(views.logits, method), ones, views.label, method,
                            correct)


def merge_partials(partials: list[VideoScores], method: str = "mean_softmax") -> VideoScores:
    """Reduce per-rank partials again by video index (a video may have views on several ranks)."""
    check_aggregation(method)
    parts = [p for p in partials if p.video_index.numel()]
    if not parts:
        raise ValueError("no views to aggregate: the evaluation split produced no predictions")

    def cat(name: str) -> Tensor:
        return torch.cat([getattr(p, name) for p in parts])

    correct = torch.cat([p.num_views.new_zeros(p.num_views.shape) if p.clip_correct is None else p.clip_correct
                         for p in parts])  # a partial built without it counts no correct views
    return _reduce_by_video(cat("video_index"), cat("score"), cat("num_views"), cat("label"), method, correct)


def finalize(merged: VideoScores, method: str = "mean_softmax") -> VideoScores:
    """Turn running sums into means; max partials are already final."""
    if method == "max":
        return merged
    return VideoScores(merged.video_index, merged.score / merged.num_views[:, None].float(),
                       merged.num_views, merged.label, merged.clip_correct)


def combine_views(views: ViewScores, method: str = "mean_softmax") -> VideoScores:
    """Single-process combine: dedupe views by key, then one score per video.

    mean_softmax: mean of the views' class probabilities (default).
    mean_logits: mean of the views' logits.
    max: per class, the largest probability over the views.
    """
    keep = owned_views([views.keys()], 0)
    return finalize(merge_partials([reduce_views(views.select(keep), method)], method), method)


def gather_objects(obj: object) -> list[object]:
    """Every rank's `obj`, in rank order; just `[obj]` without an initialised process group."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def rank_and_world_size() -> tuple[int, int]:
    """(rank, world size) of the process group; (0, 1) without one."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _rank() -> int:
    return rank_and_world_size()[0]


def combine_across_ranks(views: ViewScores, method: str = "mean_softmax",
                         gather: Callable[[object], list[object]] = gather_objects,
                         rank: int | None = None) -> VideoScores:
    """The video-level result over all ranks; every rank returns the same thing."""
    check_aggregation(method)
    rank = _rank() if rank is None else rank
    keys_per_rank = gather(views.keys())
    partial = reduce_views(views.select(owned_views(keys_per_rank, rank)), method)
    return finalize(merge_partials(gather(partial), method), method)


def class_probabilities(videos: VideoScores, method: str = "mean_softmax") -> Tensor:
    """(V, C) class probabilities of combined videos: mean_logits scores are softmaxed, the
    others already are probabilities (max: each class's best view, not renormalised)."""
    check_aggregation(method)
    return videos.score.softmax(dim=1) if method == "mean_logits" else videos.score


def video_probabilities(logits: Tensor, method: str = "mean_softmax") -> Tensor:
    """Class probabilities of ONE video from all its views' logits, (V, C) -> (C,).

    As `class_probabilities`, except that max is renormalised to sum to one, so the
    result reads as probabilities (what `predict VIDEO...` prints)."""
    check_aggregation(method)
    logits = logits.float()
    if method == "mean_softmax":
        return logits.softmax(dim=1).mean(dim=0)
    if method == "mean_logits":
        return logits.mean(dim=0).softmax(dim=0)
    best = logits.softmax(dim=1).amax(dim=0)
    return best / best.sum()
