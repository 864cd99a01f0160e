"""benchmarks/run.py (`make bench`): a benchmark never drops out without a word."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from benchmarks import run


def test_every_bench_module_exists_and_imports():
    for name in run.BENCH_MODULES:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        assert callable(module.run), name
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
