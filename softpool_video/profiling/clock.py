"""Timestamps on the host or the GPU stream, read without stalling the GPU.

On CUDA a mark records an event on the current stream; a step's marks are read once its
last event has completed (`Event.query`), so timing never forces a synchronisation the
training loop would not do anyway. On the CPU a mark is `time.perf_counter()`: CPU ops
run synchronously, so the clock already sees finished work.
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Sequence

import torch


class Marks:
    """Named timestamps of one step (or one layer call)."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.points: dict[str, Any] = {}

    def mark(self, name: str) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.points[name] = event
        else:
            self.points[name] = time.perf_counter()

    def ready(self) -> bool:
        """Whether every recorded event has completed (always on the CPU)."""
        return not self.cuda or all(e.query() for e in self.points.values())

    def ms(self, start: str, end: str) -> float | None:
        """Milliseconds from mark `start` to mark `end`, None if either is missing."""
        a, b = self.points.get(start), self.points.get(end)
        if a is None or b is None:
            return None
        if self.cuda:
            b.synchronize()
            return a.elapsed_time(b)
        return (b - a) * 1e3


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median and spread of a sample (empty sample: an empty dict)."""
    if not values:
        return {}
    ordered = sorted(values)

    def quantile(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return {"median": statistics.median(ordered), "mean": statistics.fmean(ordered), "min": ordered[0],
            "max": ordered[-1], "p10": quantile(0.1), "p90": quantile(0.9),
            "std": statistics.stdev(ordered) if len(ordered) > 1 else 0.0, "n": len(ordered)}
