"""Top-k classes of one video under its model's multi-view test protocol: `num_clips`
uniformly spread clips x `num_crops` crops, decoded and transformed as the test DataModule
does, their scores combined as in testing (the command: softpool_video/commands/predict.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..checkpoint import LoadedModel
from ..evaluation import EvaluationProtocol, video_probabilities, video_views


@dataclass
class Prediction:
    video: str
    top: list[tuple[str, float]]  # (class name, probability), best first
    num_views: int

    @property
    def label(self) -> str:
        return self.top[0][0]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["top"] = [{"class": name, "probability": p} for name, p in self.top]
        return out


def predict_video(model: LoadedModel, video: str | Path, protocol: EvaluationProtocol | None = None,
                  top_k: int = 5, batch_size: int = 8, decoder: str = "decord") -> Prediction:
    """Top-k (class, probability) of one video under the multi-view test protocol."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    protocol = protocol or model.protocol
    views = video_views(video, protocol, decoder)
    with torch.no_grad():
        logits = torch.cat([model.net(chunk) for chunk in views.split(batch_size)])
    probs = video_probabilities(logits, protocol.aggregation)
    values, indices = probs.topk(min(top_k, model.num_classes))
    top = [(model.class_names[int(i)], float(v)) for v, i in zip(values, indices, strict=True)]
    return Prediction(str(video), top, int(views.shape[0]))
