"""The SoftPool op: compiled kernels against the pure-PyTorch reference, exact
gradients, extreme values, layouts, dtypes, tracing and argument errors.

Every CPU test about the kernels runs twice (the `cpu_kernel` fixture): with the native CPU
kernels and with SOFTPOOL_VIDEO_CPU_KERNEL=cuda-emulated, the CUDA kernels' own per-thread
functions (cuda_ext/softpool_kernels.h) run over the launch grid the CUDA launcher computes;
test_softpool_emulated.py tests the emulation itself."""
import contextlib
import os
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import softpool_video
from softpool_video import SoftPool1d, SoftPool2d, SoftPool3d, _extension, soft_pool1d, soft_pool2d, soft_pool3d
from softpool_video.pooling import pool_args, soft_pool_reference
from softpool_video.pooling.arguments import pooled_size

FUNCS = {1: soft_pool1d, 2: soft_pool2d, 3: soft_pool3d}


@pytest.fixture(autouse=True, scope="module")
def compiled_extension():
    """Skips the module on a pure-Python install; fails it when the build produced
    softpool_video._C but this process cannot load it (a broken build must not pass as skipped)."""
    if softpool_video.extension_loaded():
        return
    if _extension.extension_expected():
        pytest.fail(f"the build produced {', '.join(_extension.built_extension_files())} but it does not load "
                    f"({_extension.extension_error()}): rebuild with `make build`", pytrace=False)
    pytest.skip(f"compiled extension not built (no softpool_video/_C.*.so) or disabled: {_extension.extension_error()}")


# CPU tests that run with the native kernels only: not about the kernels, or not runnable emulated.
NATIVE_ONLY = {
    # a 2**31-element plane takes many minutes emulated (one scalar index per thread); the 64-bit
    # index path is checked emulated on small tensors by forcing it
    # (test_softpool_emulated.py::test_32bit_and_64bit_indices_agree_bit_for_bit)
    "test_64bit_indexing",
    "test_reference_path_when_extension_is_missing",  # a process without the extension
    "test_a_built_extension_that_does_not_load_fails_the_op_tests",  # about the test modules, not the kernels
    "test_torch_compile_fullgraph_with_backward",  # tracing sees the fake kernels, whatever runs on the CPU
    "test_torch_export_keeps_the_custom_op",
    "test_bad_arguments_are_named",  # Python-level argument checks, before any kernel
    "test_bad_inputs_are_named",
    "test_module_repr_and_arguments",
    "test_gpu_check_without_a_gpu_says_so_and_writes_nothing",
}


def pytest_generate_tests(metafunc):
    on_gpu = any(m.name == "cuda" for m in metafunc.definition.iter_markers())
    if metafunc.function.__name__ not in NATIVE_ONLY and not on_gpu:
        metafunc.parametrize("cpu_kernel", ["native", "cuda-emulated"], indirect=True, scope="module")


@contextlib.contextmanager
def cpu_kernel_selected(name: str, emulated_sm_count: int = 1):
    previous = _extension.cpu_kernel()
    _extension.set_cpu_kernel(name, emulated_sm_count)
    try:
        yield
    finally:
        _extension.set_cpu_kernel(previous)


@pytest.fixture(autouse=True, scope="module")
def cpu_kernel(request, compiled_extension):
    """The CPU kernels the test runs on: native, or cuda-emulated where pytest_generate_tests asks."""
    name = getattr(request, "param", "native")
    with cpu_kernel_selected(name):
        yield name


def test_the_selected_cpu_kernel_runs(cpu_kernel):
    assert _extension.cpu_kernel() == cpu_kernel
    assert softpool_video.extension_status().endswith(f"; CPU kernel: {cpu_kernel}")


def compiled(x, args):
    return torch.ops.softpool.forward(x, list(args.kernel_size), list(args.stride), list(args.padding),
                                      list(args.dilation), args.ceil_mode)


