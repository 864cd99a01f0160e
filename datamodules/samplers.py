"""Samplers for DDP: a non-padding evaluation shard and a resumable, seeded training order.

Evaluation. torch's DistributedSampler (what Lightning injects by default) pads the index
list so every rank gets the same count: some views would be scored twice, and with
drop_last some not at all. For validation and the multi-view test that skews accuracy, so
evaluation loaders use `VideoShardSampler` instead. It is a DistributedSampler subclass, so
Lightning keeps it as it is, and it gives each rank whole videos (every view of video v goes
to rank v % num_replicas): across ranks, every view of every video is visited exactly once.

Ranks may get a few items more or fewer than each other. Lightning's evaluation loops allow
that; metrics must be synced at epoch end (torchmetrics does), not per step.

Training. `SeededTrainSampler` shuffles with a permutation fixed by (seed, epoch), shards
it per rank like DistributedSampler (padding is harmless for training), and yields `(index, item_seed)` pairs. `SeededItems` wraps the
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


class SeededTrainSampler(DistributedSampler):
    """Training order: shuffled per (seed, epoch), sharded per rank; yields
    `(index, item_seed)` for `SeededItems`. Single process: num_replicas=1, rank=0.

    Stateful (torchdata's protocol): `state_dict()` says which epoch is running and how many
    of this rank's items the current pass has handed out; after `load_state_dict()` the next
    pass is that epoch, without those items. The StatefulDataLoader around it
    (resilient.py) keeps this state per batch, so a run resumed from a checkpoint, or a pool
    restarted after a worker died, goes on with exactly the items not yet delivered.
    """

    def __init__(self, dataset: Sized, num_replicas: int = 1, rank: int = 0, seed: int = 0,
                 drop_last: bool = False) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank={rank} must lie in [0, {num_replicas - 1}]")
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                         drop_last=drop_last)
        self.yielded = 0  # items of the current pass handed out
        self._skip_next = 0  # items the next pass leaves out (from load_state_dict)

    def indices(self) -> list[int]:
        """This rank's whole shard of the current epoch, in order."""
        return list(super().__iter__())

    def __iter__(self) -> Iterator[tuple[int, int]]:
        # Reads the epoch now, not at the first item: Lightning may set the epoch after it
        # asked for the iterator of a resumed pass.
        skip, self._skip_next = self._skip_next, 0
        self.yielded = skip
        return self._items(self.indices()[skip:], self.epoch)

    def _items(self, order: list[int], epoch: int) -> Iterator[tuple[int, int]]:
        for index in order:
            self.yielded += 1
            yield index, item_seed(self.seed, epoch, index)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.epoch), "yielded": int(self.yielded)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if not {"epoch", "yielded"} <= state.keys() or int(state["yielded"]) < 0:
            raise ValueError(f"not a SeededTrainSampler state: {state!r}")
        self.set_epoch(int(state["epoch"]))
        self._skip_next = min(int(state["yielded"]), self.num_samples)

    # __len__ stays the whole shard: Lightning counts the epoch's batches from it and adds
    # the batches a resumed run already did.


class SeededItems(Dataset):
    """`dataset[index]` drawn under a torch RNG seeded with the item's own seed.

    Keys are `(index, seed)` pairs from `SeededTrainSampler`; a plain index is passed
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
