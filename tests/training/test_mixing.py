"""MixUp / CutMix on video batches: soft targets, the dominant label, one CutMix box for every frame,
argument checks, and a real fit with mixing on the demo data."""
from __future__ import annotations

import csv
import math

import pytest
import torch
import torch.nn.functional as F
from run_args import tiny_args

from softpool_video.commands.fit import main as fit_main
from softpool_video.training.mixing import BatchMixer, dominant_label, soft_targets
from softpool_video.training.module import VideoClassifier

C = 5


def clips(batch: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    # every clip constant at its own value: each mixed pixel tells which clips it came from
    video = torch.arange(1, batch + 1, dtype=torch.float32).view(batch, 1, 1, 1, 1).expand(batch, 3, 4, 16, 16)
    return video.contiguous(), torch.tensor([0, 1, 2, 3, 4, 0][:batch])


@pytest.mark.parametrize("method", ["mixup", "cutmix", "both"])
def test_soft_targets_sum_to_one_and_mix_neighbours(method):
    alphas = {"mixup": (1.0, 0.0), "cutmix": (0.0, 1.0), "both": (0.4, 1.0)}[method]
    mixer = BatchMixer(C, *alphas, mix_prob=1.0)
    video, label = clips()
    for _ in range(20):
        mixed, target = mixer(video, label)
        assert mixed.shape == video.shape and type(mixed) is torch.Tensor
        assert target.shape == (6, C)
        torch.testing.assert_close(target.sum(1), torch.ones(6))
        # weight only on the clip's own label and its partner's (torchvision pairs clip i with clip i-1)
        partner = label.roll(1, 0)
        allowed = F.one_hot(label, C).bool() | F.one_hot(partner, C).bool()
        assert (target[~allowed] == 0).all()


def test_dominant_label_is_the_label_with_the_larger_weight():
    target = torch.tensor([[0.7, 0.3, 0.0], [0.2, 0.0, 0.8], [0.0, 0.45, 0.55]])
    assert dominant_label(target).tolist() == [0, 2, 2]
    mixer = BatchMixer(C, mixup_alpha=1.0)
    video, label = clips()
    for _ in range(20):
        mixed, target = mixer(video, label)
        # MixUp: each clip is lam * own + (1 - lam) * previous; the pixel value gives lam back
        own, prev = video[:, 0, 0, 0, 0], video.roll(1, 0)[:, 0, 0, 0, 0]
        lam = (mixed[:, 0, 0, 0, 0] - prev) / (own - prev)
        expected = torch.where(lam >= 0.5, label, label.roll(1, 0))
        clear = (lam - 0.5).abs() > 1e-3
        assert (dominant_label(target)[clear] == expected[clear]).all()


def test_cutmix_pastes_the_same_box_in_every_frame_and_channel():
    mixer = BatchMixer(C, cutmix_alpha=1.0)
    video, label = clips()
    boxes_seen = 0
    for _ in range(20):
        mixed, target = mixer(video, label)
        pasted = mixed != video  # True where the partner clip's pixels were pasted
        first = pasted[:, :1, :1]
        assert (pasted == first).all(), "every frame and channel must get the same box"
        area = first[0, 0, 0].float().mean()
        boxes_seen += bool(area > 0)
        # the label weights follow the pasted area (torchvision's adjusted lambda)
        torch.testing.assert_close(target[1, label[1]], 1 - area)  # clip 1 (label 1) got clip 0 (label 0)
        assert (pasted == pasted[:1]).all(), "one box for the whole batch"
    assert boxes_seen > 0


def test_mix_prob_zero_and_alphas_zero_leave_batches_unchanged():
    video, label = clips()
    for mixer in (BatchMixer(C, 1.0, 1.0, mix_prob=0.0), BatchMixer(C)):
        mixed, target = mixer(video, label)
        assert torch.equal(mixed, video) and torch.equal(target, soft_targets(label, C))
    assert not BatchMixer(C).enabled


def test_mix_prob_mixes_about_that_fraction_of_batches():
    mixer = BatchMixer(C, mixup_alpha=1.0, mix_prob=0.3)
    video, label = clips()
    mixed_batches = sum(not torch.equal(mixer(video, label)[0], video) for _ in range(400))
    assert 80 < mixed_batches < 160  # binomial(400, 0.3): mean 120, sd 9


@pytest.mark.parametrize(("option", "value", "message"), [
    ("mixup_alpha", -0.1, r"model.mixing.mixup_alpha must be >= 0"),
    ("cutmix_alpha", float("nan"), r"model.mixing.cutmix_alpha must be >= 0"),
    ("mix_prob", 1.5, r"model.mixing.mix_prob must be in \[0, 1\]"),
    ("mix_prob", -0.5, r"model.mixing.mix_prob must be in \[0, 1\]"),
])
def test_bad_mixing_arguments_name_the_option(option, value, message):
    with pytest.raises(ValueError, match=message):
        VideoClassifier(num_classes=C, mixing={option: value})


def test_training_step_with_label_smoothing_uses_soft_targets_and_dominant_accuracy(monkeypatch):
    model = VideoClassifier(num_classes=C, mixing={"mixup_alpha": 1.0}, head={"label_smoothing": 0.1})
    video, label = clips()
    seen = {}
    monkeypatch.setattr(model, "log", lambda *a, **k: None)
    original = model.train_acc1.update

    def update(preds, target):
        seen["acc_target"] = target.clone()
        original(preds, target)

    monkeypatch.setattr(model.train_acc1, "update", update)

    trainer = type("Trainer", (), {})()  # training_step reads only the optimizers' lr from it
    trainer.optimizers = [torch.optim.SGD(model.parameters(), lr=0.1)]
    model._trainer = trainer
    torch.manual_seed(3)
    loss = model.training_step({"video": video, "label": label}, 0)
    torch.manual_seed(3)
    mixed, target = model.mixer(video, label)
    expected = F.cross_entropy(model(mixed), target, label_smoothing=0.1)
    torch.testing.assert_close(loss, expected)
    assert torch.equal(seen["acc_target"], dominant_label(target))


@pytest.mark.parametrize("mixing", [["--model.mixing.mixup_alpha", "0.8"], ["--model.mixing.cutmix_alpha", "1.0"],
                                    ["--model.mixing.mixup_alpha", "0.2", "--model.mixing.cutmix_alpha", "1.0",
                                     "--model.mixing.mix_prob", "0.5"]])
def test_fit_with_mixing_runs_and_validation_is_not_mixed(demo_root, tmp_path, mixing, monkeypatch):
    calls = {"train": 0}
    real_call = BatchMixer.__call__

    def counting(self, video, label):
        calls["train"] += 1
        return real_call(self, video, label)

    monkeypatch.setattr(BatchMixer, "__call__", counting)
    args = [*tiny_args(demo_root, tmp_path), "--trainer.limit_val_batches", "2", *mixing]
    assert fit_main(args) == 0
    assert calls["train"] == 2  # one call per training batch, none for the 2 validation batches
    with open(next(tmp_path.glob("logs/version_*/metrics.csv")), newline="") as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["train/loss_step"]) for r in rows if r.get("train/loss_step")]
    assert len(losses) == 2 and all(math.isfinite(x) and x > 0 for x in losses)
    assert any(r.get("train/acc1") for r in rows) and any(r.get("val/clip_acc1") for r in rows)
