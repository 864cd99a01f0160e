"""Loading a local weights file into a model (nothing is ever downloaded).

Accepted files: `.safetensors`, or anything `torch.load(weights_only=True)` reads that
holds a state dict, directly or under "state_dict" / "model_state" / "model" (Lightning
and pytorchvideo checkpoints). A common "model." prefix (a LightningModule wrapping the
network) is stripped.

Keys whose shape differs from the model's (a classifier trained for another number of
classes) are skipped with a warning, and so are missing parameters of pooling layers (a
parametric pooling method swapped into a network trained with max pooling). Any other
missing or unexpected key is an error.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

_NESTED_KEYS = ("state_dict", "model_state", "model")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model_kwargs.weights: weights file {str(path)!r} does not exist (a local "
                                "file: nothing is downloaded; see README, fine-tuning from Kinetics-400)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        state = load_file(str(path), device="cpu")
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for key in _NESTED_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"weights file {str(path)!r} does not hold a state dict of tensors")
    if state and all(k.startswith("model.") for k in state):
        state = {k[len("model."):]: v for k, v in state.items()}
    return state


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Loads `path` into `model` (in place) under the rules in the module docstring."""
    from .pool_sites import pool_sites

    state = read_state_dict(path)
    own = model.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    for key in mismatched:
        log.warning("weights %s: skipping %r, shape %s in the file, %s in the model",
                    path, key, tuple(state[key].shape), tuple(own[key].shape))
        del state[key]
    unexpected = sorted(set(state) - set(own))
    if unexpected:
        raise ValueError(f"weights file {str(path)!r} has keys the model lacks: {unexpected[:10]}"
                         f"{' ...' if len(unexpected) > 10 else ''}")
    pool_prefixes = tuple(site.name + "." for site in pool_sites(model))
    missing = [k for k in sorted(set(own) - set(state)) if k not in mismatched]
    not_pools = [k for k in missing if not k.startswith(pool_prefixes)]
    if not_pools:
        raise ValueError(f"weights file {str(path)!r} lacks keys of the model: {not_pools[:10]}"
                         f"{' ...' if len(not_pools) > 10 else ''}")
    if missing:
        log.warning("weights %s: pooling layers keep their initial parameters: %s", path, missing)
    model.load_state_dict(state, strict=False)
    return model
