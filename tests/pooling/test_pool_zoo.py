"""The pooling zoo: each method against its defining formula, gradients, randomness, bad input.

The oracle below enumerates every window with Python loops (tiny inputs only)
and applies each method's formula to the list of values in the window, so it
shares no code with the vectorised implementations.
"""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from softpool_video.pooling import (
    AdaptiveSoftPool3d,
    UnknownPoolingError,
    available_pools,
    build_adaptive_pool,
    build_pool,
    check_methods,
    pool_args,
    soft_pool_reference,
)

ALL = sorted(available_pools())
ZOO = ["sum", "power", "stochastic", "s3", "mixed", "gated", "lip", "softpool", "adapool"]


# --- the oracle -------------------------------------------------------------------------------

def fixed_bounds(size: int, out: int, k: int, s: int, p: int):
    """Per output: list of (kernel offset, input index) of the positions inside the input."""
    return [[(j, o * s - p + j) for j in range(k) if 0 <= o * s - p + j < size] for o in range(out)]


def adaptive_bounds(size: int, out: int):
    result = []
    for o in range(out):
        lo, hi = (o * size) // out, math.ceil((o + 1) * size / out)
        result.append([(j, lo + j) for j in range(hi - lo)])
    return result


def oracle(x: torch.Tensor, bounds_per_dim, formula, extra: torch.Tensor | None = None) -> torch.Tensor:
    """Applies formula(values (N, C, m), offsets, extra values) to every window."""
    outs = [len(b) for b in bounds_per_dim]
    y = torch.empty(x.shape[:2] + tuple(outs), dtype=x.dtype)
    for o in itertools.product(*(range(n) for n in outs)):
        cells = list(itertools.product(*(bounds_per_dim[d][o[d]] for d in range(len(outs)))))
        index = [tuple(c[d][1] for c in cells) for d in range(len(outs))]
        vals = x[(slice(None), slice(None)) + tuple(torch.tensor(i) for i in index)]
        offsets = [tuple(c[d][0] for d in range(len(outs))) for c in cells]
        ext = None if extra is None else extra[(slice(None), slice(None)) + tuple(torch.tensor(i) for i in index)]
        y[(slice(None), slice(None)) + o] = formula(vals, offsets, ext)
    return y


def fixed_oracle(x, k, s, p, ceil, formula, extra=None):
    dims = x.dim() - 2
    k, s, p = (v if isinstance(v, tuple) else (v,) * dims for v in (k, s, p))
    outs = F.max_pool3d(torch.zeros((1, 1) + x.shape[2:] + (1,) * (3 - dims)), k + (1,) * (3 - dims),
                        s + (1,) * (3 - dims), p + (0,) * (3 - dims), ceil_mode=ceil).shape[2:2 + dims]
    bounds = [fixed_bounds(x.shape[2 + d], outs[d], k[d], s[d], p[d]) for d in range(dims)]
    return oracle(x, bounds, formula, extra)


def f_sum(v, offsets, ext):
    return v.sum(-1)


def f_power(p):
    return lambda v, offsets, ext: (v.abs() ** p).mean(-1) ** (1 / p)


def f_stochastic_eval(v, offsets, ext):
    q = v.clamp_min(0)
    total = q.sum(-1)
    return torch.where(total > 0, (q * v).sum(-1) / torch.where(total > 0, total, 1), v.mean(-1))


def f_mixed(alpha):
    return lambda v, offsets, ext: alpha * v.amax(-1) + (1 - alpha) * v.mean(-1)


def f_gated(weight):  # weight: kernel-shaped, one mask for all channels
    def formula(v, offsets, ext):
        w = torch.stack([weight[o] for o in offsets])
        g = torch.sigmoid((v * w).sum(-1))
        return g * v.amax(-1) + (1 - g) * v.mean(-1)
    return formula


def f_softpool(t):
    return lambda v, offsets, ext: (torch.softmax(v / t, -1) * v).sum(-1)


def f_lip(v, offsets, ext):
    w = torch.exp(ext)
    return (w * v).sum(-1) / w.sum(-1)


