"""`make fuzz`: fuzzed videos through every reader and every command that reads videos.

Seeds: the original UCF-101 file (tests/data/realdata/: AVI, XviD with packed B-frames) and
three re-encodings of it by `prepare`'s encoder (64 px short side): XviD in AVI, H.264 in
MP4, H.264 in Matroska. Each fuzzed file is one seed mutated once (benchmarks/fuzz_mutations.py:
header and payload bit flips, truncation, a zeroed or a duplicated range), seeded, so a run
is reproducible. The files go into a few UCF-101 trees (every file in both the train and
the test list, plus the four clean seeds, so a fit has something to learn from); then:

1. `check-videos` on each tree (a subprocess): it exits 0 or 1, and names every bad file;
2. both decoders on each file alone (benchmarks/fuzz_decoders.py, a forked child per file):
   a file a decoder accepts gives exactly the full decode's frames, a rejected one has a
   reason, no call outlives `--decode-timeout`;
3. `fit` (one epoch, 2 DataLoader workers, `decoding.decode_timeout`), `test` on its
   last.ckpt and `predict` of every file with it (subprocesses): each ends with its own
   status and no traceback, every file `predict` cannot read is named, and a DataLoader
   worker that dies is replaced (counted from the loader's warnings).

Pass: no command crashes (a traceback or a signal), no read hangs past the timeout, no
mismatch, every rejected file named. Writes its summary to benchmarks/results/fuzz.json (every file's record to
runs/bench/fuzz/); exit status 1 if
a check fails.

    python -m benchmarks.fuzz                  # 300 files, 3 trees (make fuzz)
    python -m benchmarks.fuzz --files 20 --datasets 1
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.fuzz_decoders import check_files, hung_past_timeout
from benchmarks.fuzz_mutations import KINDS, mutate
from benchmarks.run import report_checks
from benchmarks.summary import RESULTS, write_summary

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "tests" / "data" / "realdata" / "v_ApplyEyeMakeup_g01_c01.avi"
SUMMARY = RESULTS / "fuzz.json"
# class (a UCF-101 folder) -> (container given to prepare's encoder, extension); None: the real file
SEEDS: dict[str, tuple[str, str] | None] = {
    "RealXvidAvi": None, "XvidAvi": ("avi", ".avi"), "HMp4": ("mp4", ".mp4"), "HMkv": ("matroska", ".mkv")}
COMMAND_LIMIT_S = 900  # a command still running after this is a hang
_WORKER_DIED = re.compile(r"DataLoader worker pid \d+ ")


def make_seeds(folder: Path) -> dict[str, Path]:
    """The four seed files (see the module docstring)."""
    from softpool_video.datamodules.prepare import PrepareSettings, encode_video

    folder.mkdir(parents=True, exist_ok=True)
    seeds = {}
    for name, how in SEEDS.items():
        if how is None:
            seeds[name] = Path(shutil.copy(REAL, folder / f"{name}.avi"))
        else:
            fmt, ext = how
            seeds[name] = folder / f"{name}{ext}"
            encode_video(REAL, seeds[name], fmt, PrepareSettings(short_side=64))
    return seeds


def ucf_name(cls: str, k: int) -> str:
    """UCF-101's file name pattern (`_gGG_cCC`): 25 groups, so a holdout has whole groups."""
    return f"v_{cls}_g{k % 25 + 1:02d}_c{k // 25 + 1:02d}"


