"""Models: registry, shapes, pooling sites, torchvision compatibility, FLOPs, training."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.modules import pooling as torch_pooling

from softpool_video.models import count_flops, count_parameters, create_model, list_models, pool_sites
from softpool_video.pooling import SoftPool3d, available_pools, build_pool

TINY = ["r3d_tiny", "r2plus1d_tiny", "i3d_tiny", "srtg_r2plus1d_tiny"]
FULL = ["r3d_18", "r3d_34", "r3d_50", "r2plus1d_18", "r2plus1d_34", "r2plus1d_50", "mc3_18", "i3d",
        "srtg_r3d_34", "srtg_r3d_50", "srtg_r2plus1d_34", "srtg_r2plus1d_50"]
# pooling sites each family must have (the adaptive head pool is not one); the ResNets have a
# stem pool, SRTG's published nets none (stem_pool=True adds it, tests/models/test_models_srtg.py)
SITES = {"i3d": 13, "i3d_tiny": 13}
pytestmark = pytest.mark.usefixtures("one_thread")


def expected_sites(name: str) -> int:
    return 0 if name.startswith("srtg_") else SITES.get(name, 1)


def plain_methods() -> list[str]:
    """Every registry method: each must build with no method arguments (a method that cannot
    is an error at collection, not one that quietly drops out of the tests)."""
    for name in available_pools():
        build_pool(name, 3, 3, 2, 1)
    return list(available_pools())


@pytest.mark.parametrize("model", ["r3d_tiny", "i3d_tiny", "srtg_r2plus1d_tiny"])
def test_every_method_leaves_the_other_layers_initialised_as_max(model: str) -> None:
    """Under one seed, models that differ in the pooling method differ in nothing else: no
    method's construction (gated draws its gates) shifts a later layer's initial weights."""
    def weights(method: str) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        net = create_model(model, num_classes=5, pooling=method, stem_pool=True) if model.startswith("srtg") \
            else create_model(model, num_classes=5, pooling=method)
        pools = {name for name, module in net.named_modules() if name and _is_pool(module)}
        return {name: value for name, value in net.state_dict().items()
                if not any(name.startswith(pool + ".") for pool in pools)}

    reference = weights("max")
    assert len(reference) > 5
    for method in available_pools():
        other = weights(method)
        assert other.keys() == reference.keys(), method
        differ = [name for name in reference if not torch.equal(other[name], reference[name])]
        assert not differ, f"{method}: {differ[:3]} initialised unlike max's"
    torch.manual_seed(0)
    first = build_pool("gated", 3, 3, 2, 1).state_dict()
    torch.manual_seed(0)
    assert all(torch.equal(a, b) for a, b in zip(first.values(), build_pool("gated", 3, 3, 2, 1).state_dict().values(),
                                                strict=True))  # still deterministic per seed


def _is_pool(module: nn.Module) -> bool:
    return type(module).__module__.startswith("softpool_video.pooling")


def moving_squares(n: int, frames: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n noisy clips of a bright square moving right, left, down or up (label = direction)."""
    g = torch.Generator().manual_seed(seed)
    directions = [(0, 1), (0, -1), (1, 0), (-1, 0)]
    x = 0.1 * torch.randn(n, 3, frames, size, size, generator=g)
    y = torch.arange(n) % 4
    side = size // 4
    step = max(1, (size - side) // frames)
    for i in range(n):
        dy, dx = directions[int(y[i])]
        cy, cx = torch.randint(0, size - side + 1, (2,), generator=g).tolist()
        for t in range(frames):
            py = min(max(cy + dy * step * (t - frames // 2), 0), size - side)
            px = min(max(cx + dx * step * (t - frames // 2), 0), size - side)
            x[i, :, t, py:py + side, px:px + side] += 1.0
    return x, y


# --- registry -------------------------------------------------------------------------------

def test_registry_lists_required_models():
    names = set(list_models())
    required = {"i3d", "r3d_18", "r3d_34", "r3d_50", "r2plus1d_18", "r2plus1d_34", "r2plus1d_50",
                "srtg_r3d_34", "srtg_r3d_50", "srtg_r2plus1d_34", "srtg_r2plus1d_50",
                "r2plus1d_tiny", "r3d_tiny", "i3d_tiny", "srtg_r2plus1d_tiny",
                "tv_r3d_18", "tv_mc3_18", "tv_r2plus1d_18", "tv_s3d"}
    assert required <= names
    assert list_models("srtg_*") == sorted(n for n in names if n.startswith("srtg_"))
    assert list_models(family="i3d") == ["i3d", "i3d_tiny"]


def test_unknown_model_lists_available():
    with pytest.raises(ValueError, match=r"unknown model 'resnet9000'.*r2plus1d_tiny"):
        create_model("resnet9000", 5)


def test_a_model_name_is_checked_in_one_place_with_one_wording():
    from softpool_video.models import UnknownModelError, check_model

    assert check_model("r2plus1d_tiny", "--model") == "r2plus1d_tiny"
    with pytest.raises(UnknownModelError) as raised:
        check_model("resnet9000", "--model")
    assert str(raised.value).startswith("--model: unknown model 'resnet9000'; available: ")
    with pytest.raises(UnknownModelError, match=r"^unknown model 'resnet9000'"):  # no option: no prefix
        create_model("resnet9000", 5)


@pytest.mark.parametrize("kwargs, message", [
    ({"pooling": "median"}, "unknown pooling method 'median'"),
    ({"num_classes": 0}, "num_classes must be a positive int"),
    ({"layers": (1, 1, 1)}, "layers must be 4 positive ints"),
    ({"stem_pool_kernel": (1, 3)}, "stem_pool_kernel must be an int or a sequence of 3 ints"),
    ({"pool_args": 3}, "pool_args must be a dict"),
    ({"stem_pool_kernel": (2, 3, 3), "stem_pool_stride": 2}, "no SAME padding expressible"),
    ({"head_pooling": "gated"}, "head_pooling must be a method with an adaptive form"),
    ({"mid_channels": "wide"}, "mid_channels must be one of 'auto', 'tran', 'torchvision', got 'wide'"),
])
def test_bad_arguments_name_themselves(kwargs, message):
    args = {"num_classes": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        create_model("r2plus1d_tiny", **args)


# --- shapes and gradients -------------------------------------------------------------------

@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("clip", [(8, 32, 32), (6, 36, 44)], ids=["8x32x32", "6x36x44"])
def test_tiny_forward_backward(name, clip):
    torch.manual_seed(0)
    model = create_model(name, 7, pooling="softpool")
    x = torch.randn(2, 3, *clip, requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, 7) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    logits.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    # SRTG LSTMs get no gradient where their gate stayed closed; everything else must
    assert all(".extra.lstm." in n for n in missing), missing


@pytest.mark.parametrize("name", FULL)
def test_full_models_shapes_on_meta(name):
    # the meta device runs no arithmetic; its LSTM is slow per step, so SRTG gets shorter clips
    clips = [(8, 112, 112), (4, 64, 80)] if name.startswith("srtg") else [(16, 112, 112), (8, 64, 80)]
    with torch.device("meta"):
        model = create_model(name, 400, pooling="softpool").eval()
        for clip in clips:
            assert model(torch.zeros(2, 3, *clip)).shape == (2, 400)
    assert len([s for s in pool_sites(model) if not s.adaptive]) == expected_sites(name)


def test_i3d_pools_give_same_padding_sizes():
    """Every I3D pool output is TensorFlow SAME's ceil(n / stride), for even and odd sizes."""
    with torch.device("meta"):
        model = create_model("i3d", 10).eval()
    sizes: dict[str, tuple[int, ...]] = {}
    for name in ("conv1a", "pool2a", "pool3a", "pool4a", "pool5a"):
        getattr(model, name).register_forward_hook(
            lambda m, i, o, name=name: sizes.__setitem__(name, tuple(o.shape[2:])))
    for clip in [(16, 112, 112), (9, 57, 75), (64, 224, 224)]:
        model(torch.zeros(1, 3, *clip, device="meta"))
        expected = [math.ceil(n / 2) for n in clip]  # conv1a: 7x7x7 stride 2
        assert sizes["conv1a"] == tuple(expected)
        for pool, strides in [("pool2a", (1, 2, 2)), ("pool3a", (1, 2, 2)), ("pool4a", (2, 2, 2)),
                              ("pool5a", (2, 2, 2))]:
            expected = [math.ceil(n / s) for n, s in zip(expected, strides)]
            assert sizes[pool] == tuple(expected), (clip, pool)


# --- pooling sites --------------------------------------------------------------------------

def _torch_windowed_pools(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules()
            if isinstance(m, (torch_pooling._MaxPoolNd, torch_pooling._AvgPoolNd))]


@pytest.mark.parametrize("name", TINY + ["i3d", "r3d_50", "srtg_r2plus1d_50", "mc3_18"])
def test_softpool_leaves_no_torch_pool_behind(name):
    with torch.device("meta"):
        model = create_model(name, 10, pooling="softpool")
    assert _torch_windowed_pools(model) == []
    sites = pool_sites(model)
    swapped = [s for s in sites if not s.adaptive]
    assert len(swapped) == expected_sites(name)
    assert all(s.method == "softpool" and s.type_name == "SoftPool3d" for s in swapped)
    # the only pool left alone is the documented global head pool
    assert [s.name for s in sites if s.adaptive] == ["head_pool"]
    assert sum(isinstance(m, SoftPool3d) for m in model.modules()) == expected_sites(name)


@pytest.mark.parametrize("method", plain_methods())
@pytest.mark.parametrize("name", ["i3d_tiny", "r2plus1d_tiny", "srtg_r2plus1d_tiny"])
def test_every_method_reaches_every_site(name, method):
    with torch.device("meta"):
        model = create_model(name, 10, pooling=method)
    reference = type(build_pool(method, 3, 3, 2, 1))
    sites = [s for s in pool_sites(model) if not s.adaptive]
    assert len(sites) == expected_sites(name)
    assert all(s.type_name == reference.__name__ for s in sites), [(s.name, s.type_name) for s in sites]


@pytest.mark.parametrize("method", plain_methods())
def test_every_method_trains_r2plus1d_tiny(method):
    torch.manual_seed(0)
    model = create_model("r2plus1d_tiny", 4, pooling=method)
    logits = model(torch.randn(2, 3, 4, 32, 32))
    assert logits.shape == (2, 4)
    logits.sum().backward()
    assert model.stem[0].weight.grad.abs().sum() > 0


def test_stem_pool_off_has_no_sites_and_pool_args_reach_the_pool():
    with torch.device("meta"):
        no_pool = create_model("r3d_18", 10, pooling="softpool", stem_pool=False)
        wide = create_model("r3d_18", 10, stem_pool_kernel=(3, 3, 3), stem_pool_stride=(2, 2, 2))
    assert [s for s in pool_sites(no_pool) if not s.adaptive] == []
    assert wide.stem_pool.kernel_size == (3, 3, 3) and wide.stem_pool.stride == (2, 2, 2)
    assert wide.stem_pool.padding == (1, 1, 1)
    with torch.device("meta"):
        even = create_model("r3d_18", 10, stem_pool_kernel=(1, 2, 2), stem_pool_stride=(1, 2, 2)).eval()
        features = even.stem_pool(torch.zeros(1, 64, 8, 57, 57))
    assert features.shape[2:] == (8, 29, 29)  # SAME: ceil(57 / 2)
    with pytest.raises(ValueError, match="does not take method_args"):  # they reach build_pool
        create_model("r3d_tiny", 10, pool_args={"beta": 2.0})


# --- torchvision compatibility --------------------------------------------------------------

def _torchvision(name: str) -> nn.Module:
    from torchvision.models import video
    from torchvision.models.video.resnet import BasicStem, Bottleneck, Conv3DSimple, R2Plus1dStem, VideoResNet

    if name == "r3d_50":
        return VideoResNet(Bottleneck, [Conv3DSimple] * 4, [3, 4, 6, 3], BasicStem, num_classes=400)
    if name == "r2plus1d_50":
        from torchvision.models.video.resnet import Conv2Plus1D
        return VideoResNet(Bottleneck, [Conv2Plus1D] * 4, [3, 4, 6, 3], R2Plus1dStem, num_classes=400)
    return getattr(video, name)(weights=None, num_classes=400)


@pytest.mark.parametrize("name, kwargs", [
    ("r3d_18", {}), ("mc3_18", {}), ("r2plus1d_18", {}), ("r3d_50", {}),
    ("r2plus1d_50", {"mid_channels": "torchvision"}),  # its default is Tran et al.'s formula
])
def test_no_stem_pool_matches_torchvision_layout(name, kwargs):
    with torch.device("meta"):
        ours = create_model(name, 400, stem_pool=False, **kwargs)
        theirs = _torchvision(name)
    assert count_parameters(ours) == count_parameters(theirs)
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    theirs_shapes = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert ours_shapes == theirs_shapes  # same names too: torchvision weights load as they are


def test_r2plus1d_18_computes_torchvision_function_with_its_weights():
    from torchvision.models.video import r2plus1d_18

    torch.manual_seed(0)
    theirs = r2plus1d_18(weights=None, num_classes=400).eval()
    ours = create_model("r2plus1d_18", 400, stem_pool=False).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))
    assert count_parameters(ours) == 31_505_325


# --- R(2+1)D middle widths -------------------------------------------------------------------

def _tran(n_in: int, n_out: int) -> int:
    """Tran et al. (CVPR 2018): M = floor(t d^2 N_in N_out / (d^2 N_in + t N_out)), t = d = 3."""
    return (3 * 9 * n_in * n_out) // (9 * n_in + 3 * n_out)


def _mids(model: nn.Module) -> dict[str, int]:
    """Middle width (spatial conv's outputs) of every (2+1)D conv, by block conv name."""
    return {name: m[0].out_channels for name, m in model.named_modules()
            if isinstance(m, nn.Sequential) and len(m) == 4 and isinstance(m[0], nn.Conv3d)
            and m[0].kernel_size == (1, 3, 3) and m[3].kernel_size == (3, 1, 1)}


def test_r2plus1d_50_uses_tran_formula_and_matches_r3d_50_size():
    with torch.device("meta"):
        tran = create_model("r2plus1d_50", 400)
        explicit = create_model("r2plus1d_50", 400, mid_channels="tran")
        tv = create_model("r2plus1d_50", 400, mid_channels="torchvision")
        r3d = create_model("r3d_50", 400)
    mids, tv_mids = _mids(tran), _mids(tv)
    assert len(mids) == 16  # one (2+1)D conv per bottleneck
    for stage, planes in zip(range(1, 5), (64, 128, 256, 512)):
        assert mids[f"layer{stage}.1.conv2.0"] == _tran(planes, planes) == (9 * planes) // 4
        assert mids[f"layer{stage}.0.conv2.0"] == _tran(planes, planes)  # the first block too
        # torchvision's: from the block's input width (4 planes after the first block)
        assert tv_mids[f"layer{stage}.1.conv2.0"] == _tran(4 * planes, planes)
    assert mids["layer1.1.conv2.0"] == 144 and tv_mids["layer1.1.conv2.0"] == 177
    assert count_parameters(explicit) == count_parameters(tran) == 46_985_057
    assert abs(count_parameters(tran) / count_parameters(r3d) - 1) < 0.05  # R3D-50: 46,980,944
    assert count_parameters(tv) == 53_949_691  # the previous default, torchvision's layout


def test_basic_block_mid_channels_options():
    with torch.device("meta"):
        default = create_model("r2plus1d_18", 400)
        tran = create_model("r2plus1d_18", 400, mid_channels="tran")
        tiny = create_model("r2plus1d_tiny", 4)
        tiny_tv = create_model("r2plus1d_tiny", 4, mid_channels="torchvision")
    d, t = _mids(default), _mids(tran)
    # layer2.0: in 64 -> 128. conv1 (64 -> 128) is the same either way; conv2 (128 -> 128) differs
    assert d["layer2.0.conv1.0"] == t["layer2.0.conv1.0"] == _tran(64, 128) == 230
    assert d["layer2.0.conv2.0"] == _tran(64, 128) and t["layer2.0.conv2.0"] == _tran(128, 128) == 288
    assert d["layer2.1.conv2.0"] == t["layer2.1.conv2.0"] == 288
    # the tiny net (BasicBlock) keeps torchvision's rule by default, as r2plus1d_18 / 34
    assert _mids(tiny) == _mids(tiny_tv) and _mids(tiny)["layer2.0.conv2.0"] == _tran(8, 16)
    assert count_parameters(default) == 31_505_325


# --- I3D head -------------------------------------------------------------------------------

@pytest.mark.parametrize("crop", [112, 224])
@pytest.mark.parametrize("frames", [8, 16, 32])
def test_i3d_original_head_shapes_and_clipped_window(frames, crop):
    with torch.device("meta"):
        model = create_model("i3d", 400).eval()
        seen = []
        model.head_pool.register_forward_hook(lambda m, i, o: seen.append((i[0].shape[2:], o.shape[2:])))
        assert model(torch.zeros(2, 3, frames, crop, crop)).shape == (2, 400)
    (t, h, w), pooled = seen[0]
    assert (h, w) == ((4, 4) if crop == 112 else (7, 7)) and t == frames // 8
    assert tuple(pooled) == (max(t - 1, 1), 1, 1)  # 2x7x7 at stride 1, clipped to the map
    assert model.head_pool.clipped_window((t, h, w)) == (min(2, t), min(7, h), 7 if crop == 224 else 4)


@pytest.mark.parametrize("head", ["original", "global"])
@pytest.mark.parametrize("clip", [(1, 1, 1), (3, 17, 23), (20, 260, 40)])
def test_i3d_heads_take_any_input(head, clip):
    with torch.device("meta"):
        model = create_model("i3d_tiny", 5, head=head).eval()
        assert model(torch.zeros(1, 3, *clip)).shape == (1, 5)
    model = create_model("i3d_tiny", 5, head=head, pooling="softpool", head_pooling="softpool").eval()
    logits = model(torch.randn(1, 3, 3, 17, 23))
    assert logits.shape == (1, 5) and torch.isfinite(logits).all()


def test_i3d_original_head_averages_the_logits_over_time():
    original = create_model("i3d_tiny", 5).eval()
    features = torch.randn(2, original.num_features, 5, 7, 7)
    with torch.no_grad():
        per_time = [original.logits(features[:, :, t:t + 2].mean(dim=(2, 3, 4), keepdim=True)).flatten(1)
                    for t in range(4)]  # windows 2x7x7 at stride 1: 4 positions in time
        torch.testing.assert_close(original.forward_head(features), torch.stack(per_time).mean(0))
        # larger than the window in space too: the mean runs over every window position
        big = torch.randn(1, original.num_features, 3, 9, 8)
        pooled = nn.functional.avg_pool3d(big, (2, 7, 7), 1)
        torch.testing.assert_close(original.forward_head(big), original.logits(pooled).mean(dim=(2, 3, 4)))
    # a map no larger than the window (16x112x112 -> 2x4x4): the original head is the global one
    glob = create_model("i3d_tiny", 5, head="global").eval()
    glob.load_state_dict(original.state_dict())  # same parameters, same names
    small = torch.randn(2, original.num_features, 2, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(original.forward_head(small), glob.forward_head(small))
        assert not torch.allclose(original.forward_head(features), glob.forward_head(features))


def test_i3d_head_arguments():
    with torch.device("meta"):
        assert create_model("i3d", 10).head == "original"
    with pytest.raises(ValueError, match="head must be one of 'original', 'global', got 'avg'"):
        create_model("i3d_tiny", 5, head="avg")
    with pytest.raises(ValueError, match="head_pooling 'mixed' has parameters"):
        create_model("i3d_tiny", 5, head_pooling="mixed")
    create_model("i3d_tiny", 5, head="global", head_pooling="mixed")  # the global head takes it
    with pytest.raises(ValueError, match="unknown pooling method"):
        create_model("i3d_tiny", 5, head_pooling="median")
    with torch.device("meta"):
        head = [s for s in pool_sites(create_model("i3d", 10)) if s.adaptive]
    assert [(s.name, s.kernel_size, s.stride) for s in head] == [("head_pool", (2, 7, 7), (1, 1, 1))]


def test_i3d_original_head_exports(tmp_path):
    from softpool_video.export.pt2_export import export_pt2
    from softpool_video.export.torchscript_export import export_torchscript

    model = create_model("i3d_tiny", 5).eval()
    clip = torch.randn(1, 3, 24, 64, 64)  # feature map 3x2x2: window clipped to 2x2x2, 2 positions
    assert export_torchscript(model, clip, tmp_path / "i3d.pt")["verification"]["passed"]
    assert export_pt2(model, clip, tmp_path / "i3d.pt2")["verification"]["passed"]


# --- FLOPs ----------------------------------------------------------------------------------

def test_softpool_flops_formula():
    pool = nn.Sequential(build_pool("softpool", 3, (1, 3, 3), (1, 2, 2), (0, 1, 1)))
    x = torch.randn(1, 4, 3, 10, 10)
    outputs = 4 * 3 * 5 * 5
    assert count_flops(pool, x) == outputs * (6 * 9 + 2)
    assert count_flops(nn.Sequential(build_pool("max", 3, 3, 2, 1)), x) == 0  # torch does not count max


def test_softpool_formula_registers_globally_once():
    from torch.utils.flop_counter import FlopCounterMode

    from softpool_video.models.flops import register_softpool_flop_formulas

    register_softpool_flop_formulas()
    register_softpool_flop_formulas()  # idempotent
    pool = build_pool("softpool", 3, 2)
    with FlopCounterMode(display=False) as counter:
        pool(torch.randn(1, 2, 4, 4, 4))
    assert counter.get_total_flops() == 2 * 2 * 2 * 2 * (6 * 8 + 2)


def test_model_flops_differ_by_the_softpool_sites():
    clip = torch.zeros(1, 3, 16, 112, 112, device="meta")
    with torch.device("meta"):
        soft = create_model("i3d_tiny", 10, pooling="softpool")
        hard = create_model("i3d_tiny", 10, pooling="max")
    pool_outputs: list[tuple[int, int]] = []
    for m in soft.modules():
        if isinstance(m, SoftPool3d):
            m.register_forward_hook(lambda mod, i, o: pool_outputs.append((o.numel(), math.prod(mod.kernel_size))))
    soft_flops, hard_flops = count_flops(soft, clip), count_flops(hard, clip)
    assert len(pool_outputs) == 13
    assert soft_flops - hard_flops == sum(n * (6 * k + 2) for n, k in pool_outputs)
    assert 0.1e9 < hard_flops < 1e9  # the demo size: well under a GFLOP per 16x112x112 clip


def test_r2plus1d_tiny_is_demo_sized():
    clip = torch.zeros(1, 3, 16, 112, 112, device="meta")
    with torch.device("meta"):
        model = create_model("r2plus1d_tiny", 6, pooling="softpool")
    assert count_flops(model, clip) < 0.5e9
    assert count_parameters(model) < 1e6


# --- training -------------------------------------------------------------------------------

def test_r2plus1d_tiny_overfits_moving_squares():
    torch.manual_seed(0)
    x, y = moving_squares(8, 8, 32, seed=0)
    model = create_model("r2plus1d_tiny", 4, pooling="softpool")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):  # 40 already fit in train mode; the rest settle batch-norm running stats
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        final = nn.functional.cross_entropy(model(x), y)
        accuracy = (model(x).argmax(1) == y).float().mean()
    assert accuracy == 1.0, (accuracy, final)
    assert final < 0.1


@pytest.mark.parametrize("name", ["r3d_tiny", "i3d_tiny", "srtg_r2plus1d_tiny"])
def test_small_variant_of_each_family_trains(name):
    torch.manual_seed(0)
    x, y = moving_squares(4, 8, 32, seed=1)
    model = create_model(name, 4, pooling="softpool")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(5):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


def test_lazy_pooling_parameters_count_after_one_forward():
    model = create_model("r2plus1d_tiny", 4, pooling="lip")
    with pytest.raises(ValueError, match="lazy parameters"):
        count_parameters(model)
    before = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("stem_pool"))
    model.eval()(torch.randn(1, 3, 4, 32, 32))
    assert count_parameters(model) > before


def test_models_command_takes_an_input_shape(capsys):
    from softpool_video.commands.models import main as models_main

    assert models_main(["r3d_tiny", "--input", "1,3,8,64,64", "--markdown"]) == 0
    by_input = capsys.readouterr().out
    assert models_main(["r3d_tiny", "--clip", "8", "64", "64", "--markdown"]) == 0
    assert capsys.readouterr().out == by_input and "1x3x8x64x64" in by_input
    with pytest.raises(SystemExit):
        models_main(["r3d_tiny", "--input", "1,4,8,64,64"])
    assert "C must be 3" in capsys.readouterr().err