def f_adapool(beta):
    def formula(v, offsets, ext):
        mean = v.mean(-1, keepdim=True)
        den = v * v + mean * mean
        dsc = torch.where(den > 0, 2 * v * mean / torch.where(den > 0, den, 1), 1.0)
        edscw = (torch.exp(dsc) * v).sum(-1) / torch.exp(dsc).sum(-1)
        em = (torch.softmax(v, -1) * v).sum(-1)
        return beta * edscw + (1 - beta) * em
    return formula


class Logit(nn.Module):
    """A fixed elementwise logit for LIP formula tests."""

    def forward(self, x):
        return 2 * torch.tanh(x) + 0.3 * x


GEOMETRIES = [  # (spatial, kernel, stride, padding, ceil_mode)
    ((7,), 3, 2, 1, True),
    ((6,), 2, 2, 0, False),
    ((5, 6), (2, 3), (2, 2), (1, 1), True),
    ((4, 5), 3, 1, 1, False),
    ((3, 5, 4), (2, 2, 3), (1, 2, 2), (0, 1, 1), False),
    ((3, 4, 5), (3, 2, 2), (2, 2, 2), (1, 0, 1), True),
]


def _configure(method: str, pool: nn.Module, dims: int, k) -> tuple:
    """Sets known parameter values; returns (formula, needs logits)."""
    if method == "sum":
        return f_sum, False
    if method == "power":
        return f_power(2.5), False
    if method == "stochastic":
        return f_stochastic_eval, False
    if method == "mixed":
        with torch.no_grad():
            pool.theta.fill_(math.log(0.3 / 0.7))
        return f_mixed(0.3), False
    if method == "gated":
        kernel = k if isinstance(k, tuple) else (k,) * dims
        weight = torch.linspace(-1.0, 1.5, math.prod(kernel), dtype=torch.float64).view(kernel)
        with torch.no_grad():
            pool.gate_weight.copy_(weight.view((1, 1) + kernel))
        return f_gated(weight), False
    if method == "softpool":
        return f_softpool(0.7), False
    if method == "lip":
        return f_lip, True
    if method == "adapool":
        with torch.no_grad():
            pool.theta.fill_(math.log(0.25 / 0.75))
        return f_adapool(0.25), False
    raise AssertionError(method)


METHOD_ARGS = {"power": {"p": 2.5}, "softpool": {"temperature": 0.7}, "lip": {"logit_module": Logit()},
               "adapool": {"beta": "layer"}}


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"{len(g[0])}d-{g[0]}")
@pytest.mark.parametrize("method", ["sum", "power", "stochastic", "mixed", "gated", "softpool", "lip", "adapool"])
def test_formula_on_every_window(method, geometry):
    spatial, k, s, p, ceil = geometry
    dims = len(spatial)
    gen = torch.Generator().manual_seed(len(spatial) * 10 + len(method))
    x = torch.randn((2, 3) + spatial, generator=gen, dtype=torch.float64)
    pool = build_pool(method, dims, k, s, p, ceil, **METHOD_ARGS.get(method, {})).double().eval()
    formula, needs_logits = _configure(method, pool, dims, k)
    expected = fixed_oracle(x, k, s, p, ceil, formula, Logit()(x) if needs_logits else None)
    torch.testing.assert_close(pool(x), expected, rtol=1e-9, atol=1e-9)


