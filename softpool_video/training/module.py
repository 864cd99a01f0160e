"""VideoClassifier: a video network from the model registry, trained and evaluated with Lightning.

Dataset specifics stay out: `num_classes` and `class_names` are handed over by the CLI
from the datamodule. Evaluation reports clip-level accuracy (every view on its own)
and video-level accuracy (all views of a video combined, see `softpool_video.evaluation.aggregation`).
"""
from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parameter import is_lazy
from torchmetrics.classification import MulticlassAccuracy

from softpool_video.evaluation.aggregation import VideoScores, ViewBuffer, combine_across_ranks
from softpool_video.models.registry import check_model
from softpool_video.models.srtg import gate_open_rates
from softpool_video.option_groups import as_group, group_hparams
from softpool_video.pooling.registry import check_method
from softpool_video.pooling.swap import materialize

from .metrics import accuracies, accuracy_metrics
from .mixing import BatchMixer, dominant_label
from .optim import build_optimizer, lr_scheduler, parameter_groups
from .options import MODEL_GROUPS, Head, Mixing, Optimisation, Schedule

DEFAULT_OPTIMISATION, DEFAULT_SCHEDULE, DEFAULT_MIXING, DEFAULT_HEAD = Optimisation(), Schedule(), Mixing(), Head()

log = logging.getLogger(__name__)

STAGES = ("val", "test")