def explicit_softpool(x, args):
    """Loop over windows one by one: an oracle independent of both implementations."""
    n, c = x.shape[:2]
    sizes = x.shape[2:]
    outs = [pooled_size(sizes[i], args.kernel_size[i], args.stride[i], args.padding[i], args.dilation[i],
                        args.ceil_mode) for i in range(args.dims)]
    y = torch.empty(n, c, *outs, dtype=torch.float64)
    for o in torch.cartesian_prod(*[torch.arange(v) for v in outs]).reshape(-1, args.dims).tolist():
        ranges = []
        for i, oi in enumerate(o):
            start = oi * args.stride[i] - args.padding[i]
            idx = [start + j * args.dilation[i] for j in range(args.kernel_size[i])]
            ranges.append([p for p in idx if 0 <= p < sizes[i]])
        window = x.double()[(slice(None), slice(None)) + torch.meshgrid(
            *[torch.tensor(r) for r in ranges], indexing="ij")].reshape(n, c, -1)
        w = torch.softmax(window, dim=-1)
        y[(slice(None), slice(None)) + tuple(o)] = (w * window).sum(-1)
    return y


GEOMETRIES = [
    # (dims, kernel, stride, padding, dilation, ceil_mode, input spatial size)
    (1, 3, 2, 1, 1, False, (11,)),
    (1, 2, 3, 0, 2, True, (10,)),
    (2, (3, 2), (2, 1), (1, 0), 1, True, (7, 6)),
    (2, 3, 1, 1, (2, 1), False, (6, 5)),
    (3, 2, 2, 0, 1, False, (4, 6, 5)),            # sizes not divisible by the stride
    (3, 3, 2, 1, 1, True, (5, 6, 7)),             # kernel != stride, overlapping
    (3, (1, 2, 2), (1, 2, 2), 0, 1, False, (1, 4, 4)),  # depth-1 input (reference defect 2)
    (3, (3, 3, 3), (1, 1, 1), (1, 1, 1), 1, False, (3, 4, 5)),  # I3D's stride-1 SAME pool
    (3, 2, (1, 2, 1), (1, 0, 1), (1, 1, 2), True, (4, 5, 6)),
]


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_matches_explicit_window_loop(geometry):
    dims, k, s, p, d, ceil, size = geometry
    args = pool_args(dims, k, s, p, d, ceil)
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    out, lse = compiled(x, args)
    torch.testing.assert_close(out, explicit_softpool(x, args), rtol=1e-12, atol=1e-12)
    ref_out, ref_lse = soft_pool_reference(x, args)
    torch.testing.assert_close(out, ref_out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lse, ref_lse, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_gradcheck_float64(geometry):
    dims, k, s, p, d, ceil, size = geometry
    x = torch.randn(1, 2, *size, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: FUNCS[dims](t, k, s, p, d, ceil), (x,))


def test_gradient_is_the_exact_softpool_gradient():
    # dy/da_i = w_i (1 + a_i - y): one window, checked by hand.
    a = torch.tensor([[[1.0, 2.0, 4.0]]], dtype=torch.float64, requires_grad=True)
    y = soft_pool1d(a, 3)
    y.sum().backward()
    w = torch.softmax(a.detach(), -1)
    expected = w * (1 + a.detach() - (w * a.detach()).sum())
    torch.testing.assert_close(a.grad, expected)
    # The published backward treats w as constant (grad = w): not this.
    assert not torch.allclose(a.grad, w)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_geometries_forward_and_backward(data):
    dims = data.draw(st.integers(1, 3))
    k = tuple(data.draw(st.integers(1, 3)) for _ in range(dims))
    s = tuple(data.draw(st.integers(1, 3)) for _ in range(dims))
    d = tuple(data.draw(st.integers(1, 2)) for _ in range(dims))
    p = tuple(data.draw(st.integers(0, (di * (ki - 1) + 1) // 2)) for ki, di in zip(k, d))
    ceil = data.draw(st.booleans())
    size = tuple(data.draw(st.integers(di * (ki - 1) + 1, 9)) for ki, di in zip(k, d))
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]))
    args = pool_args(dims, k, s, p, d, ceil)
    x = torch.randn(2, 3, *size, dtype=dtype) * data.draw(st.sampled_from([1.0, 30.0]))
    try:
        ref_out, _ = soft_pool_reference(x, args)
    except Exception:
        pytest.skip("geometry rejected")
    if any(all(not (0 <= o * s[i] - p[i] + j * d[i] < size[i]) for j in range(k[i]))
           for i in range(dims) for o in range(ref_out.shape[2 + i])):
        return  # a window of padding only: rejected by design, tested elsewhere
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-5)
    xc = x.clone().requires_grad_()
    xr = x.clone().requires_grad_()
    out = FUNCS[dims](xc, k, s, p, d, ceil)
    ref = soft_pool_reference(xr, args)[0]
    torch.testing.assert_close(out, ref, **tol)
    g = torch.randn_like(out)
    out.backward(g)
    ref.backward(g)
    scale = max(1.0, xr.grad.abs().max().item())
    torch.testing.assert_close(xc.grad / scale, xr.grad / scale, **tol)


