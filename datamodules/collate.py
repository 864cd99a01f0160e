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
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch.utils.data import default_collate, get_worker_info

INDEX_KEYS: tuple[str, ...] = ("label", "video_index", "clip_index", "crop_index")


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
