"""safetensors: the network's weights (no code, no pickle) plus a JSON model card."""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..checkpoint import LoadedModel, build_card, load_exported
from .verify import compare


def export_safetensors(model: LoadedModel, example: Any, out_dir: Path, name: str,
                       metrics: Mapping[str, float]) -> dict[str, Any]:
    from safetensors.torch import save_file

    weights = out_dir / f"{name}.safetensors"
    state = {k: v.detach().contiguous().cpu() for k, v in model.net.state_dict().items()}
    save_file(state, str(weights), metadata={"arch": model.arch, "pooling": model.pooling,
                                             "num_classes": str(model.num_classes)})
    card_path = out_dir / f"{name}.json"
    card = build_card(model, weights, metrics)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    reloaded = load_exported(card_path)
    check = compare(model.net, reloaded.net, [example])
    return {"files": [weights, card_path],
            "verification": {"runtime": "safetensors + create_model", **check}}
