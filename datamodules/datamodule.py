"""The Lightning DataModule base shared by every dataset (ucf101.py, hmdb51.py, kinetics.py).

    annotations (official files) -> records -> video index (probe once, cached)
      -> VideoClipDataset (sampler + transforms) -> DataLoader

- train: one random clip per video, random crop and flip; shuffled.
- val:   `val_clips` x `val_crops` views per video, by default the centre clip and crop.
- test / predict: `test_clips` x `test_crops` views per video (default 10 x 3); every view is
  one sample and `video_index` says which video it belongs to.

`num_classes` and `class_names` are read from the annotation files on first use, so a
training module can size its head right after constructing the DataModule.

DDP. Training uses `SeededTrainSampler`, a DistributedSampler that Lightning leaves in
place: shuffled per (seed, epoch), sharded per rank; each training item is augmented under its own seed
(`SeededItems`). Validation and test use `VideoShardSampler`, a non-padding
DistributedSampler that Lightning leaves in place, so across ranks every view of every
video is evaluated exactly once.

Bad videos. `prepare_data()` (or `setup()`, if it was skipped) probes every video once into
the index cache; undecodable, truncated and empty files are excluded and logged with
their count and paths (`bad_videos`), annotated files that are missing likewise
(`missing_videos`). A file that fails later, at read time (or hangs for `decode_timeout`
seconds), is recorded and left out of its batch (in training another item of the rank's
shard takes its place, so every DDP rank takes as many steps); the loaders (`ResilientDataLoader`) also
survive a dead worker. The loaders are torchdata StatefulDataLoaders: Lightning saves the
training loader's place in the epoch in every checkpoint, and `--ckpt_path` resumes there.
`teardown()` logs the count and paths (`read_failures()`).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from itertools import compress
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from softpool_video.option_groups import as_group, group_hparams

from .bulk import collector_paused
from .collate import collate_clips
from .dataset import VideoClipDataset
from .index_cache import VideoIndex
from .index_columns import MetaColumns
from .listing import VideoListing
from .options import GROUPS, ClipSampling, Decoding, Loading, Stage, Transforms
from .records import Subset, VideoRecord, existing_root
from .resilient import ResilientDataLoader
from .samplers import SeededItems, SeededTrainSampler, VideoShardSampler

log = logging.getLogger(__name__)


# The groups' defaults (frozen, so one instance serves every datamodule).
DEFAULT_DECODING, DEFAULT_SAMPLING = Decoding(), ClipSampling()
DEFAULT_TRANSFORMS, DEFAULT_LOADING = Transforms(), Loading()


def split_holdout(records: Sequence[VideoRecord], fraction: float, seed: int,
                  class_names: Sequence[str] | None = None) -> tuple[list[VideoRecord], list[VideoRecord]]:
    """Hold out about `fraction` of each class's groups (never splitting a group): at least one
    group of every class that has two or more, and never all of them.

    Returns (kept, held_out). Deterministic for a given seed. Raises a ValueError naming the
    class, `holdout_fraction` and `val_source` when no holdout can be made (no class with two
    groups; or a class all of whose groups were held out with other classes, whose source
    videos they share). `class_names` name the classes in that message.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout_fraction must lie in (0, 1), got {fraction!r}")
    # (label, group) pairs, each once (a dict as an ordered set: linear in videos); fields
    # by position, which is cheaper than by name over Kinetics-700's half a million records
    groups_by_class: dict[int, list[str]] = {}
    for label, group in dict.fromkeys((r[1], r[2]) for r in records):
        groups_by_class.setdefault(label, []).append(group)
    rng = np.random.default_rng(seed)
    held: set[str] = set()
    for label in sorted(groups_by_class):
        groups = sorted(groups_by_class[label])
        if len(groups) < 2:
            continue  # a class with one group stays entirely in training
        count = min(len(groups) - 1, max(1, round(fraction * len(groups))))
        held.update(groups[i] for i in rng.permutation(len(groups))[:count])

    def name(label: int) -> str:
        return repr(class_names[label]) if class_names is not None and 0 <= label < len(class_names) else str(label)

    fix = ("use val_source='test' (validation on the official test list, which needs "
           "allow_test_selection) or a dataset with more source videos per class")
    if records and not held:
        raise ValueError(f"val_source='holdout', holdout_fraction={fraction}: no class has two or more groups "
                         f"(videos of different sources), so none can be held out without sharing a source "
                         f"with training; {fix}")
    for label, groups in groups_by_class.items():
        if all(g in held for g in groups):
            raise ValueError(f"val_source='holdout', holdout_fraction={fraction}: class {name(label)} has every "
                             f"group held out (its source videos also hold clips of other classes that were "
                             f"held out), none left to train on; choose another seed or holdout_fraction, or {fix}")
    out = [r[2] in held for r in records]
    return list(compress(records, [not x for x in out])), list(compress(records, out))


