"""Data set-up at Kinetics-700 scale: cold index, warm set-up, memory of the main process and
of DataLoader workers, on a generated Kinetics-style tree.

The tree is what the official downloader leaves: `train/<class>/<youtube_id>_<start>_<end>.mp4`
for 700 classes, `train.csv` and `validate.csv` in the official columns. Its videos are
symlinks to a few small real H.264 files, so the tree costs seconds to write and decoding
stays cheap; every `stat` and listing is real. Each measurement runs in a fresh process (what
every DDP rank of every job pays), with `probe: header` and the PyAV decoder (the Kinetics
configs' settings):

- cold: `setup("fit")` with no index (it probes every video): videos per second;
- warm: `setup("fit")` again, index cached: seconds (the median of three fresh processes), and
  the main process's RSS after it;
- workers: two DataLoader workers read 2,000 training items; their RSS after the first
  batches and at the end (growth = pages of per-record Python objects copied on access).

And the same for UCF-101's official split lists (13,320 videos, 101 classes, decord, the
default probe), which share the code.

    python -m benchmarks.bench_setup                      # 50,000 and 200,000 videos (~8 min)
    python -m benchmarks.bench_setup --videos 20000       # one size
    python -m benchmarks.bench_setup --quick              # 2,000 and 8,000 videos
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

INPUTS = ("quick", "classes")  # run()'s keys saying what was measured
REPO = Path(__file__).resolve().parents[1]
CLASSES = 700
SOURCES = 8  # distinct real files the symlinks point at
VAL_FRACTION = 35 / 545  # Kinetics-700: 35k validation videos for 545k training videos
WORKER_ITEMS = 2000


def _write_sources(folder: Path, ext: str = ".mp4") -> list[Path]:
    import av
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(SOURCES):
        path = folder / f"source_{i}{ext}"
        with av.open(str(path), "w", format="mp4" if ext == ".mp4" else "avi") as container:
            stream = container.add_stream("libx264" if ext == ".mp4" else "mpeg4", rate=25)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            rng = np.random.default_rng(i)
            for _ in range(40):
                image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        paths.append(path)
    return paths


def make_tree(root: Path, videos: int) -> Path:
    """A Kinetics-style root with `videos` training videos (and the validation share)."""
    sources = _write_sources(root / "_sources")
    classes = [f"action {c:03d}" for c in range(CLASSES)]
    annotations = root / "annotations"
    annotations.mkdir(parents=True)
    for subset, folder, count in (("train", "train", videos), ("validate", "val", int(videos * VAL_FRACTION))):
        with open(annotations / f"{subset}.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            made: set[str] = set()
            for i in range(count):
                label = classes[i % CLASSES]
                youtube_id = f"{subset[0]}{i:010d}"
                writer.writerow([label, youtube_id, 10, 20, subset])
                directory = root / folder / label
                if label not in made:
                    directory.mkdir(parents=True, exist_ok=True)
                    made.add(label)
                os.symlink(sources[i % SOURCES], directory / f"{youtube_id}_000010_000020.mp4")
    return root


UCF_VIDEOS, UCF_CLASSES, UCF_GROUPS = 13_320, 101, 25


def make_ucf_tree(root: Path) -> Path:
    """UCF-101's layout and official split-list format: `UCF-101/<Class>/v_<Class>_gGG_cCC.avi`,
    `ucfTrainTestlist/{classInd,trainlist0N,testlist0N}.txt`, 13,320 videos, test groups 1-7
    in split 1."""
    sources = _write_sources(root / "_sources", ".avi")
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    classes = [f"Class{c:03d}" for c in range(UCF_CLASSES)]
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\r\n" for i, c in enumerate(classes, 1)))
    train, test = [], []
    pairs = [(c, g) for c in range(UCF_CLASSES) for g in range(1, UCF_GROUPS + 1)]
    extra = UCF_VIDEOS - 5 * len(pairs)  # the first pairs get a sixth clip: 13,320 in all
    for n, (c, g) in enumerate(pairs):
        cls = classes[c]
        folder = root / "UCF-101" / cls
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(1, 6 + (n < extra)):
            name = f"v_{cls}_g{g:02d}_c{k:02d}.avi"
            os.symlink(sources[(n + k) % SOURCES], folder / name)
            (test.append(f"{cls}/{name}") if g <= 7 else train.append(f"{cls}/{name} {c + 1}"))
    for split in (1, 2, 3):  # the same lists for every split: only split 1 is set up here
        (lists / f"trainlist0{split}.txt").write_text("".join(x + "\r\n" for x in train))
        (lists / f"testlist0{split}.txt").write_text("".join(x + "\r\n" for x in test))
    return root


_UCF_CHILD = r"""
import json, sys, time
import torch
from softpool_video.datamodules import UCF101DataModule

torch.set_num_threads(1)
started = time.perf_counter()
dm = UCF101DataModule(sys.argv[1], split=1, loading={"num_workers": 0})
dm.setup("fit")
print("RESULT " + json.dumps({"setup_s": time.perf_counter() - started,
                              "train_videos": dm.datasets["train"].num_videos}), flush=True)
"""


_CHILD = r"""
import json, os, sys, time, resource
import torch
from softpool_video.datamodules import KineticsDataModule

def rss_mib(pid="self"):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")

