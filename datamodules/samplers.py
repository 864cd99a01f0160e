"""Evaluation sampler for DDP that neither pads nor drops.

torch's DistributedSampler (what Lightning injects by default) pads the index list so
every rank gets the same count: some views would be scored twice, and with drop_last some
not at all. For validation and the multi-view test that skews accuracy, so evaluation
loaders use `VideoShardSampler` instead. It is a DistributedSampler subclass, so Lightning
keeps it as it is, and it gives each rank whole videos (every view of video v goes to rank
v % num_replicas): across ranks, every view of every video is visited exactly once.

Ranks may get a few items more or fewer than each other. Lightning's evaluation loops allow
that; metrics must be synced at epoch end (torchmetrics does), not per step.
"""
from __future__ import annotations

from typing import Iterator, Sized

from torch.utils.data import DistributedSampler


class VideoShardSampler(DistributedSampler):
    """Rank `rank` of `num_replicas` gets every view of videos rank, rank + R, rank + 2R, ...

    `dataset` must be laid out as VideoClipDataset is: `views_per_video` consecutive items
    per video.
    """

    def __init__(self, dataset: Sized, views_per_video: int, num_replicas: int, rank: int) -> None:
        if views_per_video < 1 or len(dataset) % views_per_video:
            raise ValueError(f"views_per_video={views_per_video} must divide the dataset length "
                             f"{len(dataset)}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank={rank} must lie in [0, {num_replicas - 1}]")
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False,
                         drop_last=False)
        num_videos = len(dataset) // views_per_video
        self.views_per_video = views_per_video
        self.indices = [v * views_per_video + k
                        for v in range(rank, num_videos, num_replicas)
                        for k in range(views_per_video)]
        # DistributedSampler's padded bookkeeping, corrected to what this rank really yields.
        self.num_samples = len(self.indices)
        self.total_size = len(dataset)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