def test_hand_checked_values():
    x = torch.tensor([[[1.0, 3.0]]], dtype=torch.float64)  # one window: [1, 3]

    def one(method, **kw):
        return build_pool(method, 1, 2, **kw).double().eval()(x).item()

    e = math.e
    assert one("sum") == pytest.approx(4.0)
    assert one("avg") == pytest.approx(2.0)
    assert one("power", p=2.0) == pytest.approx(math.sqrt(5.0))
    assert one("power", p=2.0, mean=False) == pytest.approx(math.sqrt(10.0))
    assert one("stochastic") == pytest.approx(10.0 / 4.0)  # (1*1 + 3*3) / (1 + 3)
    assert one("mixed") == pytest.approx(2.5)  # alpha = 0.5: (3 + 2) / 2
    assert one("s3") == pytest.approx(3.0)  # stride-1 max [3, 3] averaged over the block
    assert one("softpool") == pytest.approx((e * 1 + e ** 3 * 3) / (e + e ** 3))
    assert one("softpool", temperature=2.0) == pytest.approx((e ** 0.5 + e ** 1.5 * 3) / (e ** 0.5 + e ** 1.5))
    # adaPool, beta = 0.5: mean 2, DSC = 2*1*2/(1+4) = 0.8 and 2*3*2/(9+4) = 12/13
    d1, d2 = 0.8, 12 / 13
    edscw = (math.exp(d1) * 1 + math.exp(d2) * 3) / (math.exp(d1) + math.exp(d2))
    em = (e * 1 + e ** 3 * 3) / (e + e ** 3)
    assert one("adapool", beta="layer") == pytest.approx(0.5 * edscw + 0.5 * em)
    # LIP at initialisation: constant logits, so the mean
    assert one("lip") == pytest.approx(2.0)


@pytest.mark.parametrize("method", ALL)
def test_padding_and_past_the_edge_take_no_part(method):
    # padding=1: the first window is [pad, 5]; ceil_mode: the last window is [7, past the edge].
    x = torch.tensor([[[5.0, 1.0, 2.0, 7.0]]])
    pool = build_pool(method, 1, 2, 2, 1, True)
    assert pool(x).shape[-1] == 3
    for training in (True, False):
        pool.train(training)
        y = pool(x)
        assert y[0, 0, 0].item() == pytest.approx(5.0), (method, training, y)
        assert y[0, 0, -1].item() == pytest.approx(7.0), (method, training, y)


# --- gradients ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["sum", "power", "stochastic", "mixed", "gated", "softpool", "lip", "adapool",
                                    "s3", "avg", "max"])
def test_gradcheck(method):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2, 4, 5, generator=gen, dtype=torch.float64).requires_grad_()
    kw = {"power": {"p": 3.0, "learnable": True}, "softpool": {"temperature": 1.5}, "lip": {"channels": 2}}
    pool = build_pool(method, 2, (2, 3), (2, 2), (1, 1), True, **kw.get(method, {})).double().eval()
    if method == "lip":
        with torch.no_grad():  # move off the zero initialisation so the logit path matters
            pool.logit.conv_weight.normal_(generator=gen)
    pool(x.detach())  # materialise lazy parameters
    params = [p for p in pool.parameters() if p.requires_grad]

    def run(inp, *ps):
        return pool(inp)

    assert torch.autograd.gradcheck(run, (x, *params), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["stochastic", "s3"])
def test_gradcheck_training_draw(method):
    """With the draw replayed (same seed each call) the sampled function has exact gradients."""
    gen = torch.Generator().manual_seed(4)
    x = (torch.rand(1, 2, 5, 6, generator=gen, dtype=torch.float64) + 0.1).requires_grad_()
    pool = build_pool(method, 2, 2, 2, 0, True, seed=7).train()

    def run(inp):
        pool.random.reset()
        return pool(inp)

    assert torch.autograd.gradcheck(run, (x,), eps=1e-6, atol=1e-6)


def test_stochastic_training_gradient_goes_to_the_drawn_position():
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64).requires_grad_()
    pool = build_pool("stochastic", 2, 2, seed=1).train()
    y = pool(x)
    y.sum().backward()
    assert torch.all((x.grad == 0) | (x.grad == 1))
    # one position per window gets the gradient, and it holds the output value
    windows = x.grad.unfold(2, 2, 2).unfold(3, 2, 2)
    assert torch.all(windows.sum((-1, -2)) == 1)
    picked = (x.detach() * x.grad).unfold(2, 2, 2).unfold(3, 2, 2).sum((-1, -2))
    torch.testing.assert_close(picked, y.detach())


