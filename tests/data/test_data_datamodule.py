"""DataModules: batches through worker processes, views, DDP sharding, configurability."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
import torch
from data_fixtures import HMDB_CLASSES, UCF_CLASSES, make_hmdb_tree, make_kinetics_tree, make_ucf_tree, shared_tree
from torch.utils.data import DistributedSampler

from softpool_video.datamodules import (
    ClipSampling,
    Decoding,
    HMDB51DataModule,
    KineticsDataModule,
    Loading,
    Transforms,
    UCF101DataModule,
    VideoShardSampler,
    flatten_arguments,
    group_arguments,
    split_holdout,
)
from softpool_video.datamodules.samplers import SeededTrainSampler

SMALL = dict(sampling={"clip_len": 4, "frame_interval": 2}, transforms={"crop_size": 32, "resize_short": 36},
             loading={"batch_size": 4})


def small(**fields: object) -> dict[str, object]:
    """SMALL with more group fields, given flat: small(num_workers=0, test_clips=2)."""
    return group_arguments({**flatten_arguments(SMALL), **fields})


@pytest.fixture(scope="module")
def ucf_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_tree(tmp_path_factory, "ucf_videos", lambda r: make_ucf_tree(r, groups=22))


def test_classes_known_right_after_construction(ucf_root: Path) -> None:
    dm = UCF101DataModule(ucf_root, split=2, **SMALL)
    assert dm.num_classes == 3 and dm.class_names == list(UCF_CLASSES)
    with pytest.raises(ValueError, match="split=5"):
        UCF101DataModule(ucf_root, split=5)
    with pytest.raises(FileNotFoundError, match="root="):
        UCF101DataModule(ucf_root / "nope")
    with pytest.raises(ValueError, match=r"sampling\.short_video='pad'"):
        UCF101DataModule(ucf_root, sampling={"short_video": "pad"})


def test_batches_through_worker_processes(ucf_root: Path) -> None:
    dm = UCF101DataModule(ucf_root, split=1, val_source="test", **small(num_workers=2, test_clips=3, test_crops=2))
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.num_workers == 2 and loader.persistent_workers
    n_train = dm.datasets["train"].num_videos
    assert n_train == (22 - 7) * 3
    batches = list(loader)
    assert len(batches) == n_train // 4  # drop_last
    b = batches[0]
    assert set(b) == {"video", "label", "video_index", "clip_index", "crop_index"}
    assert b["video"].shape == (4, 3, 4, 32, 32) and b["video"].dtype == torch.float32
    for key in ("label", "video_index", "clip_index", "crop_index"):
        assert b[key].dtype == torch.int64 and b[key].shape == (4,)
    assert torch.isfinite(b["video"]).all() and b["video"].std() > 0.1
    seen = torch.cat([x["video_index"] for x in batches]).tolist()
    assert len(set(seen)) == len(seen)  # each video once per epoch
    labels = torch.cat([x["label"] for x in batches])
    assert labels.min() >= 0 and labels.max() < 3

    val = list(dm.val_dataloader())  # one centre clip per test video (val_source='test')
    assert sum(len(x["label"]) for x in val) == 7 * 3
    assert all((x["clip_index"] == 0).all() and (x["crop_index"] == 0).all() for x in val)

    dm.setup("test")
    test = list(dm.test_dataloader())
    views = Counter(zip(*(torch.cat([x[k] for x in test]).tolist()
                          for k in ("video_index", "clip_index", "crop_index"))))
    # Every view of every test video exactly once.
    assert set(views.values()) == {1}
    assert set(views) == {(v, c, k) for v in range(21) for c in range(3) for k in range(2)}


def test_train_clips_are_random_val_clips_are_not(ucf_root: Path) -> None:
    dm = UCF101DataModule(ucf_root, split=1, **small(num_workers=0))
    dm.setup("fit")
    train, val = dm.datasets["train"], dm.datasets["val"]
    torch.manual_seed(0)
    assert any(not torch.equal(train[0]["video"], train[0]["video"]) for _ in range(5))
    assert torch.equal(val[3]["video"], val[3]["video"])


@pytest.mark.parametrize("world", [2, 3, 4])
def test_shard_sampler_covers_every_view_once(world: int) -> None:
    views, videos = 6, 11
    dataset = range(views * videos)
    shards = [list(VideoShardSampler(dataset, views, world, r)) for r in range(world)]
    flat = [i for s in shards for i in s]
    assert sorted(flat) == list(dataset)  # no padding, no loss
    for r, s in enumerate(shards):
        assert len(VideoShardSampler(dataset, views, world, r)) == len(s)
        assert {i // views for i in s} == set(range(r, videos, world))  # whole videos per rank
    with pytest.raises(ValueError, match="must divide"):
        VideoShardSampler(range(10), 3, 2, 0)


def test_lightning_keeps_the_shard_sampler_under_ddp(ucf_root: Path) -> None:
    import pytorch_lightning as pl

    trainer = pl.Trainer(accelerator="cpu", strategy="ddp", devices=2, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False)
    dm = UCF101DataModule(ucf_root, split=1, **small(num_workers=0, test_clips=2, test_crops=3))
    dm.trainer = trainer
    test_loader = dm.test_dataloader()
    assert isinstance(test_loader.sampler, VideoShardSampler)
    assert test_loader.sampler.num_replicas == 2
    train_loader = dm.train_dataloader()
    # Lightning replaces a loader's sampler under DDP unless it is a DistributedSampler already
    # (its documented `use_distributed_sampler` rule); ours all are, so it keeps them: the train
    # sampler (sharded per rank, resumable) and the evaluation samplers (no view duplicated or
    # dropped; tests/training/test_distributed.py runs a real 2-process fit and test).
    assert isinstance(train_loader.sampler, SeededTrainSampler) and train_loader.sampler.num_replicas == 2
    for loader in (train_loader, test_loader, dm.val_dataloader()):
        assert isinstance(loader.sampler, DistributedSampler), type(loader.sampler)


DDP_SCRIPT = """
import sys, torch, pytorch_lightning as pl
from softpool_video.datamodules import UCF101DataModule

