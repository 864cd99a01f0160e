"""Profiling callbacks in a 2-step CPU fit, the saved-tensor counter, and `softpool-video profile`."""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from softpool_video.commands.profile import main as profile_main
from softpool_video.pooling import build_pool
from softpool_video.profiling import (
    LatencyProfiler,
    MemoryProfiler,
    SavedTensorCounter,
    callback_summary_columns,
    pooling_layers,
)

SHAPE = (2, 3, 4, 8, 8)  # one batch: N, C, T, H, W


class OnePool(pl.LightningModule):
    """x * scale -> one pooling layer -> sum: every saved tensor can be named by hand."""

    def __init__(self, method: str) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.pool = build_pool(method, 3, 2)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return self.pool(x * self.scale).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(module: pl.LightningModule, callbacks: list, root: Path, steps: int = 2) -> pl.Trainer:
    data = TensorDataset(torch.randn(steps * SHAPE[0], *SHAPE[1:]))
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", devices=1, callbacks=callbacks, default_root_dir=root,
                         logger=pl.loggers.CSVLogger(root, name="", version=""), enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, log_every_n_steps=1)
    trainer.fit(module, DataLoader(data, batch_size=SHAPE[0]))
    return trainer


def _hand_computed(method: str) -> tuple[int, int]:
    """(total, pool layer) bytes saved for backward by OnePool on one float32 batch."""
    clip = torch.Size(SHAPE).numel() * 4
    pooled = SHAPE[0] * SHAPE[1] * (SHAPE[2] // 2) * (SHAPE[3] // 2) * (SHAPE[4] // 2)
    # mul saves the clip (for d/d scale); the pool saves its input x*scale plus
    # max: the int64 argmax indices; softpool: its float32 output and log-sum-exp.
    extra = pooled * 8 if method == "max" else 2 * pooled * 4
    return clip + clip + extra, clip + extra


@pytest.mark.parametrize("method", ["max", "softpool"])
def test_callbacks_write_summaries_with_hand_computed_saved_bytes(tmp_path, method):
    latency = LatencyProfiler(warmup_steps=0, layer_timing=True)
    memory = MemoryProfiler(warmup_steps=0, saved_tensor_steps=-1)
    trainer = _fit(OnePool(method), [latency, memory], tmp_path)
    assert not trainer.optimizers[0]._optimizer_step_post_hooks  # the optimizer-end hook is gone after the fit

    lat = json.loads((tmp_path / "latency_profile.json").read_text())
    mem = json.loads((tmp_path / "memory_profile.json").read_text())
    assert lat["kind"] == "latency" and lat["measured_steps"] == 2 and lat["measured_clips"] == 2 * SHAPE[0]
    for phase in ("forward_ms", "backward_ms", "optimizer_ms", "after_step_ms", "data_wait_ms", "step_ms"):
        assert lat[phase] is not None and lat[phase] >= 0, phase
    assert lat["forward_ms"] + lat["backward_ms"] <= lat["step_ms"] * 1.001
    spreads = lat["spread_ms"]
    for k in ("forward", "backward", "optimizer", "after_step"):
        assert spreads[k]["n"] == 2, k  # the phases of every step, the optimizer's end among them
    phase_sum = sum(spreads[k]["mean"] for k in ("forward", "backward", "optimizer", "after_step"))
    assert phase_sum == pytest.approx(spreads["step"]["mean"], rel=1e-6)  # they tile the step
    steps = lat["spread_ms"]["step"]
    assert steps["n"] == 2
    assert lat["train_clips_per_s"] == pytest.approx(2 * SHAPE[0] / (2 * steps["mean"] / 1e3), rel=1e-6)
    assert set(lat["layers"]) == {"pool"}
    assert lat["layers"]["pool"]["forward_ms"] > 0 and lat["layers"]["pool"]["backward_ms"] > 0
    assert lat["environment"]["device"] == "cpu" and lat["environment"]["dtype"] == "float32"

    total, layer = _hand_computed(method)
    assert mem["kind"] == "memory" and mem["saved_tensor_steps_counted"] == 2
    assert mem["saved_bytes"] == total
    assert mem["saved_bytes_per_layer"] == {"pool": layer}
    assert mem["pool_saved_bytes"] == layer
    assert mem["peak_rss_mib"] > 0
    assert "peak_allocated_mib" not in mem  # CPU run: no GPU figures

    logged = (tmp_path / "metrics.csv").read_text()
    assert "profile/forward_ms" in logged and "profile/saved_bytes" in logged

    columns = callback_summary_columns(tmp_path)
    assert columns["step ms"] == lat["step_ms"]
    assert columns["saved for backward MiB"] == pytest.approx(total / 2**20)
    assert columns["pool saved MiB"] == pytest.approx(layer / 2**20)
    assert "peak RSS MiB" in columns and "peak allocated MiB" not in columns
    assert callback_summary_columns([lat]) == {k: v for k, v in columns.items() if k in callback_summary_columns(lat)}


def test_disabled_callbacks_measure_and_write_nothing(tmp_path):
    module = OnePool("max")
    latency = LatencyProfiler(layer_timing=True, enabled=False)
    memory = MemoryProfiler(enabled=False)
    _fit(module, [latency, memory], tmp_path)
    assert latency.summary == {} and memory.summary == {}
    assert not (tmp_path / "latency_profile.json").exists() and not (tmp_path / "memory_profile.json").exists()
    assert not module.pool._forward_hooks and not module.pool._forward_pre_hooks
    assert callback_summary_columns(tmp_path) == {}


def test_warmup_steps_are_left_out(tmp_path):
    latency = LatencyProfiler(warmup_steps=2)
    memory = MemoryProfiler(warmup_steps=2, saved_tensor_steps=1)
    _fit(OnePool("avg"), [latency, memory], tmp_path, steps=3)
    assert latency.summary["steps"] == 3 and latency.summary["measured_steps"] == 1
    assert memory.summary["saved_tensor_steps_counted"] == 1


def test_counter_counts_a_shared_storage_once_and_skips_parameters():
    conv = nn.Conv3d(3, 4, 1)
    pool = build_pool("max", 3, 2)
    model = nn.Sequential(conv, nn.ReLU(), pool)
    x = torch.randn(SHAPE)
    assert set(pooling_layers(model)) == {"2"}
    with SavedTensorCounter(model, pooling_layers(model)) as counter:
        model(x)
    act = SHAPE[0] * 4 * SHAPE[2] * SHAPE[3] * SHAPE[4] * 4  # conv output, ReLU'd in a new tensor
    indices = act // 4 // 8 * 8  # int64 per pooled element
    # conv saves the clip (its weight is a parameter: left out); ReLU saves its output,
    # the very tensor the pool saves as input: counted once in the total, and in the pool's share
    assert counter.total_bytes == x.numel() * 4 + act + indices
    assert counter.layer_bytes == {"2": act + indices}
    assert not pool._forward_hooks  # hooks gone after the count


def test_cuda_snapshot_is_skipped_without_cuda(tmp_path, caplog):
    memory = MemoryProfiler(cuda_snapshot="snapshot.pickle")
    with caplog.at_level(logging.WARNING, logger="softpool_video.profiling.memory"):
        _fit(OnePool("max"), [memory], tmp_path)
    assert "ignored" in caplog.text and not (tmp_path / "snapshot.pickle").exists()
    assert "cuda_snapshot" not in memory.summary


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="warmup_steps"):
        LatencyProfiler(warmup_steps=-1)
    with pytest.raises(ValueError, match="saved_tensor_steps"):
        MemoryProfiler(saved_tensor_steps=-2)