def test_learnable_power_and_per_channel_parameters_get_gradients():
    x = torch.rand(2, 3, 6, 6) + 0.1
    for method, kw in [("power", {"learnable": True, "channels": 3}), ("mixed", {"channels": 3}),
                       ("gated", {"channels": 3}), ("adapool", {"beta": "channel", "channels": 3}),
                       ("lip", {"channels": 3, "logit": "depthwise"})]:
        pool = build_pool(method, 2, 2, **kw)
        if method == "lip":
            with torch.no_grad():  # off the zero start, where the norm's scale has no gradient
                pool.logit.conv_weight.normal_()
        pool(x).square().sum().backward()
        for name, param in pool.named_parameters():
            assert param.grad is not None and torch.isfinite(param.grad).all(), (method, name)
            assert param.grad.abs().sum() > 0, (method, name)
        assert any(param.shape[0] == 3 for param in pool.parameters()), method


# --- randomness --------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["stochastic", "s3"])
def test_random_methods_are_deterministic_given_a_seed_or_generator(method):
    x = torch.rand(2, 4, 6, 9, 9)

    def draws(**kw):
        pool = build_pool(method, 3, 2, 2, 0, True, **kw).train()
        return pool(x), pool(x)

    a1, a2 = draws(seed=5)
    b1, b2 = draws(seed=5)
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1, a2)  # the sequence moves on between calls
    c1, _ = draws(seed=6)
    assert not torch.equal(a1, c1)
    g1, _ = draws(generator=torch.Generator().manual_seed(11))
    g2, _ = draws(generator=torch.Generator().manual_seed(11))
    assert torch.equal(g1, g2)
    pool = build_pool(method, 3, 2, 2, 0, True, seed=5).eval()
    assert torch.equal(pool(x), pool(x))  # evaluation is deterministic


def test_stochastic_draws_follow_normalised_activations():
    # 4000 windows [1, 3]: 3 must be drawn with probability 3/4
    x = torch.tensor([1.0, 3.0]).repeat(4000, 1).unsqueeze(0)
    y = build_pool("stochastic", 1, 2, seed=0).train()(x)
    assert set(y.unique().tolist()) <= {1.0, 3.0}
    assert (y == 3.0).float().mean().item() == pytest.approx(0.75, abs=0.03)
    # zero and negative activations have probability 0 unless nothing is positive
    x = torch.tensor([[0.0, 2.0, -1.0, 0.0], [-1.0, -3.0, 0.0, -2.0]]).repeat(500, 1).unsqueeze(0)
    y = build_pool("stochastic", 1, 4, seed=0).train()(x)
    assert torch.all(y[0, 0::2] == 2.0)
    assert set(y[0, 1::2].unique().tolist()) == {-1.0, -3.0, 0.0, -2.0}  # uniform fallback


def test_s3_training_samples_one_stride_one_max_per_block_in_order():
    x = torch.arange(11.0).view(1, 1, 11)  # stride-1 max of kernel 2 at j is x[j + 1] (or x[j] at the edge)
    pool = build_pool("s3", 1, 2, 2, seed=3).train()
    for _ in range(20):
        y = pool(x)[0, 0]
        assert y.shape == (5,)
        for o, value in enumerate(y.tolist()):
            assert value in (2 * o + 1, 2 * o + 2), (o, y)
    for grid, out, limit in [(2, 7, 14), (3, 7, 13), (4, 5, 10)]:
        s3 = build_pool("s3", 1, 2, grid_size=grid, seed=grid)
        for _ in range(10):
            pos = s3.sample_positions(out, 2, limit)
            assert len(pos) == out and torch.all(pos[1:] > pos[:-1]) and pos.max() < limit
            blocks = torch.arange(out) // grid
            assert torch.all(pos // (grid * 2) == blocks)


def test_s3_evaluation_averages_the_stride_one_max_over_each_block():
    x = torch.tensor([[[1.0, 5.0, 2.0, 0.0, 3.0, 4.0]]])
    # stride-1 max: [5, 5, 2, 3, 4, 4 (window past the edge)] -> block means
    y = build_pool("s3", 1, 2, 2).eval()(x)
    torch.testing.assert_close(y, torch.tensor([[[5.0, 2.5, 4.0]]]))


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"{len(g[0])}d-{g[0]}")
@pytest.mark.parametrize("method", ALL)
def test_output_shape_matches_max_pool(method, geometry):
    spatial, k, s, p, ceil = geometry
    dims = len(spatial)
    x = torch.rand((2, 3) + spatial)
    expected = build_pool("max", dims, k, s, p, ceil)(x).shape
    pool = build_pool(method, dims, k, s, p, ceil)
    for training in (True, False):
        assert pool.train(training)(x).shape == expected
    assert pool(x[0]).shape == expected[1:]  # unbatched


