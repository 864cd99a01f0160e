"""SoftPool FLOPs count the same with the compiled op and with the pure-PyTorch reference."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

import softpool_video
from softpool_video import _extension
from softpool_video.models import count_flops, create_model
from softpool_video.pooling import SoftPool3d
from softpool_video.pooling.functional import _use_reference

pytestmark = pytest.mark.usefixtures("one_thread")


def _flops(name: str, pooling: str, clip: tuple[int, ...], device: str = "meta", backward: bool = False,
           batch: int = 1, **kwargs) -> int:
    torch.manual_seed(0)
    with torch.device(device):
        model = create_model(name, 10, pooling=pooling, **kwargs)
        x = torch.zeros(batch, 3, *clip)
    return count_flops(model, x, backward=backward)


def _both_ways(monkeypatch, *args, **kwargs) -> tuple[int, int]:
    """(count as this process runs SoftPool, count on the reference path)."""
    default = _flops(*args, **kwargs)
    with monkeypatch.context() as m:
        m.setattr(_extension, "_LOAD_ERROR", "forced off by the test")
        assert _use_reference()  # soft_pool now runs soft_pool_reference
        reference = _flops(*args, **kwargs)
    return default, reference


@pytest.mark.parametrize("name, pooling, clip, kwargs", [
    ("i3d_tiny", "softpool", (16, 112, 112), {}),
    ("i3d_tiny", "max", (16, 112, 112), {}),
    ("r2plus1d_tiny", "softpool", (8, 32, 32), {}),
    ("r3d_tiny", "max", (6, 36, 44), {"head_pooling": "softpool"}),  # adaptive, uneven windows
    ("i3d_tiny", "max", (24, 64, 64), {"head_pooling": "softpool"}),  # clipped window head
])
def test_flops_same_with_and_without_the_extension(monkeypatch, name, pooling, clip, kwargs):
    default, reference = _both_ways(monkeypatch, name, pooling, clip, **kwargs)
    assert default == reference > 0


def test_softpool_sites_are_counted_by_formula_either_way(monkeypatch):
    clip = torch.zeros(1, 3, 16, 112, 112, device="meta")
    with torch.device("meta"):
        soft = create_model("i3d_tiny", 10, pooling="softpool")
        hard = create_model("i3d_tiny", 10, pooling="max")
    pools: list[tuple[int, int]] = []
    for m in soft.modules():
        if isinstance(m, SoftPool3d):
            m.register_forward_hook(lambda mod, i, o: pools.append((o.numel(), math.prod(mod.kernel_size))))
    hard_flops = count_flops(hard, clip)
    with monkeypatch.context() as m:
        m.setattr(_extension, "_LOAD_ERROR", "forced off by the test")
        soft_reference = count_flops(soft, clip)
    expected = sum(n * (6 * k + 2) for n, k in pools)
    assert len(pools) == 13 and soft_reference - hard_flops == expected
    assert count_flops(soft, clip) == soft_reference


def test_backward_flops_same_with_and_without_the_extension(monkeypatch):
    default, reference = _both_ways(monkeypatch, "r3d_tiny", "softpool", (4, 16, 16), device="cpu",
                                    backward=True, batch=2)
    forward = _flops("r3d_tiny", "softpool", (4, 16, 16), device="cpu", batch=2)
    assert default == reference > 2 * forward


@pytest.mark.skipif(not softpool_video.extension_loaded(), reason="the compiled extension is not built")
def test_flops_same_in_a_process_without_the_extension():
    code = ("import torch; from softpool_video import extension_loaded; "
            "from softpool_video.models import count_flops, create_model\n"
            "with torch.device('meta'):\n"
            "    m = create_model('i3d_tiny', 10, pooling='softpool')\n"
            "    x = torch.zeros(1, 3, 16, 112, 112)\n"
            "print(extension_loaded(), count_flops(m, x))\n")
    env = dict(os.environ, SOFTPOOL_VIDEO_NO_EXTENSION="1", PYTHONWARNINGS="ignore")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    loaded, flops = out.stdout.split()
    assert loaded == "False"
    assert int(flops) == _flops("i3d_tiny", "softpool", (16, 112, 112))
