"""benchmarks/run.py (`make bench`): a benchmark never drops out without a word, every summary has\none small layout (benchmarks/summary.py), and each benchmark runs at its smallest size."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch

from benchmarks import run
from benchmarks import summary as summary_module
from benchmarks.summary import LAYOUT, RESULTS


def test_every_bench_module_exists_and_imports():
    for name in run.BENCH_MODULES:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        assert callable(module.run) and callable(module.markdown) and isinstance(module.INPUTS, tuple), name
    on_disk = {p.stem.removeprefix("bench_") for p in Path(run.__file__).parent.glob("bench_*.py")}
    assert on_disk == {"softpool", *run.BENCH_MODULES}  # a new bench file is run by make bench


def test_unknown_only_name_is_refused(capsys):
    threads = torch.get_num_threads()
    with pytest.raises(SystemExit) as exit_:
        run.main(["--only", "softpool,dataa", "--threads", str(threads + 1)])
    assert exit_.value.code == 2
    assert torch.get_num_threads() == threads  # refused before it changed anything
    assert "--only: unknown benchmark(s) dataa; choose from softpool, data" in capsys.readouterr().err


def test_a_missing_dependency_fails_the_run(monkeypatch):
    def missing(name, *args, **kwargs):
        raise ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")
    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(ModuleNotFoundError, match="onnxruntime"):
        run.bench_module("export", quick=True)


# ---- one layout for every summary, and every benchmark run at its smallest size ----------------------------

def check_summary(summary: dict, name: str) -> None:
    assert list(summary)[:4] == list(LAYOUT), list(summary)
    assert summary["benchmark"] == name
    assert {"torch", "python", "processor", "date"} <= set(summary["environment"]), summary["environment"]
    assert isinstance(summary["inputs"], dict) and summary["inputs"]
    assert isinstance(summary["results"], dict) and summary["results"]


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_committed_summaries_share_one_small_layout(path: Path) -> None:
    check_summary(json.loads(path.read_text()), path.stem)
    assert path.stat().st_size < 64 * 1024, f"{path.name}: bulky records belong in runs/bench/ (details)"


def test_bulky_details_go_beside_the_runs(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(summary_module, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(summary_module, "DETAILS", tmp_path / "runs" / "bench")
    monkeypatch.setattr(summary_module, "REPO", tmp_path)
    out = summary_module.write_summary("soak", {"epochs": 3}, {"passed": True}, details={"epochs": [1, 2, 3]})
    assert out == tmp_path / "results" / "soak.json"
    summary = json.loads(out.read_text())
    check_summary(summary, "soak")
    assert summary["details"] == "runs/bench/soak/soak.details.json"
    assert json.loads((tmp_path / summary["details"]).read_text()) == {"epochs": [1, 2, 3]}


# Beyond --quick: the smallest size at which each still measures what it names.
SMALLEST = {"setup": {"sizes": (2100,), "ucf101": False},  # 3 videos per class: the holdout needs 2 groups
            "launchers": {"slurm": False, "epochs": 1, "one_seed": True},
            "export": {"cases": [("i3d", "softpool", "onnx")]}}  # the case its target is about


@pytest.mark.slow
@pytest.mark.parametrize("name", ("softpool", *run.BENCH_MODULES))
def test_each_benchmark_runs_at_its_smallest_size(name: str, tmp_path) -> None:
    threads = torch.get_num_threads()
    try:
        if name == "softpool":
            text, name = run.bench_softpool("cpu", True, tmp_path), "softpool_cpu"
        else:
            text = run.bench_module(name, True, tmp_path, **SMALLEST.get(name, {}))
    finally:
        torch.set_num_threads(threads)
    assert "|---" in text, text  # its markdown table
    assert [p.name for p in tmp_path.glob("*.json")] == [f"{name}.json"]
    check_summary(json.loads((tmp_path / f"{name}.json").read_text()), name)