# --- adaptive ------------------------------------------------------------------------------------

ADAPTIVE_FORMULAS = {"sum": (f_sum, {}), "power": (f_power(3.0), {"p": 3.0}),
                     "stochastic": (f_stochastic_eval, {}), "mixed": (f_mixed(0.5), {}),
                     "softpool": (f_softpool(1.0), {}), "adapool": (f_adapool(0.5), {}),
                     "lip": (f_lip, {"logit_module": Logit()}),
                     "avg": (lambda v, o, e: v.mean(-1), {}), "max": (lambda v, o, e: v.amax(-1), {})}


@pytest.mark.parametrize("sizes", [((5, 7), (2, 3)), ((6, 4), (3, 2)), ((5, 7), (1, 1)), ((4, 4), (4, None))])
@pytest.mark.parametrize("method", sorted(ADAPTIVE_FORMULAS))
def test_adaptive_formula(method, sizes):
    spatial, out = sizes
    formula, kw = ADAPTIVE_FORMULAS[method]
    x = torch.randn((2, 3) + spatial, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    pool = build_adaptive_pool(method, 2, out, **kw).double().eval()
    out_full = tuple(s if o is None else o for s, o in zip(spatial, out))
    bounds = [adaptive_bounds(spatial[d], out_full[d]) for d in range(2)]
    expected = oracle(x, bounds, formula, Logit()(x) if method == "lip" else None)
    torch.testing.assert_close(pool(x), expected, rtol=1e-9, atol=1e-9)


def test_adaptive_softpool_head_is_global_softpool():
    x = torch.randn(2, 5, 3, 4, 4, dtype=torch.float64)
    head = AdaptiveSoftPool3d(1)
    w = torch.softmax(x.flatten(2), -1)
    torch.testing.assert_close(head(x), (w * x.flatten(2)).sum(-1).view(2, 5, 1, 1, 1))
    ref, _ = soft_pool_reference(x, pool_args(3, (3, 4, 4)))
    torch.testing.assert_close(head(x), ref)
    assert AdaptiveSoftPool3d((1, 2, 3))(x).shape == (2, 5, 1, 2, 3)


def test_methods_without_adaptive_form_say_so():
    for method in ("gated", "s3"):
        with pytest.raises(ValueError, match=f"{method!r} has no adaptive"):
            build_adaptive_pool(method, 3, 1)


# --- dtypes, stability ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("method", ["sum", "power", "stochastic", "mixed", "gated", "softpool", "lip", "adapool",
                                    "s3"])
def test_half_precision_inputs(method, dtype):
    torch.manual_seed(0)
    x = torch.rand(1, 2, 4, 6, 6)
    pool = build_pool(method, 3, 2, 2, 0, True).eval()
    y = pool(x.to(dtype))
    assert y.dtype == dtype
    torch.testing.assert_close(y.float(), pool(x), rtol=2e-2, atol=2e-2)


def test_power_pooling_is_stable_for_large_p_and_inputs():
    x = torch.randn(1, 2, 8, 8) * 1e4
    for p in (8.0, 64.0):
        y = build_pool("power", 2, 2, p=p)(x)
        assert torch.isfinite(y).all()
        mean_abs = F.avg_pool2d(x.abs(), 2)
        max_abs = F.max_pool2d(x.abs(), 2)
        assert torch.all(y >= mean_abs * (1 - 1e-5)) and torch.all(y <= max_abs * (1 + 1e-5))
    zeros = torch.zeros(1, 1, 4, 4, requires_grad=True)
    pool = build_pool("power", 2, 2, p=0.5, learnable=True)
    pool(zeros).sum().backward()
    assert torch.all(torch.isfinite(zeros.grad)) and torch.isfinite(pool.rho.grad)