def test_profile_command_writes_table_csv_json_png(tmp_path, capsys):
    out = tmp_path / "profile"
    code = profile_main(["--model", "r2plus1d_tiny", "--pooling", "max,softpool", "--input", "2,3,4,32,32",
                         "--warmup", "0", "--repeats", "2", "--out", str(out)])
    assert code == 0
    table = (out / "profile.md").read_text()
    assert "| max |" in table and "| softpool |" in table and "train step ms" in table
    with open(out / "profile.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["max", "softpool"]
    assert all(float(r["step_ms"]) > 0 and int(r["saved_bytes"]) > int(r["pool_saved_bytes"]) > 0 for r in rows)
    assert rows[0]["params"] == rows[1]["params"] and float(rows[0]["gflops"]) > 0
    assert rows[0]["env_threads"] == str(torch.get_num_threads()) and rows[0]["env_amp"] == "False"
    data = json.loads((out / "profile.json").read_text())
    assert data["environment"]["dtype"] == "float32" and data["environment"]["device"] == "cpu"
    assert data["environment"]["torch"] == torch.__version__
    # SoftPool keeps its output and log-sum-exp (two float32 maps) where max keeps int64 indices: same bytes
    assert data["results"][0]["pool_saved_bytes"] == data["results"][1]["pool_saved_bytes"]
    assert (out / "profile.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "softpool" in capsys.readouterr().out


@pytest.mark.parametrize("argv, word", [(["--model", "nope"], "--model"), (["--pooling", "max,nope"], "--pooling"),
                                        (["--input", "1,3,8"], "--input"), (["--model-args", "[1]"], "--model-args")])
def test_profile_command_rejects_bad_options(tmp_path, capsys, argv, word):
    assert profile_main([*argv, "--out", str(tmp_path)]) == 2
    assert word in capsys.readouterr().err


@pytest.mark.cuda
def test_memory_profiler_on_cuda_records_phase_peaks_and_snapshot(tmp_path):
    latency = LatencyProfiler(warmup_steps=0, layer_timing=True)
    memory = MemoryProfiler(warmup_steps=0, cuda_snapshot="snapshot.pickle", snapshot_steps=1)
    data = TensorDataset(torch.randn(4, *SHAPE[1:]))
    trainer = pl.Trainer(max_steps=2, accelerator="cuda", devices=1, callbacks=[latency, memory],
                         default_root_dir=tmp_path, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(OnePool("softpool"), DataLoader(data, batch_size=SHAPE[0]))
    summary = memory.summary
    assert summary["forward_peak_allocated_mib"] > 0 and summary["peak_reserved_mib"] >= summary["peak_allocated_mib"]
    assert summary["saved_bytes"] == _hand_computed("softpool")[0]
    assert (tmp_path / "snapshot.pickle").stat().st_size > 0
    assert latency.summary["timer"] == "cuda_events" and latency.summary["layers"]["pool"]["backward_ms"] > 0


@pytest.mark.cuda
def test_profile_command_on_cuda(tmp_path):
    code = profile_main(["--model", "r2plus1d_tiny", "--pooling", "max,softpool", "--input", "2,3,8,64,64",
                         "--device", "cuda", "--amp", "--warmup", "1", "--repeats", "3", "--out", str(tmp_path)])
    assert code == 0
    data = json.loads((tmp_path / "profile.json").read_text())
    assert data["environment"]["device"].startswith("cuda") and data["environment"]["amp"] is True
    assert all(r["peak_allocated_bytes"] > 0 for r in data["results"])


def test_callbacks_can_be_attached_from_a_config():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--callbacks", type=list[pl.Callback])
    config = parser.parse_object({"callbacks": [
        {"class_path": "softpool_video.profiling.LatencyProfiler", "init_args": {"warmup_steps": 5, "layer_timing": True}},
        {"class_path": "softpool_video.profiling.MemoryProfiler", "init_args": {"cuda_snapshot": "snap.pickle"}}]})
    latency, memory = parser.instantiate(config).callbacks
    assert isinstance(latency, LatencyProfiler) and latency.warmup_steps == 5 and latency.layer_timing
    assert isinstance(memory, MemoryProfiler) and memory.cuda_snapshot == "snap.pickle"


def test_summary_columns_reject_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="summary_json"):
        callback_summary_columns(tmp_path / "nope.json")


def test_counting_a_forward_that_never_runs_backward_keeps_nothing_alive():
    # ReLU saves its own output: kept as is by the counter, it would close a node -> tensor -> node
    # cycle that gc cannot see, and the graph (activations, the counter, the model) would never be freed
    import gc
    import weakref

    model = nn.Sequential(nn.Conv3d(3, 4, 1), nn.ReLU(), build_pool("softpool", 3, 2))
    alive = weakref.ref(model)
    counter = SavedTensorCounter(model, pooling_layers(model))
    with counter:
        out = model(torch.randn(SHAPE)).sum()
    assert counter.total_bytes > 0
    del out, model, counter
    gc.collect()
    assert alive() is None
