"""A seeded sample of the fuzz campaign (`make fuzz`, benchmarks/fuzz.py): a few mutated files
of every seed format through check-videos, both readers, fit with 2 workers, test and predict."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.fuzz import run
from benchmarks.fuzz_mutations import KINDS, header_span, mutate


@pytest.mark.parametrize("kind", KINDS)
def test_mutations_are_seeded_and_change_the_file(kind: str) -> None:
    data = bytes(range(256)) * 64
    once, again = mutate(data, kind, 7), mutate(data, kind, 7)
    assert once == again and once != data


def test_header_span_finds_the_avi_header() -> None:
    data = b"RIFF" + bytes(100) + b"movi" + bytes(50)
    assert header_span(data) == (0, 104)


@pytest.mark.slow
def test_fuzz_sample(tmp_path: Path) -> None:
    # 12: with fewer, too few files of the tree are readable for the fit to have a batch.
    result = run(tmp_path, files=12, datasets=1, seed=0, decode_timeout=20.0)
    counts, checks = result["counts"], result["checks"]
    assert counts["files"] == 16 and counts["fuzzed"] == 12  # + the four clean seeds
    for name, ok in checks.items():
        assert ok, (name, counts)
    # Neither reader disagrees with the full decode on a file it accepts (README, "Fuzzed videos").
    assert counts["decoders"]["pyav"]["mismatches"] == counts["decoders"]["decord"]["mismatches"] == 0
    assert counts["decord_mismatches_where_pyav_accepts"] == 0
    for decoder in ("decord", "pyav"):
        c = counts["decoders"][decoder]
        assert c["accepted"] + c["rejected"] == counts["files"]
    clean = [f for f in result["files"] if f["mutation"] == "none"]
    assert all(f["pyav"]["accepted"] and not f["pyav"]["mismatch"] for f in clean)


def test_a_decoder_crash_costs_only_its_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import signal

    from benchmarks import fuzz_decoders

    def crash(path: Path, *args: object) -> dict:
        if path.name == "crash.avi":
            os.kill(os.getpid(), signal.SIGSEGV)  # what a decoder's bad pointer does
        return {"truth_frames": 0}

    monkeypatch.setattr(fuzz_decoders, "check_file", crash)  # forked children inherit it
    paths = [tmp_path / "crash.avi", tmp_path / "fine.avi"]
    results = fuzz_decoders.check_files(paths, timeout=5.0, jobs=2)
    assert results[str(paths[1])] == {"truth_frames": 0}
    assert "crash" in results[str(paths[0])] and str(-signal.SIGSEGV) in results[str(paths[0])]["crash"]
