"""scripts/gpu_check.py's machinery, on the CPU: stages under one budget with one log and a
report rewritten after each, the kernel bench's rows, and the output layout a lent machine
can return (at most 8 files, safe names)."""
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

import softpool_video

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stages_share_one_log_and_rewrite_the_report_after_each(gpu_check, tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "STAGE_LIMITS", {"one": (30, 1), "two": (30, 1), "slow": (1, 0.5),
                                                    "late": (30, 20)})
    seen = []
    stages = gpu_check.Stages(60, tmp_path / "all.log", lambda: seen.append([r["status"] for r in stages.results]))
    assert stages.run("one", [sys.executable, "-c", "print('first stage says hi')"])
    assert not stages.run("two", [sys.executable, "-c", "import sys; print('second fails'); sys.exit(3)"])
    assert not stages.run("slow", [sys.executable, "-c", "import time; time.sleep(30)"])
    stages.deadline = stages.start + 5  # under 20 s left: `late` is not started
    assert not stages.run("late", [sys.executable, "-c", "print('never')"])
    assert seen == [["ok"], ["ok", "failed"], ["ok", "failed", "timeout"], ["ok", "failed", "timeout", "skipped"]]
    log = (tmp_path / "all.log").read_text()
    assert log.index("first stage says hi") < log.index("second fails") and "never" not in log
    two = stages.results[1]
    assert two["detail"] == "exit code 3" and two["log_tail"] == ["second fails"]
    assert stages.results[2]["detail"].startswith("timed out") and not stages.ok
    ok = gpu_check.Stages(60, tmp_path / "ok.log", lambda: None)
    assert ok.run("one", [sys.executable, "-c", "pass"])
    ok.skip("ncu", "no GPU")  # optional: reported, does not fail the run
    assert ok.ok and ok.results[-1]["status"] == "skipped"


def test_output_names_fit_what_a_lent_machine_returns(gpu_check):
    names = [gpu_check.JSON_NAME, gpu_check.MD_NAME, gpu_check.LOG_NAME, gpu_check.NCU_NAME, "machine.txt"]
    assert len(set(names)) == len(names) <= 8
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in names)
    assert "machine.txt" in (ROOT / "scripts" / "gpu_call.sh").read_text()
    assert len((ROOT / "scripts" / "gpu_call.sh").read_text()) <= 2000


def test_bench_rows_on_the_cpu(gpu_check, monkeypatch):
    if not softpool_video.extension_loaded():
        pytest.skip("the bench times torch.ops.softpool: needs the compiled extension")
    monkeypatch.setitem(gpu_check.BENCH_SHAPE, "cpu", (1, 2, 4, 10, 10))
    monkeypatch.setitem(gpu_check.BENCH_CALLS, "cpu", dict(calls=2, repeats=2, warmup=1))
    monkeypatch.setattr(gpu_check, "BENCH_DTYPES", ("float32", "bfloat16"))
    result = gpu_check.bench("cpu")
    rows = result["rows"]
    assert len(rows) == 2 * 2 * 8  # dtypes x geometries x (op fwd, op bwd, 3 methods x 2 passes)
    assert set(result["copy_gb_per_s"]) == {"float32", "bfloat16"}
    fp32 = [r for r in rows if r["dtype"] == "float32"]
    for r in fp32:
        assert r["median_ms"] > 0 and r["gb_per_s"] == pytest.approx(r["min_bytes"] / r["median_ms"] / 1e6, rel=1e-2,
                                                                     abs=0.01)
    for r in fp32:
        if r["method"] == "max":
            assert r["vs_max_pool3d"] == 1.0
        elif r["pass"].startswith("op "):
            assert r["vs_max_pool3d"] is None  # max_pool3d has no such pass
    op = next(r for r in fp32 if r["pass"] == "op forward" and r["geometry"] == "k2s2")
    n_in, n_out = 1 * 2 * 4 * 10 * 10, 1 * 2 * 2 * 5 * 5
    assert op["min_bytes"] == n_in * 4 + n_out * 8  # x read, out and the fp32 lse written
    report = {"device": gpu_check.device_record("cpu"), "rehearsal": True, "budget_s": 10.0, "total_s": 1.0,
              "ok": True, "stages": [], "bench": result, "profiles": {}}
    md = gpu_check.markdown(report)
    assert "CPU rehearsal: no GPU figures" in md and md.count("| float32 | k2s2 |") == 8
    json.dumps(report)  # what run_all writes


def test_a_bad_budget_is_named(gpu_check, capsys):
    with pytest.raises(SystemExit):
        gpu_check.main(["--budget-s", "0"])
    assert "--budget-s must be > 0, got 0.0" in capsys.readouterr().err