def test_softpool_temperature_interpolates_between_max_and_average():
    x = torch.randn(2, 3, 8, 8)
    cold = build_pool("softpool", 2, 2, temperature=1e-3)(x)
    hot = build_pool("softpool", 2, 2, temperature=1e4)(x)
    torch.testing.assert_close(cold, F.max_pool2d(x, 2), atol=1e-4, rtol=0)
    torch.testing.assert_close(hot, F.avg_pool2d(x, 2), atol=1e-3, rtol=0)
    assert type(build_pool("softpool", 2, 2)).__name__ == "SoftPool2d"  # T = 1: the compiled-op module


# --- lazy parameters ------------------------------------------------------------------------------

def test_lazy_channels_are_inferred_and_reload():
    lip = build_pool("lip", 3, 2)
    assert lip.logit.has_uninitialized_params()
    x = torch.rand(1, 6, 4, 4, 4)
    lip(x)
    assert lip.logit.conv_weight.shape == (6, 6, 3, 3, 3)
    fresh = build_pool("lip", 3, 2)
    fresh.load_state_dict(lip.state_dict())
    torch.testing.assert_close(fresh(x), lip(x))
    ada = build_pool("adapool", 3, 2, 2, 1)
    ada(x)
    assert ada.theta.shape == (3, 3, 3)
    with pytest.raises(ValueError, match="pools to"):
        ada(torch.rand(1, 6, 8, 8, 8))
    with pytest.raises(ValueError, match="channels"):
        lip(torch.rand(1, 5, 4, 4, 4))


# --- bad input --------------------------------------------------------------------------------------

def test_unknown_method_lists_the_available_ones():
    with pytest.raises(ValueError) as err:
        build_pool("median", 3, 2)
    for name in ALL:
        assert name in str(err.value)
    for name in ZOO:
        assert name in ALL


@pytest.mark.parametrize("methods,option,message", [
    ("max,median", "--pooling", "--pooling: unknown pooling method 'median'; available: adapool, avg,"),
    (["median", "max", "mean"], None, "unknown pooling methods 'median', 'mean'; available: adapool,"),
    (" , ", "--methods", "--methods: give at least one pooling method; available: adapool,"),
])
def test_one_check_of_pooling_names(methods, option, message):
    with pytest.raises(UnknownPoolingError) as err:
        check_methods(methods, option)
    assert str(err.value).startswith(message) and isinstance(err.value, ValueError)
    assert check_methods(" max, softpool ", "--pooling") == ["max", "softpool"]


@pytest.mark.parametrize("method,kwargs,match", [
    ("power", {"p": 0.0}, "p > 0"),
    ("power", {"p": -2.0}, "p > 0"),
    ("power", {"p": float("inf")}, "p > 0"),
    ("softpool", {"temperature": 0.0}, "temperature"),
    ("mixed", {"alpha": 1.0}, "alpha"),
    ("s3", {"grid_size": 0}, "grid_size"),
    ("lip", {"logit": "dense"}, "logit"),
    ("adapool", {"beta": "pixel"}, "beta"),
    ("stochastic", {"seed": 1, "generator": torch.Generator()}, "either seed or generator"),
    ("mixed", {"bogus": 1}, "takes: channels, alpha"),
    ("max", {"p": 2}, "does not take"),
])
def test_bad_method_args(method, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_pool(method, 2, 2, **kwargs)


@pytest.mark.parametrize("method", ALL)
def test_kernel_larger_than_input(method):
    pool = build_pool(method, 3, (3, 3, 3))
    with pytest.raises(ValueError, match="output would be empty"):
        pool(torch.rand(1, 2, 2, 8, 8))


def test_frozen_graph_refuses_learnable_methods():
    for method, kw in [("mixed", {}), ("gated", {}), ("lip", {}), ("adapool", {}), ("power", {"learnable": True})]:
        with pytest.raises(ValueError, match="frozen"):
            build_pool(method, 3, 2, frozen=True, **kw)
    with pytest.raises(ValueError, match="frozen"):
        build_adaptive_pool("mixed", 3, 1, frozen=True)
    for method in ("max", "avg", "sum", "power", "stochastic", "s3", "softpool"):
        assert isinstance(build_pool(method, 3, 2, frozen=True), nn.Module)
