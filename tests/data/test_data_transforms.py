"""Clip transforms: shapes, dtypes, crop geometry, same augmentation for every frame."""
from __future__ import annotations

import pytest
import torch

from softpool_video.datamodules import KINETICS_MEAN, KINETICS_STD, EvalTransform, MultiScaleCrop, TrainTransform
from softpool_video.datamodules.transforms import spatial_crop_box


def clip(t: int = 8, h: int = 120, w: int = 160, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (t, h, w, 3), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("crop", ["random_resized", "multi_scale", "centre"])
def test_train_transform_shape_dtype(crop: str) -> None:
    out = TrainTransform(crop_size=112, resize_short=128, crop=crop)(clip())
    assert out.shape == (3, 8, 112, 112)
    assert out.dtype == torch.float32
    assert type(out) is torch.Tensor  # plain tensor, not a tv_tensors.Video
    assert out.is_contiguous()


def test_eval_transform_shape_and_normalisation() -> None:
    white = torch.full((4, 96, 128, 3), 255, dtype=torch.uint8)
    out = EvalTransform(crop_size=64, resize_short=72)(white)
    assert out.shape == (3, 4, 64, 64) and out.dtype == torch.float32
    for c in range(3):
        expected = (1.0 - KINETICS_MEAN[c]) / KINETICS_STD[c]
        torch.testing.assert_close(out[c], torch.full_like(out[c], expected))


def test_same_augmentation_for_every_frame() -> None:
    torch.manual_seed(0)
    frame = clip(1)
    video = frame.repeat(8, 1, 1, 1)  # 8 identical frames
    for crop in ("random_resized", "multi_scale"):
        for _ in range(5):
            out = TrainTransform(64, 80, crop=crop)(video)
            assert torch.equal(out[:, 0:1].expand_as(out), out)


def test_flip_happens_and_is_a_mirror() -> None:
    video = clip(2, 64, 64)
    t = TrainTransform(crop_size=64, resize_short=None, crop="centre", flip=True)
    plain = TrainTransform(crop_size=64, resize_short=None, crop="centre", flip=False)(video)
    torch.manual_seed(1)
    seen = set()
    for _ in range(20):
        out = t(video)
        if torch.equal(out, plain):
            seen.add("same")
        elif torch.equal(out, plain.flip(-1)):
            seen.add("mirror")
        else:
            seen.add("other")
    assert seen == {"same", "mirror"}


def test_three_crop_positions() -> None:
    # 64x85: crops at left 0, round(10.5) = 11, 21 along the width.
    assert [spatial_crop_box(64, 85, 64, k, 3) for k in range(3)] == [(0, 0), (0, 11), (0, 21)]
    assert spatial_crop_box(85, 64, 64, 2, 3) == (21, 0)  # portrait: along the height
    assert spatial_crop_box(70, 90, 64, 0, 1) == (3, 13)  # one crop: centre

    video = torch.arange(128, dtype=torch.uint8).view(1, 1, 128, 1).expand(2, 96, 128, 3).contiguous()
    t = EvalTransform(crop_size=64, resize_short=96, num_crops=3, mean=(0, 0, 0), std=(1, 1, 1))
    crops = [t(video, k) for k in range(3)]
    # The image ramps left to right, so left < centre < right crops.
    means = [c.mean().item() for c in crops]
    assert means[0] < means[1] < means[2]
    torch.testing.assert_close(crops[0][0, 0, 0, :], video[0, 0, :64, 0].float() / 255)
    torch.testing.assert_close(crops[2][0, 0, 0, :], video[0, 0, 64:, 0].float() / 255)
    with pytest.raises(IndexError, match="crop_index"):
        t(video, 3)


def test_multi_scale_crop_sizes() -> None:
    from torchvision import tv_tensors

    torch.manual_seed(0)
    crop = MultiScaleCrop(32, scales=(1.0, 0.5), max_distort=0)
    v = tv_tensors.Video(torch.zeros(2, 3, 40, 60, dtype=torch.uint8))
    out = crop(v)
    assert out.shape == (2, 3, 32, 32) and out.dtype == torch.uint8
    with pytest.raises(ValueError, match="scales"):
        MultiScaleCrop(32, scales=(1.5,))


def test_bad_arguments_and_inputs() -> None:
    with pytest.raises(ValueError, match="crop='five'"):
        TrainTransform(crop="five")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="resize_short=64 must be >= crop_size=112"):
        EvalTransform(crop_size=112, resize_short=64)
    with pytest.raises(ValueError, match="crop_size must be a positive integer"):
        TrainTransform(crop_size=0)
    with pytest.raises(ValueError, match="expected uint8 frames of shape"):
        EvalTransform(32, 32)(torch.zeros(4, 3, 40, 40))  # float, channels-first