class VideoDataModule(pl.LightningDataModule):
    """Shared base. Subclasses say how to read their annotations (`_make_annotations`).

    Args:
        root: dataset root (the folder holding the videos and the annotation files).
        split: official split (1, 2 or 3 for UCF-101 and HMDB-51).
        decoding: how videos are decoded and indexed (decoder, decode_threads,
            decode_timeout, probe, cache_dir, index_workers; see `Decoding`).
        sampling: which frames make a clip (clip_len, frame_interval, val_clips, test_clips,
            short_video; see `ClipSampling`).
        transforms: what is done to a clip (crop_size, resize_short, test_resize_short,
            train_crop, train_scale, flip, mean, std, val_crops, test_crops; see `Transforms`).
        loading: how batches are loaded (batch_size, num_workers, pin_memory,
            persistent_workers, prefetch_factor, drop_last, worker_timeout; see `Loading`).
        val_source: where validation videos (and so checkpoint selection) come from.
            'holdout' (default): a group-aware part of the train list, so the reported test
            list never picks its own checkpoint. 'test' (UCF-101 / HMDB-51; Kinetics: 'val')
            validates on the official list that `test` reports: combined with a monitored
            checkpoint that leaks, and is refused unless `allow_test_selection` is set.
        holdout_fraction: share of each class's groups held out when val_source='holdout'.
        allow_test_selection: allow choosing checkpoints on the reported test list, to reproduce
            papers that did so; every result of such a run is marked as selected on test.
        seed: seeds the holdout split, the shuffling and the workers' RNG.

    Each group is its dataclass (options.py) or a dict of some of its fields, the others
    keeping their defaults: `UCF101DataModule(root, sampling={"clip_len": 8},
    loading={"batch_size": 4, "num_workers": 0})`. The hyper-parameters keep each group as
    a dict. The datamodule keeps the groups (`dm.loading.batch_size`, `dm.sampling.clip_len`)
    and each builds what it defines: `sampling.sampler(stage)`, `transforms.transform(stage)`,
    `loading.loader_arguments()` (where `pin_memory` and `persistent_workers` are decided).
    `clip_size` is (T, H, W) of the model's input.
    """

    dataset_name: ClassVar[str] = "video"
    official_subsets: ClassVar[tuple[str, ...]] = ("train", "test")
    val_sources: ClassVar[tuple[str, ...]] = ("test", "holdout")

    def __init__(
        self,
        root: str | Path,
        split: int = 1,
        *,
        decoding: Decoding = DEFAULT_DECODING,
        sampling: ClipSampling = DEFAULT_SAMPLING,
        transforms: Transforms = DEFAULT_TRANSFORMS,
        loading: Loading = DEFAULT_LOADING,
        val_source: str = "holdout",
        holdout_fraction: float = 0.1,
        allow_test_selection: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        # A dict is accepted for each group (Python callers, checkpoints' hyper-parameters).
        self.decoding = as_group("decoding", Decoding, decoding)
        self.sampling = as_group("sampling", ClipSampling, sampling)
        self.transforms = as_group("transforms", Transforms, transforms)
        self.loading = as_group("loading", Loading, loading)
        self.save_hyperparameters()
        # again, with the groups as plain dicts: hparams.yaml and checkpoints hold plain data
        self.save_hyperparameters({**self.hparams, **{name: group_hparams(getattr(self, name))
                                                      for name in GROUPS}})
        if val_source not in self.val_sources:
            raise ValueError(f"val_source={val_source!r} is not supported for {self.dataset_name}; "
                             f"choose one of {self.val_sources}")
        self.root = existing_root(root)
        self.split = split
        self.val_source, self.holdout_fraction = val_source, holdout_fraction
        self.allow_test_selection = bool(allow_test_selection)
        self.seed = seed

        self._annotations: Any = None
        self._listing: VideoListing | None = None
        self._subsets: dict[str, Subset] = {}
        self._index: VideoIndex | None = None
        self.datasets: dict[str, VideoClipDataset] = {}
        self.bad_videos: dict[str, str] = {}  # rel path -> reason, excluded at setup
        self.missing_videos: dict[str, list[str]] = {}  # subset -> annotated but absent
        self._stage_started = time.time()

    # ---- annotations -----------------------------------------------------------------
    def _make_annotations(self) -> Any:
        """An object with `class_names`, `subset(name) -> Subset`, `dataset` (a name) and
        `release_tables()`."""
        raise NotImplementedError

    @property
    def listing(self) -> VideoListing:
        """The video files under the root, refreshed once per datamodule: a warm set-up
        stats the folders, not the files, and walks nothing (listing.py)."""
        if self._listing is None:
            self._listing = VideoListing.of(self.root, self.decoding.cache_dir)
        return self._listing

    @property
    def annotations(self) -> Any:
        if self._annotations is None:
            with collector_paused():
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
                kept, held = split_holdout(train.records, self.holdout_fraction, self.seed, ann.class_names)
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
            self._index = VideoIndex(self.root, decoder=self.decoding.decoder, depth=self.decoding.probe,
                                     cache_dir=self.decoding.cache_dir, workers=self.decoding.index_workers)
        return self._index

    def _describe(self, stage: str) -> str:
        return f"{self.annotations.dataset} split {self.split} {stage}"

    def prepare_data(self) -> None:
        """Probe every video of every stage once (rank 0 of each node, under Lightning)."""
        rels = list(dict.fromkeys(r.rel for stage in ("train", "val", "test") for r in self.subset(stage).records))
        # as columns: a warm index answers without an entry object per video (index_columns.py)
        self.index.columns(rels, f"Indexing {self.annotations.dataset} videos", listing=self.listing)

    def _good(self, stage: Stage) -> tuple[list[VideoRecord], MetaColumns]:
        records = self.subset(stage).records
        metas = self.index.columns([r.rel for r in records], f"Indexing {self._describe(stage)}",
                                   listing=self.listing)
        ok = metas.ok
        bad = {records[i].rel: metas.error[i] for i in np.flatnonzero(~ok).tolist()}
        if bad:
            self.bad_videos.update(bad)
            shown = "; ".join(f"{rel} ({err})" for rel, err in list(bad.items())[:10])
            log.warning("%s: %d of %d videos are undecodable and excluded: %s%s. Full report: "
                        "softpool-video check-videos %s", self._describe(stage), len(bad),
                        len(records), shown, "; ..." if len(bad) > 10 else "", self.root)
        if not ok.any():
            raise ValueError(f"{self._describe(stage)}: no decodable videos among {len(records)} "
                             f"annotated under {self.root}")
        if not bad:
            return records, metas
        rows = np.flatnonzero(ok)
        return [records[i] for i in rows.tolist()], metas.take(rows)

    # ---- datasets --------------------------------------------------------------------
    @property
    def clip_size(self) -> tuple[int, int, int]:
        """(T, H, W) of the clips the model is fed; the CLI links it to `model.clip_size`."""
        return (self.sampling.clip_len, self.transforms.crop_size, self.transforms.crop_size)

    def build_dataset(self, stage: Stage) -> VideoClipDataset:
        records, metas = self._good(stage)
        decoding = self.decoding
        return VideoClipDataset(self.root, records, metas, self.sampling.sampler(stage), self.transforms.transform(stage),
                                num_crops=self.transforms.crops(stage), decoder=decoding.decoder,
                                decode_threads=decoding.decode_threads,
                                failure_log=self.index.failure_log(), name=self._describe(stage),
                                decode_timeout=decoding.decode_timeout)

    def setup(self, stage: str | None = None) -> None:
        stages: dict[str | None, tuple[Stage, ...]] = {
            "fit": ("train", "val"), "validate": ("val",), "test": ("test",),
            "predict": ("test",), None: ("train", "val", "test")}
        if stage not in stages:
            raise ValueError(f"stage={stage!r} is not one of {tuple(stages)}")
        self._stage_started = time.time()
        for name in stages[stage]:
            if name not in self.datasets:
                with collector_paused():  # bulk.py: half the time of a Kinetics-700 set-up
                    self.datasets[name] = self.build_dataset(name)
                log.info("%s: %d videos, %d samples", self._describe(name),
                         self.datasets[name].num_videos, len(self.datasets[name]))
        self._release_tables()

    def _release_tables(self) -> None:
        """Drop the per-video tables set-up built once the datasets hold their packed copies:
        the annotations' rows, the subsets' records, the index's entries, the listing's path
        tables. At 200,000 videos they are ~190 MiB in every rank and, through fork, in every
        DataLoader worker; what asks for them again makes them again (the index from its
        file, the listing from its folders: about a second at that size)."""
        self._subsets.clear()
        self._index = None
        if self._annotations is not None:
            self._annotations.release_tables()

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
            **self.loading.loader_arguments(),
            # Fixes the DataLoader's worker base seed, so creating a loader never draws from the
            # global RNG; training items are seeded per item (samplers.py).
            generator=torch.Generator().manual_seed(self.seed),
            collate_fn=collate_clips,  # one shared storage for the index fields: a cheaper hand-over
        )
        if train:
            # Order fixed by (seed, epoch), sharded per rank, each item augmented under its own
            # seed (see samplers.py); the loader's state in each checkpoint says how far the
            # epoch got, and a resumed run goes on from there (resilient.py).
            replicas, rank = self._shard() or (1, 0)
            sampler = SeededTrainSampler(dataset, replicas, rank, seed=self.seed)
            return DataLoader(SeededItems(dataset), sampler=sampler, drop_last=self.loading.drop_last, **kwargs)
        shard = self._shard()
        sampler = (VideoShardSampler(dataset, dataset.views_per_video, *shard)
                   if shard is not None else None)
        return DataLoader(dataset, shuffle=False, sampler=sampler, drop_last=False, **kwargs)

    def _resilient(self, loader: DataLoader, stage: Stage) -> ResilientDataLoader:
        # Same sampler, batching and workers, as a StatefulDataLoader (Lightning saves where
        # the epoch stands in each checkpoint); unreadable videos are left out of their batch
        # and counted, and a dead or hung worker is replaced mid-epoch (resilient.py). The
        # training loader decodes the next epoch's first batches while validation runs.
        # A training batch is never dropped: every rank must take as many steps as the others.
        return ResilientDataLoader.wrap(loader, name=self._describe(stage), prime_next_epoch=stage == "train",
                                        keep_batch_count=stage == "train")

    def train_dataloader(self) -> DataLoader:
        loader = self._resilient(self._loader(self._dataset("train"), train=True), "train")
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            # with limit_train_batches an epoch ends before the loader runs out: a checkpoint
            # saved then must resume with the next epoch, not the rest of this one
            loader.batches_per_epoch = lambda: trainer.num_training_batches
        state, self._train_loader_state = getattr(self, "_train_loader_state", None), None
        if state:
            loader.load_state_dict(state)  # a run resumed from a checkpoint (see state_dict)
        return loader

    # ---- mid-epoch resume -------------------------------------------------------------
    # Lightning also keeps the training loader's state, but applies it only if the loader is
    # first iterated after the checkpoint is restored; asking for the number of training
    # steps during set-up (our LR schedules do) iterates it before. The datamodule's state
    # is restored first, so the loader resumes from this copy.
    def state_dict(self) -> dict[str, Any]:
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.state.fn != "fit":
            return {}
        loader = trainer.train_dataloader
        return {"train_loader": loader.state_dict()} if isinstance(loader, ResilientDataLoader) else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._train_loader_state = state_dict.get("train_loader")

    def val_dataloader(self) -> DataLoader:
        return self._resilient(self._loader(self._dataset("val"), train=False), "val")

    def test_dataloader(self) -> DataLoader:
        return self._resilient(self._loader(self._dataset("test"), train=False), "test")

    def predict_dataloader(self) -> DataLoader:
        return self._resilient(self._loader(self._dataset("test"), train=False), "test")

    # ---- reporting -------------------------------------------------------------------
    def read_failures(self, since: float | None = None) -> dict[str, str]:
        """Videos that failed at read time and were skipped (rel path -> reason), by default
        since the last setup(); recorded by every worker process."""
        return {rel: rec.get("error", "") for rel, rec in self._read_records(since).items()
                if not rec.get("recovered")}

    def changed_videos(self, since: float | None = None) -> dict[str, str]:
        """Videos that had changed since they were indexed and were probed again and read where
        they were read (rel path -> what the probe found), by default since the last setup()."""
        return {rel: rec.get("error", "") for rel, rec in self._read_records(since).items()
                if rec.get("recovered")}

    def _read_records(self, since: float | None) -> dict[str, dict]:
        return self.index.failure_log().read(self._stage_started if since is None else since)

    def teardown(self, stage: str) -> None:
        failures = self.read_failures()
        if failures:
            shown = "; ".join(f"{rel} ({err})" for rel, err in list(failures.items())[:10])
            log.warning("%s: %d videos failed at read time during %s and were skipped: %s%s. "
                        "They will be excluded from the next run's index.",
                        self.annotations.dataset, len(failures), stage, shown,
                        "; ..." if len(failures) > 10 else "")
        changed = self.changed_videos()
        if changed:
            shown = ", ".join(list(changed)[:10])
            log.warning("%s: %d videos had changed since they were indexed and were probed again "
                        "as they were read during %s: %s%s. The next set-up indexes them again.",
                        self.annotations.dataset, len(changed), stage, shown, ", ..." if len(changed) > 10 else "")