@pytest.mark.parametrize("magnitude", [88.0, 100.0, 1e3, 1e4])
def test_large_inputs_stay_finite_and_within_window(magnitude):
    # fp32 above ~88 overflows exp without max subtraction (reference defect 6).
    x = (torch.randn(2, 4, 4, 8, 8) * magnitude).requires_grad_()
    y = soft_pool3d(x, 2)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    windows = x.detach().reshape(2, 4, 2, 2, 4, 2, 4, 2).permute(0, 1, 2, 4, 6, 3, 5, 7).reshape(2, 4, 2, 4, 4, 8)
    assert (y >= windows.amin(-1)).all() and (y <= windows.amax(-1)).all()


def test_mixed_huge_and_tiny_values():
    x = torch.tensor([[[1e4, -1e4, 1e-30, 0.0, -1e4, -1e4]]])
    y = soft_pool1d(x, 2)
    torch.testing.assert_close(y, torch.tensor([[[1e4, 0.0, -1e4]]]), rtol=0, atol=1e-6)


def test_constant_window_returns_the_constant():
    x = torch.full((1, 2, 3, 4, 4), 7.25)
    assert torch.equal(soft_pool3d(x, 2), torch.full((1, 2, 1, 2, 2), 7.25))


def test_padding_positions_take_no_part():
    # Padding acts as -inf: a window half in the padding equals SoftPool of its real half.
    x = torch.tensor([[[-5.0, -6.0, 3.0]]], dtype=torch.float64)
    y = soft_pool1d(x, 2, stride=2, padding=1)
    w = torch.softmax(x[0, 0, 1:], 0)
    torch.testing.assert_close(y[0, 0], torch.stack([x[0, 0, 0], (w * x[0, 0, 1:]).sum()]))


def test_ceil_mode_window_past_the_edge():
    x = torch.tensor([[[1.0, 2.0, 3.0, 4.0, -50.0]]], dtype=torch.float64)
    y = soft_pool1d(x, 2, ceil_mode=True)
    assert y.shape[-1] == 3
    assert y[0, 0, 2].item() == -50.0  # the last window holds only -50


def test_minus_inf_inputs_get_zero_weight_and_zero_gradient():
    x = torch.tensor([[[float("-inf"), 1.0, float("-inf"), float("-inf")]]], requires_grad=True)
    y = soft_pool1d(x, 2)
    assert y[0, 0, 0].item() == 1.0 and y[0, 0, 1].item() == float("-inf")
    y[0, 0, 0].backward()
    assert torch.equal(x.grad, torch.tensor([[[0.0, 1.0, 0.0, 0.0]]]))


def test_nan_propagates_to_its_window_only():
    x = torch.randn(1, 1, 8)
    x[0, 0, 3] = float("nan")
    y = soft_pool1d(x, 2)
    assert torch.isnan(y[0, 0, 1]) and torch.isfinite(y[0, 0, [0, 2, 3]]).all()


def test_per_channel_not_across_channels():
    # The published CPU fallback mixes channels (reference defect 5).
    x = torch.randn(1, 3, 4, 4, 4, dtype=torch.float64)
    y = soft_pool3d(x, 2)
    for c in range(3):
        torch.testing.assert_close(y[:, c:c + 1], soft_pool3d(x[:, c:c + 1], 2))
    assert (y < 0).any()  # no clamp to >= 0 either


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-3), (torch.bfloat16, 1.6e-2)])
def test_reduced_precision_matches_float32(dtype, tol):
    x = torch.randn(2, 4, 6, 10, 10) * 4
    xl = x.to(dtype).requires_grad_()
    x32 = xl.detach().float().requires_grad_()
    y = soft_pool3d(xl, 3, 2, 1)
    y32 = soft_pool3d(x32, 3, 2, 1)
    assert y.dtype == dtype
    torch.testing.assert_close(y.float(), y32, rtol=tol, atol=tol * 4)
    g = torch.randn_like(y32)
    y.backward(g.to(dtype))
    y32.backward(g)
    assert xl.grad.dtype == dtype
    # y and grad_out are stored in the low precision, so (1 + a - y) carries
    # their rounding: compare against the gradient's scale.
    scale = x32.grad.abs().max()
    assert ((xl.grad.float() - x32.grad).abs().max() / scale).item() < 4 * tol


