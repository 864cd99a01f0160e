"""The one safe checkpoint reader.

`torch.load(weights_only=True)` unpickles only tensors and plain containers: a file that
carries anything else (a pickled object with a `__reduce__`, say) is refused, never run.
A file that is not a Lightning checkpoint gets one clear error naming it.

`--ckpt_path last` loads the newest file named *last* in the checkpoint folder (Lightning's
rule); `last_readable` keeps that rule but, when that file cannot be read (truncated by a
full disk, zeroed by a crashed filesystem), falls back to the newest readable checkpoint of
the folder and says so.
"""
from __future__ import annotations

import logging
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

log = logging.getLogger(__name__)

_PATH = str | os.PathLike  # what torch.load and Lightning take

# (torch.load reads a .safetensors file through safetensors, whose errors are its own)
UNREADABLE = (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, SafetensorError)
# an existing local file that still fails to load: unreadable too (Lightning's loader
# keeps a missing file's own error)
UNREADABLE_FILE = (*UNREADABLE, OSError, ValueError)


class CheckpointError(ValueError):
    """A checkpoint or model card that cannot be loaded safely or does not fit its model."""


def unreadable(path: _PATH, err: Exception, label: str) -> CheckpointError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, pickle.UnpicklingError):  # weights_only refused what it would have had to run
        return CheckpointError(
            f"{label}: {str(path)!r} is not a readable checkpoint: it was refused, as it holds objects other "
            f"than tensors and plain data, which loading would have to execute (weights_only=True), or is no "
            f"checkpoint at all. Only load checkpoints you trust and re-save them as plain data. "
            f"Detail: {first or type(err).__name__}")
    return CheckpointError(f"{label}: {str(path)!r} is not a readable checkpoint ({type(err).__name__}: {first})")


def check_is_checkpoint(checkpoint: Any, path: _PATH, label: str) -> dict[str, Any]:
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{label}: {str(path)!r} is not a Lightning checkpoint (no 'state_dict')")
    return checkpoint


def read_checkpoint(path: _PATH, *, mmap: bool = True, label: str = "--ckpt_path") -> dict[str, Any]:
    """A local Lightning checkpoint loaded on the CPU (tensors and plain values only), or one
    clear error (FileNotFoundError, CheckpointError) that starts with `label`.

    With `mmap` the tensors are memory-mapped, not read: for callers that look at the
    hyper-parameters before Lightning loads the same file for real."""
    if not Path(str(path)).is_file():
        raise FileNotFoundError(f"{label}: {str(path)!r} does not exist or is not a file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except UNREADABLE_FILE as err:
        raise unreadable(path, err, label) from None
    return check_is_checkpoint(checkpoint, path, label)


def last_readable(folder: _PATH) -> Path | None:
    """The checkpoint `--ckpt_path last` should load from `folder`: the newest `*last*.ckpt`
    when it is readable, else the newest readable `*.ckpt` (with a warning naming both), else
    a CheckpointError naming the unreadable file. None when the folder holds no `*last*`
    checkpoint (Lightning then says what it does with `last`)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    newest_first = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    lasts = [p for p in newest_first if "last" in p.name]
    if not lasts:
        return None
    try:
        read_checkpoint(lasts[0])
        return lasts[0]
    except CheckpointError as err:
        broken = err
    for candidate in newest_first:
        if candidate == lasts[0]:
            continue
        try:
            read_checkpoint(candidate)
        except CheckpointError:
            continue
        log.warning("--ckpt_path last: %s cannot be read (%s); using %s, the newest readable checkpoint in %s",
                    lasts[0], broken, candidate.name, folder)
        return candidate
    raise CheckpointError(f"--ckpt_path last: {str(lasts[0])!r} cannot be read and no other checkpoint in "
                          f"{str(folder)!r} can ({broken})")
