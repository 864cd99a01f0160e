"""A resumable DataLoader that finishes the epoch when videos fail to decode or a worker dies.

It is torchdata's `StatefulDataLoader`, the loader Lightning saves in every checkpoint and
restores on `--ckpt_path`, so a run resumed mid-epoch trains on exactly the batches it had
not done. Two kinds of fault are handled on top, through public API only:

- A bad video (corrupt, truncated, hung in decoding): the dataset returns a `SkippedItem`
  instead of a sample; the collate filter (`SkippingCollate`, collate.py) leaves it out of
  the batch and hands it over under `SKIPPED_KEY`; the loader removes that key, counts the
  item and drops a batch in which every item was skipped (an epoch in which nothing could
  be read is an error). Evaluation substitutes nothing, so every good sample is delivered
  exactly once. Training items are replaced (samplers.py: another item of the rank's shard
  stands in for an unreadable one), so a training batch keeps its size; the replacements
  are counted (`EpochReport.replaced`) and the unreadable items reported as skipped.
- A worker process that dies (killed, out of memory, a segfault in a decoder) or, when
  `timeout` is set, sends no batch for that long (wedged where decode_timeout cannot reach
  it). The loader keeps the state (`state_dict()`) after every batch it hands over; on a
  failure it loads that state, which discards the broken iterator and its workers, and
  iterates again: a fresh pool resumes at the first batch not yet delivered, none
  repeated, none lost. Each worker writes its pid and the item it is reading into a shared
  slot, so the loader knows which item a dead or hung worker was on: an item that kills
  (or hangs) its worker `item_attempts` times is dropped (the next pool returns it as a
  SkippedItem), counted and reported. More than `max_worker_restarts` failures in one
  epoch re-raise: no endless loop.

Where a death surfaces. torch's SIGCHLD handler raises the moment a worker dies, in
whatever code the main thread runs then: under Lightning usually a training step, where
nothing can recover. The loader wraps that handler (`signal.signal`): a death of one of its
own workers is recorded and raised only while the loader waits for a batch; otherwise the
loader finds the record when it is next asked for one. Deaths of other loaders' workers
raise as before. A worker that dies before it read its first item is not known to be ours;
its death fails the run, and `--ckpt_path last` resumes it (mid-epoch, from the loader
state in the checkpoint).

Restarted workers get their RNG seeds as a resumed StatefulDataLoader gives them. The
DataModule's training items do not depend on them (each is drawn under its own seed,
samplers.py), so their clips and crops are those of an uninterrupted run. Without failures
the batches equal those of a plain DataLoader with the same arguments, seeds included.

Lightning may re-instantiate a DataLoader subclass to inject a sampler; this one takes
DataLoader's arguments plus keyword-only extras, so it is re-created as itself.

Under DDP every rank must deliver as many training batches as the others, or the others
wait in the gradient all-reduce until the process group's timeout. With `keep_batch_count`
(the DataModule's training loader) a batch in which no item could be read, replacements
included, is not dropped: the rank stops with an error that names it (the other ranks then
stop too, docs/architecture.md "Faults").
"""
from __future__ import annotations

import logging
import multiprocessing
import operator
import os
import signal
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import DataLoader, Dataset, DistributedSampler, get_worker_info
from torchdata.stateful_dataloader import StatefulDataLoader

from .collate import REPLACED_KEY, SKIPPED_KEY, SkippedItem, SkippingCollate

log = logging.getLogger(__name__)

_REAP_WAIT_S = 5.0  # how long a broken connection may precede the worker's visible death
_DROPPED = "dropped after killing its worker"


@dataclass
class WorkerFailure:
    """One worker death or hang, as reported."""

    pid: int | None
    cause: str  # "killed by signal SIGKILL", "exited with code 1", "sent no batch within 30s"
    item: Any = None  # id of the item it was reading, if it was reading one


