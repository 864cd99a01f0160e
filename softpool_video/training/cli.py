"""LightningCLI over VideoClassifier and any datamodule: `softpool-video fit|validate|test|predict-dataset`.

    softpool-video fit --config ucf101/r2plus1d_50 --model.pooling max --data.init_args.root /data/ucf101
    softpool-video fit --config ucf101/r2plus1d_50 --model.pooling max --ckpt_path last     # resume
    softpool-video test --config ucf101/r2plus1d_50 --model.pooling max --ckpt_path last

On top of LightningCLI (public hooks only): config names resolve without a path; num_classes
and class names flow from the datamodule into the model; `trainer.default_root_dir` defaults
to `runs/<config name>_<pooling>`; checkpoints (best by `checkpoint.monitor`, and last) go to
`<default_root_dir>/checkpoints`, a fixed folder, so `--ckpt_path last` finds them;
CSV and TensorBoard logs share `<default_root_dir>/logs/version_N/` with the saved
config and a run record (`run.json`: config, versions, device, git commit, results);
a rich progress bar. Bad input raises one of INPUT_ERRORS with a message naming the option
(`one_line` shortens jsonargparse's); the command prints it as one line, exit code 2 (a NaN
loss: 1).

Scale and faults (docs/distributed.md): stack a strategy fragment after the experiment,
`--config ucf101/r3d_50 --config strategy/ddp` (the run keeps the experiment's
name); checkpoints are written atomically (`AtomicCheckpointIO`); a run killed mid-epoch
resumes with `--ckpt_path last` on the same remaining batches (the training loader's
state, which Lightning keeps in the checkpoint); a
checkpoint of another model is refused with one line naming both.

The commands themselves are softpool_video/commands/{fit,validate,test,predict_dataset}.py,
through commands/_lightning.py.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import yaml
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.accelerators import CPUAccelerator
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger
from pytorch_lightning.plugins.io import CheckpointIO
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.model_helpers import is_overridden
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from softpool_video.checkpoint.io import AtomicCheckpointIO
from softpool_video.checkpoint.reader import last_readable, read_checkpoint

from .callbacks import LastCheckpoint, RunRecorder, TrainingStats, VideoPredictionWriter, throughput_monitor
from .configs import config_name, expand_config_args, is_fragment
from .module import VideoClassifier, check_checkpoint_matches
from .options import refuse_flat_options
from .precision import CPUBf16Guard
from .protocol import SelectionProtocol
from .rank_failures import StopAllRanks
from .run_lock import RunBusy, RunLock

log = logging.getLogger(__name__)

# datamodule attributes passed on as the model's arguments of the same name (linked when the
# classes are instantiated)
LINKED_FROM_DATA = ("num_classes", "class_names", "clip_size")

# Errors that mean "bad input" at the command line: print the message, not a traceback.
INPUT_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, FloatingPointError, MisconfigurationException,
                RunBusy)

RUN_LOCK = "run.lock"  # in the run folder, held by a fit for as long as it runs (run_lock.py)
RUN_HINT = "; wait for it to end, or give this run its own --trainer.default_root_dir"


class _NoCloudTips(logging.Filter):
    """Drops Lightning's "Tip: try installing litlogger / litmodels" advertisement (printed on every run)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("litlogger" in message or "litmodels" in message)