def rng_states() -> dict[str, Any]:
    """Global random states as tensors and plain Python values (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {"torch": torch.get_rng_state(),
                              "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
                              "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def has_lazy_parameters(module: nn.Module) -> bool:
    return any(is_lazy(p) for p in module.parameters())


# hyperparameters that change the network's weights: a checkpoint must agree on all of them
_MODEL_IDENTITY = ("arch", "num_classes", "model_kwargs", "pooling")


def _describe_model(hp: dict[str, Any]) -> str:
    text = f"{hp.get('arch')} (pooling {hp.get('pooling')}, {hp.get('num_classes')} classes"
    return text + (f", model_kwargs {hp['model_kwargs']})" if hp.get("model_kwargs") else ")")


def check_checkpoint_matches(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """One clear error when a checkpoint was trained for another model than the one configured."""
    if not saved or "arch" not in saved:
        return  # not written by VideoClassifier: the weights check in load_state_dict decides
    differ = [k for k in _MODEL_IDENTITY if (saved.get(k) or None) != (current.get(k) or None)]
    if differ:
        raise ValueError(f"--ckpt_path: the checkpoint is from model {_describe_model(saved)}, but this run "
                         f"builds {_describe_model(current)}; differing: {', '.join(differ)}. Use the "
                         f"checkpoint's config or a checkpoint of this model")


class VideoClassifier(pl.LightningModule):
    """Action classifier over clips (B, 3, T, H, W).

    Args:
        num_classes: number of action classes (linked from the datamodule by the CLI).
        arch: model name from `softpool_video.models.list_models()`.
        pooling: pooling method from `softpool_video.pooling.available_pools()`.
        model_kwargs: extra keyword arguments for `create_model`.
        class_names: class names in label order (linked from the datamodule; kept for export).
        optimisation: optimizer, lr, weight_decay, momentum, nesterov, backbone_lr_scale
            (`Optimisation`, training/options.py).
        schedule: the lr schedule's name, warmup_epochs, milestones, gamma, min_lr_ratio (`Schedule`).
        mixing: MixUp / CutMix on training batches: mixup_alpha, cutmix_alpha, mix_prob (`Mixing`).
        head: label_smoothing, and the aggregation of a video's views (`Head`).
        A group is passed as its dataclass or as a dict of its fields.
        clip_size: (T, H, W) of the input clips (linked from the datamodule by the CLI); lazy
            pools (lip, adapool) take their shapes from it before training.
    """

    # read by Lightning's ThroughputMonitor: no FLOP count per batch here (`softpool-video models`
    # and `profile` count FLOPs), so it logs clips/s and batches/s only
    flops_per_batch: int | None = None

    def __init__(self, num_classes: int, arch: str = "r2plus1d_tiny", pooling: str = "max",
                 model_kwargs: dict[str, Any] | None = None, class_names: list[str] | None = None, *,
                 optimisation: Optimisation = DEFAULT_OPTIMISATION, schedule: Schedule = DEFAULT_SCHEDULE,
                 mixing: Mixing = DEFAULT_MIXING, head: Head = DEFAULT_HEAD,
                 clip_size: tuple[int, int, int] | None = None) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"model.num_classes: need at least 2 classes, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"model.class_names: {len(class_names)} names for {num_classes} classes")
        check_model(arch, "model.arch")
        check_method(pooling, "model.pooling")
        self.optimisation = as_group("model.optimisation", Optimisation, optimisation)
        self.schedule = as_group("model.schedule", Schedule, schedule)
        self.mixing = as_group("model.mixing", Mixing, mixing)
        self.head = as_group("model.head", Head, head)
        if clip_size is not None and (len(clip_size) != 3 or not all(isinstance(v, int) and v > 0 for v in clip_size)):
            raise ValueError(f"model.clip_size: (T, H, W), three positive integers, got {clip_size!r}")
        self.save_hyperparameters()
        # plain data in hparams.yaml and checkpoints, as the datamodule's groups
        self.save_hyperparameters({**self.hparams, **{name: group_hparams(getattr(self, name))
                                                      for name in MODEL_GROUPS}})
        if clip_size is not None:
            self.hparams.clip_size = list(clip_size)

        from softpool_video.models import create_model
        self.net: nn.Module = create_model(arch, num_classes, pooling=pooling, **(model_kwargs or {}))
        self.train_acc1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.mixer = BatchMixer(num_classes, self.mixing.mixup_alpha, self.mixing.cutmix_alpha,
                                self.mixing.mix_prob)  # training batches only
        self.clip_metrics = nn.ModuleDict({s: accuracy_metrics(num_classes, prefix=f"{s}/clip_") for s in STAGES})
        self.views = {s: ViewBuffer(num_classes) for s in STAGES}
        self.video_scores: dict[str, VideoScores] = {}  # last combined result per stage
        # how validation chose this model's checkpoints (protocol.py); saved with them
        self.selection_protocol: dict[str, Any] = {}

    def forward(self, video: Tensor) -> Tensor:
        return self.net(video)

    # training
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        video, label = batch["video"], batch["label"]
        if self.mixer.enabled:
            # soft targets: cross_entropy smooths them like index labels; accuracy counts the dominant label
            video, target = self.mixer(video, label)
            label = dominant_label(target)
        else:
            target = label
        logits = self(video)
        loss = F.cross_entropy(logits, target, label_smoothing=self.head.label_smoothing)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training loss is {loss.item()} at global step {self.global_step} (epoch {self.current_epoch}, "
                f"batch {batch_idx}); lower model.optimisation.lr, set trainer.gradient_clip_val or check the data")
        self.train_acc1(logits.detach(), label)
        for stage, rate in gate_open_rates(self.net).items():  # SRTG: how often each stage's gates open
            self.log(f"train/srtg_gate_open/{stage}", rate, on_step=False, on_epoch=True, batch_size=logits.shape[0])
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=logits.shape[0])
        self.log("train/acc1", self.train_acc1, on_step=False, on_epoch=True, batch_size=logits.shape[0])
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    # evaluation
    def _eval_step(self, stage: str, batch: dict[str, Tensor]) -> None:
        logits = self(batch["video"])
        label = batch["label"]
        self.log(f"{stage}/loss", F.cross_entropy(logits, label), on_step=False, on_epoch=True,
                 batch_size=logits.shape[0], sync_dist=True)
        metrics = self.clip_metrics[stage]
        metrics.update(logits.detach(), label)
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=logits.shape[0])
        zeros = torch.zeros_like(label)
        self.views[stage].add(batch.get("video_index", zeros), batch.get("clip_index", zeros),
                              batch.get("crop_index", zeros), logits, label)

    def _eval_epoch_end(self, stage: str) -> None:
        views = self.views[stage].collect()
        self.views[stage].reset()
        videos = combine_across_ranks(views, self.head.aggregation)
        self.video_scores[stage] = videos
        # identical on every rank after the gather; sync_dist averages equal numbers (exact),
        # and says so to Lightning, which otherwise warns about unsynced epoch-level logs
        scores = accuracies(videos.score, videos.label, self.hparams.num_classes, prefix=f"{stage}/video_")
        self.log_dict(scores, on_step=False, on_epoch=True, sync_dist=True)
        self.log(f"{stage}/num_videos", float(videos.video_index.numel()), on_step=False, on_epoch=True,
                 sync_dist=True)

    def on_validation_epoch_start(self) -> None:
        self.views["val"].reset()

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_start(self) -> None:
        self.views["test"].reset()

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step("test", batch)

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def configure_callbacks(self) -> list[pl.Callback]:
        # per-class results and the confusion matrix come with the model, so every Trainer (CLI,
        # benchmark, plain) has them in test/validate, written to its logger's folder; reads `video_scores`
        from .callbacks import PerClassReport
        return [PerClassReport()]

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        logits = self(batch["video"]).float()
        out = {"logits": logits}
        for key in ("video_index", "clip_index", "crop_index", "label"):
            if key in batch:
                out[key] = batch[key]
        return out

    # exact resume: Lightning restores weights, optimizer, scheduler and loops; the random
    # state (dropout, stochastic pooling) is saved here so a resumed run draws the same numbers
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = rng_states()
        checkpoint["selection_protocol"] = dict(self.selection_protocol)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_checkpoint_matches(checkpoint.get("hyper_parameters") or {}, dict(self.hparams))
        if "rng_states" in checkpoint:
            set_rng_states(checkpoint["rng_states"])
        self.selection_protocol = dict(checkpoint.get("selection_protocol") or {})

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        except RuntimeError as err:
            if "Error(s) in loading state_dict" not in str(err):
                raise
            ours = self.state_dict()
            missing = [k for k in ours if k not in state_dict]
            unexpected = [k for k in state_dict if k not in ours]
            shapes = [k for k in ours if k in state_dict and state_dict[k].shape != ours[k].shape]
            raise ValueError(
                f"checkpoint weights do not fit model.arch={self.hparams.arch!r} "
                f"(num_classes {self.hparams.num_classes}): {len(missing)} missing, {len(unexpected)} "
                f"unexpected, {len(shapes)} of another shape (first: "
                f"{(missing or unexpected or shapes or ['-'])[0]}); was it saved by another model?") from None

    # lazy parameters (lip, adapool) take their shapes from the input: give them those before the
    # optimizer is built (else they would miss the optimizer and its weight decay) and before a
    # strategy wraps the model (DDP refuses uninitialised parameters)
    def setup(self, stage: str) -> None:
        if not has_lazy_parameters(self.net):
            return
        clip_size = self.hparams.get("clip_size")
        if not clip_size:
            raise ValueError(f"model.pooling={self.hparams.pooling!r} has lazy parameters, which take their shapes "
                             "from the clip size; pass model.clip_size (T, H, W) (the CLI links it from the "
                             "datamodule) or call VideoClassifier.materialize((T, H, W)) before fitting")
        self.materialize(tuple(clip_size))

    def materialize(self, clip_size: tuple[int, int, int]) -> None:
        """One dry forward (eval mode, no grad, the global RNG untouched) of a (1, 3, T, H, W) clip."""
        example = torch.randn(1, 3, *clip_size, generator=torch.Generator().manual_seed(0))
        with torch.random.fork_rng(devices=[]):
            materialize(self.net, example.to(self.device))

    # optimisation
    def configure_optimizers(self) -> dict[str, Any]:
        opt, sched = self.optimisation, self.schedule
        if has_lazy_parameters(self.net):
            raise ValueError("the model still has uninitialised lazy parameters: call materialize((T, H, W)) "
                             "before building the optimizer")
        groups = parameter_groups(self.net, opt.weight_decay, opt.lr, opt.backbone_lr_scale,
                                  self.hparams.num_classes)
        optimizer = build_optimizer(groups, opt.optimizer, opt.lr, opt.weight_decay, opt.momentum, opt.nesterov)
        total = self.trainer.estimated_stepping_batches
        if not torch.isfinite(torch.tensor(float(total))):
            if sched.name != "constant" or sched.warmup_epochs:
                raise ValueError("model.schedule: a schedule needs trainer.max_epochs or trainer.max_steps")
            total = 1
        epochs = self.trainer.max_epochs if self.trainer.max_epochs and self.trainer.max_epochs > 0 else 1
        scheduler = lr_scheduler(optimizer, int(total), total / epochs, sched.name, sched.warmup_epochs,
                                 sched.milestones, sched.gamma, sched.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
