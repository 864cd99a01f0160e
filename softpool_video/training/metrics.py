"""Accuracy metrics shared by the clip level (torchmetrics, synced by Lightning) and the video level."""
from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassStatScores


class MeanClassAccuracy(MulticlassStatScores):
    """Mean over the classes present in the targets of each class's top-1 recall.

    torchmetrics' macro accuracy also averages in classes that were predicted but never
    occur in the targets (with score 0); the mean class accuracy of the action
    recognition literature only averages over classes that occur.
    """

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(num_classes=num_classes, average="none", **kwargs)

    def compute(self) -> Tensor:
        tp, _, _, _, support = super().compute().unbind(-1)
        present = support > 0
        if not present.any():
            return torch.tensor(0.0)
        return (tp[present].float() / support[present].float()).mean()


def accuracy_metrics(num_classes: int, prefix: str = "", sync_on_compute: bool = True) -> MetricCollection:
    """top-1, top-5 (top-k capped at num_classes) and mean class accuracy."""
    return MetricCollection({
        "acc1": MulticlassAccuracy(num_classes, top_k=1, average="micro", sync_on_compute=sync_on_compute),
        "acc5": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro",
                                   sync_on_compute=sync_on_compute),
        "mean_class_acc": MeanClassAccuracy(num_classes, sync_on_compute=sync_on_compute),
    }, prefix=prefix, compute_groups=False)  # grouping would merge top-5 and mean class (same state shapes)


def accuracies(scores: Tensor, labels: Tensor, num_classes: int, prefix: str = "") -> dict[str, float]:
    """The same three numbers for a finished set of predictions (used for video-level scores).

    No cross-rank sync: the video-level scores are already complete on every rank.
    """
    metrics = accuracy_metrics(num_classes, prefix, sync_on_compute=False)
    metrics.update(scores, labels)
    return {name: float(value) for name, value in metrics.compute().items()}