root, workers_items = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(1)
started = time.perf_counter()
dm = KineticsDataModule(root, decoding={"probe": "header", "decoder": "pyav"},
                        sampling={"clip_len": 8, "frame_interval": 2},
                        transforms={"crop_size": 32, "resize_short": 40},
                        loading={"batch_size": 8, "num_workers": 2, "persistent_workers": False})
dm.setup("fit")
out = {"setup_s": time.perf_counter() - started, "rss_mib": rss_mib(),
       "train_videos": dm.datasets["train"].num_videos}
if workers_items:
    loader = dm.train_dataloader()
    it = iter(loader)
    seen, first, pids = 0, None, []
    while seen < workers_items:
        seen += next(it)["video"].shape[0]
        if first is None and seen >= 64:
            pids = loader.worker_pids()
            first = [rss_mib(p) for p in pids]
    last = [rss_mib(p) for p in pids]
    out.update(items=seen, worker_rss_first_mib=first, worker_rss_last_mib=last)
    del it
print("RESULT " + json.dumps(out), flush=True)
"""


def _measure(root: Path, worker_items: int, child: str = _CHILD) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", child, str(root), str(worker_items)], env=env,
                          capture_output=True, text=True, cwd=REPO)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"set-up child failed (rc {proc.returncode}): {proc.stderr[-2000:]}")


def run_size(videos: int, worker_items: int = WORKER_ITEMS) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench_setup_") as tmp:
        started = time.perf_counter()
        root = make_tree(Path(tmp) / "kinetics", videos)
        tree_s = time.perf_counter() - started
        cold = _measure(root, 0)
        # the warm figure is the median of three fresh processes (one reads the workers' items)
        warm_runs = [_measure(root, 0), _measure(root, 0), _measure(root, worker_items)]
        warm = warm_runs[-1]
        warm_s = sorted(run["setup_s"] for run in warm_runs)[1]
    growth = [b - a for a, b in zip(warm.get("worker_rss_first_mib") or [], warm.get("worker_rss_last_mib") or [],
                                    strict=True)]
    return {"videos": videos, "train_videos": warm["train_videos"], "tree_s": round(tree_s, 1),
            "cold_setup_s": round(cold["setup_s"], 1),
            "cold_videos_per_s": round(videos * (1 + VAL_FRACTION) / cold["setup_s"]),
            "warm_setup_s": round(warm_s, 2), "warm_runs_s": [round(r["setup_s"], 2) for r in warm_runs],
            "main_rss_mib": round(warm["rss_mib"]),
            "worker_items": warm.get("items"),
            "worker_rss_first_mib": [round(x) for x in warm.get("worker_rss_first_mib") or []],
            "worker_rss_last_mib": [round(x) for x in warm.get("worker_rss_last_mib") or []],
            "worker_rss_growth_mib": [round(g, 1) for g in growth]}


def run_ucf() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench_setup_ucf_") as tmp:
        root = make_ucf_tree(Path(tmp) / "ucf101")
        cold = _measure(root, 0, _UCF_CHILD)
        warm = _measure(root, 0, _UCF_CHILD)
    return {"videos": UCF_VIDEOS, "train_videos": warm["train_videos"],
            "cold_setup_s": round(cold["setup_s"], 1), "warm_setup_s": round(warm["setup_s"], 2)}


def run(quick: bool = False, sizes: tuple[int, ...] | None = None, ucf101: bool = True) -> dict[str, Any]:
    sizes = sizes or ((2000, 8000) if quick else (50_000, 200_000))
    rows = [run_size(n, worker_items=400 if quick else WORKER_ITEMS) for n in sizes]
    result: dict[str, Any] = {"benchmark": "setup", "quick": quick, "classes": CLASSES, "rows": rows,
                              **({"ucf101": run_ucf()} if ucf101 else {})}
    if len(rows) >= 2:
        result["warm_ratio"] = round(rows[-1]["warm_setup_s"] / rows[0]["warm_setup_s"], 2)
        result["size_ratio"] = round(rows[-1]["videos"] / rows[0]["videos"], 2)
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = ["### Data set-up at scale (Kinetics-style tree, 700 classes, probe: header, decoder: pyav)", "",
             "| train videos | cold index (videos/s) | warm setup | main RSS | 2 workers' RSS over items |",
             "|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        workers = ", ".join(f"{a} -> {b} MiB" for a, b in zip(r["worker_rss_first_mib"], r["worker_rss_last_mib"],
                                                              strict=True))
        lines.append(f"| {r['videos']:,} | {r['cold_setup_s']} s ({r['cold_videos_per_s']:,}/s) | "
                     f"{r['warm_setup_s']} s | {r['main_rss_mib']} MiB | {workers} ({r['worker_items']} items) |")
    if "warm_ratio" in result:
        lines += ["", f"{result['size_ratio']}x the videos: {result['warm_ratio']}x the warm set-up time."]
    if "ucf101" in result:
        u = result["ucf101"]
        lines += ["", f"UCF-101's split lists ({u['videos']:,} videos, decord, probe fast): cold set-up "
                      f"{u['cold_setup_s']} s, warm {u['warm_setup_s']} s."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 and 8,000 videos")
    parser.add_argument("--videos", type=int, action="append", help="a tree size (repeatable)")
    args = parser.parse_args(argv)
    result = run(args.quick, tuple(args.videos) if args.videos else None)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
