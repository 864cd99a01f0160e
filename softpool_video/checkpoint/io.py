"""Checkpoints written atomically: a kill during a save never leaves a half-written file.

Lightning's TorchCheckpointIO writes local files through an fsspec transaction, which
stages the bytes in the system temp folder and then moves them over: when that folder is
on another filesystem the move is a copy straight into the target, and nothing is
fsync'ed. `AtomicCheckpointIO` serialises the checkpoint, writes it to a hidden file in
the target's own folder, fsyncs it, `os.replace`s it over the target (atomic on POSIX)
and fsyncs the folder. A reader (or `--ckpt_path last`) sees the old file or the new
one, never a mix. On a full disk the temporary file is removed and `NoSpaceLeft` names the
target (reporting.py): the previous checkpoint stays whole and loadable. Remote URLs (s3://, gs://, ...) are left to Lightning.

Reading goes through the checks of reader.py: a file that is not a checkpoint gets one
clear error naming it.
"""
from __future__ import annotations

import io
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.utilities.types import _PATH
from pytorch_lightning.plugins.io import TorchCheckpointIO

from softpool_video.reporting import no_space_left

from .reader import UNREADABLE, check_is_checkpoint, unreadable

log = logging.getLogger(__name__)

# Temporary names must not contain "last": Lightning's `--ckpt_path last` picks the newest
# file in the checkpoint folder whose name contains it.
_PARTIAL_PREFIX, _PARTIAL_SUFFIX = ".saving-", ".partial"


def _is_local(path: _PATH) -> bool:
    return "://" not in str(path) or str(path).startswith("file://")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some filesystems do not let a folder be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(folder: Path) -> list[Path]:
    """Delete temporary files left by saves whose process died (e.g. killed mid-save)."""
    removed = []
    for path in folder.glob(f"{_PARTIAL_PREFIX}*{_PARTIAL_SUFFIX}"):
        pid_text = path.name[len(_PARTIAL_PREFIX):].split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _pid_alive(int(pid_text)):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def save_atomic(data: bytes, path: str | os.PathLike) -> Path:
    """Write `data` to `path` so that `path` always holds either its old or its new content."""
    path = Path(str(path).removeprefix("file://"))
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_partials(path.parent):
        log.info("removed %s, left by a save that was interrupted", stale)
    tmp = path.parent / f"{_PARTIAL_PREFIX}{os.getpid()}-{secrets.token_hex(4)}{_PARTIAL_SUFFIX}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)  # a full disk: the space goes back, the old file stays
        mapped = no_space_left(err, path)
        if mapped is not err:
            raise mapped from None
        raise
    _fsync_dir(path.parent)
    return path


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose local saves are atomic (temp file, fsync, rename)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO.save_checkpoint takes no storage_options, got {storage_options!r}")
        if not _is_local(path):
            super().save_checkpoint(checkpoint, path)
            return
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        self._write(buffer.getbuffer(), path)

    def _write(self, data: memoryview | bytes, path: _PATH) -> None:
        """The file write itself (a seam for tests that interrupt a save)."""
        save_atomic(bytes(data), path)

    def load_checkpoint(self, path: _PATH, map_location: Any | None = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict[str, Any]:
        try:
            checkpoint = super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        except UNREADABLE as err:
            raise unreadable(path, err, "--ckpt_path") from None
        return check_is_checkpoint(checkpoint, path, "--ckpt_path")
