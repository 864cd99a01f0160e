"""swap_pooling on third-party video models (no pretrained weights) and on toy models."""
from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from softpool_video.pooling import available_pools, swap_pooling
from softpool_video.pooling.swap import format_report

tv_video = pytest.importorskip("torchvision.models.video")
ptv_resnet = pytest.importorskip("pytorchvideo.models.resnet")

ALL = sorted(available_pools())


def _pool_io(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Size]]:
    """Input and output shape of every torch pool in one forward pass."""
    record: dict[str, tuple[torch.Tensor, torch.Size]] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.MaxPool3d, nn.AvgPool3d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool3d)):
            def hook(mod, args, out, name=name):
                record[name] = (args[0].detach()[:, :2], out.shape)  # 2 channels are enough for shapes
            hooks.append(module.register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return record


@pytest.fixture(scope="module")
def s3d_run():
    torch.manual_seed(0)
    model = tv_video.s3d(weights=None).eval()
    x = torch.randn(1, 3, 16, 224, 224)  # the smallest clip S3D's (2, 7, 7) head pool accepts
    with torch.no_grad():
        logits = model(x)
    return model, x, logits.shape, _pool_io(model, x)


@pytest.mark.parametrize("method", ALL)
def test_s3d_every_swapped_pool_keeps_its_output_shape(s3d_run, method):
    _, _, _, io = s3d_run
    fresh = tv_video.s3d(weights=None).eval()
    report = swap_pooling(fresh, method, kinds=("max", "avg"))
    assert sorted(s.name for s in report) == sorted(io)
    assert len(report) == 14  # 13 max pools and the (2, 7, 7) avg head
    for swap in report:
        assert fresh.get_submodule(swap.name) is swap.new
        assert isinstance(swap.old, (nn.MaxPool3d, nn.AvgPool3d))
        x, shape = io[swap.name]
        for training in (False, True):
            swap.new.train(training)
            assert swap.new(x).shape == x.shape[:1] + (2,) + shape[2:], (swap.name, training)


def test_s3d_swapped_model_runs_end_to_end(s3d_run):
    _, x, logits_shape, _ = s3d_run
    fresh = tv_video.s3d(weights=None).eval()
    swap_pooling(fresh, "softpool", kinds=("max", "avg"))
    with torch.no_grad():
        assert fresh(x).shape == logits_shape


def test_include_and_exclude_patterns():
    model = tv_video.s3d(weights=None)
    report = swap_pooling(model, "softpool", include=["features.*.branch3.0"])
    assert len(report) == 9 and all(s.name.endswith("branch3.0") for s in report)
    model = tv_video.s3d(weights=None)
    report = swap_pooling(model, "power", exclude=["avgpool", "features.1?.*"])
    names = {s.name for s in report}
    assert "avgpool" not in names and "features.1" in names and "features.14.branch3.0" not in names
    assert len(names) == 14 - 1 - 5  # the branch pools of features.10-15 match 'features.1?.*'
    assert "| features.1 |" in format_report(report)


@pytest.mark.parametrize("method", ["softpool", "adapool", "lip"])
def test_r3d_18_head_swap(method):
    torch.manual_seed(0)
    model = tv_video.r3d_18(weights=None).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        expected = model(x).shape
    assert swap_pooling(model, method) == []  # r3d_18 has no max/avg pool, only its adaptive head
    report = swap_pooling(model, method, kinds=("adaptive",))
    assert [s.name for s in report] == ["avgpool"]
    assert isinstance(report[0].old, nn.AdaptiveAvgPool3d)
    with torch.no_grad():
        assert model(x).shape == expected


@pytest.mark.parametrize("method", ["softpool", "s3", "gated", "adapool", "lip", "stochastic"])
def test_pytorchvideo_resnet_swap_and_train_step(method):
    torch.manual_seed(0)
    model = ptv_resnet.create_resnet(model_depth=50, model_num_class=5, stem_dim_out=8,
                                     head_pool_kernel_size=(4, 2, 2))  # narrow: shapes, not accuracy
    x = torch.randn(2, 3, 4, 64, 64)
    model.eval()
    with torch.no_grad():
        expected = model(x).shape
    kinds = ("max", "avg") if method in ("s3", "gated") else ("max", "avg", "adaptive")
    report = swap_pooling(model, method, kinds=kinds)
    names = [s.name for s in report]
    assert names[:2] == ["blocks.0.pool", "blocks.5.pool"]
    assert ("blocks.5.output_pool" in names) == ("adaptive" in kinds)
    with torch.no_grad():
        assert model(x).shape == expected
    model.train()
    loss = model(x).logsumexp(-1).mean()
    loss.backward()
    for swap in report:
        grads = [p.grad for p in swap.new.parameters()]
        assert all(g is None or torch.isfinite(g).all() for g in grads), swap.name
        if grads:  # learnable pools are part of the graph
            assert any(g is not None for g in grads), swap.name


def _toy(pool: nn.Module) -> nn.Module:
    return nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 4, 3), head=nn.Sequential(OrderedDict(pool=pool))))


@pytest.mark.parametrize("pool,match", [
    (nn.MaxPool2d(2, dilation=2), "dilation"),
    (nn.MaxPool2d(2, return_indices=True), "return_indices"),
    (nn.AvgPool2d(2, divisor_override=3), "divisor_override"),
])
def test_unrepresentable_geometry_names_the_module(pool, match):
    with pytest.raises(ValueError, match=match) as err:
        swap_pooling(_toy(pool), "softpool")
    assert "'head.pool'" in str(err.value)


def test_method_without_adaptive_form_names_the_module():
    with pytest.raises(ValueError, match=r"'head.pool'.*no adaptive"):
        swap_pooling(_toy(nn.AdaptiveAvgPool2d(1)), "gated", kinds=("adaptive",))


def test_report_notes_count_include_pad_and_bad_arguments():
    model = _toy(nn.AvgPool2d(3, 1, 1))  # count_include_pad=True by default
    report = swap_pooling(model, "avg")
    assert "count_include_pad" in report[0].note
    x = torch.zeros(1, 3, 6, 6)
    assert model(x).shape == (1, 4, 4, 4)
    with pytest.raises(ValueError, match=r"unknown pooling method 'median'.*softpool"):
        swap_pooling(_toy(nn.MaxPool2d(2)), "median")
    with pytest.raises(ValueError, match="kinds"):
        swap_pooling(_toy(nn.MaxPool2d(2)), "softpool", kinds=("min",))
    with pytest.raises(ValueError, match="p > 0"):
        swap_pooling(_toy(nn.MaxPool2d(2)), "power", p=-1.0)


def test_new_parameters_follow_the_model_dtype_and_mode():
    model = _toy(nn.MaxPool2d(2)).double().eval()
    report = swap_pooling(model, "mixed", channels=4)
    assert report[0].new.theta.dtype == torch.float64
    assert not report[0].new.training
    assert model(torch.rand(1, 3, 8, 8, dtype=torch.float64)).shape == (1, 4, 3, 3)
