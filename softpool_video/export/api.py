"""`export_checkpoint`: one checkpoint to one format, verified, with a model card."""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import LoadedModel, build_card, load_checkpoint
from ..evaluation import video_views
from ..reporting import NoSpaceLeft, is_disk_full
from .metrics import find_test_metrics
from .onnx_export import ExportError
from .verify import describe

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("onnx", "pt2", "torchscript", "safetensors")
SUFFIX = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".torchscript.pt"}


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r} is not supported; choose one of {', '.join(FORMATS)}")
    return fmt


# Datamodules whose split lists name the parity clip, by class name (a checkpoint names one:
# never import a class path read from a file that may not be trusted).
DATAMODULES: tuple[str, ...] = ("UCF101DataModule", "HMDB51DataModule", "KineticsDataModule")
MAX_CLIP_ATTEMPTS = 10  # listed videos tried before giving up on finding a decodable one


class ParityClipError(ExportError):
    """No real clip to check an export on; the message says what was tried and what to pass."""


def _datamodule(model: LoadedModel) -> Any:
    """The checkpoint's datamodule, rebuilt from its saved init arguments, grouped or flat (light:
    it reads the annotation files, decodes nothing)."""
    import inspect

    from .. import datamodules

    data = datamodules.group_arguments({k: v for k, v in model.data.items() if not k.startswith("_")})
    named = str(model.extra.get("datamodule_class") or "")
    if named and named not in DATAMODULES:
        raise ParityClipError(f"{model.source}: datamodule {named!r} is not one whose split lists the exporter "
                              f"reads ({', '.join(DATAMODULES)}); pass video=... (--video)")
    # A checkpoint that does not name its class: Kinetics has an annotation format, UCF-101
    # and HMDB-51 are told apart by their folders (the wrong one cannot find its lists).
    candidates = [named] if named else (["KineticsDataModule"] if "annotation_format" in data
                                        else ["UCF101DataModule", "HMDB51DataModule"])
    errors = []
    for name in candidates:
        cls = getattr(datamodules, name)
        accepted = set(inspect.signature(cls.__init__).parameters) | set(
            inspect.signature(datamodules.VideoDataModule.__init__).parameters)
        kwargs = {k: v for k, v in data.items() if k in accepted and k != "self"}
        kwargs["loading"] = {**_fields(kwargs.get("loading")), "num_workers": 0}
        kwargs["decoding"] = {**_fields(kwargs.get("decoding")), "index_workers": 1}
        try:
            return cls(**kwargs)
        except (OSError, ValueError, TypeError) as err:
            errors.append(f"{name}: {err}")
    raise ParityClipError(f"{model.source}: cannot read the split lists of the checkpoint's dataset "
                          f"({'; '.join(errors)}); pass video=... (--video)")


def _fields(group: Any) -> dict[str, Any]:
    return dict(group) if isinstance(group, Mapping) else {}


def listed_videos(model: LoadedModel) -> Iterator[tuple[Path, str]]:
    """(video, subset) for the checkpoint's test records, then its validation records, as the
    datamodule's split lists name them (files that exist; an unlisted file is never used)."""
    dm = _datamodule(model)
    seen: set[str] = set()
    for stage in ("test", "val"):
        try:
            records = dm.subset(stage).records
        except (OSError, ValueError) as err:
            log.warning("cannot read the %s list of %s: %s", stage, dm.root, err)
            continue
        for record in records:
            if record.rel not in seen:
                seen.add(record.rel)
                yield dm.root / record.rel, stage


def _known_bad(model: LoadedModel) -> Callable[[str], str]:
    """The reason the dataset's video index (if one was built) gives for a bad file, else ''."""
    from ..datamodules import VideoIndex, flatten_arguments

    data = flatten_arguments(model.data)
    try:
        index = VideoIndex(str(data["root"]), decoder=str(data.get("decoder", "decord")),
                           cache_dir=data.get("cache_dir"), workers=1)
    except (OSError, ValueError):
        return lambda rel: ""

    def reason(rel: str) -> str:
        meta = index.get(rel)
        if meta is None or meta.ok:
            return ""
        try:  # a verdict about the file as it is now, not an earlier version of it
            st = (Path(str(data["root"])) / rel).stat()
        except OSError:
            return meta.error
        return meta.error if (st.st_size, st.st_mtime_ns) == (meta.size, meta.mtime_ns) else ""

    return reason