@dataclass
class EpochReport:
    """What one pass over a ResilientDataLoader delivered and what went wrong."""

    batches: int = 0  # batches delivered
    samples: int = 0  # samples delivered
    skipped: list[SkippedItem] = field(default_factory=list)  # unreadable videos' items
    replaced: int = 0  # skipped training items for which another item of the shard stood in
    worker_failures: list[WorkerFailure] = field(default_factory=list)
    dropped_items: list[Any] = field(default_factory=list)  # killed their worker too often
    finished: bool = False  # the pass delivered the epoch's last batch

    @property
    def clean(self) -> bool:
        return not (self.skipped or self.worker_failures or self.dropped_items)

    def summary(self) -> str:
        parts = [f"{self.batches} batches, {self.samples} samples"]
        if self.skipped:
            rels = list(dict.fromkeys(s.rel for s in self.skipped))
            parts.append(f"{len(self.skipped)} items skipped from {len(rels)} unreadable videos "
                         f"({', '.join(rels[:5])}{', ...' if len(rels) > 5 else ''})")
        if self.replaced:
            parts.append(f"{self.replaced} of them replaced by other items of this rank's shard")
        if self.worker_failures:
            parts.append(f"{len(self.worker_failures)} worker failures ("
                         + "; ".join(f"pid {f.pid} {f.cause}" for f in self.worker_failures[:5])
                         + ")")
        if self.dropped_items:
            parts.append(f"{len(self.dropped_items)} items dropped after repeated worker "
                         f"failures ({', '.join(map(str, self.dropped_items[:5]))})")
        return ", ".join(parts)


def _item_id(key: Any) -> int:
    """The integer a worker writes for sampler key `key`: the index itself, or the first
    field of an (index, seed, ...) tuple."""
    return operator.index(key[0] if isinstance(key, (tuple, list)) else key)


class _Tracked(Dataset):
    """The dataset as the workers see it: worker w writes its pid into `slots[2w]` and the
    id of the item it reads into `slots[2w + 1]` (-1 once read). Items in `dropped` come
    back as SkippedItems without being read."""

    def __init__(self, dataset: Any, slots: Any) -> None:
        self.dataset = dataset
        self.slots = slots
        self.dropped: frozenset[int] = frozenset()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> Any:
        info = get_worker_info()
        if info is None or self.slots is None:
            return self.dataset[key]
        item = _item_id(key)
        if item in self.dropped:
            return SkippedItem(item, -1, f"item {item}", _DROPPED)
        self.slots[2 * info.id] = os.getpid()
        self.slots[2 * info.id + 1] = item
        sample = self.dataset[key]
        self.slots[2 * info.id + 1] = -1
        return sample

    def __getattr__(self, name: str) -> Any:
        # views_per_video, num_videos, records, ...: what callers read from loader.dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


def _exit_cause(pid: int) -> str | None:
    """How child `pid` ended, or None while it runs; leaves it for its owner to reap."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return "exited"  # already reaped (torch's status check); the code is gone
    if info is None:
        return None
    if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED):
        try:
            return f"killed by signal {signal.Signals(info.si_status).name}"
        except ValueError:
            return f"killed by signal {info.si_status}"
    return f"exited with code {info.si_status}"


def _yielded(state: dict[str, Any]) -> int:
    """Batches of the current pass a StatefulDataLoader state has yielded (its state format:
    a single-process iterator counts them, a worker pool's is a snapshot plus steps since)."""
    if "_snapshot" in state:
        snapshot = state["_snapshot"]
        return int(snapshot.get("_snapshot_step", 0)) + int(state.get("_steps_since_snapshot", 0))
    return int(state.get("_num_yielded", 0))


def _detached(err: BaseException) -> BaseException:
    """`err` and the exceptions it chains, without their tracebacks."""
    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        e.__traceback__ = None
        e = e.__cause__ or e.__context__
    return err


# ---- SIGCHLD ---------------------------------------------------------------------------------
_LOADERS: weakref.WeakSet[ResilientDataLoader] = weakref.WeakSet()


def _contain_sigchld() -> None:
    """Wrap the installed SIGCHLD handler (torch's, once a worker pool exists) so that the
    death of one of our workers raises only inside the loader that waits for it."""
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGCHLD)
    if getattr(current, "contains_resilient_workers", False):
        return

    def handler(signum: int, frame: Any) -> None:
        ours, waiting = False, False
        for loader in list(_LOADERS):
            if loader._note_deaths():
                ours, waiting = True, waiting or loader._waiting
        try:
            if callable(current):
                current(signum, frame)
        except RuntimeError:
            if not ours or waiting:
                raise

    handler.contains_resilient_workers = True  # type: ignore[attr-defined]
    signal.signal(signal.SIGCHLD, handler)