class Recorder(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(1, 1)
        self.views = []

    def test_step(self, batch, batch_idx):
        self.views.append(torch.stack([batch["video_index"], batch["clip_index"], batch["crop_index"]], 1))

    def on_test_epoch_end(self):
        mine = torch.cat(self.views)
        counts = self.all_gather(torch.tensor(len(mine)))
        padded = torch.full((int(counts.max()), 3), -1, dtype=torch.long)
        padded[: len(mine)] = mine
        every = self.all_gather(padded).reshape(-1, 3)
        if self.global_rank == 0:
            torch.save({"views": every[every[:, 0] >= 0], "counts": counts}, sys.argv[2])

if __name__ == "__main__":
    dm = UCF101DataModule(sys.argv[1], split=1, sampling={"clip_len": 4, "frame_interval": 2, "test_clips": 2},
                          transforms={"crop_size": 32, "resize_short": 36, "test_crops": 3},
                          loading={"batch_size": 4, "num_workers": 0})
    trainer = pl.Trainer(accelerator="cpu", strategy="ddp_spawn", devices=2, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.test(Recorder(), datamodule=dm, verbose=False)
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SOFTPOOL_VIDEO_SLOW_TESTS"),
                    reason="spawns 2 DDP processes (20-60 s on 2 cores); set SOFTPOOL_VIDEO_SLOW_TESTS=1")
def test_real_ddp_test_loop_sees_every_view_once(ucf_root: Path, tmp_path: Path) -> None:
    """Two CPU processes (gloo) run Lightning's test loop: every view once, across ranks."""
    import subprocess
    import sys

    script = tmp_path / "ddp_views.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "views.pt"
    proc = subprocess.run([sys.executable, str(script), str(ucf_root), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = torch.load(out)
    views = [tuple(v) for v in result["views"].tolist()]
    assert sorted(views) == [(v, c, k) for v in range(21) for c in range(2) for k in range(3)]
    assert result["counts"].tolist() == [11 * 6, 10 * 6]  # whole videos per rank, no padding


def test_holdout_validation_is_group_disjoint(ucf_root: Path) -> None:
    dm = UCF101DataModule(ucf_root, split=1, val_source="holdout", holdout_fraction=0.2, **SMALL)
    train, val = dm.subset("train"), dm.subset("val")
    assert len(train) + len(val) == (22 - 7) * 3
    assert {r.group for r in train.records}.isdisjoint({r.group for r in val.records})
    assert {r.label for r in val.records} == {0, 1, 2}  # every class held out a little
    test = {r.rel for r in dm.subset("test").records}
    assert test.isdisjoint(r.rel for r in val.records)
    again = UCF101DataModule(ucf_root, split=1, val_source="holdout", holdout_fraction=0.2, **SMALL)
    assert [r.rel for r in again.subset("val").records] == [r.rel for r in val.records]
    other = split_holdout(train.records + val.records, 0.2, seed=1)[1]
    assert {r.rel for r in other} != {r.rel for r in val.records}


def test_hmdb51_datamodule(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = shared_tree(tmp_path_factory, "hmdb_videos", lambda r: make_hmdb_tree(r, per_class=6))
    dm = HMDB51DataModule(root, split=3, **small(num_workers=0, test_clips=2, test_crops=1))
    assert dm.class_names == sorted(HMDB_CLASSES)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["video"].shape == (4, 3, 4, 32, 32)
    assert len(dm.datasets["test"]) == 2 * 3 * 2  # 2 test videos per class x 3 classes x 2 clips


def test_kinetics_datamodule(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = shared_tree(tmp_path_factory, "kinetics_videos", lambda r: make_kinetics_tree(r, per_class=3))
    dm = KineticsDataModule(root, **small(num_workers=0, test_clips=1, test_crops=3))
    assert dm.num_classes == 3
    dm.setup("fit")
    # one download missing; the default holdout keeps one video per class for validation
    assert dm.datasets["train"].num_videos + dm.datasets["val"].num_videos == 3 * 3 - 1
    assert dm.datasets["val"].num_videos == 3 and sorted(r.label for r in dm.datasets["val"].records) == [0, 1, 2]
    assert not {r.rel for r in dm.datasets["val"].records} & {r.rel for r in dm.datasets["train"].records}
    assert dm.missing_videos["train"] and not dm.bad_videos
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (4, 3, 4, 32, 32)
    dm.setup("test")  # test_subset='val' by default
    assert len(dm.datasets["test"]) == 9 * 3


def test_configurable_from_yaml(ucf_root: Path, tmp_path: Path) -> None:
    from jsonargparse import ArgumentParser

    config = tmp_path / "data.yaml"
    config.write_text(f"""
data:
  root: {ucf_root}
  split: 3
  sampling:
    clip_len: 8
    short_video: repeat_last
    test_clips: 4
  transforms:
    train_crop: multi_scale
    train_scale: [0.5, 1.0]
    mean: [0.5, 0.5, 0.5]
    std: [0.25, 0.25, 0.25]
  loading:
    batch_size: 16
""")
    parser = ArgumentParser()
    parser.add_class_arguments(UCF101DataModule, "data")
    parser.add_argument("--config", action="config")
    # a group set in part keeps its other defaults; the command line changes one field on top
    cfg = parser.parse_args(["--config", str(config), "--data.loading.batch_size", "2"])
    assert cfg.data.loading.num_workers == 2 and cfg.data.sampling.frame_interval == 2
    dm = parser.instantiate(cfg).data
    assert isinstance(dm.sampling, ClipSampling) and isinstance(dm.loading, Loading)
    sampling, transforms, loading = dm.sampling, dm.transforms, dm.loading
    assert (dm.split, sampling.clip_len, transforms.train_crop, sampling.short_video) == (
        3, 8, "multi_scale", "repeat_last")
    assert loading.batch_size == 2 and loading.num_workers == 2 and sampling.frame_interval == 2
    assert sampling.test_clips == 4 and transforms.mean == (0.5, 0.5, 0.5) and transforms.train_scale == (0.5, 1.0)
    assert dm.hparams["transforms"]["train_scale"] == [0.5, 1.0]


def test_class_path_config_as_in_configs(ucf_root: Path) -> None:
    """configs/*.yaml name the DataModule by class_path, resolved through the package."""
    import pytorch_lightning as pl
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_subclass_arguments(pl.LightningDataModule, "data")
    cfg = parser.parse_args(["--data.class_path", "softpool_video.datamodules.UCF101DataModule",
                             "--data.init_args.root", str(ucf_root), "--data.init_args.sampling.clip_len", "4"])
    dm = parser.instantiate(cfg).data
    assert isinstance(dm, UCF101DataModule) and dm.clip_size == (4, 112, 112) and dm.num_classes == 3
    assert dm.sampling == ClipSampling(clip_len=4)


def test_groups_take_dataclasses_or_dicts_and_build_what_they_define(ucf_root: Path) -> None:
    dm = UCF101DataModule(ucf_root, decoding=Decoding(decoder="pyav", cache_dir=ucf_root / "index"),
                          sampling=ClipSampling(clip_len=4), transforms={"crop_size": 32, "resize_short": 36},
                          loading={"batch_size": 3, "num_workers": 0, "persistent_workers": True})
    assert dm.transforms == Transforms(crop_size=32, resize_short=36) and dm.loading.num_workers == 0
    assert (dm.decoding.decoder, dm.decoding.cache_dir, dm.clip_size) == ("pyav", str(ucf_root / "index"), (4, 32, 32))
    arguments = dm.loading.loader_arguments()
    assert arguments["batch_size"] == 3 and arguments["persistent_workers"] is False  # no workers to keep
    assert arguments["pin_memory"] is torch.cuda.is_available() and "timeout" not in arguments
    assert dm.transforms.test_resize == 36 and dm.index.decoder == "pyav"
    assert not hasattr(dm, "batch_size") and not hasattr(dm, "clip_len")  # the groups are the one home
    # defaults: the dataclasses' own
    plain = UCF101DataModule(ucf_root)
    assert (plain.decoding, plain.sampling, plain.transforms, plain.loading) == (
        Decoding(), ClipSampling(), Transforms(), Loading())
    assert plain.loading.loader_arguments()["persistent_workers"] is True
    assert plain.transforms.test_resize == plain.transforms.resize_short == 128


def test_hyperparameters_hold_the_groups_as_plain_data(ucf_root: Path, tmp_path: Path) -> None:
    import yaml

    dm = UCF101DataModule(str(ucf_root), sampling=ClipSampling(clip_len=4), loading={"batch_size": 3})
    hp = dict(dm.hparams)
    assert hp["sampling"] == {"clip_len": 4, "frame_interval": 2, "val_clips": 1, "test_clips": 10,
                              "short_video": "loop"}
    assert hp["loading"]["batch_size"] == 3 and hp["loading"]["num_workers"] == 2
    assert hp["transforms"]["mean"] == list(Transforms().mean) and hp["decoding"] == flatten_arguments(
        {"decoding": Decoding()})
    assert dict(dm.hparams_initial) == hp
    assert yaml.safe_load(yaml.safe_dump(hp)) == hp  # plain data: no Python tags in hparams.yaml
    # a checkpoint's datamodule hyper-parameters rebuild the same datamodule
    path = tmp_path / "dm.ckpt"
    torch.save({"datamodule_hyper_parameters": hp, "pytorch-lightning_version": "2.6.6"}, path)
    again = UCF101DataModule.load_from_checkpoint(path)
    assert (again.sampling, again.loading, again.transforms) == (dm.sampling, dm.loading, dm.transforms)


@pytest.mark.parametrize(("group", "value", "message"), [
    ("loading", {"batch_size": 0}, "loading.batch_size must be a positive integer, got 0"),
    ("loading", {"num_workers": -1}, "loading.num_workers must be a non-negative integer, got -1"),
    ("loading", {"worker_timeout": 0}, "loading.worker_timeout must be a positive number of seconds or None"),
    ("sampling", {"clip_len": True}, "sampling.clip_len must be a positive integer, got True"),
    ("sampling", {"test_clips": 0}, "sampling.test_clips must be a positive integer, got 0"),
    ("transforms", {"crop_size": 0}, "transforms.crop_size must be a positive integer, got 0"),
    ("transforms", {"train_crop": "square"}, "transforms.train_crop='square' is not supported"),
    ("decoding", {"decoder": "ffmpeg"}, "decoding.decoder='ffmpeg' is not supported"),
    ("decoding", {"probe": "deep"}, "decoding.probe='deep' is not supported"),
    ("decoding", {"decode_timeout": -1}, "decoding.decode_timeout must be a positive number of seconds"),
    ("loading", {"batch_sise": 4}, "loading: unknown key(s) batch_sise; loading takes batch_size, num_workers"),
    ("sampling", {"batch_size": 4}, "sampling: unknown key(s) batch_size; sampling takes clip_len"),
])
def test_bad_group_fields_are_named(ucf_root: Path, group: str, value: dict, message: str) -> None:
    import re

    with pytest.raises(ValueError, match=re.escape(message)):
        UCF101DataModule(ucf_root, **{group: value})


def test_a_group_is_a_dataclass_or_a_dict(ucf_root: Path) -> None:
    with pytest.raises(TypeError, match="loading must be a Loading or a dict of its fields, got int"):
        UCF101DataModule(ucf_root, loading=4)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sampling must be a ClipSampling or a dict of its fields, got Loading"):
        UCF101DataModule(ucf_root, sampling=Loading())  # type: ignore[arg-type]


def test_flat_and_grouped_arguments_convert_both_ways() -> None:
    flat = {"root": "r", "split": 2, "clip_len": 8, "batch_size": 4, "decoder": "pyav", "mean": [0.5] * 3,
            "seed": 1}
    grouped = group_arguments(flat)
    assert grouped == {"root": "r", "split": 2, "seed": 1, "decoding": {"decoder": "pyav"},
                       "sampling": {"clip_len": 8}, "transforms": {"mean": [0.5] * 3}, "loading": {"batch_size": 4}}
    assert flatten_arguments(grouped) == flat
    assert group_arguments(grouped) == grouped and flatten_arguments(flat) == flat
    # a grouped value wins over a flat one of the same name
    assert group_arguments({"batch_size": 4, "loading": {"batch_size": 2}}) == {"loading": {"batch_size": 2}}
    assert flatten_arguments({"batch_size": 4, "loading": Loading(batch_size=2)})["batch_size"] == 2


def test_each_dataset_file_holds_its_parser_and_its_datamodule():
    from softpool_video import datamodules

    for module, names in {"ucf101": ("UCF101Annotations", "UCF101DataModule"),
                          "hmdb51": ("HMDB51Annotations", "HMDB51DataModule"),
                          "kinetics": ("KineticsAnnotations", "KineticsDataModule")}.items():
        for name in names:
            assert getattr(datamodules, name).__module__ == f"softpool_video.datamodules.{module}"
    assert datamodules.VideoDataModule.__module__ == "softpool_video.datamodules.datamodule"


def test_the_package_imports_without_lightning():
    # DataLoader workers and the data commands import the package; Lightning costs seconds.
    import subprocess
    import sys

    code = ("import sys, softpool_video.datamodules, softpool_video.commands.check_videos, "
            "softpool_video.commands.make_demo_data; "
            "assert 'pytorch_lightning' not in sys.modules and 'lightning' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