def test_fp16_large_values_do_not_overflow():
    x = (torch.randn(1, 2, 4, 8, 8) * 1000).half()
    assert torch.isfinite(soft_pool3d(x, 2)).all()


@pytest.mark.parametrize("layout", ["channels_last_3d", "transposed", "sliced"])
def test_layouts_match_contiguous(layout):
    base = torch.randn(2, 5, 6, 9, 8, dtype=torch.float64)
    if layout == "channels_last_3d":
        x = base.contiguous(memory_format=torch.channels_last_3d)
    elif layout == "transposed":
        x = base.transpose(3, 4).contiguous().transpose(3, 4)
    else:
        x = torch.randn(2, 5, 12, 9, 16, dtype=torch.float64)[:, :, ::2, :, ::2]
        base = x.contiguous()
    x = x.requires_grad_()
    b = base.clone().requires_grad_()
    y = soft_pool3d(x, 3, 2, 1, ceil_mode=True)
    yb = soft_pool3d(b, 3, 2, 1, ceil_mode=True)
    torch.testing.assert_close(y, yb, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(yb)
    y.backward(g)
    yb.backward(g)
    torch.testing.assert_close(x.grad, b.grad, rtol=1e-12, atol=1e-12)
    if layout == "channels_last_3d":
        assert y.is_contiguous(memory_format=torch.channels_last_3d)


def test_channels_last_2d():
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(soft_pool2d(x, 2, 1, 1), soft_pool2d(x.contiguous(), 2, 1, 1))


def test_unbatched_input():
    x = torch.randn(3, 4, 6, 6)
    torch.testing.assert_close(soft_pool3d(x, 2), soft_pool3d(x.unsqueeze(0), 2).squeeze(0))
    assert SoftPool2d(2)(torch.randn(3, 6, 6)).shape == (3, 3, 3)


@pytest.mark.parametrize("geometry", [(2, 2, 0), (3, 2, 1)])
def test_large_planes_take_the_uncached_backward_path(geometry):
    # The CPU backward caches each plane's outputs spread along w when that fits
    # in 8 MiB; a bigger plane takes the per-lane gather path. Both must agree.
    # Values spanning more than the plane shift allows (x 30): the per-window path.
    k, s, p = geometry
    x = (torch.randn(1, 1, 8, 600, 700, dtype=torch.float64) * 30).requires_grad_()
    xr = x.detach().clone().requires_grad_()
    y = soft_pool3d(x, k, s, p)
    yr = soft_pool_reference(xr, pool_args(3, k, s, p))[0]
    g = torch.randn_like(y)
    y.backward(g)
    yr.backward(g)
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-10, atol=1e-10)


# The CPU kernels shift a whole (n, c) plane by its max when the plane is finite
# and spans at most 32 (one exp per input); other planes take the per-window
# path. The tests below mix both kinds of plane in one call and probe the edges.
SHIFT_RANGE = 32.0


def _check_against_float64_reference(x, k, s, p, grad_out=None, tol=2e-5):
    xc = x.clone().requires_grad_()
    xr = x.double().requires_grad_()
    y = soft_pool3d(xc, k, s, p)
    ref = soft_pool_reference(xr, pool_args(3, k, s, p))[0]
    torch.testing.assert_close(y.double(), ref, rtol=tol, atol=tol)
    g = torch.randn_like(y) if grad_out is None else grad_out
    y.backward(g)
    ref.backward(g.double())
    scale = max(1.0, xr.grad.abs().max().item())
    torch.testing.assert_close(xc.grad.double() / scale, xr.grad / scale, rtol=tol, atol=tol)
    return y, xc.grad


