"""Every parameter of every registered model, with every pooling method, learns.

Default initialisation, real optimisation steps: a parameter that never receives a
gradient (a gate that never opens, a pool whose parameters miss the graph) is dead
weight that a comparison would silently carry. Models are built at tiny widths through
their own builders' arguments, so the code under test is the registered architecture.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from softpool_video.models import create_model, list_models, model_entry
from softpool_video.models.pool_sites import pool_sites
from softpool_video.pooling import available_pools
from softpool_video.pooling.swap import materialize

pytestmark = pytest.mark.usefixtures("one_thread")

NUM_CLASSES = 3
TINY_RESNET = {"base_width": 4, "layers": (1, 1, 1, 1)}
# builder arguments that shrink each family without changing its code path
TINY: dict[str, dict] = {
    "r3d": TINY_RESNET, "r2plus1d": TINY_RESNET, "mc3": TINY_RESNET,
    "srtg": {**TINY_RESNET, "stem_pool": True},  # the stem pool on, so the pooling method takes part
    "i3d": {"width": 0.125},
    "pytorchvideo": {"stem_dim_out": 8},
    "torchvision": {},
}
# clips (T, H, W) long and large enough that no late window or recurrence has a single element:
# a one-frame LSTM gives its recurrent weights no gradient, a one-element window none to a
# learned weighting of its elements
# (by model name, else by family; default (8, 32, 32))
CLIP: dict[str, tuple[int, int, int]] = {"tv_s3d": (8, 64, 64), "pytorchvideo": (8, 64, 64),
                                         "srtg": (16, 32, 32), "i3d": (16, 64, 64)}
SKIP_FAMILY_SIZES = {"ptv_x3d", "ptv_x3d_l"}  # create_x3d has no stem width argument: full width is slow


def _tiny_kwargs(name: str) -> dict:
    kwargs = dict(TINY.get(model_entry(name).family, {}))
    if name in SKIP_FAMILY_SIZES:
        kwargs.pop("stem_dim_out", None)
    return kwargs


def _cases() -> list:
    cases = []
    for name in list_models():
        with torch.device("meta"):
            sites = pool_sites(create_model(name, NUM_CLASSES, **_tiny_kwargs(name)))
        # a model without pooling sites is the same network for every method: test it once
        methods = list(available_pools()) if any(not s.adaptive for s in sites) else ["max"]
        # torchvision's S3D at full width is the slowest network here: its cases run in
        # `make test`, not in `make test-fast`
        marks = [pytest.mark.slow] if name == "tv_s3d" else []
        cases += [pytest.param(name, method, marks=marks) for method in methods]
    return cases


@pytest.mark.parametrize("name,pooling", _cases())
def test_every_parameter_gets_a_gradient_within_two_steps(name, pooling):
    torch.manual_seed(0)
    model = create_model(name, NUM_CLASSES, pooling=pooling, **_tiny_kwargs(name))
    clip = CLIP.get(name, CLIP.get(model_entry(name).family, (8, 32, 32)))
    videos = torch.randn(2, 3, *clip)
    labels = torch.tensor([0, 2])
    materialize(model, videos[:1])  # lazy pools take their shapes first, as the training module does
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    seen = {n: False for n, p in model.named_parameters() if p.requires_grad}
    model.train()
    for _ in range(2):
        optimizer.zero_grad()
        F.cross_entropy(model(videos), labels).backward()
        for n, p in model.named_parameters():
            if p.requires_grad and p.grad is not None and bool(p.grad.ne(0).any()):
                seen[n] = True
        optimizer.step()
    dead = [n for n, ok in seen.items() if not ok]
    assert not dead, f"{len(dead)} of {len(seen)} parameters never got a gradient: {dead[:8]}"
