"""softpool_video.measure and softpool_video.reporting: the one timer, quantile, memory and writers."""
from __future__ import annotations

import csv
import json

import pytest
import torch
from torch import nn

from softpool_video import measure, reporting


def test_one_quantile_definition_interpolates_linearly():
    values = [4.0, 1.0, 3.0, 2.0]
    assert measure.quantile(values, 0.5) == 2.5 == measure.median(values)
    assert measure.quantile(values, 0.25) == pytest.approx(1.75)
    assert measure.quantile(values, 0.0) == 1.0 and measure.quantile(values, 1.0) == 4.0
    assert measure.median_iqr(values) == pytest.approx((2.5, 1.5))
    s = measure.spread(list(range(11)))  # 0..10: the p-quantile is 10 p exactly
    assert (s["p10"], s["median"], s["p90"], s["n"]) == (1.0, 5.0, 9.0, 11)
    assert measure.spread([]) == {}
    with pytest.raises(ValueError, match="empty"):
        measure.quantile([], 0.5)


def test_time_callable_times_each_repeat_with_torch_benchmark():
    calls = []
    timing = measure.time_callable(lambda: calls.append(torch.ones(64, 64).sum()), repeats=3, warmup=1)
    assert len(timing.times_ms) == 3 and all(t > 0 for t in timing.times_ms)
    assert len(calls) >= 4  # the warm-up call and one per repeat at least
    d = timing.as_dict()
    assert d["min_ms"] <= d["median_ms"] <= d["max_ms"]
    auto = measure.time_callable(lambda: torch.ones(8).sum(), repeats=None, warmup=0, min_run_time=0.01)
    assert auto.times_ms and auto.median_ms > 0


def test_time_back_to_back_is_per_call_over_many_calls():
    import time

    calls = []

    def sleep_2ms():
        calls.append(1)
        time.sleep(0.002)

    timing = measure.time_back_to_back(sleep_2ms, "cpu", calls=5, repeats=3, warmup=2)
    assert len(calls) == 2 + 5 * 3
    assert len(timing.times_ms) == 3
    assert all(2.0 <= t < 20.0 for t in timing.times_ms)  # per call, not per block of 5
    with pytest.raises(ValueError, match="calls=0"):
        measure.time_back_to_back(sleep_2ms, "cpu", calls=0)


@pytest.mark.cuda
def test_time_back_to_back_uses_cuda_events():
    x = torch.randn(2**24, device="cuda")
    one = measure.time_back_to_back(lambda: x.mul_(1.0), "cuda", calls=10, repeats=3).median_ms
    two = measure.time_back_to_back(lambda: (x.mul_(1.0), x.mul_(1.0)), "cuda", calls=10, repeats=3).median_ms
    assert 0 < one < two  # twice the kernels, more device time per call


def test_marks_read_wall_and_cpu_time():
    marks = measure.Marks(cuda=False, cpu_time=True)
    marks.mark("start")
    torch.randn(256, 256) @ torch.randn(256, 256)
    marks.mark("end")
    assert marks.ms("start", "end") > 0 and marks.cpu_ms("start", "end") >= 0
    assert marks.ms("start", "missing") is None
    assert measure.Marks().cpu_ms("start", "end") is None  # no CPU clock asked for
    out, ms = measure.timed_call(lambda: 7, torch.device("cpu"))
    assert out == 7 and ms >= 0


def test_saved_tensor_counter_leaves_parameters_out():
    model = nn.Linear(8, 8)
    x = torch.randn(4, 8, requires_grad=True)
    with measure.SavedTensorCounter(model) as counter:
        model(x).sum()
    # linear saves its input and its weight; the weight is a parameter, not an activation
    assert counter.total_bytes == x.numel() * x.element_size()
    _, plain = measure.saved_tensor_bytes(lambda: model(x).sum())
    assert plain == counter.total_bytes + model.weight.numel() * 4


def test_memory_readers_and_environment():
    assert measure.peak_rss_bytes() > 0
    rss = measure.rss_bytes()
    assert rss is None or 0 < rss <= measure.peak_rss_bytes() * 2
    env = measure.environment("cpu", torch.float32, amp=False)
    assert env["device"] == "cpu" and env["dtype"] == "float32" and env["amp"] is False
    assert env["torch"] == torch.__version__ and env["threads"] == torch.get_num_threads()
    assert env["cpu_count"] >= 1 and env["processor"]


def test_markdown_table_and_alignment():
    text = reporting.markdown_table(["a", "b"], [[1, "x"], [2, "y"]], align="lr")
    assert text.splitlines() == ["| a | b |", "|---|---:|", "| 1 | x |", "| 2 | y |"]
    with pytest.raises(ValueError, match="alignments"):
        reporting.markdown_table(["a"], [], align="lr")


def test_atomic_writers_leave_no_partial_file(tmp_path):
    path = reporting.write_json_atomic(tmp_path / "sub" / "r.json", {"a": 1}, indent=1)
    assert json.loads(path.read_text()) == {"a": 1} and path.read_text().endswith("\n")
    with pytest.raises(TypeError):
        reporting.write_json_atomic(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}  # the old file, whole
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary left behind
    rows = [{"x": 1, "y": 2}, {"x": 3, "z": 4}]
    csv_path = reporting.write_csv(tmp_path / "t.csv", rows)
    read = list(csv.DictReader(csv_path.read_text().splitlines()))
    assert list(read[0]) == ["x", "y", "z"] and read[1]["z"] == "4"
    empty = reporting.write_csv(tmp_path / "e.csv", [], columns=["only"])
    assert empty.read_text().strip() == "only"
    assert reporting.write_text_atomic(tmp_path / "t.md", "hi\n").read_text() == "hi\n"


def test_save_figure_writes_a_png(tmp_path):
    fig = reporting.new_figure(figsize=(2, 2), dpi=50)
    fig.subplots().plot([0, 1], [1, 0])
    path = reporting.save_figure(fig, tmp_path / "f.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
