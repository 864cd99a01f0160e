"""Faults while loading: a dead or hung worker, a video that hangs in decoding, files with no
video stream, annotation paths that leave the dataset root, missing videos. Every epoch goes
on, every good sample arrives exactly once, and every fault is reported."""
from __future__ import annotations

import logging
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from data_fixtures import (
    copy_tree,
    make_hmdb_tree,
    make_kinetics_tree,
    make_ucf_tree,
    release_fifo,
    replace_with_fifo,
    shared_tree,
    write_audio_only,
    write_video,
)
from torch.utils.data import DataLoader, Dataset, get_worker_info

from softpool_video.commands.check_videos import main as check_videos_main
from softpool_video.datamodules import (
    DecodeError,
    HMDB51Annotations,
    KineticsAnnotations,
    UCF101Annotations,
    UCF101DataModule,
    probe_video,
    read_frames,
    read_hmdb51_splits,
)
from softpool_video.datamodules import dataset as dataset_module
from softpool_video.datamodules.collate import SKIPPED_KEY, SkippedItem, SkippingCollate
from softpool_video.datamodules.resilient import ResilientDataLoader
from softpool_video.datamodules.samplers import SeededItems, SeededTrainSampler
from softpool_video.datamodules.timeouts import abandoned_calls


def small_dm(root: Path, val_source: str = "holdout", seed: int = 0, decoding: dict | None = None,
             **loading) -> UCF101DataModule:
    """A UCF-101 DataModule of tiny clips; keyword arguments go to its `loading` group."""
    return UCF101DataModule(root, split=1, val_source=val_source, seed=seed, decoding=decoding or {},
                            sampling=dict(clip_len=4, frame_interval=2, test_clips=2),
                            transforms=dict(crop_size=32, resize_short=36, test_crops=1),
                            loading=dict(batch_size=4, **loading))


@pytest.fixture(scope="module")
def ucf_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_tree(tmp_path_factory, "ucf_videos", lambda r: make_ucf_tree(r, groups=22))


def _views(batches: list[dict]) -> Counter:
    return Counter(torch.cat([b["video_index"] for b in batches]).tolist())


