"""`softpool-video profile` when one method runs out of memory: recorded as OOM everywhere, the others measured."""
from __future__ import annotations

import csv
import json
import weakref

import pytest
import torch
from torch import nn

from softpool_video.commands.profile import main as profile_main
from softpool_video.studies import model_profile
from softpool_video.studies.model_profile import is_out_of_memory, profile_model

INPUT = "2,3,4,32,32"
METHODS = ["max", "avg", "softpool"]


def _allocate_too_much() -> None:
    """A real failure of the CPU allocator: 1 EiB is more than any machine here has."""
    torch.empty(1 << 60, dtype=torch.uint8)


def _raise_oom() -> None:
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.\nsecond line of the message")


class FailsOnCall(nn.Module):
    """Wraps a model; its `fail_on`-th forward on real tensors calls `failure` (meta-device FLOP counts don't count)."""

    def __init__(self, net: nn.Module, fail_on: int, failure) -> None:
        super().__init__()
        self.net, self.fail_on, self.failure = net, fail_on, failure
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta":
            self.calls += 1
            if self.calls == self.fail_on:
                big = torch.ones(1 << 16)  # a tensor alive in the failing frame, as in a real step
                self.failure()
                return big
        return self.net(x)


class Patched:
    """`model_profile.build` with `method`'s model failing on its `fail_on`-th real forward. Every other
    model's forward records whether the failed model is still alive (it should have been freed)."""

    def __init__(self, monkeypatch, method: str, fail_on: int, failure) -> None:
        self.method, self.fail_on, self.failure = method, fail_on, failure
        self.failed_model: weakref.ref | None = None
        self.alive_after_failure: list[bool] = []
        self.real_build = model_profile.build
        monkeypatch.setattr(model_profile, "build", self.build)

    def build(self, model_name, method, num_classes, seed, model_kwargs=None):
        net = self.real_build(model_name, method, num_classes, seed, model_kwargs)
        if method == self.method:
            model = FailsOnCall(net, self.fail_on, self.failure)
            self.failed_model = weakref.ref(model)
            return model
        watcher = self

        class Watched(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = net

            def forward(self, x):
                failed = watcher.failed_model
                if failed is not None and failed() is not None and failed().calls >= watcher.fail_on:
                    watcher.alive_after_failure.append(True)
                elif failed is not None and failed() is None:
                    watcher.alive_after_failure.append(False)
                return self.net(x)

        return Watched()


# real forwards of a method's model: 1 materialising, 2 counting saved tensors, then one per warm-up step, then timed
@pytest.mark.parametrize("fail_on, phase, failure", [(1, "build", _raise_oom), (3, "warm-up", _raise_oom),
                                                     (4, "measure", _allocate_too_much)])
def test_one_method_out_of_memory_is_reported_and_the_others_are_measured(tmp_path, monkeypatch, capsys,
                                                                          fail_on, phase, failure):
    patched = Patched(monkeypatch, "avg", fail_on, failure)
    out = tmp_path / "profile"
    code = profile_main(["--model", "r2plus1d_tiny", "--pooling", ",".join(METHODS), "--input", INPUT,
                         "--warmup", "1", "--repeats", "2", "--out", str(out)])
    assert code == 0
    # the failed model and its tensors were let go before the others went on
    assert patched.failed_model() is None
    assert patched.alive_after_failure and not any(patched.alive_after_failure)

    first_line = "CUDA out of memory. Tried to allocate 2.00 GiB." if failure is _raise_oom else \
        "DefaultCPUAllocator: can't allocate memory"
    table = (out / "profile.md").read_text()
    assert "| avg | OOM | OOM | OOM |" in table
    assert f"OOM: avg ran out of memory ({phase}):" in table and first_line in table
    assert "second line" not in table
    for method in ("max", "softpool"):
        row = next(line for line in table.splitlines() if line.startswith(f"| {method} |"))
        assert "OOM" not in row and float(row.split("|")[4].split("±")[0]) > 0  # train step ms

    with open(out / "profile.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert list(rows) == METHODS
    assert rows["avg"]["status"] == "OOM" and rows["avg"]["failed_phase"] == phase
    assert first_line in rows["avg"]["error"] and rows["avg"]["step_ms"] == "" and rows["avg"]["saved_bytes"] == ""
    for method in ("max", "softpool"):
        assert rows[method]["status"] == "ok" and rows[method]["error"] == ""
        assert float(rows[method]["step_ms"]) > 0 and int(rows[method]["saved_bytes"]) > 0
        assert int(rows[method]["repeats"]) == 2  # every timed step of the others ran

    data = json.loads((out / "profile.json").read_text())
    results = {r["method"]: r for r in data["results"]}
    assert results["avg"]["status"] == "OOM" and first_line in results["avg"]["error"]
    assert results["avg"]["step_ms"] is None and results["avg"]["gflops"] is None
    assert all(results[m]["status"] == "ok" and results[m]["step_ms"] > 0 for m in ("max", "softpool"))
    assert (out / "profile.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "every method ran out of memory" not in capsys.readouterr().err


def test_every_method_out_of_memory_fails_with_a_clear_message(tmp_path, monkeypatch, capsys):
    real_build = model_profile.build

    def build(model_name, method, num_classes, seed, model_kwargs=None):
        return FailsOnCall(real_build(model_name, method, num_classes, seed, model_kwargs), 1, _raise_oom)

    monkeypatch.setattr(model_profile, "build", build)
    out = tmp_path / "profile"
    code = profile_main(["--model", "r2plus1d_tiny", "--pooling", "max,softpool", "--input", INPUT,
                         "--warmup", "0", "--repeats", "1", "--out", str(out)])
    assert code == 1
    printed = capsys.readouterr()
    assert printed.err.startswith("softpool-video profile: error: every method ran out of memory")
    assert "max: build" in printed.err and "--input" in printed.err and printed.err.count("\n") == 1
    assert "| max | OOM |" in printed.out  # the table is still printed
    data = json.loads((out / "profile.json").read_text())
    assert [r["status"] for r in data["results"]] == ["OOM", "OOM"]


@pytest.mark.parametrize("error", [RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"),
                                   ValueError("bad value")])
def test_other_errors_are_not_taken_for_out_of_memory(monkeypatch, error):
    def failure() -> None:
        raise error

    Patched(monkeypatch, "avg", 4, failure)
    with pytest.raises(type(error), match=str(error).split(" ")[0]):
        profile_model("r2plus1d_tiny", METHODS, [int(v) for v in INPUT.split(",")], warmup=1, repeats=2)


def test_out_of_memory_is_told_from_other_errors():
    with pytest.raises(RuntimeError) as cpu:
        _allocate_too_much()
    assert is_out_of_memory(cpu.value)
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    assert not is_out_of_memory(RuntimeError("Expected all tensors to be on the same device"))
    assert not is_out_of_memory(ValueError("can't allocate memory"))  # only RuntimeErrors carry allocator failures