def make_corpus(work: Path, seeds: dict[str, Path], files: int, datasets: int, seed: int) -> list[dict]:
    """`files` mutated files spread over `datasets` UCF-101 trees; returns one row per file."""
    names = list(seeds)
    rows = []
    per_class: Counter = Counter()
    for k in range(files):
        cls = names[k % len(names)]
        kind = KINDS[(k // len(names)) % len(KINDS)]
        tree = work / f"tree{k % datasets}"
        rel = f"{cls}/{ucf_name(cls, per_class[tree, cls])}{seeds[cls].suffix}"
        per_class[tree, cls] += 1
        path = tree / "UCF-101" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(mutate(seeds[cls].read_bytes(), kind, seed * 1_000_003 + k))
        rows.append({"tree": tree.name, "rel": rel, "path": str(path), "seed": cls, "mutation": kind,
                     "bytes": path.stat().st_size})
    for t in range(datasets):
        tree = work / f"tree{t}"
        for cls, src in seeds.items():  # the clean seeds: controls, and something to learn from
            rel = f"{cls}/{ucf_name(cls, per_class[tree, cls])}{src.suffix}"
            (tree / "UCF-101" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, tree / "UCF-101" / rel)
            rows.append({"tree": tree.name, "rel": rel, "path": str(tree / "UCF-101" / rel),
                         "seed": cls, "mutation": "none", "bytes": src.stat().st_size})
        _write_lists(tree, names, [r["rel"] for r in rows if r["tree"] == tree.name])
    return rows


def _write_lists(tree: Path, classes: list[str], rels: list[str]) -> None:
    lists = tree / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    label = {cls: i for i, cls in enumerate(classes, 1)}
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\n" for c, i in label.items()))
    (lists / "trainlist01.txt").write_text("".join(f"{r} {label[r.split('/')[0]]}\n" for r in rels))
    (lists / "testlist01.txt").write_text("".join(f"{r}\n" for r in rels))


def run_command(args: list[str], log_path: Path) -> dict[str, Any]:
    """One `softpool-video` command in its own process: exit status, seconds, and whether it
    crashed (a signal or a traceback) or hung (still running after COMMAND_LIMIT_S)."""
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "softpool_video.cli", *args], capture_output=True,
                              text=True, timeout=COMMAND_LIMIT_S, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        rc, out, err, hung = proc.returncode, proc.stdout, proc.stderr, False
    except subprocess.TimeoutExpired as exc:
        rc, hung = None, True
        out, err = (exc.stdout or b"").decode(errors="replace"), (exc.stderr or b"").decode(errors="replace")
    log_path.write_text(f"$ softpool-video {' '.join(args)}\n--- stdout\n{out}\n--- stderr\n{err}")
    return {"command": args[0], "rc": rc, "seconds": round(time.perf_counter() - start, 1), "hung": hung,
            "crashed": rc is not None and (rc < 0 or "Traceback (most recent call last)" in err),
            "workers_replaced": len(_WORKER_DIED.findall(err)), "stdout": out, "log": str(log_path)}


def _training_args(tree: Path, out: Path, timeout: float) -> list[str]:
    d = "--data.init_args."
    return ["--config", "demo", f"{d}root", str(tree), f"{d}loading.num_workers", "2",
            f"{d}loading.batch_size", "4",
            f"{d}decoding.decode_timeout", str(timeout), f"{d}sampling.clip_len", "4",
            f"{d}sampling.test_clips", "1", f"{d}transforms.test_crops", "1",
            f"{d}transforms.crop_size", "32", f"{d}transforms.resize_short", "32",
            "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
            "--trainer.logger", "false", "--trainer.default_root_dir", str(out)]


def run_commands(tree: Path, files: list[dict], out: Path, timeout: float) -> dict[str, Any]:
    """check-videos, fit, test and predict on one tree; what each named as unreadable."""
    out.mkdir(parents=True, exist_ok=True)
    report = out / "check_videos.json"
    runs = {"check-videos": run_command(["check-videos", str(tree), "--json", str(report)],
                                        out / "check_videos.log")}
    checked = json.loads(report.read_text()) if report.is_file() else {}
    bad = {rel.removeprefix("UCF-101/"): why for rel, why in checked.get("bad", {}).items()}
    runs["fit"] = run_command(["fit", *_training_args(tree, out / "run", timeout)], out / "fit.log")
    ckpt = next(iter(sorted((out / "run").rglob("last.ckpt"))), None)
    predicted: dict[str, str] = {}
    if ckpt is not None:
        runs["test"] = run_command(["test", *_training_args(tree, out / "run", timeout), "--ckpt_path",
                                    str(ckpt)], out / "test.log")
        runs["predict"] = run_command(["predict", *[f["path"] for f in files], "--model", str(ckpt),
                                       "--clips", "1", "--crops", "1", "--json"], out / "predict.log")
        try:
            answer = json.loads(runs["predict"]["stdout"])
            predicted = {p["video"]: "" for p in answer["predictions"]}
            predicted.update({f["video"]: f["error"] for f in answer["failed"]})
        except (ValueError, KeyError):
            predicted = {}
    failures = tree / ".softpool_video" / "read_failures.jsonl"
    read_failures = {json.loads(line)["path"].removeprefix("UCF-101/") for line in
                     failures.read_text().splitlines()} if failures.is_file() else set()
    for run in runs.values():
        run.pop("stdout")
    return {"tree": tree.name, "runs": runs, "checkpoint": str(ckpt) if ckpt else None,
            "check_videos": {"videos": checked.get("videos"), "bad": bad},
            "read_failures": sorted(read_failures),
            "predict": {"named": predicted}}


def _summary(files: list[dict], decoded: dict[str, dict], trees: list[dict], timeout: float,
             decoders: tuple[str, ...]) -> dict[str, Any]:
    fuzzed = [f for f in files if f["mutation"] != "none"]
    per_decoder = {}
    for b in decoders:
        results = [decoded[f["path"]].get(b) for f in files]
        ok = [r for r in results if r]
        per_decoder[b] = {"accepted": sum(r["accepted"] for r in ok),
                          "rejected": sum(not r["accepted"] for r in ok),
                          "rejected_without_reason": sum(not r["accepted"] and not r["reason"] for r in ok),
                          "timed_out": sum(r["timed_out"] for r in ok),
                          "mismatches": sum(bool(r["mismatch"]) for r in ok)}
    runs = [run for t in trees for run in t["runs"].values()]
    named_by_predict = sum(len(t["predict"]["named"]) for t in trees)
    predict_failed = sum(bool(why) for t in trees for why in t["predict"]["named"].values())
    counts = {
        "files": len(files), "fuzzed": len(fuzzed), "clean_seeds": len(files) - len(fuzzed),
        "by_mutation": dict(Counter(f["mutation"] for f in fuzzed)),
        "decoders": per_decoder,
        # decord's reader refuses a read its FFmpeg logged errors in; the PyAV reader one with a
        # frame its decoder flags as concealed (DamagedStream). Should decord still disagree
        # with the full decode, this says whether PyAV's check would have caught the file.
        "decord_mismatches_where_pyav_accepts": sum(
            bool(decoded[f["path"]].get("decord", {}).get("mismatch"))
            and bool(decoded[f["path"]].get("pyav", {}).get("accepted")) for f in files),
        "checker_crashes": sum("crash" in decoded[f["path"]] for f in files),
        "checker_errors": sum("error" in decoded[f["path"]] for f in files),
        "hangs_past_timeout": sum(hung_past_timeout(decoded[f["path"]], timeout) for f in files),
        "truth_stops_early": sum(bool(decoded[f["path"]].get("truth_error")) for f in files),
        "check_videos_bad": sum(len(t["check_videos"]["bad"]) for t in trees),
        "read_failures_in_fit_or_test": sum(len(t["read_failures"]) for t in trees),
        "predict_failed": predict_failed,
        "workers_replaced": sum(run["workers_replaced"] for run in runs),
        "commands": len(runs), "command_crashes": sum(run["crashed"] for run in runs),
        "command_hangs": sum(run["hung"] for run in runs),
    }
    tree_files = Counter(f["tree"] for f in files)
    checks = {
        "no command crashed (traceback or signal)": counts["command_crashes"] == 0 and counts["checker_errors"] == 0,
        "no read hung past decode_timeout": counts["hangs_past_timeout"] == 0 and counts["command_hangs"] == 0,
        **{f"{b}: every file it accepts gives the full decode's frames": p["mismatches"] == 0
           for b, p in per_decoder.items()},
        "every rejected file has a reason": all(p["rejected_without_reason"] == 0 for p in per_decoder.values()),
        "check-videos checked every file and exited 0 or 1": all(
            t["check_videos"]["videos"] == tree_files[t["tree"]] and t["runs"]["check-videos"]["rc"] in (0, 1)
            for t in trees),
        "fit and test ran to the end": all(
            t["runs"][c]["rc"] == 0 for t in trees for c in ("fit", "test") if c in t["runs"])
            and all("test" in t["runs"] for t in trees),
        "predict answered or named every file": named_by_predict == len(files) and all(
            t["runs"]["predict"]["rc"] in (0, 1) for t in trees if "predict" in t["runs"]),
    }
    return {"counts": counts, "checks": checks, "passed": all(checks.values())}


def run(work: Path, *, files: int = 300, datasets: int = 3, seed: int = 0, decode_timeout: float = 20.0,
        jobs: int = 2, decoders: tuple[str, ...] = ("decord", "pyav")) -> dict[str, Any]:
    """The whole campaign in `work`; returns the result (counts, checks, per-file rows)."""
    start = time.perf_counter()
    seeds = make_seeds(work / "seeds")
    rows = make_corpus(work, seeds, files, datasets, seed)
    decoded = check_files([Path(r["path"]) for r in rows], decode_timeout, jobs=jobs, seed=seed,
                          decoders=decoders)
    trees = [run_commands(work / f"tree{t}", [r for r in rows if r["tree"] == f"tree{t}"],
                          work / f"out{t}", decode_timeout) for t in range(datasets)]
    named = {(t["tree"], rel) for t in trees for rel in [*t["check_videos"]["bad"], *t["read_failures"]]}
    for r in rows:
        r.update(decoded[r["path"]])
        r["named_by_commands"] = (r["tree"], r["rel"]) in named
    result = _summary(rows, decoded, trees, decode_timeout, decoders)
    result.update({"config": {"files": files, "datasets": datasets, "seed": seed,
                              "decode_timeout": decode_timeout, "jobs": jobs},
                   "seconds": round(time.perf_counter() - start, 1), "trees": trees, "files": rows})
    return result


def markdown(result: dict[str, Any]) -> str:
    """The readers' outcome per file, then what the commands did (README's tables)."""
    counts = result["counts"]
    readers = counts["decoders"]
    longest = {b: max((f.get(b, {}).get("longest_s", 0.0) for f in result["files"]), default=0.0) for b in readers}
    names = {"decord": "decord", "pyav": "PyAV"}
    rows = [("accepted", "accepted"), ("rejected, each with its reason", "rejected"),
            ("of which timed out", "timed_out"), ("accepted, but frames differ from the full decode", "mismatches")]
    lines = [f"| of {counts['files']} files | " + " | ".join(names.get(b, b) for b in readers) + " |",
             "|---|" + "---:|" * len(readers)]
    lines += [f"| {label} | " + " | ".join(str(readers[b][key]) for b in readers) + " |" for label, key in rows]
    lines.append("| longest single read, s | " + " | ".join(f"{longest[b]:.2f}" for b in readers) + " |")
    lines += ["", "| the commands on the trees | files or runs |", "|---|---:|",
              f"| commands run (`check-videos`, `fit`, `test`, `predict` per tree) | {counts['commands']} |",
              f"| commands that crashed (a traceback or a signal) or hung | "
              f"{counts['command_crashes'] + counts['command_hangs']} |",
              f"| checker children that died (a decoder crash) | {counts['checker_crashes']} |",
              f"| files `check-videos` named bad | {counts['check_videos_bad']} |",
              f"| more files that failed at read time in `fit` or `test` (read-failure log) | "
              f"{counts['read_failures_in_fit_or_test']} |",
              f"| files `predict` named as unreadable (it predicted the others) | {counts['predict_failed']} |",
              f"| DataLoader workers replaced | {counts['workers_replaced']} |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=300, help="fuzzed files (default 300)")
    parser.add_argument("--datasets", type=int, default=3, help="UCF-101 trees they are spread over (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="default 0")
    parser.add_argument("--decode-timeout", type=float, default=20.0,
                        help="decoding.decode_timeout for every read, seconds (default 20)")
    parser.add_argument("--jobs", type=int, default=2, help="files checked at once (default 2)")
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep the files (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=SUMMARY, help=f"summary (default {SUMMARY}; every file's record beside it, or in runs/bench/fuzz/)")
    args = parser.parse_args(argv)
    if args.files < 1 or args.datasets < 1:
        parser.error(f"--files and --datasets must be positive, got {args.files} and {args.datasets}")
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="softpool-fuzz-") as tmp:
        work = args.keep or Path(tmp)
        result = run(work, files=args.files, datasets=args.datasets, seed=args.seed,
                     decode_timeout=args.decode_timeout, jobs=args.jobs)
    command = "python -m benchmarks.fuzz " + " ".join(argv if argv is not None else sys.argv[1:])
    write_summary("fuzz", {**result["config"], "command": command.strip()},
                  {key: result[key] for key in ("counts", "checks", "passed", "seconds")},
                  details={"trees": result["trees"], "files": result["files"]}, out=args.out)
    print(markdown(result), end="\n\n")
    return report_checks(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
