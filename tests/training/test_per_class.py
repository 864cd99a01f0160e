"""Per-class results and the confusion matrix (issue 17): hand-made inputs, two gloo ranks,
a real `test`/`validate` run on the tiny demo data, and the study's per-class differences."""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import pytest
import torch
from run_args import tiny_args

from softpool_video.commands import fit as fit_command
from softpool_video.commands import test as test_command
from softpool_video.commands import validate as validate_command
from softpool_video.evaluation.aggregation import (
    VideoScores,
    ViewScores,
    combine_across_ranks,
    combine_views,
)
from softpool_video.studies.grid import write_outputs
from softpool_video.training.per_class import class_differences, class_results
from softpool_video.training.per_class_plot import confusion_order, dpi, figure_size


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def random_views(n_videos: int, views_per_video: int, num_classes: int, seed: int) -> ViewScores:
    g = torch.Generator().manual_seed(seed)
    video = torch.arange(n_videos).repeat_interleave(views_per_video)
    labels = torch.randint(0, num_classes, (n_videos,), generator=g)
    return ViewScores(video, torch.arange(views_per_video).repeat(n_videos), torch.zeros_like(video),
                      torch.randn(len(video), num_classes, generator=g), labels[video])


# ---- hand-made ------------------------------------------------------------------------------------------
def test_counts_accuracies_and_most_confused_by_hand():
    # 4 classes; class 3 has no video, one video has no label (-1) and is left out
    label = torch.tensor([0, 0, 0, 1, 1, 2, -1])
    pred = torch.tensor([0, 1, 1, 1, 1, 0, 2])
    score = torch.nn.functional.one_hot(pred, 4).float()
    videos = VideoScores(torch.arange(7), score, torch.tensor([2, 2, 2, 3, 3, 1, 2]), label,
                         torch.tensor([2, 0, 1, 3, 2, 0, 2]))
    results = class_results(videos, 4, ["walk", "run", "jump", "swim"])
    expected = torch.zeros(4, 4, dtype=torch.long)
    for t, p in zip(label.tolist(), pred.tolist()):
        if t >= 0:
            expected[t, p] += 1
    assert torch.equal(results.confusion, expected)
    assert results.videos.tolist() == [3, 2, 1, 0]
    top1 = results.video_top1()
    assert top1[:3].tolist() == pytest.approx([1 / 3, 1.0, 0.0]) and math.isnan(top1[3])
    assert results.clip_top1()[:3].tolist() == pytest.approx([3 / 6, 5 / 6, 0.0])
    rows = {r["class"]: r for r in results.table()}
    assert rows["walk"]["most_confused_with"] == "run" and rows["walk"]["most_confused_videos"] == 2
    assert rows["run"]["most_confused_with"] == "" and rows["swim"]["video_top1"] is None
    top = results.top_confusions()
    assert [(r["true"], r["predicted"], r["videos"]) for r in top] == [("walk", "run", 2), ("jump", "walk", 1)]


def test_clip_correct_counts_each_deduplicated_view_whose_own_top1_is_the_label():
    views = random_views(n_videos=6, views_per_video=3, num_classes=4, seed=1)
    repeated = ViewScores.cat([views, views.select(torch.arange(len(views)) < 2)], 4)  # padding repeats
    out = combine_views(repeated)
    for v, correct in zip(out.video_index.tolist(), out.clip_correct.tolist()):
        mine = views.video_index == v
        assert correct == int((views.logits[mine].argmax(1) == views.label[mine]).sum())


def test_clustered_order_puts_confused_classes_side_by_side():
    confusion = torch.eye(6, dtype=torch.long) * 10
    confusion[0, 4] = confusion[4, 0] = 5  # 0 and 4 confused both ways
    confusion[2, 5] = 3
    order = confusion_order(confusion.numpy())
    assert sorted(order) == list(range(6))
    assert abs(order.index(0) - order.index(4)) == 1 and abs(order.index(2) - order.index(5)) == 1
    assert order[-2:] == [1, 3]  # confused with nothing: last, in label order


