"""The CUDA kernels checked on the CPU: SOFTPOOL_VIDEO_CPU_KERNEL=cuda-emulated runs the
CUDA kernels' own per-thread functions (cuda_ext/softpool_kernels.h) over the launch grid
the CUDA launcher computes. The op's test grid runs on that path through the `cpu_kernel`
fixture of test_softpool_op.py; this module tests what only the emulation can (launch grid
sizes, 32- against 64-bit indices) and how the CPU implementation is selected."""
import contextlib
import os
import subprocess
import sys

import pytest
import test_softpool_op as op_tests
import torch

import softpool_video
from softpool_video import _extension, soft_pool3d
from softpool_video.pooling import pool_args, soft_pool_reference

compiled_extension = op_tests.compiled_extension  # skip without a build, fail on a broken one
cpu_kernel_selected = op_tests.cpu_kernel_selected


@pytest.fixture(autouse=True, scope="module")
def _cuda_emulated(compiled_extension):
    with cpu_kernel_selected("cuda-emulated"):
        yield




def test_the_emulated_kernels_are_the_ones_running():
    assert _extension.cpu_kernel() == "cuda-emulated"
    assert softpool_video.extension_status().endswith("; CPU kernel: cuda-emulated")
    assert _extension._C._cpu_kernel() == (1, 1)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last_3d"])
