"""`make soak`: many epochs of DataLoader workers over demo data with bad videos in it.

What it checks, epoch after epoch, with 2 persistent workers over the demo dataset:

- every good video is delivered exactly once per epoch, and no bad one is: an item that
  fails at read time is skipped and counted, and (this is the training loader) another
  item of the same shard stands in for it, so the epoch delivers the good videos once each
  plus one stand-in per skipped item (`EpochReport.replaced`);
- the bad videos are counted: some are damaged before the index is built (excluded at
  setup), some after (they fail at read time, every epoch);
- one worker is killed mid-epoch (`--kill-epoch`): the epoch still delivers the same;
- memory stays flat: resident set size (VmRSS from /proc) of the main process and of each
  worker, and the number of open file descriptors. A leak through decord readers (one
  per clip read) would grow with every epoch.

Pass criteria, from the epoch after the kill (workers there are fresh and warm) to the last:
RSS growth of the main process and of the largest worker each under `--rss-growth-mib`
(default 16 MiB: 1% of a training process, and a leak of one frame buffer per opened
video, 64 KiB, times ~100 videos an epoch would pass it within 3 epochs), and open file
descriptors at most `--fd-growth` (default 2) above that epoch.

    python -m benchmarks.soak                       # defaults: 250 epochs, ~2 min on 2 cores
    python -m benchmarks.soak --epochs 5 --quick    # a smoke run
Writes its summary to benchmarks/results/soak.json (every epoch to runs/bench/soak/); exit status 1 if a check fails.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.run import report_checks
from benchmarks.summary import RESULTS, details_file, write_summary

SUMMARY = RESULTS / "soak.json"


def rss_mib(pid: int) -> float:
    """Resident set size of `pid` in MiB (VmRSS), or nan when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def damage(root: Path, rels: list[str], how: str) -> None:
    for rel in rels:
        path = root / rel
        if how == "zero":
            path.write_bytes(b"")
        elif how == "truncate":
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 3])
        elif how == "garbage":
            rng = np.random.default_rng(len(rel))
            path.write_bytes(rng.integers(0, 256, max(path.stat().st_size, 4096), np.uint8).tobytes())
        else:
            raise ValueError(f"damage how={how!r}")