# ---- two gloo ranks -------------------------------------------------------------------------------------
def _worker(rank: int, world: int, port: int, shards: list[ViewScores], out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        videos = combine_across_ranks(shards[rank])
        results = class_results(videos, 5)
        torch.save((results.confusion, results.clip_views, results.clip_correct), os.path.join(out_dir, f"{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()


def test_two_ranks_sum_to_the_one_process_confusion_matrix(tmp_path, two_gloo_ranks):
    """Views of a video spread over both ranks, one padding repeat: each rank counts its share of the
    combined videos and the torchmetrics sync adds them up to the single-process matrix."""
    everything = random_views(n_videos=13, views_per_video=2, num_classes=5, seed=4)
    n = len(everything)
    shards = [everything.select(torch.arange(n) % 2 == 0),
              ViewScores.cat([everything.select(torch.arange(n) % 2 == 1), everything.select(torch.arange(n) < 1)], 5)]
    two_gloo_ranks(_worker, shards, str(tmp_path))
    single = class_results(combine_views(everything), 5)
    assert int(single.confusion.sum()) == 13
    # without the sync, a rank would hold only its share (every other video)
    assert int(class_results(combine_views(everything), 5, rank=1, world_size=2).confusion.sum()) == 6
    for rank in (0, 1):
        confusion, clip_views, clip_correct = torch.load(tmp_path / f"{rank}.pt")
        assert torch.equal(confusion, single.confusion)
        assert torch.equal(clip_views, single.clip_views) and torch.equal(clip_correct, single.clip_correct)


# ---- a real test and validate run on the demo data ------------------------------------------------------
@pytest.fixture(scope="module")
def tested(demo_root, tmp_path_factory) -> Path:
    """A 1-epoch fit, then `test` of its last checkpoint on the whole test list (42 videos of 6
    classes, listed class by class: a batch limit would test one class); returns its log folder."""
    out = tmp_path_factory.mktemp("per_class_run")
    args = tiny_args(demo_root, out)
    assert fit_command.main(args) == 0
    at = args.index("--trainer.limit_test_batches")
    assert test_command.main([*args[:at], *args[at + 2:], "--ckpt_path", "last"]) == 0
    return max(out.glob("logs/version_*"), key=lambda p: int(p.name.split("_")[1]))


def test_test_writes_per_class_results_consistent_with_its_metrics(tested):
    from softpool_video.datamodules import DEMO_CLASSES
    metrics = json.loads((tested / "run.json").read_text())["results"]["test"]
    per_class = read_csv(tested / "per_class.csv")
    matrix = read_csv(tested / "confusion_matrix.csv")
    names = [r["class"] for r in per_class]
    assert names == list(DEMO_CLASSES)
    assert [int(r["videos"]) for r in per_class] == [7] * 6  # the demo's test split: 7 groups per class
    assert [r["true \\ predicted"] for r in matrix] == names and list(matrix[0])[1:] == names
    counts = torch.tensor([[int(r[name]) for name in names] for r in matrix])
    # rows are the true classes: they sum to each class's videos, and all of them to the videos tested
    assert counts.sum(1).tolist() == [int(r["videos"]) for r in per_class]
    assert int(counts.sum()) == metrics["test/num_videos"]
    for c, row in enumerate(per_class):
        if int(row["videos"]):
            assert float(row["video_top1"]) == pytest.approx(float(counts[c, c]) / int(row["videos"]))
        else:
            assert row["video_top1"] == ""
    assert float(counts.diagonal().sum()) / float(counts.sum()) == pytest.approx(metrics["test/video_acc1"])
    # one process and unique views: the per-class clip counts add up to the clip metric
    clips = sum(int(r["clips"]) for r in per_class)
    correct = sum(float(r["clip_top1"]) * int(r["clips"]) for r in per_class if r["clip_top1"])
    assert correct / clips == pytest.approx(metrics["test/clip_acc1"])
    top = read_csv(tested / "top_confusions.csv")
    off_diagonal = int(counts.sum() - counts.diagonal().sum())
    assert sum(int(r["videos"]) for r in top) == off_diagonal
    assert all(r["true"] != r["predicted"] and int(r["videos"]) == counts[names.index(r["true"]),
                                                                            names.index(r["predicted"])]
               for r in top)


def test_confusion_png_is_an_image_of_the_planned_size_and_in_tensorboard(tested):
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from softpool_video.training.per_class import ClassResults
    names = [r["class"] for r in read_csv(tested / "per_class.csv")]
    videos = [int(r["videos"]) for r in read_csv(tested / "per_class.csv")]
    sized = ClassResults(names, torch.diag(torch.tensor(videos)), torch.zeros(len(names)), torch.zeros(len(names)))
    width, height = figure_size(sized)  # depends on the names and video counts only
    with Image.open(tested / "confusion_matrix.png") as image:
        image.verify()
    with Image.open(tested / "confusion_matrix.png") as image:
        assert image.format == "PNG"
        assert image.size == pytest.approx((width * dpi(len(names)), height * dpi(len(names))), abs=1)
    events = EventAccumulator(str(tested), size_guidance={"images": 0})
    events.Reload()
    assert "test/confusion_matrix" in events.Tags()["images"]


def test_validate_writes_them_too(tested, demo_root):
    out = tested.parent.parent
    assert validate_command.main([*tiny_args(demo_root, out), "--ckpt_path", "last"]) == 0
    version = max(out.glob("logs/version_*"), key=lambda p: int(p.name.split("_")[1]))
    assert version != tested
    per_class = read_csv(version / "per_class.csv")
    record = json.loads((version / "run.json").read_text())["results"]["validate"]
    assert sum(int(r["videos"]) for r in per_class) == record["val/num_videos"]
    assert (version / "confusion_matrix.png").stat().st_size > 1000


# ---- benchmark ------------------------------------------------------------------------------------------
def _cell(pooling: str, split: int, seed: int, top1: list[float | None]) -> dict:
    return {"name": f"{pooling}-{split}-{seed}", "cell": {"pooling": pooling, "split": split, "seed": seed},
            "metrics": {"test/video_acc1": 0.5}, "train_clips_per_s": 1.0, "peak_memory_mib": 1.0,
            "per_class": {"names": ["a", "b", "c"], "videos": [2, 2, 0 if top1[2] is None else 2],
                          "video_top1": top1, "clip_top1": top1}}


def test_benchmark_writes_per_class_differences_against_the_first_method(tmp_path):
    cells = [_cell("max", 1, 0, [0.5, 1.0, None]), _cell("max", 2, 0, [0.0, 1.0, 0.5]),
             _cell("softpool", 1, 0, [1.0, 0.5, None]), _cell("softpool", 2, 0, [0.5, 1.0, 1.0]),
             _cell("avg", 1, 0, [0.5, 0.5, None]),  # one pair only: split 2 was not run
             {**_cell("avg", 3, 0, [1.0, 1.0, 1.0]), "per_class": None}]  # older result: no per-class data
    _, files = write_outputs(cells, tmp_path)
    rows = read_csv(files["class_diff_csv"])
    assert [(r["method"], r["class"]) for r in rows] == [(m, c) for m in ("softpool", "avg") for c in "abc"]
    by = {(r["method"], r["class"]): r for r in rows}
    assert float(by["softpool", "a"]["difference"]) == pytest.approx(0.5)  # (0.5 + 0.5) / 2
    assert float(by["softpool", "b"]["difference"]) == pytest.approx(-0.25)
    assert float(by["softpool", "c"]["difference"]) == pytest.approx(0.5) and by["softpool", "c"]["pairs"] == "1"
    assert by["avg", "a"]["pairs"] == "1" and float(by["avg", "b"]["difference"]) == pytest.approx(-0.5)
    assert by["avg", "c"]["pairs"] == "0" and by["avg", "c"]["difference"] == "nan"
    assert all(r["baseline"] == "max" for r in rows)
    assert files["class_diff_plot"].stat().st_size > 1000
    assert class_differences(cells[:2]) == []  # one method: nothing to compare


@pytest.mark.slow
def test_two_process_ddp_test_writes_the_one_process_confusion_matrix(tested, demo_root):
    """The checkpoint of `tested` tested again by 2 DDP processes (gloo, CPU) over the whole test
    list: the same matrix and per-class table as the one-process test."""
    import subprocess
    import sys
    out = tested.parent.parent
    args = tiny_args(demo_root, out)
    at = args.index("--trainer.limit_test_batches")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "softpool_video.cli", "test", *args[:at], *args[at + 2:], "--config",
               "strategy/ddp", "--trainer.devices", "2", "--ckpt_path", "last"]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    version = max(out.glob("logs/version_*"), key=lambda p: int(p.name.split("_")[1]))
    assert str(json.loads((version / "run.json").read_text())["config"]["trainer"]["devices"]) == "2"
    for name in ("confusion_matrix.csv", "per_class.csv"):
        assert read_csv(version / name) == read_csv(tested / name), name


def test_report_writes_files_only_where_a_logger_writes_its_metrics(tmp_path, monkeypatch):
    """A plain Trainer without a logger (tests, study cells with `--trainer.logger false`) keeps
    the results in memory and writes nothing into the working directory."""
    from types import SimpleNamespace

    from pytorch_lightning.utilities.parsing import AttributeDict

    from softpool_video.training.callbacks import PerClassReport
    monkeypatch.chdir(tmp_path)
    videos = combine_views(random_views(n_videos=8, views_per_video=2, num_classes=3, seed=5))
    module = SimpleNamespace(video_scores={"test": videos}, device=torch.device("cpu"),
                             hparams=AttributeDict(num_classes=3, class_names=["a", "b", "c"]))
    report = PerClassReport()
    bare = SimpleNamespace(log_dir=str(tmp_path), default_root_dir=str(tmp_path), loggers=[], is_global_zero=True,
                           global_rank=0, world_size=1, global_step=0)
    report._report(bare, module, "test")
    assert int(report.results["test"].confusion.sum()) == 8 and not list(tmp_path.iterdir())
    logged = SimpleNamespace(**{**vars(bare), "log_dir": str(tmp_path / "logs"), "loggers": [object()]})
    report._report(logged, module, "test")
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["confusion_matrix.csv", "confusion_matrix.png",
                                                                      "per_class.csv", "top_confusions.csv"]
    # a second evaluation of the same run (benchmark: the last epoch) writes beside, not over
    before = (tmp_path / "logs" / "per_class.csv").read_bytes()
    report.subfolder = "last_epoch"
    other = combine_views(random_views(n_videos=8, views_per_video=2, num_classes=3, seed=6))
    report._report(logged, SimpleNamespace(**{**vars(module), "video_scores": {"test": other}}), "test")
    assert (tmp_path / "logs" / "per_class.csv").read_bytes() == before
    assert (tmp_path / "logs" / "last_epoch" / "per_class.csv").read_bytes() != before
