"""A DataLoader that finishes the epoch when videos fail to decode or a worker dies.

Two kinds of fault, two mechanisms:

- A bad video (corrupt, truncated, hung in decoding): the dataset returns a `SkippedItem`
  instead of a sample; the collate filter (`SkippingCollate`, collate.py) leaves it out of
  the batch and hands it over under `SKIPPED_KEY`; `ResilientDataLoader` removes that key,
  counts the item and drops a batch in which every item was skipped (an epoch in which
  nothing could be read is an error). Nothing is substituted, so every good sample is
  delivered exactly once per epoch.
- A worker process that dies (killed, out of memory, a segfault in a decoder) or, when
  `timeout` is set, sends no batch for that long (wedged where decode_timeout cannot reach
  it): torch raises RuntimeError in the main process and the epoch would end. Here the loader logs the pid and signal, shuts the worker pool down,
  starts a fresh one and resumes at the first batch not yet delivered. It knows which
  batches those are because it hands the batch sampler's output to an inner DataLoader
  itself and pops each batch off a queue as it is delivered (batches arrive in order).
  Each worker writes the index of the item it is reading into a shared slot, so the loader
  also knows which item a dead worker was on: an item that kills (or hangs) its worker
  `item_attempts` times is dropped from its batch, counted and reported. More than
  `max_worker_restarts` failures in one epoch re-raise: no endless loop.

Restarted workers get a new RNG seed from the loader's generator. The DataModule's
training items do not depend on it (each is drawn under its own seed, samplers.py), so
their clips and crops are those of an uninterrupted run; a dataset that draws from the
worker RNG gets different random clips and crops after a restart, but the same samples. Without failures the batches equal those of a plain DataLoader with the same
arguments, seeds included.

Lightning may re-instantiate a DataLoader subclass to inject a sampler; this one takes
DataLoader's arguments plus keyword-only extras, so it is re-created as itself.

The recovery uses a few private parts of torch's multiprocessing iterator (`_workers`,
`_shutdown_workers`, `_worker_pids_set` with `signal_handling._remove_worker_pids`); torch
is pinned and tests/data/test_data_faults.py exercises each of them.

Under DDP a rank that drops an item-less batch yields one batch fewer than the others;
that only happens when every item of a batch is unreadable.
"""
from __future__ import annotations

import logging
import multiprocessing
import operator
import signal
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import DataLoader, Dataset, get_worker_info
from torch.utils.data._utils import signal_handling

from .collate import SKIPPED_KEY, SkippedItem, SkippingCollate

log = logging.getLogger(__name__)

_REAP_WAIT_S = 5.0  # how long a broken connection may precede the worker's visible death
# The inner loader waits for a batch this long at a time, then checks that its workers are
# alive (torch alone checks every 5 s) and, when `timeout` is set, whether it has passed.
_POLL_S = 0.5


@dataclass
class WorkerFailure:
    """One worker death or hang, as reported."""

    pid: int | None
    cause: str  # "killed by signal SIGKILL", "exited with code 1", "sent no batch within 30s"
    item: Any = None  # sampler key of the item it was reading, if it was reading one


@dataclass
class EpochReport:
    """What one pass over a ResilientDataLoader delivered and what went wrong."""

    batches: int = 0  # batches delivered
    samples: int = 0  # samples delivered
    skipped: list[SkippedItem] = field(default_factory=list)  # left out: unreadable videos
    worker_failures: list[WorkerFailure] = field(default_factory=list)
    dropped_items: list[Any] = field(default_factory=list)  # killed their worker too often
    finished: bool = False  # the pass reached the end of the batch sampler

    @property
    def clean(self) -> bool:
        return not (self.skipped or self.worker_failures or self.dropped_items)

    def summary(self) -> str:
        parts = [f"{self.batches} batches, {self.samples} samples"]
        if self.skipped:
            rels = list(dict.fromkeys(s.rel for s in self.skipped))
            parts.append(f"{len(self.skipped)} items skipped from {len(rels)} unreadable videos "
                         f"({', '.join(rels[:5])}{', ...' if len(rels) > 5 else ''})")
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
    """The dataset as the inner loader's workers see it: before reading an item, worker w
    writes the item's id into `slots[w]` (shared memory), and -1 once the item is read."""

    def __init__(self, dataset: Any, slots: Any) -> None:
        self.dataset = dataset
        self.slots = slots

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> Any:
        info = get_worker_info()
        if info is None:
            return self.dataset[key]
        self.slots[info.id] = _item_id(key)
        item = self.dataset[key]
        self.slots[info.id] = -1
        return item