@pytest.mark.parametrize("geometry", [(3, 1, 1), (2, 2, 0), (3, 2, 1)])
def test_grid_size_does_not_change_a_bit(layout, geometry):
    # Each index is computed by the same per-thread function whichever thread of whichever
    # launch takes it: one SM (32 blocks of 256 threads, so 19200 inputs and up to 19200
    # outputs take 3 turns of the grid-stride loop), two, and an H200's 132 (one turn).
    k, s, p = geometry
    x = torch.randn(2, 4, 6, 20, 20) * 3
    if layout == "channels_last_3d":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    results = []
    for sms in (1, 2, 132):
        with cpu_kernel_selected("cuda-emulated", sms):
            xs = x.clone().requires_grad_()
            y = soft_pool3d(xs, k, s, p)
            y.backward(torch.linspace(-1, 1, y.numel()).reshape(y.shape))
            results.append((y.detach(), xs.grad))
    for y, grad in results[1:]:
        assert torch.equal(y, results[0][0]) and torch.equal(grad, results[0][1])
    xr = x.double().requires_grad_()
    ref = soft_pool_reference(xr, pool_args(3, k, s, p))[0]
    ref.backward(torch.linspace(-1, 1, ref.numel(), dtype=torch.float64).reshape(ref.shape))
    torch.testing.assert_close(results[0][0].double(), ref, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(results[0][1].double(), xr.grad, rtol=2e-5, atol=2e-5)


@contextlib.contextmanager
def index32_limit(limit: int):
    previous = _extension._C._set_emulated_index32_limit(limit)
    try:
        yield
    finally:
        _extension._C._set_emulated_index32_limit(previous)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last_3d"])
@pytest.mark.parametrize("geometry", [(3, 1, 1, 1), (2, 2, 0, 1), (3, 2, 1, 1), ((2, 3, 3), (1, 3, 2), 1, (1, 2, 3))])
def test_32bit_and_64bit_indices_agree_bit_for_bit(layout, geometry):
    # The kernels index in 32 bits, dividing by precomputed magic numbers, whenever every
    # index of the launch fits; otherwise in int64 with plain division. Odd sizes and
    # dilation exercise every divider (sizes, strides, dilations); limit 0 forces int64.
    k, s, p, d = geometry
    x = torch.randn(2, 5, 7, 19, 23) * 3
    if layout == "channels_last_3d":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    g = None
    results = []
    for limit in (2**31 - 1, 0):
        with index32_limit(limit):
            xs = x.clone().requires_grad_()
            y = soft_pool3d(xs, k, s, p, d)
            g = torch.randn_like(y) if g is None else g
            y.backward(g)
            results.append((y.detach(), xs.grad))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    xr = x.double().requires_grad_()
    ref = soft_pool_reference(xr, pool_args(3, k, s, p, d))[0]
    ref.backward(g.double())
    torch.testing.assert_close(results[0][0].double(), ref, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(results[0][1].double(), xr.grad, rtol=2e-5, atol=2e-5)


def test_the_index32_limit_is_checked():
    with pytest.raises(ValueError, match=r"index32_limit must be in \[0, 2\*\*31 - 1\], got -1"):
        _extension._C._set_emulated_index32_limit(-1)
    assert _extension._C._set_emulated_index32_limit(2**31 - 1) == 2**31 - 1  # the device's, unchanged


def test_emulated_matches_native_kernels():
    x = torch.randn(2, 3, 5, 9, 10, dtype=torch.float64) * 5
    out = {}
    for name in ("native", "cuda-emulated"):
        with cpu_kernel_selected(name):
            xs = x.clone().requires_grad_()
            y = soft_pool3d(xs, 3, 2, 1, ceil_mode=True)
            y.pow(2).sum().backward()
            out[name] = (y.detach(), xs.grad)
    torch.testing.assert_close(out["native"][0], out["cuda-emulated"][0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out["native"][1], out["cuda-emulated"][1], rtol=1e-12, atol=1e-12)


def test_reference_selection_runs_the_pure_pytorch_path(monkeypatch):
    from softpool_video.pooling import ops

    def no_compiled_op(*args, **kwargs):
        raise AssertionError("the compiled op ran")

    monkeypatch.setattr(ops, "compiled_forward", no_compiled_op)
    x = torch.randn(1, 2, 4, 6, 6, dtype=torch.float64, requires_grad=True)
    with cpu_kernel_selected("reference"):
        assert softpool_video.extension_status().endswith("; CPU kernel: reference")
        y = soft_pool3d(x, 3, 2, 1)
        y.sum().backward()
    torch.testing.assert_close(y, soft_pool_reference(x.detach(), pool_args(3, 3, 2, 1))[0])
    with pytest.raises(AssertionError, match="the compiled op ran"):
        soft_pool3d(x, 3, 2, 1)  # cuda-emulated again: the compiled op


def test_cpu_kernel_values():
    assert _extension.parse_cpu_kernel(None) == "native"
    assert _extension.parse_cpu_kernel("") == "native"
    assert _extension.parse_cpu_kernel("CUDA-Emulated") == "cuda-emulated"
    with pytest.raises(ValueError, match=r"SOFTPOOL_VIDEO_CPU_KERNEL='cuda'.*native, cuda-emulated, reference"):
        _extension.parse_cpu_kernel("cuda")
    with pytest.raises(ValueError, match="allowed values"):
        _extension.set_cpu_kernel("fast")
    assert _extension.cpu_kernel() == "cuda-emulated"  # unchanged by the failed switch


@pytest.mark.parametrize("value,expected", [
    ("cuda-emulated", "CPU kernel: cuda-emulated (1, 1) True"),
    ("reference", "CPU kernel: reference (0, 1) True"),
    ("gpu", None),
])
def test_environment_variable_is_read_at_import(value, expected):
    code = ("import torch, softpool_video\n"
            "from softpool_video import _extension, soft_pool3d\n"
            "x = torch.randn(1, 2, 4, 6, 6)\n"
            "same = torch.allclose(soft_pool3d(x, 2), torch.ops.softpool.forward(x, [2] * 3, [2] * 3, [0] * 3,"
            " [1] * 3, False)[0], atol=1e-5)\n"
            "print(softpool_video.extension_status().split('; ')[-1], _extension._C._cpu_kernel(), same)\n")
    env = dict(os.environ, SOFTPOOL_VIDEO_CPU_KERNEL=value, PYTHONWARNINGS="ignore")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    if expected is None:
        assert result.returncode != 0
        assert ("ValueError: SOFTPOOL_VIDEO_CPU_KERNEL='gpu' is not a SoftPool CPU implementation; allowed "
                "values: native, cuda-emulated, reference (default: native)") in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected


@pytest.mark.usefixtures("one_thread")
def test_flops_are_counted_the_same_with_every_cpu_kernel():
    from softpool_video.models import count_flops, create_model

    counts = {}
    for name in _extension.CPU_KERNELS:
        with cpu_kernel_selected(name):
            torch.manual_seed(0)
            with torch.device("meta"):
                model = create_model("i3d_tiny", 10, pooling="softpool")
                clip = torch.zeros(1, 3, 16, 112, 112)
            inference = count_flops(model, clip)
            torch.manual_seed(0)
            model = create_model("r3d_tiny", 10, pooling="softpool")
            training = count_flops(model, torch.randn(2, 3, 4, 16, 16), backward=True)
            counts[name] = (inference, training)
    assert counts["native"] == counts["cuda-emulated"] == counts["reference"]
    assert min(counts["native"]) > 0
