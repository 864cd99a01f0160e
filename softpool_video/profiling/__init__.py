"""Memory and latency profiling during training: Lightning callbacks (the standalone
`softpool-video profile` study lives in `softpool_video.studies.model_profile`).

- `LatencyProfiler`: per-step data wait, forward, backward and optimizer time, throughput,
  optionally per pooling layer.
- `MemoryProfiler`: peak GPU memory per phase, bytes saved for backward (per pooling layer
  and in total), process peak RSS, an optional CUDA memory snapshot.
- `callback_summary_columns`: the callbacks' JSON summaries as benchmark-table columns.
"""
from __future__ import annotations

from softpool_video.measure import SavedTensorCounter

from .latency import LatencyProfiler
from .layers import pooling_layers
from .memory import MemoryProfiler
from .report import callback_summary_columns

__all__ = ["LatencyProfiler", "MemoryProfiler", "SavedTensorCounter", "callback_summary_columns", "pooling_layers"]
