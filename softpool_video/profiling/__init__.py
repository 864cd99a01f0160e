"""Memory and latency profiling: Lightning callbacks and the `softpool-video profile` command.

- `LatencyProfiler`: per-step data wait, forward, backward and optimizer time, throughput,
  optionally per pooling layer.
- `MemoryProfiler`: peak GPU memory per phase, bytes saved for backward (per pooling layer
  and in total), process peak RSS, an optional CUDA memory snapshot.
- `model_profile`: the standalone, side-by-side measurement per pooling method.
- `callback_summary_columns`: the callbacks' JSON summaries as benchmark-table columns.
"""
from __future__ import annotations

from .latency import LatencyProfiler
from .memory import MemoryProfiler
from .report import callback_summary_columns
from .saved_tensors import SavedTensorCounter, pooling_layers

__all__ = ["LatencyProfiler", "MemoryProfiler", "SavedTensorCounter", "callback_summary_columns", "pooling_layers"]