@pytest.mark.parametrize("geometry", [(3, 2, 1), (3, 1, 1), ((1, 3, 3), (1, 2, 2), (0, 1, 1)), (2, 2, 0)])
def test_planes_of_both_paths_in_one_call(geometry):
    k, s, p = geometry
    x = torch.randn(2, 4, 5, 9, 10)
    x[0, 1] *= 30  # range ~ 200: per-window path
    x[1, 0, 2, 4, 5] = -1e4  # one far outlier: per-window forward, its weight is 0 either way
    x[1, 2, 1:3] += 25  # a step inside the shifted range
    _check_against_float64_reference(x, k, s, p)


@pytest.mark.parametrize("span", [SHIFT_RANGE - 0.1, SHIFT_RANGE + 0.1])
def test_windows_far_below_the_plane_max(span):
    # Half the plane at the max, half `span` below: just inside the shifted
    # path, those windows' exps are ~e^-32 relative to the plane's shift and
    # must keep full precision; just outside, the per-window path takes over.
    x = torch.randn(1, 2, 4, 8, 12) * 0.5
    x[:, :, :, :, 6:] -= span
    x[:, :, :, 0, 0] = x.amax() + 0.5  # pin the plane's range
    x[:, :, :, -1, -1] = x[:, :, :, 0, 0] - span
    _check_against_float64_reference(x, 3, 2, 1)
    _check_against_float64_reference(x, 3, 1, 1)


def test_huge_gradients_do_not_overflow():
    # g exp(M - lse) summed over windows would overflow fp32 with g ~ 1e36: that
    # plane's backward takes the per-window path, which stays finite.
    x = torch.randn(1, 2, 4, 10, 10) * 3
    y = soft_pool3d(x, 3, 2, 1)
    g = torch.randn_like(y) * 1e36
    _, grad = _check_against_float64_reference(x, 3, 2, 1, grad_out=g)
    assert torch.isfinite(grad).all()


def test_minus_inf_inside_a_finite_window_has_zero_gradient():
    x = torch.randn(1, 1, 4, 6, 6)
    x[0, 0, 1, 2, 3] = float("-inf")
    x = x.requires_grad_()
    y = soft_pool3d(x, 3, 1, 1)
    assert torch.isfinite(y).all()
    y.backward(torch.randn_like(y))
    assert x.grad[0, 0, 1, 2, 3].item() == 0 and torch.isfinite(x.grad).all()


def test_inputs_no_window_covers_get_zero_gradient_whatever_they_hold():
    # Stride 3 > kernel 2: positions 2 and 5 are in no window, NaN and inf there change nothing.
    x = torch.randn(2, 3, 8)
    x[:, :, 2] = float("nan")
    x[:, :, 5] = float("inf")
    x = x.requires_grad_()
    y = soft_pool1d(x, 2, stride=3)
    assert torch.isfinite(y).all()
    y.backward(torch.randn_like(y))
    assert torch.isfinite(x.grad).all()
    assert (x.grad[:, :, [2, 5]] == 0).all()


@pytest.mark.parametrize("device, shape", [("cpu", (2, 8, 6, 14, 14)),
                                           pytest.param("cuda", (4, 16, 8, 28, 28), marks=pytest.mark.cuda)])
def test_backward_is_deterministic(device, shape):
    x = torch.randn(*shape, device=device, requires_grad=True)
    grads = []
    for _ in range(2):
        x.grad = None
        soft_pool3d(x, 3, 2, 1).pow(2).sum().backward()
        grads.append(x.grad.clone())
    assert torch.equal(grads[0], grads[1])


def _available_memory_bytes() -> int:
    with open("/proc/meminfo") as f:
        info = dict(line.split(":", 1) for line in f)
    return int(info["MemAvailable"].split()[0]) * 1024