class ResilientDataLoader(StatefulDataLoader):
    """torchdata StatefulDataLoader that skips unreadable samples and survives worker failures.

    Args: those of torch.utils.data.DataLoader (batched: batch_size or batch_sampler; the
    collate_fn, default_collate by default, is wrapped in `SkippingCollate`), plus,
    keyword-only:
        item_attempts: times an item may be read by a worker that then dies (or hangs past
            `timeout`) before the item is dropped (>= 1).
        max_worker_restarts: worker-pool restarts allowed per epoch before giving up.
        name: shown in log messages (e.g. 'UCF-101 split 1 train').
        keep_batch_count: a batch with no readable item raises (naming the rank) instead of
            being dropped: under DDP each rank must deliver as many batches as the others.
        prime_next_epoch: with persistent workers and a sampler that has `set_epoch`
            (a training sampler), start the next epoch's prefetch as soon as an epoch ends:
            its first batches are decoded while validation runs instead of while training
            waits. Used only if the next pass is for that epoch; otherwise the prefetched
            batches are discarded (torch's persistent-worker reset).

    `report` is the EpochReport of the current or last pass; `failures_total` counts worker
    failures over all passes. `state_dict()` / `load_state_dict()` are what Lightning saves
    and restores; a state saved with another batch size, world size or seed is not applied
    (the epoch starts over, with a warning).
    """

    def __init__(self, dataset: Any, *args: Any, item_attempts: int = 2,
                 max_worker_restarts: int = 10, name: str = "", prime_next_epoch: bool = False,
                 keep_batch_count: bool = False, **kwargs: Any) -> None:
        if not isinstance(item_attempts, int) or item_attempts < 1:
            raise ValueError(f"item_attempts must be a positive integer, got {item_attempts!r}")
        if not isinstance(max_worker_restarts, int) or max_worker_restarts < 0:
            raise ValueError(f"max_worker_restarts must be a non-negative integer, got "
                             f"{max_worker_restarts!r}")
        collate = kwargs.get("collate_fn")
        if not isinstance(collate, SkippingCollate):
            kwargs["collate_fn"] = SkippingCollate(collate)
        if isinstance(dataset, _Tracked):  # Lightning re-creating the loader from its attributes
            dataset = dataset.dataset
        workers = kwargs.get("num_workers", args[4] if len(args) > 4 else 0)
        context = kwargs.get("multiprocessing_context") or multiprocessing.get_context()
        if isinstance(context, str):
            context = multiprocessing.get_context(context)
        slots = context.Array("q", [-1] * (2 * workers), lock=False) if workers > 0 else None
        with warnings.catch_warnings():
            # torchdata 0.11 calls torch.set_vital, which torch 2.14 marks deprecated
            warnings.filterwarnings("ignore", message=".*set_vital.* is deprecated")
            super().__init__(_Tracked(dataset, slots), *args, **kwargs)
        self.item_attempts = item_attempts
        self.max_worker_restarts = max_worker_restarts
        self.name = name
        self.prime_next_epoch = prime_next_epoch
        self.keep_batch_count = keep_batch_count
        self.report = EpochReport()
        self.failures_total = 0
        self._deaths: dict[int, str] = {}  # pid -> cause, recorded by the SIGCHLD handler
        self._waiting = False  # inside next() on the worker pool
        self._primed: int | None = None  # the epoch whose pass was started ahead
        self._taken = 0  # batches of the current pass handed out (a resumed pass counts the earlier)
        # The consumer's epoch length when it stops early (Lightning's limit_train_batches):
        # a state saved once that many batches were taken is an end-of-epoch state.
        self.batches_per_epoch: Callable[[], float] | None = None
        _LOADERS.add(self)

    @classmethod
    def wrap(cls, loader: DataLoader, **extras: Any) -> ResilientDataLoader:
        """A ResilientDataLoader with the same dataset, sampler, batching, workers and
        generator as `loader` (which is left unused), plus `extras` (name, item_attempts,
        max_worker_restarts, prime_next_epoch, keep_batch_count)."""
        if isinstance(loader, cls) and not extras:
            return loader
        if loader.batch_size is not None:  # auto-batching: keep the sampler object itself
            batching: dict[str, Any] = dict(sampler=loader.sampler, batch_size=loader.batch_size,
                                            drop_last=loader.drop_last)
        else:
            batching = dict(batch_sampler=loader.batch_sampler)
        collate = loader.collate_fn
        if isinstance(collate, SkippingCollate):
            collate = collate.collate
        options: dict[str, Any] = dict(
            num_workers=loader.num_workers, collate_fn=collate, pin_memory=loader.pin_memory,
            timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
            multiprocessing_context=loader.multiprocessing_context, generator=loader.generator,
            persistent_workers=loader.persistent_workers,
            pin_memory_device=loader.pin_memory_device, in_order=loader.in_order)
        if loader.num_workers > 0:
            options["prefetch_factor"] = loader.prefetch_factor
        return cls(loader.dataset, **batching, **options, **extras)

    # ---- state ---------------------------------------------------------------------------
    def _order(self) -> dict[str, Any]:
        """What fixes the order of batches besides the epoch: a saved state is valid only
        under the same values."""
        sampler = self.sampler
        distributed = isinstance(sampler, DistributedSampler)
        return {"batch_size": self.batch_size,
                "num_replicas": sampler.num_replicas if distributed else 1,
                "seed": sampler.seed if distributed else None}

    def state_dict(self) -> dict[str, Any]:
        epoch = getattr(self.sampler, "epoch", None)
        if self._primed is None and self._taken >= self._epoch_end():
            # the pass is over: what comes next is the whole of the next epoch
            return {"order": self._order(), "epoch_done": True,
                    "next_epoch": epoch + 1 if isinstance(epoch, int) else None}
        return {"order": self._order(), "loader": super().state_dict()}

    def _epoch_end(self) -> float:
        """Batches in this epoch: all of the loader's, or fewer where the consumer stops early."""
        return len(self) if self.batches_per_epoch is None else min(len(self), self.batches_per_epoch())

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._primed, self._taken = None, 0
        next_epoch = state_dict.get("next_epoch")
        if next_epoch is not None and callable(getattr(self.sampler, "set_epoch", None)):
            # Lightning asks for the resumed pass's iterator before it sets the epoch
            self.sampler.set_epoch(next_epoch)
        loader_state = state_dict.get("loader", {})
        if loader_state and state_dict.get("order") != self._order():
            changed = [f"{k} {state_dict.get('order', {}).get(k)} -> {v}"
                       for k, v in self._order().items() if state_dict.get("order", {}).get(k) != v]
            log.warning("%s: the checkpoint's place in the epoch is not used because %s changed "
                        "since it was saved: that epoch starts over in a new order",
                        self.name or "DataLoader", ", ".join(changed))
            loader_state = {}
        super().load_state_dict(loader_state)

    def shutdown(self) -> None:
        """Stop the worker processes now (a persistent pool included)."""
        self._drop_pool()

    def worker_pids(self) -> list[int]:
        """Pids of the live worker processes that have read an item (empty when none run)."""
        slots = self.dataset.slots
        if slots is None:
            return []
        live = {p.pid for p in multiprocessing.active_children()}
        return [pid for pid in slots[0::2] if pid in live]

    # ---- the pass --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        self.report = EpochReport()
        self._taken = 0  # a new pass (a resumed one counts its earlier batches at the start)
        return self._deliver(self.report)

    def _deliver(self, report: EpochReport) -> Iterator[Any]:
        # A generator: the pass starts at the first next(), as a DataLoader's workers do.
        # Lightning asks for an epoch's iterator before it sets the sampler's epoch.
        if self.num_workers > 0 and self._note_deaths():
            self._idle_death(report)
        primed, self._primed = self._primed, None
        if primed is not None and primed == getattr(self.sampler, "epoch", None):
            box = [self._iterator]
        else:
            box = [super().__iter__()]  # a pass primed for another epoch is reset here
        # `box` holds the only reference to the iterator besides the loader's, so it can go
        try:
            yield from self._pass(box, report)
        except GeneratorExit:
            # The consumer stopped early: a persistent pool stays for the next pass, as in torch.
            box.clear()
            if not self.persistent_workers:
                self._drop_pool()
            raise
        except BaseException as err:
            box.clear()
            if self.num_workers == 0:
                raise
            self._drop_pool()
            # torch's frames in the traceback hold the iterator and would keep its workers
            # until the exception is collected (then torch waits 5 s per worker); a worker's
            # own traceback is part of the message.
            raise _detached(err) from None

    def _drop_pool(self) -> None:
        self._primed = None
        super().load_state_dict({})  # discards the iterator: its workers stop now

    def _pass(self, box: list[Any], report: EpochReport) -> Iterator[Any]:
        multi = self.num_workers > 0
        if multi:
            _contain_sigchld()
        attempts: dict[int, int] = {}
        snapshot = super().state_dict()  # where the pass resumes after a worker failure
        self._taken = _yielded(snapshot)  # more than 0 in a pass resumed from a checkpoint
        while True:
            failure, err = None, None
            if multi and self._deaths:  # a worker died while the batch before was in use
                failure = self._failure(None)
            if failure is None:
                started = time.monotonic()
                try:
                    batch, err = self._next(box[0])
                except StopIteration:
                    break
                if err is not None:
                    # RuntimeError: a worker died, or `timeout` passed without a batch.
                    # OSError / EOFError: a worker died just after queueing a batch, before
                    # the main process fetched the batch's shared memory from it.
                    failure = self._failure(err, time.monotonic() - started) if multi else None
                    if failure is None:
                        raise err
            if failure is not None:
                self._recover(failure, report, attempts, err)
                # Outside the except block: the traceback, and through it the old pool's
                # queues, are gone, so the new workers do not inherit their descriptors.
                box.clear()
                err = None
                super().load_state_dict(snapshot)  # discards the broken pool
                self._forget_pool()
                box.append(super().__iter__())
                continue
            self._taken += 1
            snapshot = super().state_dict()
            batch = self._account(batch, report)
            if self._taken >= self._epoch_end():
                # Lightning stops asking once it holds the epoch's last batch (it knows the
                # length), so the end of the epoch is handled before that batch is handed over.
                self._finish(report)
                self._prime()
                if multi and not self.persistent_workers:
                    # Nothing is left to load: stop the workers now, not when the
                    # generator is collected (maybe in a garbage-collection cycle, where
                    # torch waits 5 s per worker).
                    box.clear()
                    self._drop_pool()
                if batch is not None:
                    yield batch
                return
            if batch is not None:
                yield batch
        if not report.finished:
            self._finish(report)
            self._prime()

    def _next(self, it: Any) -> tuple[Any, BaseException | None]:
        """The next batch, or the error that took its place; a death of one of our workers
        raises in here (and only here, see `_contain_sigchld`)."""
        self._waiting = True
        try:
            return next(it), None
        except (RuntimeError, OSError, EOFError) as error:
            return None, error
        finally:
            self._waiting = False

    def _prime(self) -> None:
        """Start the next epoch's prefetch now (see `prime_next_epoch`)."""
        epoch = getattr(self.sampler, "epoch", None)
        if not (self.prime_next_epoch and self.persistent_workers and self.num_workers > 0
                and isinstance(epoch, int) and callable(getattr(self.sampler, "set_epoch", None))):
            return
        # Lightning sets the same epoch again before the next pass, which then finds it primed.
        self.sampler.set_epoch(epoch + 1)
        super().__iter__()
        self._primed = epoch + 1

    # ---- worker failures -----------------------------------------------------------------
    def _note_deaths(self) -> bool:
        """Record how our dead workers ended (from the SIGCHLD handler); True while a death
        is recorded and the pool not yet replaced."""
        slots = self.dataset.slots
        for pid in set(slots[0::2]) if slots is not None else ():
            if pid > 0 and pid not in self._deaths:
                cause = _exit_cause(pid)
                if cause is not None and cause not in ("exited", "exited with code 0"):
                    self._deaths[pid] = cause
        return bool(self._deaths)

    def _failure(self, err: BaseException | None, waited: float = 0.0) -> WorkerFailure | None:
        """What failed, or None when `err` is not a worker failure (then it is re-raised)."""
        slots = self.dataset.slots
        workers = range(len(slots) // 2)
        self._note_deaths()
        if not self._deaths and err is not None and not isinstance(err, RuntimeError):
            # The connection broke first; the process may not have been reaped yet.
            deadline = time.monotonic() + _REAP_WAIT_S
            while not self._deaths and time.monotonic() < deadline:
                time.sleep(0.05)
                self._note_deaths()
        dead = [w for w in workers if slots[2 * w] in self._deaths]
        if dead:
            w = dead[0]
            pid = int(slots[2 * w])
            cause = self._deaths[pid]  # kept until the pool is replaced (_forget_pool)
        elif isinstance(err, RuntimeError) and self.timeout and waited >= self.timeout:
            # Every worker is alive but no batch came in time: blame one inside an item.
            busy = [w for w in workers if slots[2 * w + 1] >= 0 and slots[2 * w] > 0]
            if not busy:
                return None
            w = busy[0]
            pid = int(slots[2 * w])
            os.kill(pid, signal.SIGKILL)  # torch's shutdown would wait 5 s for it first
            cause = f"sent no batch within {self.timeout:g}s"
        else:
            return None
        item = int(slots[2 * w + 1])
        return WorkerFailure(pid, cause, item if item >= 0 else None)

    def _idle_death(self, report: EpochReport) -> None:
        """A worker of a persistent pool died between passes (say, the OOM killer while
        validation ran): no batch is missing, but the pool cannot serve this pass (torch's
        reset would wait for the dead worker), so it gets a new one."""
        failure = self._failure(None)
        self._drop_pool()
        self._forget_pool()
        if failure is not None:
            report.worker_failures.append(failure)
            self.failures_total += 1
            log.warning("%s: DataLoader worker pid %s %s between passes; none lost, this pass "
                        "starts a new pool", self.name or "DataLoader", failure.pid, failure.cause)

    def _forget_pool(self) -> None:
        """After the old pool stopped: its pids are no longer ours (the new pool writes its
        own), so exits of the old pool's workers are not taken for failures of the new."""
        slots = self.dataset.slots
        for k in range(len(slots)):
            slots[k] = -1
        self._deaths.clear()

    def _recover(self, failure: WorkerFailure, report: EpochReport, attempts: dict[int, int],
                 err: BaseException | None) -> None:
        report.worker_failures.append(failure)
        self.failures_total += 1
        name = self.name or "DataLoader"
        if len(report.worker_failures) > self.max_worker_restarts:
            raise RuntimeError(
                f"{name}: {len(report.worker_failures)} worker failures in one epoch exceed "
                f"max_worker_restarts={self.max_worker_restarts}; last: pid {failure.pid} "
                f"{failure.cause}") from err
        dropped = False
        if failure.item is not None:
            attempts[failure.item] = attempts.get(failure.item, 0) + 1
            if attempts[failure.item] >= self.item_attempts:
                self.dataset.dropped = self.dataset.dropped | {failure.item}
                report.dropped_items.append(failure.item)
                dropped = True
                log.error("%s: dropping item %s: %d workers failed while reading it (last: "
                          "pid %s %s)", name, failure.item, attempts[failure.item], failure.pid,
                          failure.cause)
        log.warning("%s: DataLoader worker pid %s %s%s; restarted the workers and resumed after "
                    "the %d batches already delivered (none repeated, none lost%s)", name,
                    failure.pid, failure.cause,
                    f" while reading item {failure.item}" if failure.item is not None else "",
                    report.batches, ", but the dropped item" if dropped else "")

    # ---- accounting ------------------------------------------------------------------------
    def _account(self, batch: Any, report: EpochReport) -> Any:
        if isinstance(batch, dict) and SKIPPED_KEY in batch:
            skipped = batch.pop(SKIPPED_KEY)
            report.replaced += int(batch.pop(REPLACED_KEY, 0))
            report.skipped.extend(s for s in skipped if s.reason != _DROPPED)
            if not batch:  # every item of this batch failed
                if self.keep_batch_count:
                    self._empty_batch(skipped)
                return None
        report.batches += 1
        if isinstance(batch, dict) and batch:
            first = next(iter(batch.values()))
            report.samples += len(first) if hasattr(first, "__len__") else 1
        return batch

    def _empty_batch(self, skipped: list[SkippedItem]) -> None:
        rank = getattr(self.sampler, "rank", 0)
        rels = list(dict.fromkeys(s.rel for s in skipped))
        raise RuntimeError(
            f"{self.name or 'DataLoader'}: rank {rank}: no item of batch {self._taken} could be read, "
            f"replacements included ({len(rels)} videos, e.g. {rels[0]}: {skipped[0].reason}); stopping rather than leave the other ranks waiting for this "
            f"rank's step. Check the files with `softpool-video check-videos`")

    def _finish(self, report: EpochReport) -> None:
        report.finished = True
        if report.samples == 0 and report.skipped:
            rels = list(dict.fromkeys(s.rel for s in report.skipped))
            raise RuntimeError(
                f"{self.name or 'DataLoader'}: none of the {len(report.skipped)} samples of this "
                f"epoch could be read ({len(rels)} videos, e.g. {rels[0]}: "
                f"{report.skipped[0].reason}); check the files with `softpool-video check-videos`")
        if not report.clean:
            log.warning("%s: epoch finished with faults: %s", self.name or "DataLoader",
                        report.summary())
