"""EvaluationProtocol read from datamodule hyper-parameters: grouped (as VideoDataModule saves
them) and flat (checkpoints written before the arguments were grouped)."""
from __future__ import annotations

from softpool_video.datamodules import ClipSampling, Transforms
from softpool_video.evaluation import EvaluationProtocol
from softpool_video.evaluation.protocol import datamodule_defaults

GROUPED = {
    "_class_path": "softpool_video.datamodules.UCF101DataModule", "root": "data/ucf101", "split": 1,
    "decoding": {"decoder": "pyav", "decode_threads": 1},
    "sampling": {"clip_len": 8, "frame_interval": 4, "val_clips": 1, "test_clips": 5, "short_video": "repeat_last"},
    "transforms": {"crop_size": 64, "resize_short": 72, "test_resize_short": 80, "mean": [0.5, 0.5, 0.5],
                   "std": [0.25, 0.25, 0.25], "val_crops": 1, "test_crops": 3},
    "loading": {"batch_size": 4, "num_workers": 0},
}
# the same run as a checkpoint written before the grouping records it
FLAT = {"_class_path": "softpool_video.datamodules.UCF101DataModule", "root": "data/ucf101", "split": 1,
        "decoder": "pyav", "decode_threads": 1, "clip_len": 8, "frame_interval": 4, "val_clips": 1,
        "test_clips": 5, "short_video": "repeat_last", "crop_size": 64, "resize_short": 72,
        "test_resize_short": 80, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "val_crops": 1,
        "test_crops": 3, "batch_size": 4, "num_workers": 0}
EXPECTED = EvaluationProtocol(clip_len=8, frame_interval=4, crop_size=64, resize_short=80, mean=(0.5, 0.5, 0.5),
                              std=(0.25, 0.25, 0.25), num_clips=5, num_crops=3, short_video="repeat_last",
                              aggregation="max")


def test_grouped_hyperparameters():
    assert EvaluationProtocol.from_hparams(GROUPED, "max") == EXPECTED


def test_flat_hyperparameters_of_older_checkpoints():
    assert EvaluationProtocol.from_hparams(FLAT, "max") == EXPECTED


def test_what_is_not_recorded_falls_back_to_the_groups_defaults():
    sampling, transforms = ClipSampling(), Transforms()
    expected = EvaluationProtocol(clip_len=sampling.clip_len, frame_interval=sampling.frame_interval,
                                  crop_size=transforms.crop_size, resize_short=transforms.resize_short,
                                  mean=transforms.mean, std=transforms.std)  # one view when none recorded
    for data in ({}, {"sampling": {}, "transforms": {}}, {"loading": {"batch_size": 2}}):
        assert EvaluationProtocol.from_hparams(data) == expected
    partial = EvaluationProtocol.from_hparams({"sampling": {"clip_len": 4}, "transforms": {"test_crops": 2}})
    assert (partial.clip_len, partial.frame_interval, partial.num_clips, partial.num_crops) == (
        4, sampling.frame_interval, 1, 2)
    assert datamodule_defaults()["resize_short"] == transforms.resize_short


def test_a_live_datamodule_and_its_checkpoint_agree(tmp_path):
    from data_fixtures import make_ucf_tree

    from softpool_video.datamodules import UCF101DataModule

    root = make_ucf_tree(tmp_path / "ucf", groups=8, videos=False)
    dm = UCF101DataModule(root, sampling=ClipSampling(clip_len=8, frame_interval=4, test_clips=5,
                                                      short_video="repeat_last"),
                          transforms={"crop_size": 64, "resize_short": 72, "test_resize_short": 80,
                                      "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)})
    assert EvaluationProtocol.from_datamodule(dm, "max") == EXPECTED


def test_protocol_rebuilds_the_test_groups_of_the_datamodule_it_was_read_from():
    # video_views cuts views with these groups' own test sampler and transform: the same recipe
    # as the test DataModule built from GROUPED
    sampling, transforms = EXPECTED.groups()
    dm_sampling, dm_transforms = ClipSampling(**GROUPED["sampling"]), Transforms(**GROUPED["transforms"])
    assert sampling.sampler("test") == dm_sampling.sampler("test")
    assert (transforms.test_resize, transforms.crops("test")) == (dm_transforms.test_resize, dm_transforms.crops("test"))
    assert repr(transforms.transform("test")) == repr(dm_transforms.transform("test"))