def _check_64bit_indexing(device):
    # One (n, c) plane of 2**31 + 4M fp16 elements: offsets past the last
    # windows overflow int32, so they are right only with 64-bit indexing.
    x = torch.zeros(1, 1, 2, 32768, 32832, dtype=torch.float16, device=device)
    assert x.numel() > 2**31
    tail = torch.randn(1, 1, 2, 4, 8, dtype=torch.float16) * 3
    x[..., -4:, -8:] = tail.to(device)
    x.requires_grad_()
    y = soft_pool3d(x, 2)
    expected = soft_pool_reference(tail.double(), pool_args(3, 2))[0]
    torch.testing.assert_close(y[..., -2:, -4:].cpu().double(), expected, rtol=2e-3, atol=2e-3)
    grad_out = torch.zeros_like(y)
    grad_out[..., -2:, -4:] = 1
    (grad,) = torch.autograd.grad(y, x, grad_out)
    t = tail.double().requires_grad_()
    soft_pool_reference(t, pool_args(3, 2))[0].sum().backward()
    torch.testing.assert_close(grad[..., -4:, -8:].cpu().double(), t.grad, rtol=1e-2, atol=1e-2)
    assert grad[..., -8:-4, -8:].abs().max().item() == 0  # windows with zero grad_out


@pytest.mark.slow
def test_64bit_indexing():
    if _available_memory_bytes() < 14 * 2**30:
        pytest.skip("needs about 14 GiB of free memory")
    _check_64bit_indexing("cpu")


def test_module_repr_and_arguments():
    pool = SoftPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), ceil_mode=True)
    assert repr(pool) == ("SoftPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), "
                          "dilation=(1, 1, 1), ceil_mode=True)")
    assert SoftPool1d(3).stride == (3,)


def test_torch_compile_fullgraph_with_backward():
    model = torch.nn.Sequential(torch.nn.Conv3d(2, 4, 3, padding=1), SoftPool3d(2), torch.nn.ReLU())
    x = torch.randn(2, 2, 4, 8, 8, requires_grad=True)
    compiled_model = torch.compile(model, fullgraph=True, backend="aot_eager")
    y = compiled_model(x)
    y.sum().backward()
    grad = x.grad.clone()
    x.grad = None
    y_eager = model(x)
    y_eager.sum().backward()
    torch.testing.assert_close(y, y_eager)
    torch.testing.assert_close(grad, x.grad)


def test_torch_export_keeps_the_custom_op():
    model = torch.nn.Sequential(torch.nn.Conv3d(2, 4, 3, padding=1), SoftPool3d(3, 2, 1))
    x = torch.randn(1, 2, 4, 8, 8)
    exported = torch.export.export(model, (x,))
    targets = {str(node.target) for node in exported.graph.nodes}
    assert "softpool.forward.default" in targets
    torch.testing.assert_close(exported.module()(x), model(x))


BAD_ARGUMENTS = [
    (dict(kernel_size=0), "kernel_size must be > 0"),
    (dict(kernel_size=2, stride=0), "stride must be > 0"),
    (dict(kernel_size=2, stride=-1), "stride must be > 0"),
    (dict(kernel_size=2, padding=2), "padding must be between 0 and half"),
    (dict(kernel_size=2, dilation=0), "dilation must be > 0"),
    (dict(kernel_size=(2, 2)), "kernel_size must be an int or a sequence of 3 ints"),
    (dict(kernel_size=9), "output would be empty"),
    (dict(kernel_size=2, padding=1, dilation=5), "covers only padding"),
]


@pytest.mark.parametrize("kwargs,message", BAD_ARGUMENTS)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        soft_pool3d(torch.randn(1, 1, 4, 4, 4), **kwargs)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="dtype must be float16, bfloat16, float32 or float64"):
        soft_pool3d(torch.ones(1, 1, 4, 4, 4, dtype=torch.int64), 2)
    with pytest.raises(ValueError, match=r"must have shape \(N, C, \*3 spatial dims\)"):
        soft_pool3d(torch.randn(4, 4), 2)


def test_compiled_op_rejects_bad_arguments_itself():
    x = torch.randn(1, 1, 4, 4, 4)
    with pytest.raises(RuntimeError, match="kernel_size must be > 0"):
        torch.ops.softpool.forward(x, [0, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], False)
    with pytest.raises(RuntimeError, match="padding must be between 0 and half"):
        torch.ops.softpool.forward(x, [2, 2, 2], [2, 2, 2], [3, 0, 0], [1, 1, 1], False)
    with pytest.raises(RuntimeError, match="input dtype must be"):
        torch.ops.softpool.forward(x.long(), [2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], False)
    with pytest.raises(RuntimeError, match="output would be empty"):
        torch.ops.softpool.forward(x, [5, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], False)


