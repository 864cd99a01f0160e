"""collate_clips: default_collate's result, with the index fields in one storage."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from softpool_video.datamodules.collate import INDEX_KEYS, collate_clips


class Clips(Dataset):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> dict:
        return {"video": torch.full((3, 2, 4, 4), float(i)), "label": i % 3, "video_index": i,
                "clip_index": i % 2, "crop_index": 2 - i % 3}


def test_same_values_and_dtypes_as_default_collate() -> None:
    items = [Clips()[i] for i in range(5)]
    ours, ref = collate_clips(items), default_collate(items)
    assert ours.keys() == ref.keys()
    for key in ref:
        assert ours[key].dtype == ref[key].dtype and torch.equal(ours[key], ref[key]), key
    # the four index fields: contiguous views of a single storage
    pointers = {ours[key].untyped_storage().data_ptr() for key in INDEX_KEYS}
    assert len(pointers) == 1 and all(ours[key].is_contiguous() for key in INDEX_KEYS)


def test_other_batches_fall_back_to_default_collate() -> None:
    items = [{"video": torch.zeros(2), "label": 1}, {"video": torch.ones(2), "label": 0}]
    out = collate_clips(items)
    assert torch.equal(out["label"], torch.tensor([1, 0])) and out["video"].shape == (2, 2)


@pytest.mark.slow
def test_batches_from_workers_match_and_leave_the_main_strategy_alone() -> None:
    before = torch.multiprocessing.get_sharing_strategy()
    serial = list(DataLoader(Clips(), batch_size=4, collate_fn=collate_clips))
    workers = list(DataLoader(Clips(), batch_size=4, num_workers=2, collate_fn=collate_clips))
    assert len(serial) == len(workers) == 3
    for a, b in zip(serial, workers):
        for key in a:
            assert torch.equal(a[key], b[key]), key
    assert torch.multiprocessing.get_sharing_strategy() == before
