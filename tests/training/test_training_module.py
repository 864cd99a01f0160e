"""VideoClassifier, its optimisation schedule and metrics, on a tiny model and synthetic clips."""
from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from softpool_video.training.metrics import MeanClassAccuracy, accuracies
from softpool_video.training.module import VideoClassifier
from softpool_video.training.optim import lr_scheduler, parameter_groups

CLIP = (3, 4, 32, 32)


def batches(n: int, nan_at: int | None = None, batch_size: int = 2) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(n):
        video = torch.randn(batch_size, *CLIP, generator=g)
        if i == nan_at:
            video[0, 0, 0, 0, 0] = float("nan")
        out.append({"video": video, "label": torch.arange(batch_size) % 3,
                    "video_index": torch.arange(batch_size) + i * batch_size})
    return out


def trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, **kwargs)


def test_forward_gives_logits_per_class():
    model = VideoClassifier(num_classes=3, arch="r2plus1d_tiny", pooling="softpool")
    assert model(torch.randn(2, *CLIP)).shape == (2, 3)


@pytest.mark.parametrize("option,kwargs", [
    ("model.arch", {"arch": "resnet_nonexistent"}),
    ("model.pooling", {"pooling": "median"}),
    ("model.optimisation.optimizer", {"optimisation": {"optimizer": "lbfgs"}}),
    ("model.schedule.name", {"schedule": {"name": "triangle"}}),
    ("model.head.aggregation", {"head": {"aggregation": "vote"}}),
    ("model.optimisation.lr", {"optimisation": {"lr": 0}}),
    ("model.schedule.warmup_epochs", {"schedule": {"warmup_epochs": -1}}),
    ("model.head.label_smoothing", {"head": {"label_smoothing": 1.0}}),
    ("model.mixing: unknown key", {"mixing": {"mix": 0.5}}),
    ("model.num_classes", {"num_classes": 1}),
    ("model.class_names", {"class_names": ["a", "b"]}),
])
def test_bad_options_are_named(option, kwargs):
    args = {"num_classes": 3, "arch": "r2plus1d_tiny", **kwargs}
    with pytest.raises(ValueError, match=option.replace(".", r"\.")):
        VideoClassifier(**args)


def test_nan_loss_stops_the_run_at_its_step():
    model = VideoClassifier(num_classes=3, arch="r2plus1d_tiny", optimisation={"lr": 1e-3})
    with pytest.raises(FloatingPointError, match=r"global step 2 .*batch 2"):
        trainer(max_epochs=1).fit(model, DataLoader(batches(4, nan_at=2), batch_size=None))


def test_schedule_steps_per_optimizer_step_with_warmup():
    model = VideoClassifier(num_classes=3, arch="r2plus1d_tiny", optimisation={"optimizer": "sgd", "lr": 0.1},
                            schedule={"name": "cosine", "warmup_epochs": 1})
    lrs: list[float] = []

    class Record(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer(max_epochs=2, callbacks=[Record()]).fit(model, DataLoader(batches(4), batch_size=None))
    # 8 steps, 4 of warmup: 0.025, 0.05, 0.075, 0.1, then a half cosine towards 0
    assert lrs[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert lrs[4:] == pytest.approx([0.1 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)])


def sgd(*lrs: float) -> torch.optim.SGD:
    return torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs], lr=lrs[0])


def lr_curve(optimizer, scheduler, steps: int) -> list[list[float]]:
    """The lr of every group at each of `steps` optimizer steps."""
    curve = []
    for _ in range(steps):
        curve.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return curve


