"""The Lightning DataModule base shared by every dataset (ucf101.py, hmdb51.py, kinetics.py).

    annotations (official files) -> records -> video index (probe once, cached)
      -> VideoClipDataset (sampler + transforms) -> DataLoader

- train: one random clip per video, random crop and flip; shuffled.
- val:   `val_clips` x `val_crops` views per video, by default the centre clip and crop.
- test / predict: `test_clips` x `test_crops` views per video (default 10 x 3); every view is
  one sample and `video_index` says which video it belongs to.

`num_classes` and `class_names` are read from the annotation files on first use, so a
training module can size its head right after constructing the DataModule.

DDP. Training uses `ResumableTrainSampler`, a DistributedSampler that Lightning leaves in
place: shuffled per (seed, epoch), sharded per rank, resumable mid-epoch through the
datamodule's `state_dict`; each training item is augmented under its own seed
(`SeededItems`). Validation and test use `VideoShardSampler`, a non-padding
DistributedSampler that Lightning leaves in place, so across ranks every view of every
video is evaluated exactly once.

Bad videos. `prepare_data()` (or `setup()`, if it was skipped) probes every video once into
the index cache; undecodable, truncated and empty files are excluded and logged with
their count and paths (`bad_videos`), annotated files that are missing likewise
(`missing_videos`). A file that fails later, at read time (or hangs for `decode_timeout`
seconds), is left out of its batch and recorded; the loaders (`ResilientDataLoader`) also
survive a dead worker. `teardown()` logs the count and paths (`read_failures()`).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from .clip_sampling import SHORT_VIDEO_MODES, ClipSampler
from .collate import collate_clips
from .dataset import DEFAULT_DECODE_TIMEOUT, VideoClipDataset
from .decoders import check_backend
from .index_cache import PROBE_DEPTHS, VideoIndex, VideoMeta
from .records import Subset, VideoRecord
from .resilient import ResilientDataLoader
from .samplers import ResumableTrainSampler, SeededItems, VideoShardSampler
from .transforms import (
    KINETICS_MEAN,
    KINETICS_STD,
    TRAIN_CROPS,
    EvalTransform,
    TrainTransform,
)

log = logging.getLogger(__name__)

Stage = Literal["train", "val", "test"]


def split_holdout(records: Sequence[VideoRecord], fraction: float,
                  seed: int) -> tuple[list[VideoRecord], list[VideoRecord]]:
    """Hold out about `fraction` of each class's groups (never splitting a group).

    Returns (kept, held_out). Deterministic for a given seed.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout_fraction must lie in (0, 1), got {fraction!r}")
    groups_by_class: dict[int, list[str]] = {}
    for r in records:
        groups = groups_by_class.setdefault(r.label, [])
        if r.group not in groups:
            groups.append(r.group)
    rng = np.random.default_rng(seed)
    held: set[str] = set()
    for label in sorted(groups_by_class):
        groups = sorted(groups_by_class[label])
        if len(groups) < 2:
            continue  # a class with one group stays entirely in training
        count = min(len(groups) - 1, max(1, round(fraction * len(groups))))
        held.update(groups[i] for i in rng.permutation(len(groups))[:count])
    kept = [r for r in records if r.group not in held]
    out = [r for r in records if r.group in held]
    return kept, out