class _Plan:
    """The inner loader's batch sampler: replays undelivered batches, then the outer
    sampler's. Every batch it hands out waits in `pending` until delivered."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.source: Iterator[Any] = iter(())
        self.replay: list[list[Any]] = []
        self.pending: deque[list[Any]] = deque()
        self.exhausted = False  # every batch of the pass has been handed out

    def start(self, source: Iterable[Any]) -> None:
        self.source, self.replay = iter(source), []
        self.pending.clear()
        self.exhausted = False

    def resume(self) -> None:
        """Replay what is pending on the next pass (empty batches left out)."""
        self.replay = [b for b in self.pending if b]
        self.pending.clear()
        self.exhausted = False

    @property
    def done(self) -> bool:
        """Every batch of the pass has been handed out and delivered."""
        return self.exhausted and not self.pending

    def remove(self, item: int) -> Any:
        """Take the first pending item with id `item` out of its batch; returns its key."""
        for batch in self.pending:
            for k, key in enumerate(batch):
                if _item_id(key) == item:
                    return batch.pop(k)
        return None

    def __iter__(self) -> Iterator[list[Any]]:
        # Generator body: runs only when torch pulls the first batch (it calls iter() twice
        # when it creates an iterator and advances only the second).
        replay, self.replay = self.replay, []
        for batch in replay:
            self.pending.append(batch)
            yield batch
        for batch in self.source:
            batch = list(batch)
            self.pending.append(batch)
            yield batch
        self.exhausted = True

    def __len__(self) -> int:
        return self.length


def _is_timeout(err: BaseException) -> bool:
    return isinstance(err, RuntimeError) and str(err).startswith("DataLoader timed out")


def _cause(exitcode: int | None) -> str:
    if exitcode is None:
        return "hung"
    if exitcode < 0:
        try:
            return f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class ResilientDataLoader(DataLoader):
    """torch DataLoader that skips unreadable samples and survives worker failures.

    Args: those of torch.utils.data.DataLoader (batched: batch_size or batch_sampler; the
    collate_fn, default_collate by default, is wrapped in `SkippingCollate`), plus,
    keyword-only:
        item_attempts: times an item may be read by a worker that then dies (or hangs past
            `timeout`) before the item is dropped (>= 1).
        max_worker_restarts: worker-pool restarts allowed per epoch before giving up.
        name: shown in log messages (e.g. 'UCF-101 split 1 train').
        prime_next_epoch: with persistent workers and a sampler that has `set_epoch`
            (a training sampler), start the next epoch's prefetch as soon as an epoch ends:
            its first batches are decoded while validation runs instead of while training
            waits. Used only if the next pass is for that epoch; otherwise the prefetched
            batches are discarded (torch's persistent-worker reset).

    `report` is the EpochReport of the current or last pass; `failures_total` counts worker
    failures over all passes.
    """

    def __init__(self, dataset: Any, *args: Any, item_attempts: int = 2,
                 max_worker_restarts: int = 10, name: str = "", prime_next_epoch: bool = False,
                 **kwargs: Any) -> None:
        if not isinstance(item_attempts, int) or item_attempts < 1:
            raise ValueError(f"item_attempts must be a positive integer, got {item_attempts!r}")
        if not isinstance(max_worker_restarts, int) or max_worker_restarts < 0:
            raise ValueError(f"max_worker_restarts must be a non-negative integer, got "
                             f"{max_worker_restarts!r}")
        collate = kwargs.get("collate_fn")
        if not isinstance(collate, SkippingCollate):
            kwargs["collate_fn"] = SkippingCollate(collate)
        super().__init__(dataset, *args, **kwargs)
        self.item_attempts = item_attempts
        self.max_worker_restarts = max_worker_restarts
        self.name = name
        self.prime_next_epoch = prime_next_epoch
        self.report = EpochReport()
        self.failures_total = 0
        self._inner: DataLoader | None = None
        self._plan: _Plan | None = None
        self._slots: Any = None
        self._live: Any = None  # the inner iterator of the current pass
        self._primed: tuple[int, Any] | None = None  # (epoch, inner iterator) started ahead

    # DataLoader keeps a persistent pool's iterator in `_iterator`; here it lives in the inner
    # loader. Exposing it lets Lightning's teardown shut the pool down as it does for a
    # plain DataLoader (otherwise it would linger until garbage collection, where torch
    # waits 5 s per worker).
    @property
    def _iterator(self) -> Any:
        inner = self.__dict__.get("_inner")
        return None if inner is None else inner._iterator

    @_iterator.setter
    def _iterator(self, value: Any) -> None:
        inner = self.__dict__.get("_inner")
        if inner is not None:
            inner._iterator = value

    def shutdown(self) -> None:
        """Stop the worker processes now (a persistent pool included)."""
        it = self._iterator if self._iterator is not None else self._live
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()
        self._iterator = None
        self._live = None
        self._primed = None

    @classmethod
    def wrap(cls, loader: DataLoader, **extras: Any) -> ResilientDataLoader:
        """A ResilientDataLoader with the same dataset, sampler, batching, workers and
        generator as `loader` (which is left unused), plus `extras` (name, item_attempts,
        max_worker_restarts)."""
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

    # ---- the pass ------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        self.report = EpochReport()
        if self.num_workers == 0:
            return self._single_process(self.report)
        return self._multi_process(self.report)

    def _single_process(self, report: EpochReport) -> Iterator[Any]:
        for batch in super().__iter__():
            batch = self._account(batch, report)
            if batch is not None:
                yield batch
        self._finish(report)

    def _inner_loader(self) -> tuple[DataLoader, _Plan]:
        if self._inner is None:
            context = self.multiprocessing_context or multiprocessing.get_context()
            if isinstance(context, str):
                context = multiprocessing.get_context(context)
            self._slots = context.Array("q", [-1] * self.num_workers, lock=False)
            self._plan = _Plan(len(self.batch_sampler))
            # in_order (the default): the recovery relies on batches arriving in order.
            self._inner = DataLoader(
                _Tracked(self.dataset, self._slots), batch_sampler=self._plan,
                num_workers=self.num_workers, collate_fn=self.collate_fn,
                pin_memory=self.pin_memory, timeout=_POLL_S,
                worker_init_fn=self.worker_init_fn,
                multiprocessing_context=self.multiprocessing_context, generator=self.generator,
                prefetch_factor=self.prefetch_factor, persistent_workers=self.persistent_workers,
                pin_memory_device=self.pin_memory_device)
        assert self._plan is not None
        return self._inner, self._plan

    def _start(self, inner: DataLoader) -> Iterator[Any]:
        for w in range(self.num_workers):
            self._slots[w] = -1
        it = iter(inner)
        # torch's SIGCHLD handler raises as soon as a worker dies, in whatever code the main
        # thread runs then (a training step). Unregistered, a death surfaces in next(it),
        # within torch's 5 s status check, where it can be handled.
        if getattr(it, "_worker_pids_set", False):
            signal_handling._remove_worker_pids(id(it))
            it._worker_pids_set = False
        self._live = it
        return it

    def _multi_process(self, report: EpochReport) -> Iterator[Any]:
        inner, plan = self._inner_loader()
        primed, self._primed = self._primed, None
        if primed is not None and primed[0] != getattr(self.sampler, "epoch", None):
            primed = None  # started for another epoch: the reset in _start discards it
        if primed is None:
            plan.start(self.batch_sampler)
        try:
            yield from self._deliver(inner, plan, report, primed[1] if primed is not None else None)
        except BaseException as err:
            # An error, or the consumer stopped early (GeneratorExit). Stop the workers now
            # rather than whenever the iterator is collected; a persistent pool survives
            # only an early stop, as in torch.
            live = self._live
            if live is not None and (not self.persistent_workers or not isinstance(err, GeneratorExit)):
                live._shutdown_workers()
                inner._iterator = None
            raise
        if not report.finished:  # the last batch was not delivered through _deliver
            self._finish(report)
            self._prime(inner, plan)

    def _prime(self, inner: DataLoader, plan: _Plan) -> None:
        """Start the next epoch's prefetch now (see `prime_next_epoch`)."""
        epoch = getattr(self.sampler, "epoch", None)
        if not (self.prime_next_epoch and self.persistent_workers and isinstance(epoch, int)
                and callable(getattr(self.sampler, "set_epoch", None))):
            return
        # Lightning sets the same epoch again before the next pass, which then finds it primed.
        self.sampler.set_epoch(epoch + 1)
        plan.start(self.batch_sampler)
        self._primed = (epoch + 1, self._start(inner))  # also the live pass now (worker_pids)

    def _deliver(self, inner: DataLoader, plan: _Plan, report: EpochReport,
                 it: Any = None) -> Iterator[Any]:
        # The only reference to the inner iterator besides self._live, so that a replaced
        # pool's pipes are closed before the next pool forks (and would inherit them).
        if it is None:
            it = self._start(inner)
        else:
            self._live = it
        attempts: dict[int, int] = {}
        waited = 0.0  # seconds spent waiting for the current batch
        while True:
            try:
                batch = next(it)
            except StopIteration:
                break
            except (RuntimeError, OSError, EOFError) as err:
                # RuntimeError: torch saw a worker die, or a poll interval passed without a
                # batch (the iterator stays usable). OSError / EOFError: a worker died just
                # after queueing a batch, before the main process fetched the batch's
                # shared memory from it.
                if _is_timeout(err) and all(w.is_alive() for w in getattr(it, "_workers", [])):
                    waited += _POLL_S
                    if not self.timeout or waited < self.timeout:
                        continue  # all alive, no deadline passed: keep waiting
                waited = 0.0
                failure = self._diagnose(it, err)
                if failure is None:
                    raise
                self._recover(it, inner, plan, report, attempts, err, failure)
                it = None  # type: ignore[assignment]
            if it is None:
                # Outside the except block: the traceback, and through it the old pool's
                # queues, are gone, so the new workers do not inherit their descriptors.
                self._live = None
                it = self._start(inner)
                continue
            waited = 0.0
            plan.pending.popleft()
            batch = self._account(batch, report)
            if plan.done:
                # Lightning stops asking once it holds the epoch's last batch (it knows the
                # length), so the end of the epoch is handled before that batch is handed over.
                self._finish(report)
                self._prime(inner, plan)
                if batch is not None:
                    yield batch
                return
            if batch is not None:
                yield batch

    # ---- worker failures -------------------------------------------------------------
    def _diagnose(self, it: Any, err: BaseException) -> WorkerFailure | None:
        """What failed, or None when `err` is not a worker failure (then it is re-raised)."""
        workers = list(getattr(it, "_workers", []))
        dead = [wid for wid, w in enumerate(workers) if not w.is_alive()]
        if not dead and not isinstance(err, RuntimeError):
            # The connection broke first; the process may not have been reaped yet.
            deadline = time.monotonic() + _REAP_WAIT_S
            while not dead and time.monotonic() < deadline:
                time.sleep(0.05)
                dead = [wid for wid, w in enumerate(workers) if not w.is_alive()]
        if dead:
            wid = dead[0]
            cause = _cause(workers[wid].exitcode)
        elif _is_timeout(err):
            # Every worker is alive but no batch came: blame one that is inside an item.
            busy = [w for w in range(len(workers)) if self._slots[w] >= 0]
            if not busy:
                return None
            wid = busy[0]
            cause = f"sent no batch within {self.timeout:g}s"
        else:
            return None
        item = int(self._slots[wid]) if wid < len(self._slots) else -1
        return WorkerFailure(workers[wid].pid, cause, item if item >= 0 else None)

    def _recover(self, it: Any, inner: DataLoader, plan: _Plan, report: EpochReport,
                 attempts: dict[int, int], err: BaseException, failure: WorkerFailure) -> None:
        report.worker_failures.append(failure)
        self.failures_total += 1
        name = self.name or "DataLoader"
        for worker in getattr(it, "_workers", []):
            if worker.pid == failure.pid and worker.is_alive():
                worker.kill()  # hung: torch's shutdown would wait 5 s for it first
        # Stops the other workers too: their queued batches are replayed by the new pool.
        it._shutdown_workers()
        inner._iterator = None  # persistent workers: make the next iter() start a new pool
        if len(report.worker_failures) > self.max_worker_restarts:
            raise RuntimeError(
                f"{name}: {len(report.worker_failures)} worker failures in one epoch exceed "
                f"max_worker_restarts={self.max_worker_restarts}; last: pid {failure.pid} "
                f"{failure.cause}") from err
        dropped = None
        if failure.item is not None:
            attempts[failure.item] = attempts.get(failure.item, 0) + 1
            if attempts[failure.item] >= self.item_attempts:
                dropped = plan.remove(failure.item)
                if dropped is not None:
                    report.dropped_items.append(dropped)
                    log.error("%s: dropping item %s: %d workers failed while reading it (last: "
                              "pid %s %s)", name, dropped, attempts[failure.item], failure.pid,
                              failure.cause)
        plan.resume()
        log.warning("%s: DataLoader worker pid %s %s%s; restarted the workers and resumed after "
                    "the %d batches already delivered (none repeated, none lost%s)", name,
                    failure.pid, failure.cause,
                    f" while reading item {failure.item}" if failure.item is not None else "",
                    report.batches, ", but the dropped item" if dropped is not None else "")

    # ---- accounting ----------------------------------------------------------------------
    @staticmethod
    def _account(batch: Any, report: EpochReport) -> Any:
        if isinstance(batch, dict) and SKIPPED_KEY in batch:
            report.skipped.extend(batch.pop(SKIPPED_KEY))
            if not batch:
                return None  # every item of this batch failed
        report.batches += 1
        if isinstance(batch, dict) and batch:
            first = next(iter(batch.values()))
            report.samples += len(first) if hasattr(first, "__len__") else 1
        return batch

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

    def worker_pids(self) -> list[int]:
        """Pids of the live worker processes of the current pass (empty when none run)."""
        return [w.pid for w in getattr(self._live, "_workers", []) if w.is_alive()]