def test_schedules_by_hand():
    optimizer = sgd(1.0)
    multistep = lr_curve(optimizer, lr_scheduler(optimizer, 100, 10, "multistep", milestones=[3, 6], gamma=0.1), 100)
    assert [multistep[s][0] for s in (0, 29, 30, 59, 60, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    optimizer = sgd(1.0)
    cosine = lr_curve(optimizer, lr_scheduler(optimizer, 10, 1, "cosine", min_lr_ratio=0.1), 11)
    assert cosine[0][0] == pytest.approx(1.0) and cosine[10][0] == pytest.approx(0.1)
    assert cosine[5][0] == pytest.approx(0.55)
    with pytest.raises(ValueError, match="warmup_epochs"):
        lr_scheduler(sgd(1.0), 10, 1, warmup_epochs=-1)


def test_warmup_then_multistep_keeps_each_groups_lr_and_counts_milestones_from_the_start():
    optimizer = sgd(0.1, 0.01)  # head and backbone (backbone_lr_scale 0.1)
    curve = lr_curve(optimizer, lr_scheduler(optimizer, 20, 4, "multistep", warmup_epochs=1, milestones=[3]), 20)
    assert [lrs[0] for lrs in curve[:4]] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert curve[11] == pytest.approx([0.1, 0.01]) and curve[12] == pytest.approx([0.01, 0.001])
    assert all(lrs[1] == pytest.approx(lrs[0] / 10) for lrs in curve)


def test_a_cosine_floor_with_per_group_lrs_is_refused():
    with pytest.raises(ValueError, match=r"model.schedule.min_lr_ratio"):
        lr_scheduler(sgd(0.1, 0.01), 10, 1, "cosine", min_lr_ratio=0.1)


@pytest.mark.parametrize("kind", ["cosine", "multistep", "constant"])
def test_schedule_resumes_from_its_state_dict_on_the_same_curve(kind):
    def build():
        optimizer = sgd(0.1, 0.05)
        return optimizer, lr_scheduler(optimizer, 30, 5, kind, warmup_epochs=1.2, milestones=[2, 4])

    optimizer, scheduler = build()
    whole = lr_curve(optimizer, scheduler, 30)
    optimizer, scheduler = build()
    first = lr_curve(optimizer, scheduler, 13)
    state, optimizer_state = scheduler.state_dict(), optimizer.state_dict()
    optimizer, scheduler = build()  # a fresh process: new objects, then the saved state
    optimizer.load_state_dict(optimizer_state)
    scheduler.load_state_dict(state)
    torch.testing.assert_close(torch.tensor(first + lr_curve(optimizer, scheduler, 17)), torch.tensor(whole))
    assert len({tuple(lrs) for lrs in whole}) > 3  # the curve moves: the check can fail


def test_no_weight_decay_on_biases_and_norms():
    model = VideoClassifier(num_classes=3, arch="r2plus1d_tiny")
    decay, no_decay = parameter_groups(model.net, 1e-4)
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.net.parameters()))


def test_test_epoch_reports_clip_and_video_accuracy():
    """Two views per video; the model is fixed, so every metric follows from its outputs."""
    classes = 6  # more than 5, so top-5 is a real top-5
    model = VideoClassifier(num_classes=classes, arch="r2plus1d_tiny")
    g = torch.Generator().manual_seed(1)
    data = []
    for b in range(4):  # 4 batches x 2 videos x 2 clips
        video_index = torch.tensor([0, 0, 1, 1]) + 2 * b
        data.append({"video": torch.randn(4, *CLIP, generator=g), "label": video_index % 3 * 2,
                     "video_index": video_index, "clip_index": torch.tensor([0, 1, 0, 1]),
                     "crop_index": torch.zeros(4, dtype=torch.long)})
    result = trainer().test(model, DataLoader(data, batch_size=None), verbose=False)[0]
    model.eval()
    with torch.no_grad():
        probs = torch.cat([model(b["video"]).softmax(1) for b in data])
    labels = torch.cat([b["label"] for b in data])
    video_probs, video_labels = probs.view(8, 2, classes).mean(1), labels.view(8, 2)[:, 0]

    def top(k, scores, target):
        return (scores.topk(k, dim=1).indices == target[:, None]).any(1).float().mean().item()

    def mean_class(scores, target):  # over the classes that occur (0, 2, 4)
        pred = scores.argmax(1)
        return sum((pred[target == c] == c).float().mean().item() for c in target.unique()) / len(target.unique())

    assert result["test/num_videos"] == 8
    for level, scores, target in (("clip", probs, labels), ("video", video_probs, video_labels)):
        assert result[f"test/{level}_acc1"] == pytest.approx(top(1, scores, target))
        assert result[f"test/{level}_acc5"] == pytest.approx(top(5, scores, target))
        assert result[f"test/{level}_mean_class_acc"] == pytest.approx(mean_class(scores, target))


def test_mean_class_accuracy_ignores_classes_absent_from_targets():
    metric = MeanClassAccuracy(num_classes=4)
    # class 0: 2 of 2 right; class 1: 0 of 1 (predicted as 3); class 2 absent; class 3 absent but predicted
    preds = torch.tensor([0, 0, 3])
    target = torch.tensor([0, 0, 1])
    metric.update(preds, target)
    assert metric.compute().item() == pytest.approx(0.5)
    scores = torch.nn.functional.one_hot(preds, 4).float()
    got = accuracies(scores, target, 4, prefix="x/")
    assert got["x/acc1"] == pytest.approx(2 / 3) and got["x/mean_class_acc"] == pytest.approx(0.5)


