"""The pooling layers of a model, the modules the profilers credit separately."""
from __future__ import annotations

from torch import nn


def pooling_layers(model: nn.Module, include_global: bool = False) -> dict[str, nn.Module]:
    """{module path: module} of the model's pooling layers (windowed ones unless include_global)."""
    from softpool_video.models.pool_sites import pool_sites

    return {site.name: model.get_submodule(site.name) for site in pool_sites(model)
            if include_global or not site.adaptive}
