"""MixUp and CutMix for video batches (training only), built on torchvision.transforms.v2.

torchvision's MixUp / CutMix pair every clip with the next one in the batch (the batch
is shuffled by the sampler) and draw one lambda (MixUp) or one box (CutMix) per batch.
A clip is wrapped as a `tv_tensors.Video` so the 5-D (B, C, T, H, W) tensor is accepted:
CutMix then pastes the box over the last two dims, i.e. the same box in every frame and
channel of a clip; MixUp blends whole clips. Neither cares whether dim 1 is C or T.

The targets come back as soft labels (B, num_classes) summing to 1; `dominant_label`
gives the label with the larger mixing weight for accuracy metrics.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2


def check_mixing(mixup_alpha: float, cutmix_alpha: float, mix_prob: float) -> None:
    """ValueError naming the option when a mixing setting is out of range."""
    for option, alpha in (("model.mixing.mixup_alpha", mixup_alpha), ("model.mixing.cutmix_alpha", cutmix_alpha)):
        if not alpha >= 0.0:  # also rejects NaN
            raise ValueError(f"{option} must be >= 0 (0 turns it off), got {alpha}")
    if not 0.0 <= mix_prob <= 1.0:
        raise ValueError(f"model.mixing.mix_prob must be in [0, 1] (the fraction of batches mixed), got {mix_prob}")


class BatchMixer:
    """With probability `mix_prob` per batch, MixUp or CutMix (chosen evenly when both alphas > 0).

    An alpha of 0 turns that method off; with both off (the default) batches pass unchanged.
    Randomness comes from torch's global generator (Lightning seeds it; resume restores it).
    """

    def __init__(self, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0,
                 mix_prob: float = 1.0) -> None:
        check_mixing(mixup_alpha, cutmix_alpha, mix_prob)
        self.num_classes = num_classes
        self.mix_prob = mix_prob
        methods: list[v2.Transform] = []
        if mixup_alpha > 0:
            methods.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
        if cutmix_alpha > 0:
            methods.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
        self.transform: v2.Transform | None = (
            None if not methods else methods[0] if len(methods) == 1 else v2.RandomChoice(methods))

    @property
    def enabled(self) -> bool:
        return self.transform is not None and self.mix_prob > 0

    def __call__(self, video: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        """(B, C, T, H, W) clips and (B,) int labels -> mixed clips and (B, num_classes) soft targets."""
        if video.ndim != 5:
            raise ValueError(f"mixing expects (B, C, T, H, W) clips, got shape {tuple(video.shape)}")
        if not self.enabled or video.shape[0] < 2 or float(torch.rand(())) >= self.mix_prob:
            return video, soft_targets(label, self.num_classes, video.dtype)
        mixed, target = self.transform(tv_tensors.Video(video), label)  # type: ignore[misc]
        return mixed.as_subclass(Tensor), target.to(video.dtype if video.is_floating_point() else torch.float32)


def soft_targets(label: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """One-hot targets, so mixed and unmixed batches go through the same loss."""
    if not dtype.is_floating_point:
        dtype = torch.float32
    return torch.nn.functional.one_hot(label, num_classes).to(dtype)


def dominant_label(target: Tensor) -> Tensor:
    """The class with the largest weight in each soft target (an exact 50/50 tie picks the lower index)."""
    return target.argmax(dim=1)