def run(root: Path, *, epochs: int, workers: int, corrupt_fraction: float, kill_epoch: int,
        batch_size: int, seed: int, rss_growth_mib: float, fd_growth: int,
        decode_timeout: float | None) -> dict[str, Any]:
    from softpool_video.datamodules import UCF101DataModule, find_videos

    rng = np.random.default_rng(seed)
    videos = [rel for rel in find_videos(root) if rel.startswith("UCF-101/")]
    n_bad = max(4, round(corrupt_fraction * len(videos)))
    chosen = [videos[i] for i in rng.permutation(len(videos))[:n_bad]]
    before, after = chosen[: n_bad // 2], chosen[n_bad // 2:]
    # Before the index: zero-byte and truncated files, excluded at setup.
    damage(root, before[: len(before) // 2], "zero")
    damage(root, before[len(before) // 2:], "truncate")
    dm = UCF101DataModule(root, split=1, seed=seed,
                          sampling={"clip_len": 8, "frame_interval": 2},
                          transforms={"crop_size": 32, "resize_short": 36},
                          loading={"batch_size": batch_size, "num_workers": workers,
                                   "persistent_workers": workers > 0, "drop_last": False},
                          decoding={"decode_timeout": decode_timeout, "cache_dir": root / ".soak_index"})
    dm.setup("fit")
    train = dm.datasets["train"]
    rel_to_video = {r.rel: v for v, r in enumerate(train.records)}
    # After the index: corrupt and zero-byte files that only fail when read.
    read_time = [rel for rel in after if rel in rel_to_video]
    damage(root, read_time[: len(read_time) // 2], "garbage")
    damage(root, read_time[len(read_time) // 2:], "zero")
    bad_at_read = {rel_to_video[rel] for rel in read_time}
    good = Counter({v: 1 for v in range(train.num_videos) if v not in bad_at_read})
    excluded = sorted(dm.bad_videos)

    loader = dm.train_dataloader()
    main_pid = os.getpid()
    rows: list[dict[str, Any]] = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        seen: Counter = Counter()
        killed = None
        total = len(loader)
        for i, batch in enumerate(loader):
            seen.update(batch["video_index"].tolist())
            if epoch == kill_epoch and killed is None and i >= total // 3 and loader.worker_pids():
                killed = loader.worker_pids()[0]
                os.kill(killed, signal.SIGKILL)
        pids = loader.worker_pids()
        report = loader.report
        rows.append({
            "epoch": epoch, "seconds": round(time.perf_counter() - start, 2),
            "samples": report.samples, "skipped": len(report.skipped),
            "worker_failures": len(report.worker_failures), "killed_pid": killed,
            # each good video once, plus one stand-in (a repeat of a good one) per replaced item
            "exactly_once": (set(seen) == set(good) and sum(seen.values()) == len(good) + report.replaced),
            "stand_ins": report.replaced,
            "duplicates": sum(c - 1 for c in seen.values() if c > 1),
            "missing": sum(1 for v in good if v not in seen),
            "bad_delivered": sum(1 for v in seen if v in bad_at_read),
            "main_rss_mib": round(rss_mib(main_pid), 1),
            "worker_rss_mib": [round(rss_mib(p), 1) for p in pids],
            "fds": open_fds(main_pid) + sum(max(open_fds(p), 0) for p in pids),
            "worker_pids": pids,
        })
    dm.teardown("fit")

    # The epoch after the kill (fresh, warm workers), or epoch 2 without a kill.
    baseline = rows[kill_epoch if 0 < kill_epoch < len(rows) - 1 else 1]
    last = rows[-1]
    main_growth = last["main_rss_mib"] - baseline["main_rss_mib"]
    worker_growth = max(last["worker_rss_mib"] or [0.0]) - max(baseline["worker_rss_mib"] or [0.0])
    fd_delta = last["fds"] - baseline["fds"]
    checks = {
        "every good video exactly once, every epoch": all(r["exactly_once"] for r in rows),
        "read-time failures skipped and counted, every epoch": all(
            r["skipped"] == len(bad_at_read) and r["bad_delivered"] == 0 for r in rows),
        "killed worker reported and replaced": kill_epoch <= 0 or kill_epoch > epochs or (
            rows[kill_epoch - 1]["worker_failures"] == 1 and rows[kill_epoch - 1]["exactly_once"]),
        f"main RSS growth < {rss_growth_mib:g} MiB": main_growth < rss_growth_mib,
        f"worker RSS growth < {rss_growth_mib:g} MiB": worker_growth < rss_growth_mib,
        f"open fds growth <= {fd_growth}": fd_delta <= fd_growth,
    }
    return {
        "config": {"epochs": epochs, "workers": workers, "batch_size": batch_size,
                   "corrupt_fraction": corrupt_fraction, "kill_epoch": kill_epoch, "seed": seed,
                   "decode_timeout": decode_timeout},
        "data": {"videos": len(videos), "train_videos": train.num_videos,
                 "excluded_at_setup": excluded, "failing_at_read_time": sorted(read_time),
                 "good_train_videos": len(good)},
        "baseline_epoch": baseline["epoch"],
        "growth": {"main_rss_mib": round(main_growth, 1), "worker_rss_mib": round(worker_growth, 1),
                   "fds": fd_delta},
        "checks": checks, "passed": all(checks.values()), "epochs": rows,
    }


def table(result: dict[str, Any]) -> str:
    lines = ["| epoch | s | samples | skipped | stand-ins | worker failures | good ones exactly once | main RSS MiB "
             "| worker RSS MiB | fds |", "|---|---|---|---|---|---|---|---|---|---|"]
    rows = result["epochs"]
    shown = {1, 2, 3, len(rows)} | {r["epoch"] for r in rows if r["epoch"] % 50 == 0 or r["killed_pid"]
                                    or not r["exactly_once"]}
    for r in rows:
        if r["epoch"] not in shown:
            continue
        lines.append(f"| {r['epoch']} | {r['seconds']} | {r['samples']} | {r['skipped']} | {r['stand_ins']} | "
                     f"{r['worker_failures']}{' (killed)' if r['killed_pid'] else ''} | "
                     f"{'yes' if r['exactly_once'] else 'NO'} | {r['main_rss_mib']} | "
                     f"{', '.join(map(str, r['worker_rss_mib']))} | {r['fds']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=250, help="epochs to run (default 250)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (default 2)")
    parser.add_argument("--corrupt-fraction", type=float, default=0.1,
                        help="share of the videos damaged, half before and half after indexing "
                             "(default 0.1)")
    parser.add_argument("--kill-epoch", type=int, default=2,
                        help="epoch in which one worker is killed mid-epoch (0: never; default 2)")
    parser.add_argument("--batch-size", type=int, default=8, help="default 8")
    parser.add_argument("--groups", type=int, default=22, help="demo groups per class (default 22)")
    parser.add_argument("--seed", type=int, default=0, help="default 0")
    parser.add_argument("--decode-timeout", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--rss-growth-mib", type=float, default=16.0,
                        help="allowed RSS growth after the baseline epoch (default 16)")
    parser.add_argument("--fd-growth", type=int, default=2, help="allowed growth in open fds (default 2)")
    parser.add_argument("--out", type=Path, default=SUMMARY, help=f"summary (default {SUMMARY}; every epoch's record beside it, or in runs/bench/soak/)")
    parser.add_argument("--quick", action="store_true", help="5 epochs, for a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs = min(args.epochs, 5)
    if args.epochs < 3:
        parser.error(f"--epochs must be at least 3 (a warm-up, a baseline and one to compare), "
                     f"got {args.epochs}")
    if not 0.0 < args.corrupt_fraction < 0.5:
        parser.error(f"--corrupt-fraction must lie in (0, 0.5), got {args.corrupt_fraction}")
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    from softpool_video.datamodules import make_demo_dataset

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="softpool-soak-") as tmp:
        root = make_demo_dataset(Path(tmp) / "demo", seed=args.seed, groups=args.groups,
                                 clips_per_group=1, width=32, height=32)
        result = run(root, epochs=args.epochs, workers=args.workers,
                     corrupt_fraction=args.corrupt_fraction, kill_epoch=args.kill_epoch,
                     batch_size=args.batch_size, seed=args.seed,
                     rss_growth_mib=args.rss_growth_mib, fd_growth=args.fd_growth,
                     decode_timeout=args.decode_timeout)
    result["seconds"] = round(time.perf_counter() - start, 1)
    data = result["data"]
    counts = {key: len(value) if isinstance(value, list) else value for key, value in data.items()}
    write_summary("soak", {**result["config"], "data": counts},
                  {key: result[key] for key in ("baseline_epoch", "growth", "checks", "passed", "seconds")},
                  details={"data": data, "epochs": result["epochs"]}, out=args.out)
    print(table(result) + f"\n(every 50th epoch shown; all in {details_file('soak', args.out)})")
    print(f"\n{data['train_videos']} train videos ({data['good_train_videos']} good), "
          f"{len(data['excluded_at_setup'])} excluded at setup, "
          f"{len(data['failing_at_read_time'])} failing at read time; "
          f"growth from epoch {result['baseline_epoch']} to {result['epochs'][-1]['epoch']}: "
          f"main RSS {result['growth']['main_rss_mib']:+} MiB, largest worker "
          f"{result['growth']['worker_rss_mib']:+} MiB, fds {result['growth']['fds']:+}")
    return report_checks(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
