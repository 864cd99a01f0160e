"""Callbacks of the training runs: throughput (Lightning's ThroughputMonitor, counting clips) and
the fit's summary with peak memory, the run record, the newest weights as last.ckpt, per-class
results of test/validate, and video predictions (a Lightning BasePredictionWriter)."""
from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter, Callback, ThroughputMonitor
from pytorch_lightning.loggers import TensorBoardLogger

from softpool_video.evaluation.aggregation import ViewBuffer, class_probabilities, combine_across_ranks
from softpool_video.measure import peak_rss_bytes
from softpool_video.reporting import save_figure

from .per_class import CONFUSION_PNG, class_results, write_tables
from .per_class_plot import confusion_figure
from .reproducibility import run_record, write_record


def clips_in(batch: dict[str, Any]) -> int:
    return int(batch["video"].shape[0])


def throughput_monitor() -> ThroughputMonitor:
    """Lightning's ThroughputMonitor counting clips: `train/samples_per_sec`, `train/batches_per_sec`
    (rolling over its 100-batch window, so from the 100th batch on; also device/..., validate/...,
    test/...) and `train/time`, `train/samples` in the logs every `log_every_n_steps`. Wall-clock
    time, data loading included."""
    return ThroughputMonitor(batch_size_fn=clips_in)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(device: torch.device) -> tuple[float, str]:
    """(MiB, what was measured): CUDA max allocated, or the process's peak resident set on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_memory_allocated"
    return peak_rss_bytes() / 2**20, "cpu_max_rss"


class TrainingStats(Callback):
    """The fit's summary for run.json and the benchmark table: clips per second of the training
    steps alone (forward, backward, optimizer; data loading excluded, the first `warmup_batches`
    steps skipped; ThroughputMonitor's figure counts the loader too), steps, clips, and the
    peak memory of the fit.

    On CPU the peak is the process's peak resident set (measure.peak_rss_bytes), which is not
    reset here: runs earlier in the same process count too.
    """

    def __init__(self, warmup_batches: int = 2) -> None:
        self.warmup_batches = warmup_batches
        self._reset()

    def _reset(self) -> None:
        self._start = 0.0
        self._batches = 0
        self._timed = [0.0, 0]  # seconds, clips after warm-up
        self._all = [0.0, 0]  # seconds, clips, every batch
        self.summary: dict[str, Any] = {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._reset()
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        _sync(pl_module.device)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        _sync(pl_module.device)
        seconds = time.perf_counter() - self._start
        clips = clips_in(batch)
        self._all[0] += seconds
        self._all[1] += clips
        if self._batches >= self.warmup_batches:
            self._timed[0] += seconds
            self._timed[1] += clips
        self._batches += 1

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seconds, clips = self._timed if self._timed[1] else self._all
        per_rank = clips / seconds if seconds > 0 else 0.0
        mib, kind = peak_memory(pl_module.device)
        self.summary = {"train_clips_per_s": per_rank * trainer.world_size, "train_steps": self._batches,
                        "train_clips": self._all[1], "peak_memory_mib": mib, "peak_memory_kind": kind,
                        "world_size": trainer.world_size}


class LastCheckpoint(Callback):
    """Writes `last.ckpt` beside the selected checkpoints after every training epoch (and
    every `every_n_train_steps` steps when set): the newest weights, for `--ckpt_path last`
    and the study's last-epoch test. Lightning's own `save_last` writes it only when the
    monitored checkpoint is saved too, so after the last improvement it stays behind."""

    FILENAME = "last.ckpt"

    def __init__(self, every_n_train_steps: int | None = None) -> None:
        self.every_n_train_steps = every_n_train_steps or 0
        self._saved_step: int | None = None

    def _save(self, trainer: pl.Trainer) -> None:
        selected = trainer.checkpoint_callback
        dirpath = getattr(selected, "dirpath", None)
        if (dirpath is None or trainer.fast_dev_run or trainer.sanity_checking
                or self._saved_step == trainer.global_step):
            return
        self._saved_step = trainer.global_step
        # every rank calls it (a barrier); the full state (optimizer, loops), so a run resumes from it
        trainer.save_checkpoint(str(Path(dirpath) / self.FILENAME), weights_only=False)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        n = self.every_n_train_steps
        if n and trainer.global_step % n == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer)


def _scalars(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if k.startswith(prefix)}


class RunRecorder(Callback):
    """Writes `run.json` in the run's log folder: config, versions, device, git commit, then
    results, and the videos that failed at read time (skipped, and excluded from the next
    index: `read_failures`, path -> reason) or had changed since they were indexed (probed
    again and read: `changed_since_indexed`)."""

    def __init__(self, config: dict[str, Any] | None = None, filename: str = "run.json") -> None:
        self.config = config
        self.filename = filename
        self.path: Path | None = None
        self.record: dict[str, Any] = {}

    def _write(self, trainer: pl.Trainer) -> None:
        if trainer.is_global_zero and self.path is not None:
            write_record(self.path, self.record)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.path = Path(trainer.log_dir or trainer.default_root_dir) / self.filename
        if not self.record:
            self.record = run_record(self.config, results={})
        self.record["stages"] = [*self.record.get("stages", []), stage]
        self._write(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        fit: dict[str, Any] = {"global_step": trainer.global_step, "epochs": trainer.current_epoch,
                               **_scalars(trainer.callback_metrics, "val/")}
        for callback in trainer.callbacks:
            if isinstance(callback, TrainingStats):
                fit.update(callback.summary)
        if trainer.checkpoint_callback is not None:
            fit["best_checkpoint"] = getattr(trainer.checkpoint_callback, "best_model_path", None)
            fit["last_checkpoint"] = getattr(trainer.checkpoint_callback, "last_model_path", None)
        self.record["results"]["fit"] = fit
        self._record_protocol(pl_module)
        self._record_read_failures(trainer)
        self._write(trainer)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.record["results"]["test"] = _scalars(trainer.callback_metrics, "test/")
        self._record_protocol(pl_module)
        self._record_read_failures(trainer)
        self._write(trainer)

    def _record_read_failures(self, trainer: pl.Trainer) -> None:
        # every worker of every rank appends to the index's failure log (datamodules/index_cache.py)
        datamodule = getattr(trainer, "datamodule", None)
        for key, method in (("read_failures", "read_failures"), ("changed_since_indexed", "changed_videos")):
            read = getattr(datamodule, method, None)
            found = read() if callable(read) else {}
            if found:
                self.record.setdefault(key, {}).update(found)

    def _record_protocol(self, pl_module: pl.LightningModule) -> None:
        # how the checkpoint was chosen, with the results it qualifies (protocol.py)
        protocol = getattr(pl_module, "selection_protocol", None)
        if protocol:
            self.record["protocol"] = dict(protocol)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self.record["results"]["validate"] = _scalars(trainer.callback_metrics, "val/")
            self._record_read_failures(trainer)
            self._write(trainer)


class PerClassReport(Callback):
    """In `test` and `validate`: per-class results and the video-level confusion matrix beside the
    run's metrics (per_class.py: per_class.csv, confusion_matrix.csv/.png, top_confusions.csv),
    and the matrix as a figure in TensorBoard. Not during fit: a 400-class figure per epoch
    would cost more than it tells.

    Runs after the module's epoch end (whose combined videos it reads), on every rank: the
    confusion matrix syncs across ranks; rank zero writes. Files only where the metrics go, the
    logger's folder: a Trainer without a logger (study cells with `--trainer.logger false`,
    tests) keeps the results in `results` and writes nothing, not even into the working directory.
    """

    def __init__(self) -> None:
        self.results: dict[str, Any] = {}  # stage -> per_class.ClassResults of the last evaluation
        self.files: dict[str, Path] = {}
        # a folder under the log folder for a second evaluation of the same run (benchmark:
        # the last epoch's test), so it does not replace the selected checkpoint's files
        self.subfolder = ""

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._report(trainer, pl_module, "test")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._report(trainer, pl_module, "val")

    def _report(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        videos = (getattr(pl_module, "video_scores", None) or {}).get(stage)
        if videos is None:
            return
        results = class_results(videos, int(pl_module.hparams.num_classes), pl_module.hparams.get("class_names"),
                                pl_module.device, trainer.global_rank, trainer.world_size)
        self.results[stage] = results
        folder = trainer.log_dir  # it broadcasts: every rank asks
        if not trainer.is_global_zero or not trainer.loggers or folder is None:
            return
        folder = Path(folder) / self.subfolder
        self.files = write_tables(results, folder)
        figure = confusion_figure(results, title=f"{stage}: ")
        self.files["png"] = save_figure(figure, folder / CONFUSION_PNG)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_figure(f"{stage}/confusion_matrix", figure, global_step=trainer.global_step)


class VideoPredictionWriter(BasePredictionWriter):
    """In `predict-dataset`: combines the views of each video (aggregation.py, across ranks) and
    writes `predictions.csv` in the log folder.

    Columns: video_index, num_views, predicted class (index and name), its score, the
    top-5 class indices, and the label where the loader provides one.
    """

    def __init__(self, filename: str = "predictions.csv") -> None:
        super().__init__(write_interval="batch_and_epoch")
        self.filename = filename
        self.path: Path | None = None
        self._buffer: ViewBuffer | None = None

    def on_predict_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._buffer = ViewBuffer(int(pl_module.hparams.num_classes))

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, prediction: Any,
                           batch_indices: Any, batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        if self._buffer is None or not isinstance(prediction, dict) or "video_index" not in prediction:
            return
        zeros = torch.zeros_like(prediction["video_index"])
        self._buffer.add(prediction["video_index"], prediction.get("clip_index", zeros),
                         prediction.get("crop_index", zeros), prediction["logits"],
                         prediction.get("label", torch.full_like(zeros, -1)))

    def write_on_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, predictions: Any,
                           batch_indices: Any) -> None:
        if self._buffer is None:
            return
        head = getattr(pl_module, "head", None)  # a VideoClassifier's Head group
        method = getattr(head, "aggregation", "mean_softmax")
        views = self._buffer.collect()
        self._buffer = None
        videos = combine_across_ranks(views, method)
        if not trainer.is_global_zero:
            return
        names = pl_module.hparams.get("class_names") or []
        score = class_probabilities(videos, method)
        top = score.topk(min(5, score.shape[1]), dim=1)
        self.path = Path(trainer.log_dir or trainer.default_root_dir) / self.filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["video_index", "num_views", "predicted", "predicted_name", "score", "top5",
                             "label", "label_name"])
            for i in range(videos.video_index.numel()):
                pred, label = int(top.indices[i, 0]), int(videos.label[i])
                writer.writerow([int(videos.video_index[i]), int(videos.num_views[i]), pred,
                                 names[pred] if pred < len(names) else "", f"{float(top.values[i, 0]):.6f}",
                                 " ".join(str(int(c)) for c in top.indices[i]),
                                 label if label >= 0 else "", names[label] if 0 <= label < len(names) else ""])