def test_compiled_backward_checks_what_it_is_handed():
    x = torch.randn(1, 2, 4, 4, 4)
    args = ([2, 2, 2], [2, 2, 2], [0, 0, 0], [1, 1, 1], False)
    out, lse = torch.ops.softpool.forward(x, *args)
    grad = torch.randn_like(out)
    with pytest.raises(RuntimeError, match="must have the pooled shape"):
        torch.ops.softpool.backward(grad[..., :1], x, out, lse, *args)
    with pytest.raises(RuntimeError, match="lse must be Float, got Double"):
        torch.ops.softpool.backward(grad, x, out, lse.double(), *args)
    # grad_out and out in another dtype are read in x's dtype
    expected = torch.ops.softpool.backward(grad, x, out, lse, *args)
    torch.testing.assert_close(torch.ops.softpool.backward(grad.double(), x, out.double(), lse, *args), expected)


def test_reference_path_when_extension_is_missing():
    code = (
        "import warnings, torch\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import softpool_video\n"
        "    from softpool_video import soft_pool3d\n"
        "    x = torch.randn(1, 2, 4, 4, 4, dtype=torch.float64, requires_grad=True)\n"
        "    y = soft_pool3d(x, 2)\n"
        "    y.sum().backward()\n"
        "msgs = [str(w.message) for w in caught if 'softpool_video._C' in str(w.message)]\n"
        "print(len(msgs), softpool_video.extension_loaded(), tuple(y.shape))\n"
    )
    env = dict(os.environ, SOFTPOOL_VIDEO_NO_EXTENSION="1")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == "1 False (1, 2, 2, 2, 2)"