def test_metric_collection_keeps_top5_and_mean_class_apart():
    """A first batch where every prediction is right gives top-5 and mean class accuracy equal
    states; torchmetrics' compute groups would then share them for the rest of the epoch."""
    from softpool_video.training.metrics import accuracy_metrics
    metrics = accuracy_metrics(6)
    target = torch.tensor([0, 1, 2, 3])
    metrics.update(torch.nn.functional.one_hot(target, 6).float(), target)
    # second batch: class 4 always predicted as 5 (second choice right), class 5 right
    scores = torch.tensor([[0, 0, 0, 0, 0.4, 0.6]] * 2 + [[0, 0, 0, 0, 0.4, 0.6]])
    metrics.update(scores, torch.tensor([4, 4, 5]))
    got = {k: float(v) for k, v in metrics.compute().items()}
    assert got["acc1"] == pytest.approx(5 / 7)
    assert got["acc5"] == pytest.approx(1.0)
    assert got["mean_class_acc"] == pytest.approx(5 / 6)  # classes 0-3 and 5 right, class 4 never


class _Crash(Exception):
    pass


class _CrashAtEpoch(pl.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise _Crash(f"simulated crash at the start of epoch {self.epoch}")


def test_resume_from_last_checkpoint_is_exact(tmp_path):
    """A 2-epoch run that crashes after epoch 1 and resumes from last.ckpt ends with the same
    weights as one that never stopped: optimizer, schedule and the random state of dropout
    are all restored. (Data order is fixed here; the data module owns real loaders' order.)"""
    from pytorch_lightning.callbacks import ModelCheckpoint

    def run(root, ckpt_path=None, crash_at=None):
        pl.seed_everything(0)
        model = VideoClassifier(num_classes=3, arch="r2plus1d_tiny", model_kwargs={"dropout": 0.5},
                                optimisation={"optimizer": "sgd", "lr": 0.01}, schedule={"warmup_epochs": 1})
        callbacks = [ModelCheckpoint(dirpath=root, save_last=True)]
        if crash_at is not None:
            callbacks.append(_CrashAtEpoch(crash_at))
        fit = pl.Trainer(accelerator="cpu", max_epochs=2, logger=False, callbacks=callbacks,
                         enable_progress_bar=False, enable_model_summary=False)
        fit.fit(model, DataLoader(batches(3), batch_size=None), ckpt_path=ckpt_path)
        return model, fit

    straight, _ = run(tmp_path / "straight")
    with pytest.raises(_Crash):
        run(tmp_path / "crashed", crash_at=1)
    resumed, fit = run(tmp_path / "crashed", ckpt_path="last")
    assert fit.global_step == 6
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


class ClipData(pl.LightningDataModule):
    """Synthetic clips."""

    def train_dataloader(self) -> DataLoader:
        return DataLoader(batches(2), batch_size=None)


def test_lazy_pools_are_materialised_before_the_optimizer_and_get_weight_decay():
    model = VideoClassifier(num_classes=3, arch="r2plus1d_tiny", pooling="lip", optimisation={"weight_decay": 0.05},
                            clip_size=CLIP[1:])
    assert any(torch.nn.parameter.is_lazy(p) for p in model.parameters())
    fit = trainer(max_epochs=1, limit_val_batches=0)
    fit.fit(model, datamodule=ClipData())
    conv = model.net.stem_pool.logit.conv_weight
    assert conv.shape[:2] == (8, 8)  # the stem's width, taken from the dry forward
    groups = fit.optimizers[0].param_groups
    decayed = [p for g in groups if g["weight_decay"] == 0.05 for p in g["params"]]
    assert any(p is conv for p in decayed)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_lazy_pools_without_a_clip_size_ask_for_it():
    model = VideoClassifier(num_classes=3, arch="r2plus1d_tiny", pooling="adapool")
    with pytest.raises(ValueError, match=r"lazy parameters.*model.clip_size.*materialize\(\(T, H, W\)\)"):
        trainer(max_epochs=1).fit(model, DataLoader(batches(1), batch_size=None))
    model.materialize(CLIP[1:])
    trainer(max_epochs=1).fit(model, DataLoader(batches(1), batch_size=None))
    assert model.net.stem_pool.theta.shape == (4, 8, 8)  # one weight per pooled position of a 4x32x32 clip


def test_srtg_gate_open_rates_are_logged_per_stage():
    model = VideoClassifier(num_classes=3, arch="srtg_r2plus1d_tiny")
    fit = trainer(max_epochs=1, limit_val_batches=0)
    fit.fit(model, datamodule=ClipData())
    logged = {k: float(v) for k, v in fit.callback_metrics.items() if k.startswith("train/srtg_gate_open/")}
    assert set(logged) == {f"train/srtg_gate_open/layer{i}" for i in range(1, 5)}
    assert all(0.0 <= v <= 1.0 for v in logged.values())
