"""The model card: a JSON file next to exported weights that says how to rebuild the
network, how to feed it (clip sampling, resize, crop, normalisation), how it was evaluated
and how well it did. `build_card` writes one; `load_exported` reads a card and its
safetensors weights back, checking the weights' checksum and that they fit the model the
card names; `load_model` reads either a card (or its folder) or a Lightning checkpoint.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .loaded import LoadedModel, build_network, load_checkpoint, load_network_state
from .reader import CheckpointError

log = logging.getLogger(__name__)

CARD_FORMAT = "softpool-video-model-card"
CARD_VERSION = 1
LOADS_INTO = {
    "safetensors": "softpool_video.models.create_model(arch, num_classes, pooling, **model_kwargs)",
    "onnx": "onnxruntime.InferenceSession (input 'video', output 'logits', dynamic batch)",
    "pt2": "torch.export.load (after `import softpool_video` when the SoftPool op is kept)",
    "torchscript": "torch.jit.load (after `import softpool_video`)",
}


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_card(model: LoadedModel, artifact: Path, metrics: Mapping[str, float], fmt: str = "safetensors"
               ) -> dict[str, Any]:
    """The card of one exported file; only safetensors cards carry `weights` (what
    `load_exported` reads back), the others describe their file under `artifact`."""
    from softpool_video import __version__
    from softpool_video.pooling import available_pools

    protocol = model.protocol
    return {
        "format": CARD_FORMAT,
        "format_version": CARD_VERSION,
        "name": f"{model.arch}_{model.pooling}",
        "arch": model.arch,
        "pooling": model.pooling,
        "pooling_description": available_pools().get(model.pooling, ""),
        "model_kwargs": model.model_kwargs,
        "num_classes": model.num_classes,
        "class_names": model.class_names,
        "input": {
            "layout": "B,C,T,H,W", "dtype": "float32", "shape": [None, *protocol.input_shape],
            "clip_len": protocol.clip_len, "frame_interval": protocol.frame_interval,
            "resize_short": protocol.resize_short, "crop_size": protocol.crop_size,
            "value_range": "RGB scaled to [0, 1], then (x - mean) / std per channel",
            "mean": list(protocol.mean), "std": list(protocol.std),
        },
        "evaluation_protocol": {
            "clip_sampling": "uniform", "num_clips": protocol.num_clips, "num_crops": protocol.num_crops,
            "crops": "evenly spread along the longer side" if protocol.num_crops > 1 else "centre",
            "short_video": protocol.short_video, "aggregation": protocol.aggregation,
        },
        "metrics": dict(metrics),
        ("weights" if fmt == "safetensors" else "artifact"): {
            "file": artifact.name, "format": fmt, "sha256": sha256(artifact),
            "loads_into": LOADS_INTO.get(fmt, "")},
        "source": {"checkpoint": model.source, **{k: v for k, v in model.extra.items() if v is not None}},
        "softpool_video_version": __version__,
    }


def find_card(path: str | Path) -> Path:
    """A card file, or the one card (JSON naming safetensors weights) inside a folder."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"model={str(path)!r} is neither a checkpoint file nor an export folder")
    cards = []
    for candidate in sorted(path.glob("*.json")):
        try:
            data = json.loads(candidate.read_text())
        except (ValueError, OSError):
            continue
        if isinstance(data, dict) and "arch" in data and "weights" in data:
            cards.append(candidate)
    if len(cards) != 1:
        found = ", ".join(c.name for c in cards) or "none"
        raise CheckpointError(f"model={str(path)!r}: expected exactly one model card (*.json with 'arch' and "
                              f"'weights') in the folder, found {found}; pass the card file itself")
    return cards[0]


def _card_field(card: Mapping[str, Any], key: str, kind: type, source: str) -> Any:
    value = card.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CheckpointError(f"{source}: field {key!r} must be {kind.__name__}, got {value!r}")
    return value


def load_exported(path: str | Path) -> LoadedModel:
    """Rebuilds the network of a safetensors export from its model card (file or folder)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    card_path = find_card(path)
    source = f"model card {str(card_path)!r}"
    try:
        card = json.loads(card_path.read_text())
    except ValueError as err:
        raise CheckpointError(f"{source} is not valid JSON: {err}") from err
    if not isinstance(card, dict):
        raise CheckpointError(f"{source} must hold a JSON object")
    arch = _card_field(card, "arch", str, source)
    pooling = _card_field(card, "pooling", str, source)
    num_classes = _card_field(card, "num_classes", int, source)
    class_names = card.get("class_names") or [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise CheckpointError(f"{source}: {len(class_names)} class_names for num_classes={num_classes}")
    weights_info = card["weights"]
    # The demo's first cards stored the file name and checksum at the top level.
    file_name = weights_info.get("file") if isinstance(weights_info, dict) else weights_info
    expected_sha = weights_info.get("sha256") if isinstance(weights_info, dict) else card.get("sha256")
    if not isinstance(file_name, str) or Path(file_name).name != file_name:
        raise CheckpointError(f"{source}: weights file must be a plain file name next to the card, "
                              f"got {file_name!r}")
    weights = card_path.parent / file_name
    if not weights.is_file():
        raise FileNotFoundError(f"{source}: weights file {str(weights)!r} does not exist")
    if expected_sha is not None and sha256(weights) != expected_sha:
        raise CheckpointError(f"{source}: {weights.name} does not match the card's sha256 (file changed "
                              "after export, or card and weights come from different exports)")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{source}: cannot read {weights.name} as safetensors: {err}") from err
    net = build_network(arch, num_classes, pooling, card.get("model_kwargs") or {}, source)
    load_network_state(net, state, source)
    net.eval()
    inp = card.get("input") or {}
    proto = card.get("evaluation_protocol") or card.get("protocol") or {}
    data = {key: inp[key] for key in ("clip_len", "frame_interval", "crop_size", "resize_short", "mean", "std")
            if inp.get(key) not in (None, [])}
    data.update({"test_clips": proto.get("num_clips", 1), "test_crops": proto.get("num_crops", 1),
                 "short_video": proto.get("short_video", "loop")})
    aggregation = proto.get("aggregation") or card.get("aggregation") or "mean_softmax"
    return LoadedModel(net=net, arch=arch, pooling=pooling, num_classes=num_classes,
                       class_names=list(class_names), model_kwargs=dict(card.get("model_kwargs") or {}),
                       data=data, aggregation=str(aggregation), metrics=dict(card.get("metrics") or {}),
                       source=str(card_path))


def load_model(path: str | Path) -> LoadedModel:
    """A Lightning checkpoint file, or an export folder / model card with safetensors weights."""
    path = Path(path)
    if path.is_file() and path.suffix != ".json":
        return load_checkpoint(path)
    return load_exported(path)