# ---- worker death ---------------------------------------------------------------------------
@pytest.mark.parametrize("persistent", [False, True])
def test_killed_worker_is_replaced_and_the_epoch_completes(ucf_root: Path, persistent: bool,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    dm = small_dm(ucf_root, val_source="test", num_workers=2, persistent_workers=persistent)
    dm.setup("validate")
    videos = dm.datasets["val"].num_videos
    loader = dm.val_dataloader()
    assert isinstance(loader, ResilientDataLoader)
    batches, killed = [], None
    with caplog.at_level(logging.WARNING):
        for batch in loader:
            batches.append(batch)
            if killed is None:
                killed = loader.worker_pids()[0]
                os.kill(killed, signal.SIGKILL)
    assert _views(batches) == Counter(range(videos))  # none lost, none repeated
    assert [(f.pid, f.cause) for f in loader.report.worker_failures] == [
        (killed, "killed by signal SIGKILL")]
    assert loader.report.samples == videos and loader.report.finished
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert f"worker pid {killed} killed by signal SIGKILL" in messages
    assert killed not in loader.worker_pids()
    if persistent:  # the replacement pool serves the next epoch as usual
        pool = loader.worker_pids()
        assert _views(list(loader)) == Counter(range(videos)) and loader.report.clean
        assert loader.worker_pids() == pool and len(pool) == 2
        loader.shutdown()
        assert loader.worker_pids() == []


def _recorder(kill_at_batch: int | None = None):
    """A LightningModule that records the video indices it trains on, per epoch; with
    `kill_at_batch` it SIGKILLs a loader worker in that step (the signal lands while
    Lightning runs the step) and keeps its pid in `killed`."""
    import pytorch_lightning as pl

    class Recorder(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(1, 1)
            self.seen: dict[int, list[int]] = {}
            self.killed: int | None = None

        def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
            self.seen.setdefault(self.current_epoch, []).extend(batch["video_index"].tolist())
            if batch_idx == kill_at_batch:
                self.killed = self.trainer.train_dataloader.worker_pids()[0]
                os.kill(self.killed, signal.SIGKILL)
            return self.lin(batch["video"].mean().reshape(1, 1)).sum()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return Recorder()


def _trainer(epochs: int, **kwargs):
    import pytorch_lightning as pl

    return pl.Trainer(accelerator="cpu", max_epochs=epochs, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False,
                      limit_val_batches=0, num_sanity_val_steps=0, **kwargs)


def test_training_epoch_survives_a_worker_killed_under_lightning(ucf_root: Path) -> None:
    dm = small_dm(ucf_root, num_workers=2, drop_last=False)
    model = _recorder(kill_at_batch=1)
    trainer = _trainer(1)
    trainer.fit(model, datamodule=dm)
    assert Counter(model.seen[0]) == Counter(range(dm.datasets["train"].num_videos))
    loader = trainer.train_dataloader
    assert [f.pid for f in loader.report.worker_failures] == [model.killed]
    assert loader.worker_pids() == [] and loader._iterator is None  # Lightning's teardown


@pytest.mark.parametrize("workers", [0, 2])
def test_each_epoch_under_lightning_trains_in_that_epochs_order(ucf_root: Path, workers: int) -> None:
    dm = small_dm(ucf_root, num_workers=workers, drop_last=False)
    model = _recorder()
    _trainer(3).fit(model, datamodule=dm)
    sampler = SeededTrainSampler(dm.datasets["train"], seed=0)
    for epoch in range(3):  # Lightning asks for each pass before it sets the epoch
        sampler.set_epoch(epoch)
        assert model.seen[epoch] == sampler.indices(), epoch


def test_a_checkpoint_at_the_end_of_a_limited_epoch_resumes_with_the_next(ucf_root: Path, tmp_path: Path) -> None:
    root = str(ucf_root)  # hyperparameters a weights-only load accepts, as the CLI's are
    first = _trainer(1, limit_train_batches=2)  # Lightning stops each epoch after 2 of its batches
    first.fit(_recorder(), datamodule=small_dm(root, num_workers=2))
    first.save_checkpoint(tmp_path / "epoch0.ckpt")
    model, dm = _recorder(), small_dm(root, num_workers=2)
    _trainer(2, limit_train_batches=2).fit(model, datamodule=dm, ckpt_path=tmp_path / "epoch0.ckpt")
    sampler = SeededTrainSampler(dm.datasets["train"], seed=0)
    sampler.set_epoch(1)
    assert list(model.seen) == [1] and model.seen[1] == sampler.indices()[:8]  # not epoch 0's rest


def _segfault_on(rel: str):
    real = dataset_module.read_frames

    def read(path, *args, **kwargs):
        if get_worker_info() is not None and str(path).endswith(rel):
            os.kill(os.getpid(), signal.SIGSEGV)  # a decoder crashing on this file
        return real(path, *args, **kwargs)

    return read


def test_item_that_keeps_killing_workers_is_dropped_and_reported(
        ucf_root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    dm = small_dm(ucf_root, val_source="test", num_workers=2, persistent_workers=False)
    dm.setup("validate")
    val = dm.datasets["val"]
    victim = 9
    monkeypatch.setattr(dataset_module, "read_frames", _segfault_on(val.records[victim].rel))
    loader = dm.val_dataloader()
    with caplog.at_level(logging.WARNING):
        batches = list(loader)
    assert _views(batches) == Counter(v for v in range(val.num_videos) if v != victim)
    report = loader.report
    assert report.dropped_items == [victim]  # after item_attempts=2 deaths, not before
    assert [f.item for f in report.worker_failures] == [victim, victim]
    assert all(f.cause == "killed by signal SIGSEGV" for f in report.worker_failures)
    assert any(f"dropping item {victim}" in r.getMessage() for r in caplog.records)
    assert "1 items dropped" in report.summary()


class _Crashing(Dataset):
    """Items 0..n-1; reading `crash` in a worker kills it, `error` raises instead."""

    def __init__(self, n: int, crash: int = -1, error: int = -1) -> None:
        self.n, self.crash, self.error = n, crash, error

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        if i == self.crash and get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGSEGV)
        if i == self.error:
            raise RuntimeError(f"a bug in item {i}")
        return {"x": torch.tensor(i)}


def test_worker_failures_are_bounded_and_bugs_are_not_swallowed() -> None:
    loader = ResilientDataLoader(_Crashing(16, crash=6), batch_size=4, num_workers=2,
                                 max_worker_restarts=0, name="toy")
    with pytest.raises(RuntimeError, match=r"exceed max_worker_restarts=0; last: pid .* SIGSEGV"):
        list(loader)
    # An exception raised by the dataset is a bug to see, not a worker failure to retry.
    loader = ResilientDataLoader(_Crashing(16, error=6), batch_size=4, num_workers=2)
    with pytest.raises(RuntimeError, match="a bug in item 6"):
        list(loader)
    assert not loader.report.worker_failures
    with pytest.raises(ValueError, match="item_attempts must be a positive integer, got 0"):
        ResilientDataLoader(_Crashing(4), batch_size=2, item_attempts=0)


class _Hanging(Dataset):
    """Items 0..n-1; in a worker, reading `hang` never returns (the wedged-worker case that
    no decode_timeout covers; the loader's `timeout` does)."""

    def __init__(self, n: int, hang: int) -> None:
        self.n, self.hang = n, hang

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        if i == self.hang and get_worker_info() is not None:
            while True:
                pass
        return {"x": torch.tensor(i)}


def test_hung_worker_is_replaced_after_timeout(caplog: pytest.LogCaptureFixture) -> None:
    loader = ResilientDataLoader(_Hanging(12, hang=5), batch_size=3, num_workers=2, timeout=1.0,
                                 name="toy")
    with caplog.at_level(logging.WARNING):
        batches = list(loader)
    assert sorted(torch.cat([b["x"] for b in batches]).tolist()) == [i for i in range(12) if i != 5]
    assert [(f.item, f.cause) for f in loader.report.worker_failures] == [
        (5, "sent no batch within 1s")] * 2
    assert loader.report.dropped_items == [5]


class _Unreadable(Dataset):
    """Every item stands for a video that cannot be read, except those in `good`."""

    def __init__(self, n: int, good: tuple[int, ...] = ()) -> None:
        self.n, self.good = n, good

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> object:
        if i in self.good:
            return {"x": torch.tensor(i)}
        return SkippedItem(i, i, f"v{i}.avi", "cannot open: Invalid data")


def test_skipped_items_are_left_out_and_an_unreadable_epoch_is_an_error() -> None:
    loader = ResilientDataLoader(_Unreadable(10, good=(1, 8)), batch_size=4, num_workers=0)
    batches = list(loader)  # batch 2..3 (items 4-7) is all skipped: no empty batch comes out
    assert [b["x"].tolist() for b in batches] == [[1], [8]]
    assert loader.report.batches == 2 and loader.report.samples == 2
    assert [s.index for s in loader.report.skipped] == [0, 2, 3, 4, 5, 6, 7, 9]
    with pytest.raises(RuntimeError, match=r"none of the 10 samples of this epoch could be read "
                                           "\\(10 videos, e.g. v0.avi: cannot open"):
        list(ResilientDataLoader(_Unreadable(10), batch_size=4, num_workers=0, name="toy"))


def test_without_faults_it_yields_what_a_plain_dataloader_yields(ucf_root: Path) -> None:
    dm = small_dm(ucf_root, seed=3, num_workers=2, persistent_workers=False)
    dm.setup("fit")
    ours = list(dm.train_dataloader())
    plain = dm._loader(dm.datasets["train"], train=True)
    assert type(plain) is DataLoader
    theirs = list(plain)
    assert len(ours) == len(theirs) > 2
    for a, b in zip(ours, theirs):
        assert a.keys() == b.keys() and SKIPPED_KEY not in a
        assert torch.equal(a["video_index"], b["video_index"]) and torch.equal(a["video"], b["video"])


class _Numbers(Dataset):
    def __len__(self) -> int:
        return 22

    def __getitem__(self, i: int) -> dict:
        return {"x": torch.tensor(i)}


def _take_epoch(loader: DataLoader, epoch: int) -> list[int]:
    """What Lightning does: set the epoch, then take exactly len(loader) batches."""
    loader.sampler.set_epoch(epoch)
    it = iter(loader)
    return torch.cat([next(it)["x"] for _ in range(len(loader))]).tolist()


def test_next_epoch_is_primed_when_the_last_batch_is_handed_over() -> None:
    from torch.utils.data import DistributedSampler

    def loader(cls: type, **extras) -> DataLoader:
        sampler = DistributedSampler(_Numbers(), num_replicas=1, rank=0, shuffle=True, seed=5)
        return cls(_Numbers(), sampler=sampler, batch_size=4, num_workers=2, persistent_workers=True,
                   **extras)

    ours, plain = loader(ResilientDataLoader, prime_next_epoch=True), loader(DataLoader)
    for epoch in (0, 1, 3):  # 1 follows 0 (primed, used); 3 does not follow 1 (primed, discarded)
        assert _take_epoch(ours, epoch) == _take_epoch(plain, epoch)
        # the end of the epoch was handled before its last batch was handed over
        assert ours.report.finished and ours.report.samples == len(_Numbers())
        assert ours._primed == epoch + 1
        assert len(ours.worker_pids()) == 2  # the primed pass is the live one
    ours.shutdown()
    assert ours._primed is None


def _numbers_loader(workers: int, seeded: bool, batch_size: int = 4) -> ResilientDataLoader:
    from torch.utils.data import DistributedSampler

    if seeded:  # the DataModule's training sampler: its state holds the epoch and the position
        data, sampler = SeededItems(_Numbers()), SeededTrainSampler(_Numbers(), seed=5)
    else:  # a sampler without state: the loader fast-forwards it
        data, sampler = _Numbers(), DistributedSampler(_Numbers(), num_replicas=1, rank=0, seed=5)
    return ResilientDataLoader(data, sampler=sampler, batch_size=batch_size, num_workers=workers)


@pytest.mark.parametrize("seeded", [False, True])
@pytest.mark.parametrize("workers", [0, 2])
def test_a_state_saved_mid_epoch_resumes_after_the_batches_delivered(
        workers: int, seeded: bool, caplog: pytest.LogCaptureFixture) -> None:
    whole = _take_epoch(_numbers_loader(workers, seeded), 2)
    first = _numbers_loader(workers, seeded)
    first.sampler.set_epoch(2)
    it = iter(first)
    done = torch.cat([next(it)["x"] for _ in range(2)]).tolist()
    state = first.state_dict()  # what Lightning puts in a checkpoint after step 2
    del it
    resumed = _numbers_loader(workers, seeded)
    resumed.load_state_dict(state)
    if seeded:  # Lightning's order: the iterator first, then the epoch
        it = iter(resumed)
        resumed.sampler.set_epoch(2)
    else:
        resumed.sampler.set_epoch(2)
        it = iter(resumed)
    rest = torch.cat([b["x"] for b in it]).tolist()
    assert done + rest == whole and len(rest) == len(whole) - 8
    assert resumed.state_dict() == {"order": {"batch_size": 4, "num_replicas": 1, "seed": 5},
                                    "epoch_done": True, "next_epoch": 3}
    # a state from another order is not applied: the epoch starts over, with a warning
    other = _numbers_loader(workers, seeded, batch_size=2)
    with caplog.at_level(logging.WARNING):
        other.load_state_dict(state)
    other.sampler.set_epoch(2)
    assert sorted(torch.cat([b["x"] for b in other]).tolist()) == list(range(len(_Numbers())))
    assert any("batch_size 4 -> 2 changed" in r.getMessage() for r in caplog.records)


def test_a_state_saved_at_the_end_of_an_epoch_starts_the_next_whole() -> None:
    first = _numbers_loader(2, seeded=True)
    first.sampler.set_epoch(4)
    assert len(_take_epoch(first, 4)) == len(_Numbers())
    resumed = _numbers_loader(2, seeded=True)
    resumed.load_state_dict(first.state_dict())
    it = iter(resumed)  # before Lightning sets epoch 5, as it does on resume
    resumed.sampler.set_epoch(5)
    assert torch.cat([b["x"] for b in it]).tolist() == _take_epoch(_numbers_loader(0, seeded=True), 5)


@pytest.mark.parametrize("prime", [False, True])
def test_a_persistent_worker_dying_between_passes_is_reported_and_replaced(prime: bool) -> None:
    import time

    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(_Numbers(), num_replicas=1, rank=0, shuffle=False)
    loader = ResilientDataLoader(_Numbers(), sampler=sampler, batch_size=4, num_workers=2,
                                 persistent_workers=True, prime_next_epoch=prime)
    everything = list(range(len(_Numbers())))
    assert torch.cat([b["x"] for b in loader]).tolist() == everything
    victim = loader.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)  # while the pool waits for the next pass (validation, say)
    time.sleep(0.5)
    assert torch.cat([b["x"] for b in loader]).tolist() == everything  # torch's reset would wait
    assert [(f.pid, f.cause) for f in loader.report.worker_failures] == [(victim, "killed by signal SIGKILL")]
    assert torch.cat([b["x"] for b in loader]).tolist() == everything and loader.report.clean
    assert victim not in loader.worker_pids() and len(loader.worker_pids()) == 2
    loader.shutdown()


def test_lightning_reinstantiates_it_as_itself(ucf_root: Path) -> None:
    """Lightning rebuilds a predict loader around its own batch sampler, from the arguments it
    saved while the datamodule's hook built it (or from the loader's attributes when it was
    handed a loader): the rebuilt loader is still ours, collates once and reads every item."""
    import pytorch_lightning as pl

    class CountItems(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(1, 1)
            self.items = 0

        def predict_step(self, batch, batch_idx):
            self.items += len(batch["label"])

    class Look(pl.Callback):
        def on_predict_start(self, trainer, pl_module) -> None:
            loaders = trainer.predict_dataloaders
            self.loader = loaders[0] if isinstance(loaders, list) else loaders

    dm = small_dm(ucf_root, num_workers=0)
    handed = dm.test_dataloader()
    for source in ({"datamodule": dm}, {"dataloaders": handed}):
        model, look = CountItems(), Look()
        trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, callbacks=[look])
        trainer.predict(model, return_predictions=False, **source)
        new = look.loader
        assert new is not handed  # rebuilt, not passed through
        assert type(new) is ResilientDataLoader and new.name == handed.name
        assert isinstance(new.collate_fn, SkippingCollate)
        assert not isinstance(new.collate_fn.collate, SkippingCollate)  # not wrapped twice
        assert model.items == len(dm.datasets["test"])


# ---- decode timeout -------------------------------------------------------------------------
@pytest.mark.parametrize("num_workers", [0, 2])
def test_video_hanging_in_decode_is_abandoned_and_reported(
        ucf_root: Path, tmp_path: Path, num_workers: int, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    root = copy_tree(ucf_root, tmp_path / "ucf")
    dm = small_dm(root, decoding=dict(decode_timeout=1.5), num_workers=num_workers,
                  persistent_workers=False)
    dm.setup("validate")
    val = dm.datasets["val"]
    victim = 4
    rel = val.records[victim].rel
    fifo = replace_with_fifo(root / rel)  # after indexing: opening it blocks forever
    # A file on a stalled mount looks as it did when indexed; the FIFO's size does not.
    monkeypatch.setattr(dataset_module.VideoClipDataset, "_check_unchanged", lambda *args: None)
    try:
        with caplog.at_level(logging.WARNING):
            loader = dm.val_dataloader()
            batches = list(loader)
            dm.teardown("validate")
    finally:
        release_fifo(fifo)
    if num_workers == 0:
        # The abandoned call was this process's: let go, it ends (a fallback may open again).
        deadline = time.monotonic() + 10
        while abandoned_calls() and time.monotonic() < deadline:
            release_fifo(fifo, wait_s=0.5)
        assert abandoned_calls() == 0
    assert _views(batches) == Counter(v for v in range(val.num_videos) if v != victim)
    assert [s.rel for s in loader.report.skipped] == [rel]
    assert "timed out after 1.5s" in loader.report.skipped[0].reason
    failures = dm.read_failures()
    assert list(failures) == [rel] and "timed out" in failures[rel]
    teardown = [r.getMessage() for r in caplog.records if "failed at read time during" in r.getMessage()]
    assert len(teardown) == 1 and rel in teardown[0]


@pytest.mark.slow
def test_decode_timeout_is_checked(ucf_root: Path) -> None:
    for bad in (0, -1.0, True):
        with pytest.raises(ValueError, match=f"decoding.decode_timeout must be a positive number of "
                                             f"seconds or None, got {bad!r}"):
            small_dm(ucf_root, decoding=dict(decode_timeout=bad))
    assert small_dm(ucf_root, decoding=dict(decode_timeout=None)).decoding.decode_timeout is None



def test_worker_timeout_reaches_the_loaders(ucf_root: Path) -> None:
    for bad in (0, -2, True):
        with pytest.raises(ValueError, match=f"loading.worker_timeout must be a positive number of "
                                             f"seconds or None, got {bad!r}"):
            small_dm(ucf_root, worker_timeout=bad)
    dm = small_dm(ucf_root, num_workers=2, worker_timeout=30)
    dm.setup("fit")
    assert dm.train_dataloader().timeout == 30.0 and dm.val_dataloader().timeout == 30.0
    # without workers there is nothing to time out (torch refuses a timeout then)
    dm = small_dm(ucf_root, num_workers=0, worker_timeout=30)
    dm.setup("fit")
    assert dm.train_dataloader().timeout == 0

# ---- bad inputs -------------------------------------------------------------------------------
def test_file_without_a_video_stream(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    audio = write_audio_only(tmp_path / "tone.mp4")
    write_video(tmp_path / "good.mp4", 12, codec="libx264")
    meta = probe_video(audio)
    assert not meta.ok and meta.error == "no video stream"
    with pytest.raises(DecodeError, match="pyav: no video stream"):
        read_frames(audio, [0])
    assert check_videos_main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "1 good, 1 bad" in out and "BAD  tone.mp4  no video stream" in out


def _ucf_lists(tmp_path: Path) -> Path:
    return make_ucf_tree(tmp_path / "ucf", groups=8, videos=False)


ESCAPES = [("../../../etc/passwd", "leaves the video folder"),
           ("/etc/passwd", "is absolute"),
           ("C:\\data\\v.avi", "is absolute")]


@pytest.mark.parametrize("listed,reason", ESCAPES)
def test_annotation_path_leaving_the_root_is_rejected(tmp_path: Path, listed: str, reason: str) -> None:
    # UCF-101: the path sits under a class folder, as a real line would.
    ucf = _ucf_lists(tmp_path)
    trainlist = ucf / "ucfTrainTestlist" / "trainlist01.txt"
    line = f"ApplyEyeMakeup/{listed} 1" if listed.startswith("..") else f"{listed} 1"
    trainlist.write_text(trainlist.read_text() + line + "\r\n")
    n = len(trainlist.read_text().splitlines())
    with pytest.raises(ValueError, match=f"trainlist01.txt:{n}: video path .* {reason}"):
        UCF101Annotations(ucf, 1).subset("train")
    # HMDB-51: split files list bare file names.
    hmdb = make_hmdb_tree(tmp_path / "hmdb", per_class=3, videos=False)
    split = hmdb / "testTrainMulti_7030_splits" / "brush_hair_test_split1.txt"
    split.write_text(split.read_text() + f"{listed} 1\n")
    with pytest.raises(ValueError, match=f"brush_hair_test_split1.txt:4: video path .* {reason}"):
        HMDB51Annotations(hmdb, 1)
    # Kinetics 'path label' lists.
    kin = tmp_path / "kin"
    (kin / "train" / "abseiling").mkdir(parents=True)
    (kin / "train" / "abseiling" / "a.mp4").touch()
    (kin / "train.txt").write_text(f"train/abseiling/a.mp4 abseiling\n{listed} abseiling\n")
    with pytest.raises(ValueError, match=f"train.txt:2: video path .* {reason}"):
        KineticsAnnotations(kin, "list", train_annotations="train.txt").subset("train")


def test_paths_that_stay_inside_are_fine(tmp_path: Path) -> None:
    kin = tmp_path / "kin"
    (kin / "train" / "abseiling").mkdir(parents=True)
    (kin / "train" / "abseiling" / "a.mp4").touch()
    (kin / "train.txt").write_text("train/zumba/../abseiling/a.mp4 abseiling\n")
    subset = KineticsAnnotations(kin, "list", train_annotations="train.txt").subset("train")
    assert [r.rel for r in subset.records] == ["train/abseiling/a.mp4"]


def test_missing_videos_are_summarised_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    hmdb = make_hmdb_tree(tmp_path / "hmdb", per_class=6, videos=False)
    gone = sorted((hmdb / "hmdb51_org" / "cartwheel").iterdir())[:3]
    for path in gone:
        path.unlink()
    ann = HMDB51Annotations(hmdb, 1)
    with caplog.at_level(logging.WARNING):
        train, test = ann.subset("train"), ann.subset("test")
    _, listed = read_hmdb51_splits(hmdb / "testTrainMulti_7030_splits", 1)
    used = {rel for rel, _ in listed["train"] + listed["test"]}
    expected = {f"cartwheel/{p.name}" for p in gone} & used
    assert expected and sorted(train.missing + test.missing) == sorted(expected)
    warnings = [r.getMessage() for r in caplog.records if "missing" in r.getMessage()]
    with_missing = [s for s in (train, test) if s.missing]
    assert len(warnings) == len(with_missing)  # one per subset, not one per video
    for subset, message in zip(with_missing, warnings):
        assert f"{len(subset.missing)} of" in message and subset.missing[0] in message
    # Kinetics 'path label' list: the same one warning with a count and examples.
    kin = make_kinetics_tree(tmp_path / "kin", per_class=2, videos=False, drop=0)
    files = [p for p in sorted((kin / "train").rglob("*.mp4"))
             if " " not in p.parent.name]  # class names as labels: no spaces in the path
    lines = [f"{p.relative_to(kin).as_posix()} {p.parent.name}" for p in files]
    lines += ["train/zumba/never_downloaded.mp4 zumba", "train/zumba/also_gone.mp4 zumba"]
    (kin / "train.txt").write_text("\n".join(lines) + "\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        subset = KineticsAnnotations(kin, "list", train_annotations="train.txt").subset("train")
    assert len(subset.records) == len(files)
    assert subset.missing == ["train/zumba/never_downloaded.mp4", "train/zumba/also_gone.mp4"]
    warnings = [r.getMessage() for r in caplog.records if "missing" in r.getMessage()]
    assert len(warnings) == 1 and f"2 of {len(files) + 2}" in warnings[0]
    assert "never_downloaded.mp4" in warnings[0]