class VideoDataModule(pl.LightningDataModule):
    """Shared base. Subclasses say how to read their annotations (`_make_annotations`).

    Args:
        root: dataset root (the folder holding the videos and the annotation files).
        split: official split (1, 2 or 3 for UCF-101 and HMDB-51).
        clip_len: frames per clip.
        frame_interval: take every `frame_interval`-th frame.
        crop_size: side of the square crop fed to the model.
        resize_short: short side of the frames before the centre crop of training and before
            the evaluation crops (None: keep); the random training crops work from the decoded
            frame, whose scale they do not depend on.
        batch_size: clips per batch (per device).
        num_workers: DataLoader worker processes.
        pin_memory: pin batches for faster host-to-GPU copies (None: when CUDA is available).
        persistent_workers: keep workers alive between epochs (None: when num_workers > 0).
        prefetch_factor: batches each worker prepares ahead (None: PyTorch's default).
        train_crop: 'random_resized', 'multi_scale' or 'centre'.
        train_scale: area range of the random resized crop.
        flip: random horizontal flip in training.
        mean, std: per-channel normalisation, applied last.
        val_clips, val_crops: views per video in validation (default: the centre clip and crop).
        test_clips, test_crops: views per video in test / predict (default 10 x 3).
        test_resize_short: short side before the test crops (None: same as resize_short).
        short_video: 'loop' or 'repeat_last' for videos shorter than a clip.
        val_source: where validation videos (and so checkpoint selection) come from.
            'holdout' (default): a group-aware part of the train list, so the reported test
            list never picks its own checkpoint. 'test' (UCF-101 / HMDB-51; Kinetics: 'val')
            validates on the official list that `test` reports: combined with a monitored
            checkpoint that leaks, and is refused unless `allow_test_selection` is set.
        holdout_fraction: share of each class's groups held out when val_source='holdout'.
        allow_test_selection: allow choosing checkpoints on the reported test list, to reproduce
            papers that did so; every result of such a run is marked as selected on test.
        seed: seeds the holdout split, the shuffling and the workers' RNG.
        decoder: 'decord' (default) or 'pyav'; the other backend is the fallback.
        decode_threads: decoder threads per worker (1 suits DataLoader workers).
        probe: how deeply the index checks each video once: 'header', 'fast', 'full'.
        cache_dir: where the video index lives (None: <root>/.softpool_video).
        index_workers: threads probing videos while building the index (None: auto).
        drop_last: drop the last incomplete training batch.
        decode_timeout: seconds after which a video still decoding is abandoned as hung,
            skipped and reported (None: wait forever).
        worker_timeout: seconds a DataLoader worker may go without sending a batch before it
            is taken as stuck (somewhere decode_timeout cannot reach), replaced and
            reported (None: no limit; with workers only).
    """

    dataset_name: ClassVar[str] = "video"
    official_subsets: ClassVar[tuple[str, ...]] = ("train", "test")
    val_sources: ClassVar[tuple[str, ...]] = ("test", "holdout")

    def __init__(
        self,
        root: str | Path,
        split: int = 1,
        clip_len: int = 16,
        frame_interval: int = 2,
        crop_size: int = 112,
        resize_short: int | None = 128,
        batch_size: int = 8,
        num_workers: int = 2,
        pin_memory: bool | None = None,
        persistent_workers: bool | None = None,
        prefetch_factor: int | None = None,
        train_crop: Literal["random_resized", "multi_scale", "centre"] = "random_resized",
        train_scale: tuple[float, float] = (0.25, 1.0),
        flip: bool = True,
        mean: tuple[float, float, float] = KINETICS_MEAN,
        std: tuple[float, float, float] = KINETICS_STD,
        val_clips: int = 1,
        val_crops: int = 1,
        test_clips: int = 10,
        test_crops: int = 3,
        test_resize_short: int | None = None,
        short_video: Literal["loop", "repeat_last"] = "loop",
        val_source: str = "holdout",
        holdout_fraction: float = 0.1,
        allow_test_selection: bool = False,
        seed: int = 0,
        decoder: Literal["decord", "pyav"] = "decord",
        decode_threads: int = 1,
        probe: Literal["header", "fast", "full"] = "fast",
        cache_dir: str | Path | None = None,
        index_workers: int | None = None,
        drop_last: bool = True,
        decode_timeout: float | None = DEFAULT_DECODE_TIMEOUT,
        worker_timeout: float | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        for name in ("clip_len", "frame_interval", "crop_size", "batch_size", "val_clips",
                     "val_crops", "test_clips", "test_crops", "decode_threads"):
            value = locals()[name]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be a non-negative integer, got {num_workers!r}")
        if train_crop not in TRAIN_CROPS:
            raise ValueError(f"train_crop={train_crop!r} is not supported; choose one of {TRAIN_CROPS}")
        if short_video not in SHORT_VIDEO_MODES:
            raise ValueError(f"short_video={short_video!r} is not supported; choose one of "
                             f"{SHORT_VIDEO_MODES}")
        if val_source not in self.val_sources:
            raise ValueError(f"val_source={val_source!r} is not supported for {self.dataset_name}; "
                             f"choose one of {self.val_sources}")
        if probe not in PROBE_DEPTHS:
            raise ValueError(f"probe={probe!r} is not supported; choose one of {PROBE_DEPTHS}")
        if decode_timeout is not None and (isinstance(decode_timeout, bool) or not decode_timeout > 0):
            raise ValueError(f"decode_timeout must be a positive number of seconds or None, got "
                             f"{decode_timeout!r}")
        if worker_timeout is not None and (isinstance(worker_timeout, bool) or not worker_timeout > 0):
            raise ValueError(f"worker_timeout must be a positive number of seconds or None, got "
                             f"{worker_timeout!r}")
        check_backend(decoder)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"root={str(root)!r} is not a directory")
        self.split = split
        self.clip_len, self.frame_interval = clip_len, frame_interval
        self.crop_size, self.resize_short = crop_size, resize_short
        self.batch_size, self.num_workers = batch_size, num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = (num_workers > 0 if persistent_workers is None
                                   else persistent_workers and num_workers > 0)
        self.prefetch_factor = prefetch_factor
        self.train_crop, self.train_scale, self.flip = train_crop, tuple(train_scale), flip
        self.mean, self.std = tuple(mean), tuple(std)
        self.val_clips, self.val_crops = val_clips, val_crops
        self.test_clips, self.test_crops = test_clips, test_crops
        self.test_resize_short = resize_short if test_resize_short is None else test_resize_short
        self.short_video = short_video
        self.val_source, self.holdout_fraction = val_source, holdout_fraction
        self.allow_test_selection = bool(allow_test_selection)
        self.seed = seed
        self.decoder, self.decode_threads, self.probe = decoder, decode_threads, probe
        self.cache_dir, self.index_workers = cache_dir, index_workers
        self.drop_last = drop_last
        self.decode_timeout = decode_timeout
        self.worker_timeout = worker_timeout

        self._annotations: Any = None
        self._subsets: dict[str, Subset] = {}
        self._index: VideoIndex | None = None
        self.datasets: dict[str, VideoClipDataset] = {}
        self.bad_videos: dict[str, str] = {}  # rel path -> reason, excluded at setup
        self.missing_videos: dict[str, list[str]] = {}  # subset -> annotated but absent
        self._stage_started = time.time()

    # ---- annotations -----------------------------------------------------------------
    def _make_annotations(self) -> Any:
        """An object with `class_names`, `subset(name) -> Subset` and `dataset` (a name)."""
        raise NotImplementedError

    @property
    def annotations(self) -> Any:
        if self._annotations is None:
            self._annotations = self._make_annotations()
        return self._annotations

    @property
    def class_names(self) -> list[str]:
        return list(self.annotations.class_names)

    @property
    def num_classes(self) -> int:
        return len(self.annotations.class_names)

    @property
    def test_subset_name(self) -> str:
        return "test"

    @property
    def validates_on_test(self) -> bool:
        """Whether validation runs on the very list that `test` reports (a leak when it selects)."""
        return self.val_source == self.test_subset_name

    def protocol(self) -> dict[str, Any]:
        """How checkpoint selection relates to the reported test set, for run records and tables."""
        return {"val_source": self.val_source, "test_subset": self.test_subset_name,
                "holdout_fraction": self.holdout_fraction if self.val_source == "holdout" else None,
                "validates_on_test": self.validates_on_test}

    def subset(self, stage: Stage) -> Subset:
        """The annotated videos (before excluding bad files) that feed `stage`."""
        if stage not in ("train", "val", "test"):
            raise ValueError(f"stage={stage!r} is not one of ('train', 'val', 'test')")
        if stage not in self._subsets:
            ann = self.annotations
            if self.val_source == "holdout" and stage in ("train", "val"):
                train = ann.subset("train")
                kept, held = split_holdout(train.records, self.holdout_fraction, self.seed)
                self._subsets["train"] = Subset("train", kept, train.missing)
                self._subsets["val"] = Subset("val", held, [])
            elif stage == "train":
                self._subsets["train"] = ann.subset("train")
            elif stage == "val":
                self._subsets["val"] = ann.subset(self.val_source)
            else:
                self._subsets["test"] = ann.subset(self.test_subset_name)
            self.missing_videos[stage] = list(self._subsets[stage].missing)
        return self._subsets[stage]

    # ---- index -----------------------------------------------------------------------
    @property
    def index(self) -> VideoIndex:
        if self._index is None:
            self._index = VideoIndex(self.root, backend=self.decoder, depth=self.probe,
                                     cache_dir=self.cache_dir, workers=self.index_workers)
        return self._index

    def _describe(self, stage: str) -> str:
        return f"{self.annotations.dataset} split {self.split} {stage}"

    def prepare_data(self) -> None:
        """Probe every video of every stage once (rank 0 of each node, under Lightning)."""
        rels = [r.rel for stage in ("train", "val", "test") for r in self.subset(stage).records]
        self.index.ensure(rels, f"Indexing {self.annotations.dataset} videos")

    def _good(self, stage: Stage) -> tuple[list[VideoRecord], list[VideoMeta]]:
        records = self.subset(stage).records
        metas = self.index.ensure([r.rel for r in records], f"Indexing {self._describe(stage)}")
        good = [(r, metas[r.rel]) for r in records if metas[r.rel].ok]
        bad = {r.rel: metas[r.rel].error for r in records if not metas[r.rel].ok}
        if bad:
            self.bad_videos.update(bad)
            shown = "; ".join(f"{rel} ({err})" for rel, err in list(bad.items())[:10])
            log.warning("%s: %d of %d videos are undecodable and excluded: %s%s. Full report: "
                        "softpool-video check-videos %s", self._describe(stage), len(bad),
                        len(records), shown, "; ..." if len(bad) > 10 else "", self.root)
        if not good:
            raise ValueError(f"{self._describe(stage)}: no decodable videos among {len(records)} "
                               f"annotated under {self.root}")
        return [r for r, _ in good], [m for _, m in good]

    # ---- datasets --------------------------------------------------------------------
    def _sampler(self, stage: Stage) -> ClipSampler:
        common = dict(clip_len=self.clip_len, frame_interval=self.frame_interval,
                      short_video=self.short_video)
        if stage == "train":
            return ClipSampler("random", **common)
        clips = self.val_clips if stage == "val" else self.test_clips
        return ClipSampler("centre" if clips == 1 else "uniform", num_clips=clips, **common)

    def _transform(self, stage: Stage) -> TrainTransform | EvalTransform:
        if stage == "train":
            return TrainTransform(self.crop_size, self.resize_short, crop=self.train_crop,
                                  scale=self.train_scale, flip=self.flip, mean=self.mean, std=self.std)
        if stage == "val":
            return EvalTransform(self.crop_size, self.resize_short or self.crop_size,
                                 num_crops=self.val_crops, mean=self.mean, std=self.std)
        return EvalTransform(self.crop_size, self.test_resize_short or self.crop_size,
                             num_crops=self.test_crops, mean=self.mean, std=self.std)

    def build_dataset(self, stage: Stage) -> VideoClipDataset:
        records, metas = self._good(stage)
        crops = 1 if stage == "train" else (self.val_crops if stage == "val" else self.test_crops)
        return VideoClipDataset(self.root, records, metas, self._sampler(stage), self._transform(stage),
                                num_crops=crops, decoder=self.decoder,
                                decode_threads=self.decode_threads,
                                failure_log=self.index.failure_log(), name=self._describe(stage),
                                decode_timeout=self.decode_timeout)

    def setup(self, stage: str | None = None) -> None:
        stages: dict[str | None, tuple[Stage, ...]] = {
            "fit": ("train", "val"), "validate": ("val",), "test": ("test",),
            "predict": ("test",), None: ("train", "val", "test")}
        if stage not in stages:
            raise ValueError(f"stage={stage!r} is not one of {tuple(stages)}")
        self._stage_started = time.time()
        for name in stages[stage]:
            if name not in self.datasets:
                self.datasets[name] = self.build_dataset(name)
                log.info("%s: %d videos, %d samples", self._describe(name),
                         self.datasets[name].num_videos, len(self.datasets[name]))

    def _dataset(self, stage: Stage) -> VideoClipDataset:
        if stage not in self.datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[stage])
        return self.datasets[stage]

    # ---- loaders ---------------------------------------------------------------------
    def _shard(self) -> tuple[int, int] | None:
        """(num_replicas, rank) when running distributed, else None."""
        trainer = getattr(self, "trainer", None)  # set by Lightning when attached
        kwargs = getattr(trainer, "distributed_sampler_kwargs", None) if trainer is not None else None
        if kwargs and kwargs.get("num_replicas", 1) > 1:
            return int(kwargs["num_replicas"]), int(kwargs["rank"])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world = torch.distributed.get_world_size()
            if world > 1:
                return world, torch.distributed.get_rank()
        return None

    def _loader(self, dataset: VideoClipDataset, train: bool) -> DataLoader:
        kwargs: dict[str, Any] = dict(
            batch_size=self.batch_size, num_workers=self.num_workers, pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            # Fixes the DataLoader's worker base seed, so creating a loader never draws from the
            # global RNG; training items are seeded per item (samplers.py).
            generator=torch.Generator().manual_seed(self.seed),
            collate_fn=collate_clips,  # one shared storage for the index fields: a cheaper hand-over
        )
        if self.num_workers > 0 and self.prefetch_factor is not None:
            kwargs["prefetch_factor"] = self.prefetch_factor
        if self.num_workers > 0 and self.worker_timeout is not None:
            kwargs["timeout"] = float(self.worker_timeout)
        if train:
            # Order fixed by (seed, epoch), sharded per rank, each item augmented under its own
            # seed (see samplers.py); a resumed run skips the batches its checkpoint had done.
            replicas, rank = self._shard() or (1, 0)
            sampler = ResumableTrainSampler(dataset, replicas, rank, seed=self.seed)
            position = getattr(self, "_train_position", None)  # from load_state_dict
            if position is not None:
                sampler.resume(position["epoch"], self._batches_to_skip(position, replicas) * self.batch_size)
            return DataLoader(SeededItems(dataset), sampler=sampler, drop_last=self.drop_last, **kwargs)
        shard = self._shard()
        sampler = (VideoShardSampler(dataset, dataset.views_per_video, *shard)
                   if shard is not None else None)
        return DataLoader(dataset, shuffle=False, sampler=sampler, drop_last=False, **kwargs)

    # ---- mid-epoch resume -------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Where training stands, saved in every checkpoint: the epoch a resumed run trains
        first and how many of its batches are already done."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.state.fn != "fit":
            return {}
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        epoch = trainer.current_epoch
        if done >= trainer.num_training_batches:  # saved at the end of the epoch
            epoch, done = epoch + 1, 0
        replicas, _ = self._shard() or (1, 0)
        return {"train_position": {"epoch": int(epoch), "batches": int(done), "batch_size": self.batch_size,
                                   "num_replicas": replicas, "seed": self.seed}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._train_position = state_dict.get("train_position")

    def _batches_to_skip(self, position: dict[str, int], num_replicas: int) -> int:
        now = {"batch_size": self.batch_size, "num_replicas": num_replicas, "seed": self.seed}
        changed = [f"{k} {position.get(k)} -> {v}" for k, v in now.items() if position.get(k) != v]
        if changed and position["batches"]:
            log.warning("resuming in epoch %d after %d batches, but %s changed since the checkpoint: "
                        "that epoch starts over in a new order", position["epoch"], position["batches"],
                        ", ".join(changed))
            return 0
        return int(position["batches"])

    def _resilient(self, loader: DataLoader, stage: Stage) -> ResilientDataLoader:
        # Same sampler, batching and workers; unreadable videos are left out of their batch
        # and counted, and a dead or hung worker is replaced mid-epoch (resilient.py). The
        # training loader decodes the next epoch's first batches while validation runs.
        return ResilientDataLoader.wrap(loader, name=self._describe(stage), prime_next_epoch=stage == "train")

    def train_dataloader(self) -> DataLoader:
        return self._resilient(self._loader(self._dataset("train"), train=True), "train")

    def val_dataloader(self) -> DataLoader:
        return self._resilient(self._loader(self._dataset("val"), train=False), "val")

    def test_dataloader(self) -> DataLoader:
        return self._resilient(self._loader(self._dataset("test"), train=False), "test")

    def predict_dataloader(self) -> DataLoader:
        return self._resilient(self._loader(self._dataset("test"), train=False), "test")

    # ---- reporting -------------------------------------------------------------------
    def read_failures(self, since: float | None = None) -> dict[str, str]:
        """Videos that failed at read time (rel path -> reason), by default since the last
        setup(); recorded by every worker process."""
        recs = self.index.failure_log().read(self._stage_started if since is None else since)
        return {rel: rec.get("error", "") for rel, rec in recs.items()}

    def teardown(self, stage: str) -> None:
        failures = self.read_failures()
        if failures:
            shown = "; ".join(f"{rel} ({err})" for rel, err in list(failures.items())[:10])
            log.warning("%s: %d videos failed at read time during %s and were skipped: %s%s. "
                        "They will be excluded from the next run's index.",
                        self.annotations.dataset, len(failures), stage, shown,
                        "; ..." if len(failures) > 10 else "")