@pytest.mark.slow
def test_a_built_extension_that_does_not_load_fails_the_op_tests(tmp_path):
    """The build left _C here, so a process that cannot load it (here: its import is blocked, as an
    ABI mismatch would) must fail these tests, not skip them; disabling it on purpose still skips."""
    (tmp_path / "test_op.py").write_text(
        "import softpool_video\n"
        "from test_softpool_op import compiled_extension\n"
        "def test_runs():\n"
        "    assert softpool_video.extension_loaded()\n")
    blocked = ("import sys, pytest; sys.modules['softpool_video._C'] = None; "
               "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', sys.argv[1]]))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]))
    broken = subprocess.run([sys.executable, "-c", blocked, str(tmp_path)], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "1 error" in broken.stdout and "but it does not load" in broken.stdout, broken.stdout
    env["SOFTPOOL_VIDEO_NO_EXTENSION"] = "1"
    disabled = subprocess.run([sys.executable, "-c", blocked, str(tmp_path)], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
    assert disabled.returncode == 0 and "1 skipped" in disabled.stdout, disabled.stdout + disabled.stderr


@pytest.mark.cuda
@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_cuda_matches_cpu(geometry, dtype):
    dims, k, s, p, d, ceil, size = geometry
    x = torch.randn(2, 3, *size, dtype=dtype) * 3
    xc = x.clone().requires_grad_()
    xg = x.cuda().requires_grad_()
    yc = FUNCS[dims](xc, k, s, p, d, ceil)
    yg = FUNCS[dims](xg, k, s, p, d, ceil)
    tol = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
    torch.testing.assert_close(yg.cpu(), yc, rtol=tol, atol=tol)
    g = torch.randn_like(yc)
    yc.backward(g)
    yg.backward(g.cuda())
    torch.testing.assert_close(xg.grad.cpu(), xc.grad, rtol=tol * 2, atol=tol * 4)


@pytest.mark.cuda
def test_cuda_channels_last_and_large_values():
    x = (torch.randn(2, 8, 6, 10, 10, device="cuda") * 1e4).contiguous(memory_format=torch.channels_last_3d)
    x.requires_grad_()
    y = soft_pool3d(x, 3, 2, 1)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    torch.testing.assert_close(y.cpu(), soft_pool3d(x.detach().cpu(), 3, 2, 1), rtol=1e-5, atol=1e-2)


CUDA_TOL = {torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def _check_cuda_against_float64_reference(x, pool, args, tol):
    """Forward and backward of `pool` on CUDA tensor `x` against the reference run in
    float64 on the same (rounded) values; gradients compared at the gradient's scale."""
    xg = x.detach().requires_grad_()  # a view of x: keeps its strides
    xr = x.detach().double().requires_grad_()
    y = pool(xg)
    ref = soft_pool_reference(xr, args)[0]
    assert y.dtype == x.dtype and y.device == x.device
    torch.testing.assert_close(y.double(), ref, rtol=tol, atol=tol)
    g = torch.randn_like(ref).to(x.dtype)
    y.backward(g)
    ref.backward(g.double())
    assert xg.grad.dtype == x.dtype
    scale = max(1.0, xr.grad.abs().max().item())
    assert ((xg.grad.double() - xr.grad).abs().max() / scale).item() < 4 * tol
    return y


@pytest.mark.cuda
@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_matches_float64_reference(geometry, dtype):
    dims, k, s, p, d, ceil, size = geometry
    x = (torch.randn(2, 3, *size, device="cuda") * 3).to(dtype)
    _check_cuda_against_float64_reference(x, lambda t: FUNCS[dims](t, k, s, p, d, ceil),
                                          pool_args(dims, k, s, p, d, ceil), CUDA_TOL[dtype])


@pytest.mark.cuda
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_cuda_gradcheck_float64(geometry):
    dims, k, s, p, d, ceil, size = geometry
    x = torch.randn(1, 2, *size, dtype=torch.float64, device="cuda", requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: FUNCS[dims](t, k, s, p, d, ceil), (x,))


@pytest.mark.cuda
@pytest.mark.parametrize("layout", ["contiguous", "channels_last_3d", "channels_last_2d", "sliced"])
@pytest.mark.parametrize("geometry", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_cuda_layouts_and_grid_stride_loop(layout, geometry):
    # More inputs (and with stride 1 outputs) than one launch has threads (32 blocks of
    # 256 per SM): the grid-stride loop takes several turns.
    k, s, p = geometry
    threads = torch.cuda.get_device_properties(0).multi_processor_count * 32 * 256
    if layout == "channels_last_2d":
        x = (torch.randn(4, 16, 8 * 64, 64, device="cuda") * 3).contiguous(memory_format=torch.channels_last)
        pool, args = (lambda t: soft_pool2d(t, k, s, p)), pool_args(2, k, s, p)
    else:
        x = torch.randn(4, 16, 16 if layout != "sliced" else 32, 64, 64 if layout != "sliced" else 128,
                        device="cuda") * 3
        if layout == "channels_last_3d":
            x = x.contiguous(memory_format=torch.channels_last_3d)
        elif layout == "sliced":
            x = x[:, :, ::2, :, ::2]
            assert not x.is_contiguous()
        pool, args = (lambda t: soft_pool3d(t, k, s, p)), pool_args(3, k, s, p)
    assert x.numel() > 2 * threads
    y = _check_cuda_against_float64_reference(x, pool, args, CUDA_TOL[torch.float32])
    if layout.startswith("channels_last"):
        fmt = torch.channels_last if layout == "channels_last_2d" else torch.channels_last_3d
        assert y.is_contiguous(memory_format=fmt)


@pytest.mark.cuda
def test_cuda_64bit_indexing():
    free, _ = torch.cuda.mem_get_info()
    if free < 16 * 2**30:
        pytest.skip("needs about 16 GiB of free GPU memory")
    _check_64bit_indexing("cuda")


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tree(path):
    """{file: (size, mtime)} under path (empty when it does not exist)."""
    files = {}
    for folder, _, names in os.walk(path):
        for name in names:
            st = os.stat(os.path.join(folder, name))
            files[os.path.join(folder, name)] = (st.st_size, st.st_mtime_ns)
    return files


def test_gpu_check_without_a_gpu_says_so_and_writes_nothing(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: `make gpu-check` runs the checks")
    results = os.path.join(ROOT, "runs", "gpu_check")
    before = _tree(results)
    result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gpu_check.py")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and result.stderr == ""
    assert result.stdout.startswith("gpu-check: no CUDA GPU on this machine")
    assert _tree(results) == before and os.listdir(tmp_path) == []


def test_two_threads_match_one():
    x = torch.randn(2, 8, 6, 20, 20, requires_grad=True)
    results = []
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            x.grad = None
            y = soft_pool3d(x, 3, 2, 1)
            y.pow(2).sum().backward()
            results.append((y.detach().clone(), x.grad.clone()))
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
