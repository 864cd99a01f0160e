"""Batching of clip dicts, shaped for a cheap hand-over from worker processes.

A batch built in a DataLoader worker reaches the training process through shared memory:
each tensor storage in it is one shared-memory segment and, with PyTorch's default
`file_descriptor` strategy, one socket round trip to the worker to receive its descriptor.
With `default_collate` a clip batch holds five storages (the clips and four index
tensors) and on a busy 2-core machine the hand-over alone took several milliseconds.
`collate_clips` stores the four index fields as rows of one int64 tensor (each field a
view of it), and in a worker it shares by file name (`file_system` strategy: no
descriptor passing); the strategy is set inside the worker process only, never in the
training process.

Bad videos are the collate's job too: a dataset item that could not be read comes back as
a `SkippedItem`, and `SkippingCollate` filters those out of the batch before collating the
rest, handing them over under `SKIPPED_KEY` so the loader can count them (resilient.py).
Evaluation substitutes nothing: every good sample is delivered exactly once. A training item
may come as a `Replaced` (samplers.py): another item of the rank's shard stands in for the
unreadable one, which is handed over as skipped all the same, and counted under
`REPLACED_KEY`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import default_collate, get_worker_info

INDEX_KEYS: tuple[str, ...] = ("label", "video_index", "clip_index", "crop_index")
SKIPPED_KEY = "skipped"
REPLACED_KEY = "replaced"


@dataclass(frozen=True)
class SkippedItem:
    """Stands in for a sample whose video could not be read (left out by the collate)."""

    index: int
    video_index: int
    rel: str
    reason: str


@dataclass(frozen=True)
class Replaced:
    """A training item whose video could not be read (`skipped`, reported as skipped), stood
    in for by `sample`, another item of the same rank's shard (None: no readable replacement
    was found; the stand-ins tried are reported in their own places in the epoch)."""

    sample: Any
    skipped: SkippedItem


def collate_clips(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Like `default_collate` on clip dicts (same keys, dtypes and values), with the index
    fields as rows of one (4, B) int64 tensor (each row a contiguous view)."""
    if get_worker_info() is not None:
        # Per process: this runs in a DataLoader worker, whose sharing strategy only
        # decides how its own batches are sent.
        torch.multiprocessing.set_sharing_strategy("file_system")
    if not items or any(not isinstance(item, dict) or not set(INDEX_KEYS) <= item.keys() for item in items):
        return default_collate(list(items))
    index = torch.tensor([[int(item[key]) for item in items] for key in INDEX_KEYS], dtype=torch.int64)
    rest = default_collate([{k: v for k, v in item.items() if k not in INDEX_KEYS} for item in items])
    return {**rest, **{key: index[row] for row, key in enumerate(INDEX_KEYS)}}


class SkippingCollate:
    """Collates the items that are not `SkippedItem` with `collate` (default_collate); the
    skipped ones go under SKIPPED_KEY. A batch of only skipped items is
    `{SKIPPED_KEY: [...]}`, which ResilientDataLoader drops. Picklable (for spawned workers).
    """

    def __init__(self, collate: Callable[[list[Any]], Any] | None = None) -> None:
        self.collate = collate if collate is not None else default_collate

    def __call__(self, items: Sequence[Any]) -> dict[str, Any]:
        good, skipped, replaced = [], [], 0
        for item in items:
            if isinstance(item, Replaced):
                skipped.append(item.skipped)
                if item.sample is not None:
                    good.append(item.sample)
                    replaced += 1
            elif isinstance(item, SkippedItem):
                skipped.append(item)
            else:
                good.append(item)
        batch = self.collate(good) if good else {}
        if not isinstance(batch, dict):
            raise TypeError(f"SkippingCollate needs dict batches, got {type(batch).__name__}")
        if skipped:
            batch[SKIPPED_KEY] = skipped
        if replaced:
            batch[REPLACED_KEY] = replaced
        return batch

    def __repr__(self) -> str:
        return f"SkippingCollate({getattr(self.collate, '__name__', self.collate)!r})"
