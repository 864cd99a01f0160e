"""Each argument group of the VideoDataModule builds what it defines, for every stage."""
from __future__ import annotations

import pytest
import torch

from softpool_video.datamodules import ClipSampler, ClipSampling, EvalTransform, Loading, TrainTransform, Transforms


def test_sampling_builds_a_random_clip_for_training_and_uniform_clips_for_evaluation() -> None:
    sampling = ClipSampling(clip_len=8, frame_interval=3, val_clips=1, test_clips=4, short_video="repeat_last")
    common = dict(clip_len=8, frame_interval=3, short_video="repeat_last")
    assert sampling.sampler("train") == ClipSampler("random", **common)
    assert sampling.sampler("val") == ClipSampler("centre", **common)  # uniform's one clip
    assert sampling.sampler("test") == ClipSampler("uniform", num_clips=4, **common)
    assert [sampling.clips(s) for s in ("train", "val", "test")] == [1, 1, 4]


def test_transforms_build_each_stage_with_its_crops_and_resize() -> None:
    transforms = Transforms(crop_size=32, resize_short=40, test_resize_short=48, val_crops=1, test_crops=3)
    assert isinstance(transforms.transform("train"), TrainTransform)
    val, test = transforms.transform("val"), transforms.transform("test")
    assert isinstance(val, EvalTransform) and isinstance(test, EvalTransform)
    assert (val.num_crops, test.num_crops) == (1, 3) and transforms.crops("train") == 1
    frames = torch.zeros(2, 60, 80, 3, dtype=torch.uint8)
    assert val(frames).shape == test(frames, 2).shape == (3, 2, 32, 32)
    assert transforms.test_resize == 48 and Transforms(resize_short=40).test_resize == 40
    # no resize given: the short side goes to the crop size (EvalTransform's rule)
    assert "size=[32]" in repr(Transforms(crop_size=32, resize_short=None).transform("test"))


@pytest.mark.parametrize(("loading", "expected"), [
    (Loading(batch_size=4, num_workers=0, prefetch_factor=4, worker_timeout=5.0),
     {"batch_size": 4, "num_workers": 0, "persistent_workers": False}),
    (Loading(batch_size=4, num_workers=2, prefetch_factor=4, worker_timeout=5.0),
     {"batch_size": 4, "num_workers": 2, "persistent_workers": True, "prefetch_factor": 4, "timeout": 5.0}),
    (Loading(num_workers=2, persistent_workers=False, pin_memory=True),
     {"batch_size": 8, "num_workers": 2, "persistent_workers": False, "pin_memory": True}),
])
def test_loading_decides_its_defaults_and_passes_worker_options_only_with_workers(loading, expected) -> None:
    arguments = loading.loader_arguments()
    expected = {"pin_memory": torch.cuda.is_available(), **expected}
    assert arguments == expected
