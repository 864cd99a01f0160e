"""Per-class results of an evaluation: the video-level confusion matrix, each class's video and
clip top-1, what each class is most confused with, and (for `study`) how a method's
per-class accuracy differs from the first method's.

The confusion matrix is a torchmetrics MulticlassConfusionMatrix synced on compute. The
combined videos (`evaluation.aggregation.combine_across_ranks`) are complete on every rank, so each
rank counts only its share of them (every whole video on exactly one rank) and the sync
sums the shares: the same matrix as one process over all videos.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from softpool_video.evaluation.aggregation import VideoScores, rank_and_world_size
from softpool_video.reporting import write_csv

PER_CLASS_FILE = "per_class.csv"
CONFUSION_FILE = "confusion_matrix.csv"
TOP_CONFUSIONS_FILE = "top_confusions.csv"
CONFUSION_PNG = "confusion_matrix.png"
TOP_CONFUSIONS = 50  # rows of top_confusions.csv
TOP_CONFUSION_COLUMNS = ("true", "predicted", "videos", "share_of_true", "true_videos", "true_index",
                         "predicted_index")


def class_labels(names: list[str] | None, num_classes: int) -> list[str]:
    """Display names in label order: the given names, or the label index; made unique so they
    can head the columns of the confusion CSV."""
    names = list(names or [])[:num_classes]
    names += [str(i) for i in range(len(names), num_classes)]
    if len(set(names)) < num_classes:
        names = [f"{i}:{n}" for i, n in enumerate(names)]
    return names


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """num / den per class, NaN where a class has nothing to count."""
    ratio = num.double() / den.clamp(min=1).double()
    return torch.where(den > 0, ratio, torch.full_like(ratio, math.nan))


@dataclass
class ClassResults:
    names: list[str]
    confusion: Tensor  # (C, C) int64 video counts: rows true class, columns predicted class
    clip_views: Tensor  # (C,) int64 views of each class's videos
    clip_correct: Tensor  # (C,) int64 of those, the views whose own top-1 is the class

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def videos(self) -> Tensor:
        return self.confusion.sum(dim=1)

    def video_top1(self) -> Tensor:
        return _ratio(self.confusion.diagonal(), self.videos)

    def clip_top1(self) -> Tensor:
        return _ratio(self.clip_correct, self.clip_views)

    def rates(self) -> Tensor:
        """Row-normalised confusion: the share of each true class's videos given to each class."""
        return self.confusion.double() / self.videos.clamp(min=1)[:, None].double()

    def most_confused(self) -> tuple[Tensor, Tensor]:
        """Per class, the other class its videos were most often given (-1 where none) and how many."""
        off = self.confusion.clone()
        off.fill_diagonal_(-1)
        count, other = off.max(dim=1)
        return torch.where(count > 0, other, -1), count.clamp(min=0)

    def top_confusions(self, n: int = TOP_CONFUSIONS) -> list[dict[str, Any]]:
        """The largest off-diagonal cells: most videos first, then the larger share of the true class."""
        off = self.confusion.clone()
        off.fill_diagonal_(0)
        true, pred = off.nonzero(as_tuple=True)
        rates = self.rates()
        found = sorted(zip(true.tolist(), pred.tolist()), key=lambda tp: (-int(off[tp]), -float(rates[tp]), tp))
        videos = self.videos
        return [{"true": self.names[t], "predicted": self.names[p], "videos": int(off[t, p]),
                 "share_of_true": float(rates[t, p]), "true_videos": int(videos[t]), "true_index": t,
                 "predicted_index": p} for t, p in found[:n]]

    def table(self) -> list[dict[str, Any]]:
        """per_class.csv: one row per class in label order."""
        video, clip = self.video_top1(), self.clip_top1()
        other, count = self.most_confused()
        videos = self.videos
        return [{"class_index": c, "class": self.names[c], "videos": int(videos[c]),
                 "video_top1": _number(video[c]), "clips": int(self.clip_views[c]), "clip_top1": _number(clip[c]),
                 "most_confused_with": self.names[int(other[c])] if other[c] >= 0 else "",
                 "most_confused_videos": int(count[c])} for c in range(self.num_classes)]

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe summary (a study cell's result.json): None where a class had no videos."""
        return {"names": list(self.names), "videos": self.videos.tolist(),
                "video_top1": [_number(v) for v in self.video_top1()],
                "clip_top1": [_number(v) for v in self.clip_top1()]}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _number(value: Tensor | float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def class_results(videos: VideoScores, num_classes: int, names: list[str] | None = None,
                  device: torch.device | str | None = None, rank: int | None = None,
                  world_size: int | None = None) -> ClassResults:
    """Per-class results of combined videos (every rank passes the same videos; see the module note).

    `device`: where the metric state lives for the sync (the module's device: NCCL syncs CUDA
    tensors only). Videos without a label (-1) are left out.
    """
    found_rank, found_world = rank_and_world_size()
    rank = found_rank if rank is None else rank
    world_size = found_world if world_size is None else world_size
    labelled = (videos.label >= 0) & (videos.label < num_classes)
    mine = labelled & (torch.arange(videos.label.numel()) % world_size == rank)
    metric = MulticlassConfusionMatrix(num_classes, sync_on_compute=True).to(device or "cpu")
    metric.update(videos.score[mine].argmax(dim=1).to(metric.device), videos.label[mine].to(metric.device))
    confusion = metric.compute().cpu().long()
    # the views are counted from the combined videos themselves: already whole on every rank
    label = videos.label[labelled]
    correct = videos.clip_correct if videos.clip_correct is not None else torch.zeros_like(videos.num_views)
    clip_views = torch.zeros(num_classes, dtype=torch.long).index_add_(0, label, videos.num_views[labelled])
    clip_correct = torch.zeros(num_classes, dtype=torch.long).index_add_(0, label, correct[labelled])
    return ClassResults(class_labels(names, num_classes), confusion, clip_views, clip_correct)


def write_tables(results: ClassResults, folder: str | Path) -> dict[str, Path]:
    """per_class.csv, confusion_matrix.csv (video counts in label order: rows true, columns
    predicted) and top_confusions.csv in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"per_class": folder / PER_CLASS_FILE, "confusion": folder / CONFUSION_FILE,
             "top_confusions": folder / TOP_CONFUSIONS_FILE}
    write_csv(files["per_class"], results.table())
    matrix = results.confusion.tolist()
    write_csv(files["confusion"], [{"true \\ predicted": name, **dict(zip(results.names, row))}
                                   for name, row in zip(results.names, matrix)])
    write_csv(files["top_confusions"], results.top_confusions(), columns=TOP_CONFUSION_COLUMNS)
    return files


# ---- the study grid: per-class differences against the first method ------------------------------------------

def class_differences(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per class per method after the first: the mean, over identical (split, seed) cells,
    of the method's video top-1 on that class minus the first method's (classes with no test
    video in a cell are left out of that pair). Cells without per-class results are skipped."""
    def per_pooling(pooling: str) -> dict[tuple, dict[str, Any]]:
        return {(c["cell"]["split"], c["cell"]["seed"]): c["per_class"] for c in cells
                if c["cell"]["pooling"] == pooling and c.get("per_class")}

    poolings = list(dict.fromkeys(c["cell"]["pooling"] for c in cells))
    if len(poolings) < 2:
        return []
    baseline, base = poolings[0], per_pooling(poolings[0])
    rows = []
    for pooling in poolings[1:]:
        mine = per_pooling(pooling)
        pairs = [(base[k], mine[k]) for k in sorted(base.keys() & mine.keys(), key=str)
                 if base[k]["names"] == mine[k]["names"]]  # a different class list cannot be paired
        if not pairs:
            continue
        for c, name in enumerate(pairs[0][0]["names"]):
            values = [(b["video_top1"][c], m["video_top1"][c]) for b, m in pairs
                      if b["video_top1"][c] is not None and m["video_top1"][c] is not None]
            rows.append({"method": pooling, "baseline": baseline, "class_index": c, "class": name,
                         "pairs": len(values), "videos (all pairs)": sum(b["videos"][c] for b, _ in pairs),
                         "baseline video top-1": _mean([b for b, _ in values]),
                         "method video top-1": _mean([m for _, m in values]),
                         "difference": _mean([m - b for b, m in values])})
    return rows
