"""Samplers for DDP: a non-padding evaluation shard and a resumable, seeded training order.

Evaluation. torch's DistributedSampler (what Lightning injects by default) pads the index
list so every rank gets the same count: some views would be scored twice, and with
drop_last some not at all. For validation and the multi-view test that skews accuracy, so
evaluation loaders use `VideoShardSampler` instead. It is a DistributedSampler subclass, so
Lightning keeps it as it is, and it gives each rank whole videos (every view of video v goes
to rank v % num_replicas): across ranks, every view of every video is visited exactly once.

Ranks may get a few items more or fewer than each other. Lightning's evaluation loops allow
that; metrics must be synced at epoch end (torchmetrics does), not per step.

Training. `ResumableTrainSampler` shuffles with a permutation fixed by (seed, epoch), shards
it per rank like DistributedSampler (padding is harmless for training), can start an epoch
part-way through (`resume`), and yields `(index, item_seed)` pairs. `SeededItems` wraps the
dataset and draws each item under a torch RNG seeded with `item_seed`, a hash of
(seed, epoch, index). So the clip start, crop and flip of every training item depend only
on those three numbers, not on the rank, the worker count, the worker that got the item or
whether the run was restarted; and loading never touches the main process's RNG.
"""
from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler


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


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed for one training item of one epoch."""
    words = [int(seed) & 0xFFFFFFFFFFFFFFFF, int(epoch), int(index)]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class ResumableTrainSampler(DistributedSampler):
    """Training order: shuffled per (seed, epoch), sharded per rank, resumable mid-epoch.

    Yields `(index, item_seed)` for `SeededItems`. `resume(epoch, items_done)` makes the
    next pass over `epoch` skip the first `items_done` items of this rank's shard (the
    batches a checkpointed run already trained on); any other epoch is whole.
    Single process: num_replicas=1, rank=0.
    """

    def __init__(self, dataset: Sized, num_replicas: int = 1, rank: int = 0, seed: int = 0,
                 drop_last: bool = False) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank={rank} must lie in [0, {num_replicas - 1}]")
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                         drop_last=drop_last)
        self._resume_epoch: int | None = None
        self._items_done = 0

    def resume(self, epoch: int, items_done: int) -> None:
        if items_done < 0:
            raise ValueError(f"items_done must be non-negative, got {items_done}")
        self.set_epoch(epoch)
        self._resume_epoch, self._items_done = epoch, min(items_done, self.num_samples)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if self._resume_epoch is not None and epoch != self._resume_epoch:
            self._resume_epoch, self._items_done = None, 0  # a new epoch is always whole

    def indices(self) -> list[int]:
        """This rank's whole shard of the current epoch, in order."""
        return list(super().__iter__())

    def __iter__(self) -> Iterator[tuple[int, int]]:
        skip = self._items_done if self._resume_epoch == self.epoch else 0
        epoch = self.epoch
        for index in self.indices()[skip:]:
            yield index, item_seed(self.seed, epoch, index)

    # __len__ stays the whole shard: Lightning counts the epoch's batches from it and adds
    # the batches a resumed run already did (as it does for any stateful loader).


class SeededItems(Dataset):
    """`dataset[index]` drawn under a torch RNG seeded with the item's own seed.

    Keys are `(index, seed)` pairs from `ResumableTrainSampler`; a plain index is passed
    through unseeded. The caller's RNG state is restored afterwards.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]

    def __getattr__(self, name: str) -> Any:
        # views_per_video, num_videos, labels, ...: whatever callers read from the dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
