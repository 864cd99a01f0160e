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
it per rank like DistributedSampler (padding is harmless for training), and yields
`(index, item_seed, shard)` keys. `SeededItems` wraps the dataset and draws each item under
a torch RNG seeded with `item_seed`, a hash of (seed, epoch, index). So the clip start, crop
and flip of every training item depend only on those three numbers, not on the rank, the
worker count, the worker that got the item or whether the run was restarted; and loading
never touches the main process's RNG.

Unreadable training items are replaced. Under DDP every rank must run as many steps as the
others: a rank whose batch came out empty would skip a step and leave the others waiting
in the gradient all-reduce. So `SeededItems` replaces an item whose video fails with
another item of the same rank's shard of the same epoch (`shard`, a few numbers from which
a worker rebuilds the shard), drawn under the failed item's seed: the choice depends only on
(seed, epoch, index). The failed item is still reported as skipped (collate.Replaced).
"""
from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sized
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from .collate import Replaced, SkippedItem

# Replacements tried for one unreadable training item before it is left out of its batch.
# Enough that a batch comes out empty only when nearly the whole shard is unreadable.
REPLACEMENT_TRIES = 32


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


@dataclass(frozen=True)
class Shard:
    """One rank's share of one epoch's training order, as few numbers (cheap to send to a
    worker with every key); `indices()` rebuilds it with torch's DistributedSampler, as
    SeededTrainSampler draws it."""

    size: int
    num_replicas: int
    rank: int
    seed: int
    epoch: int
    drop_last: bool

    def indices(self) -> list[int]:
        return _shard_indices(self)

    def replacements(self, index: int, seed: int) -> Iterator[int]:
        """Up to REPLACEMENT_TRIES other items of this shard, in an order fixed by `seed`
        (the failed item's own seed, so by seed, epoch and index)."""
        order = self.indices()
        picks = np.random.default_rng(seed).permutation(len(order))[:REPLACEMENT_TRIES + 1]
        return itertools.islice((order[p] for p in picks if order[p] != index), REPLACEMENT_TRIES)


@functools.lru_cache(maxsize=4)
def _shard_indices(shard: Shard) -> list[int]:
    sampler = DistributedSampler(range(shard.size), num_replicas=shard.num_replicas, rank=shard.rank,
                                 shuffle=True, seed=shard.seed, drop_last=shard.drop_last)
    sampler.set_epoch(shard.epoch)
    return list(iter(sampler))


class SeededTrainSampler(DistributedSampler):
    """Training order: shuffled per (seed, epoch), sharded per rank; yields
    `(index, item_seed, shard)` for `SeededItems`. Single process: num_replicas=1, rank=0.

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

    def __iter__(self) -> Iterator[tuple[int, int, Shard]]:
        # Reads the epoch now, not at the first item: Lightning may set the epoch after it
        # asked for the iterator of a resumed pass.
        skip, self._skip_next = self._skip_next, 0
        self.yielded = skip
        return self._items(self.indices()[skip:], self.epoch)

    def shard(self, epoch: int | None = None) -> Shard:
        """This rank's shard of `epoch` (the current one by default), for replacements."""
        return Shard(len(self.dataset), self.num_replicas, self.rank, self.seed,  # type: ignore[arg-type]
                     self.epoch if epoch is None else epoch, self.drop_last)

    def _items(self, order: list[int], epoch: int) -> Iterator[tuple[int, int, Shard]]:
        shard = self.shard(epoch)
        for index in order:
            self.yielded += 1
            yield index, item_seed(self.seed, epoch, index), shard

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

    Keys are `(index, seed, shard)` from `SeededTrainSampler` (or `(index, seed)`: no
    replacement); a plain index is passed through unseeded. The caller's RNG state is
    restored afterwards. An item that comes back as a `SkippedItem` (unreadable video) is
    replaced by the first readable of `shard.replacements(...)`, drawn under the same seed,
    and returned as a `Replaced`; when none of those is readable either, the `Replaced`
    holds no sample and the item is left out of its batch.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int] | tuple[int, int, Shard]) -> Any:
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, seed, *shard = key
        sample = self._draw(index, seed)
        if not isinstance(sample, SkippedItem) or not shard:
            return sample
        for other in shard[0].replacements(index, seed):
            stand_in = self._draw(other, seed)
            if not isinstance(stand_in, SkippedItem):
                return Replaced(stand_in, sample)
        return Replaced(None, sample)

    def _draw(self, index: int, seed: int) -> Any:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]

    def __getattr__(self, name: str) -> Any:
        # views_per_video, num_videos, labels, ...: whatever callers read from the dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