def silence_cloud_tips() -> None:
    # Lightning has no switch for these tips; they come from rank_zero_info, whose logger is
    # whichever of these modules set it last, and a logger's filters apply where records start
    for name in ("lightning_utilities.core.rank_zero", "lightning_fabric.utilities.rank_zero",
                 "pytorch_lightning.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoCloudTips) for f in logger.filters):
            logger.addFilter(_NoCloudTips())


def one_line(message: str) -> str:
    """jsonargparse reports a bad `data`/`model`/`trainer` value as a Union mismatch over a
    dozen lines, with every subtype and the whole namespace; keep the key, what was wrong
    (not the "Expected a NoneType" of the Optional) and a short given value, on one line."""
    if "Does not validate against any of the Union subtypes" not in message:
        return message.rstrip()
    key, reasons, given = "", [], ""
    in_errors = False
    for line in message.splitlines():
        text = line.strip()
        if text.startswith("Parser key") and not key and not in_errors:
            key = text.rstrip(":")
        elif text == "Errors:":
            in_errors = True
        elif text.startswith("Given value type"):
            in_errors = False
        elif text.startswith("Given value:") and len(text) <= 80:
            given = text
        elif in_errors and text.startswith("- "):
            reasons.append(text[2:])
        elif in_errors and text and reasons:
            reasons[-1] += f" {text}"  # a reason's own nested lines
    reasons = [r for r in reasons if not r.startswith("Expected a <class 'NoneType'>")]
    return "; ".join(part for part in (key, *reasons, given) if part) or message.rstrip()


class VideoArgumentParser(LightningArgumentParser):
    """Parse errors as two lines (the error, where to find the options), not the whole usage."""

    def error(self, message: str, ex: Exception | None = None) -> Any:
        if not self.exit_on_error:
            return super().error(message, ex)
        sys.stderr.write(f"error: {one_line(message)}\ntip: add --help to list the accepted options\n")
        raise SystemExit(2)


def default_loggers(root: str | os.PathLike) -> list[Logger]:
    """CSV and TensorBoard logs side by side in <root>/logs/version_N."""
    csv = CSVLogger(save_dir=str(root), name="logs")
    return [csv, TensorBoardLogger(save_dir=str(root), name="logs", version=csv.version, default_hp_metric=False)]


def _absolute(path: Any) -> str:
    """A config path as jsonargparse records it (a Path object relative to its cwd) made absolute."""
    return str(getattr(path, "absolute", path))


class VideoCLI(LightningCLI):
    """LightningCLI with the suite's defaults; the datamodule is chosen by `data.class_path`."""

    def __init__(self, args: list[str] | None = None, run: bool = True, locks: ExitStack | None = None,
                 **kwargs: Any) -> None:
        self._locks = locks  # where `fit` holds its run folder's lock (run_cli releases it at the end)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("seed_everything_default", 0)
        kwargs.setdefault("parser_class", VideoArgumentParser)
        silence_cloud_tips()
        super().__init__(model_class=VideoClassifier, datamodule_class=pl.LightningDataModule,
                         subclass_mode_data=True, auto_configure_optimizers=False, args=args, run=run, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for name in LINKED_FROM_DATA:
            parser.link_arguments(f"data.{name}", f"model.{name}", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({
            # last.ckpt comes from LastCheckpoint: Lightning's save_last lags behind the last epoch
            "checkpoint.monitor": "val/video_acc1", "checkpoint.mode": "max", "checkpoint.save_last": False,
            "checkpoint.filename": "best-epoch{epoch:03d}-step{step}", "checkpoint.auto_insert_metric_name": False,
        })

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        # next, LightningCLI rebuilds the model from the checkpoint's hyperparameters, silently
        # replacing the configured one: refuse a checkpoint of another model first
        section = self.config.get(self.config.get("subcommand") or "", None)
        ckpt_path = section.get("ckpt_path") if section is not None else None
        if ckpt_path and Path(ckpt_path).is_file():
            saved = read_checkpoint(ckpt_path).get("hyper_parameters") or {}
            configured = {k: section.model.get(k) for k in ("arch", "pooling", "model_kwargs")}
            check_checkpoint_matches({k: saved.get(k) for k in configured} if saved else {}, configured)

    def _section(self, config: Any) -> Any:
        # the subcommand's part of a parsed or instantiated config (all of it without a subcommand)
        return config[self.subcommand] if self.subcommand else config

    def before_instantiate_classes(self) -> None:
        config = self._section(self.config)
        files = config.get("config") or []
        if config.trainer.default_root_dir is None and files:
            # runs/<config name>_<pooling>: each experiment and pooling method keeps its
            # checkpoints and logs apart; named after the last experiment config, not a stacked
            # fragment such as strategy/ddp
            paths = [_absolute(f) for f in files]
            experiments = [p for p in paths if not is_fragment(p)] or paths
            name = f"{config_name(experiments[-1])}_{config.model.pooling}"
            config.trainer.default_root_dir = str(Path("runs") / name)
        root = Path(config.trainer.default_root_dir or os.getcwd())
        if config.checkpoint.dirpath is None:
            # a fixed folder (not the logger's version_N) so that `--ckpt_path last` finds last.ckpt
            config.checkpoint.dirpath = str(root / "checkpoints")
        if config.get("ckpt_path") == "last":
            # Lightning's `last`, unless that file is unreadable: then the newest readable one
            fallback = last_readable(config.checkpoint.dirpath)
            if fallback is not None:
                config.ckpt_path = str(fallback)
        if self.subcommand == "fit" and self._locks is not None and rank_zero_only.rank == 0:
            # before anything is written there; the other ranks run under rank 0's lock
            self._locks.enter_context(RunLock(root / RUN_LOCK, f"a fit into {root}", RUN_HINT))

    def resolved_config(self) -> dict[str, Any] | None:
        """The run's parsed config as plain data (the subcommand's part), with the values linked from
        the datamodule into the model once they exist; None if it cannot be dumped."""
        try:
            dumped = yaml.safe_load(self.parser.dump(self.config, skip_link_targets=False, skip_unset=False))
        except Exception as err:  # a config that cannot be dumped must not stop the run
            log.warning("could not dump the resolved config for the run record: %s", err)
            return None
        if "subcommand" in self.config:
            dumped = dumped[self.config.subcommand]
        model = getattr(self, "model", None)
        if model is not None and isinstance(dumped.get("model"), dict):
            for name in LINKED_FROM_DATA:  # linked at instantiation: the parsed config lacks them
                dumped["model"][name] = model.hparams.get(name)
        return dumped

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        trainer_config = {**(self._section(self.config_init).get("trainer") or {}), **kwargs}
        configured = trainer_config.get("callbacks") or []
        callbacks = [*(configured if isinstance(configured, list) else [configured]),
                     SelectionProtocol(), throughput_monitor(), TrainingStats(), RunRecorder(self.resolved_config()),
                     VideoPredictionWriter(), CPUBf16Guard(), StopAllRanks(),
                     LastCheckpoint(self._section(self.config).get("checkpoint", {}).get("every_n_train_steps"))]
        if trainer_config.get("enable_progress_bar", True) is not False and not any(
                isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(RichProgressBar())
        logger = trainer_config.get("logger")
        if logger is None:
            logger = default_loggers(trainer_config.get("default_root_dir") or os.getcwd())
        # LightningCLI adds the `checkpoint` callback and the config saver to these
        trainer = super().instantiate_trainer(**kwargs, callbacks=callbacks, logger=logger,
                                              plugins=with_atomic_checkpoints(trainer_config.get("plugins")))
        if trainer_config.get("sync_batchnorm") and isinstance(trainer.accelerator, CPUAccelerator):
            # torch's SyncBatchNorm runs on GPUs only; say so now, not at the first batch
            raise ValueError("trainer.sync_batchnorm=true needs GPUs (SyncBatchNorm has no CPU kernel); "
                             "drop it or run with --trainer.accelerator gpu")
        return trainer

    def predict(self, model: pl.LightningModule, datamodule: pl.LightningDataModule | None = None,
                **kwargs: Any) -> Any:
        """Predict on the datamodule's predict loader, or on its test views if it has none."""
        if datamodule is not None and not is_overridden("predict_dataloader", datamodule, pl.LightningDataModule):
            datamodule.prepare_data()
            datamodule.setup("test")
            return self.trainer.predict(model, dataloaders=datamodule.test_dataloader(), **kwargs)
        return self.trainer.predict(model, datamodule=datamodule, **kwargs)


def with_atomic_checkpoints(plugins: Any) -> Any:
    """The trainer's plugins plus AtomicCheckpointIO, unless a CheckpointIO is configured."""
    listed = plugins if isinstance(plugins, list) else ([] if plugins is None else [plugins])
    if any(isinstance(p, CheckpointIO) for p in listed):
        return plugins
    return [*listed, AtomicCheckpointIO()]


def run_cli(subcommand: str | None, argv: list[str]) -> int:
    """Run one LightningCLI subcommand; returns 0, or argparse's exit code (errors, --help).

    Bad input raises one of INPUT_ERRORS, for the command to report (commands/_lightning.py).
    """
    try:
        args = expand_config_args(list(argv))
        refuse_flat_options(args)
        with warnings.catch_warnings(), ExitStack() as locks:
            # we hand LightningCLI our own argv on purpose (names resolved, subcommand set)
            warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter")
            VideoCLI(args=[subcommand, *args] if subcommand else args, run=subcommand is not None, locks=locks)
    except SIGTERMException:  # every rank stops at the next batch (Lightning's SIGTERM handling)
        log.warning("stopped by SIGTERM; resume with --ckpt_path last")
        return 128 + signal.SIGTERM
    except SystemExit as exit_:  # argparse errors and --help
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    return 0