def example_clip(model: LoadedModel, video: str | Path | None = None, seed: int = 0
                 ) -> tuple[torch.Tensor, str]:
    """One input clip (1, 3, T, H, W) for tracing and parity checks, and where it came from.

    `video` if given. Otherwise a video of the checkpoint's own dataset, as its datamodule
    lists it: the test records in list order, then the validation records; a file the
    dataset's index already knows to be bad is skipped, one that does not decode is logged
    and the next one tried, and after MAX_CLIP_ATTEMPTS failures (or with no listed video)
    ParityClipError says so. A checkpoint that records a dataset root that is gone is an
    error too (pass `video`). Random values only when the checkpoint records no dataset root
    at all, with a warning: they check the graph, not that the export behaves on real data.
    Decoded with the test protocol's first view.
    """
    from dataclasses import replace

    from ..datamodules import DecodeError, flatten_arguments

    protocol = replace(model.protocol, num_clips=1, num_crops=1)
    decoder = str(flatten_arguments(model.data).get("decoder", "decord"))
    if decoder not in ("decord", "pyav"):
        decoder = "decord"
    unreadable = (DecodeError, IndexError, OSError)
    if video is not None:
        if not Path(video).is_file():
            raise FileNotFoundError(f"video={str(video)!r} does not exist")
        try:
            return video_views(video, protocol, decoder)[:1], str(video)
        except unreadable as err:
            raise ParityClipError(f"video={str(video)!r} cannot be decoded for the parity check: "
                                  f"{getattr(err, 'reason', err)}") from err
    root = model.data.get("root")
    if not root:
        generator = torch.Generator().manual_seed(seed)
        log.warning("%s records no dataset root: the parity check runs on random values, which check the "
                    "graph but not its behaviour on real clips; pass video=... (--video) for a real one",
                    model.source or "the checkpoint")
        return torch.randn(1, *protocol.input_shape, generator=generator), "random normal values"
    if not Path(str(root)).is_dir():
        raise ParityClipError(f"the checkpoint's dataset root {str(root)!r} does not exist here, so it has no "
                              "video to check the export on; pass video=... (--video)")
    bad = _known_bad(model)
    tried: list[str] = []
    for path, stage in listed_videos(model):
        rel = path.relative_to(Path(str(root))).as_posix() if path.is_relative_to(Path(str(root))) else str(path)
        known = bad(rel)
        if known:
            log.info("parity clip: skipping %s, which the dataset index marks bad (%s)", path, known)
            continue
        try:
            clip = video_views(path, protocol, decoder)[:1]
        except unreadable as err:
            reason = getattr(err, "reason", None) or str(err)
            log.warning("parity clip: cannot decode %s (%s list): %s; trying the next listed video",
                        path, stage, reason)
            tried.append(f"{path.name}: {reason}")
            if len(tried) >= MAX_CLIP_ATTEMPTS:
                break
            continue
        return clip, str(path)
    if tried:
        raise ParityClipError(f"none of the {len(tried)} listed videos tried under {root} decodes "
                              f"({'; '.join(tried[:3])}{'; ...' if len(tried) > 3 else ''}); pass video=... (--video)")
    raise ParityClipError(f"the split lists of {root} name no video that exists; pass video=... (--video)")


def export_checkpoint(ckpt_path: str | Path, fmt: str, out_dir: str | Path, *, video: str | Path | None = None,
                      decompose: bool = False, opset: int | None = None, verify: bool = True,
                      metrics: Mapping[str, float] | None = None, name: str | None = None) -> dict[str, Any]:
    """Exports a VideoClassifier checkpoint and checks the result against PyTorch.

    Args:
        ckpt_path: Lightning checkpoint (loaded with weights_only=True).
        fmt: "onnx", "pt2", "torchscript" or "safetensors".
        out_dir: created if needed.
        video: a video for the parity check (default: one from the checkpoint's dataset).
        decompose: pt2 only: replace the SoftPool op by standard aten ops.
        opset: ONNX opset (default: the exporter's).
        verify: run the exported file and compare (ONNX; the other formats always reload).
        metrics: test metrics for the card (default: found beside the checkpoint).
        name: file stem (default: <arch>_<pooling>).

    Returns a dict: format, files (paths written), card (path), verification (passed,
    max_abs_diff, max_rel_diff, rtol, atol, top_k, top_k_match, failures, runtime, batch_sizes;
    the rule is in verify.py), input (where the example clip came from).
    """
    from .onnx_export import export_onnx
    from .pt2_export import export_pt2
    from .safetensors_export import export_safetensors
    from .torchscript_export import export_torchscript

    check_format(fmt)
    model = load_checkpoint(ckpt_path)
    if metrics is None:
        found, origin = find_test_metrics(ckpt_path)
        metrics = found
        if origin:
            log.info("test metrics from %s", origin)
    model.metrics = dict(metrics)
    name = name or f"{model.arch}_{model.pooling}"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    example, source = example_clip(model, video)
    stem = f"{name}.decomposed" if fmt == "pt2" and decompose else name
    target = out / f"{stem}{SUFFIX.get(fmt, '.safetensors')}"
    # Written and verified in a hidden folder beside the target, then renamed into place: a
    # failed export (a full disk, say) leaves no partial file; a full disk is one line naming
    # the target.
    staging = Path(tempfile.mkdtemp(prefix=".exporting-", dir=out))
    try:
        with torch.no_grad():
            if fmt == "safetensors":
                result = export_safetensors(model, example, staging, name, model.metrics)
            else:
                path = staging / target.name
                if fmt == "onnx":
                    result = export_onnx(model.net, example, path, opset=opset, verify=verify)
                elif fmt == "pt2":
                    result = export_pt2(model.net, example, path, decompose=decompose)
                else:
                    result = export_torchscript(model.net, example, path,
                                                model_name=f"{model.arch} ({model.pooling})")
                card = path.with_name(path.name + ".json")
                card.write_text(json.dumps(build_card(model, path, model.metrics, fmt), indent=2) + "\n")
                result["files"] = [*result["files"], card]
        moved = []
        for written in map(Path, result["files"]):
            os.replace(written, out / written.name)
            moved.append(out / written.name)
        result["files"] = moved
    except Exception as err:
        if is_disk_full(err, out):
            raise NoSpaceLeft(target) from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    card_path = result["files"][1] if fmt == "safetensors" else result["files"][-1]
    check = result.get("verification")
    if check is not None and not check["passed"]:
        raise ExportError(f"{fmt} export of {ckpt_path} does not match PyTorch: {describe(check)}")
    result.update({"format": fmt, "card": card_path, "input": source, "metrics": model.metrics,
                   "files": [Path(f) for f in result["files"]]})
    return result
