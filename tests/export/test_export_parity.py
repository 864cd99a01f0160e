"""What an export is checked with: the parity rule (values within atol + rtol x row scale,
same top-5), the standard-op SoftPool form that ONNX and decomposed pt2 files hold (against
the float64 reference, in PyTorch and in onnxruntime), the choice of the parity clip, and
every registered model exported to ONNX and pt2 (tiny ones in `make test`, the rest in `make test-matrix`).
"""
from __future__ import annotations

import itertools
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from data_fixtures import write_video

import softpool_video  # noqa: F401  (registers the SoftPool op)
from softpool_video.commands.export import main as export_main
from softpool_video.export import ParityClipError, example_clip, export_checkpoint
from softpool_video.export import api as export_api
from softpool_video.export.decompose import holds_softpool_op
from softpool_video.export.onnx_export import export_onnx, standard_domains_only
from softpool_video.export.pt2_export import export_pt2
from softpool_video.export.verify import TOLERANCES, Tolerance, check_logits, compare, tolerance_for
from softpool_video.models import create_model, list_models
from softpool_video.pooling import pool_args, soft_pool_reference
from softpool_video.pooling.arguments import check_input
from softpool_video.pooling.onnx_form import soft_pool_onnx

# --- the parity rule ----------------------------------------------------------------------------


def _large_logits(classes: int = 400, seed: int = 0) -> torch.Tensor:
    """Two rows of logits reaching 365 (the I3D of issue 15), distinct by > 0.05 near the top."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.randn(2, classes, generator=g) * 60
    rows[:, :5] = torch.tensor([365.0, 340.0, 321.5, 300.25, 280.0])
    return rows


def test_large_logits_with_float32_rounding_pass_where_an_absolute_tolerance_failed():
    expected = _large_logits()
    got = expected.clone()
    got[0, 0] += 1.5e-4  # the 365 logit, 1.53e-4 away as in the failing export
    got[1, 7] -= 1.5e-4  # a smaller logit of the row carries the same absolute rounding error
    check = check_logits(got, expected)
    assert check["passed"] and check["top_k_match"] and check["top_k"] == 5
    assert check["max_abs_diff"] == pytest.approx(1.5e-4, rel=0.05)
    assert 0 < check["max_rel_diff"] < 1e-3  # reported too (elementwise, as assert_close does)
    assert (check["rtol"], check["atol"]) == (TOLERANCES[torch.float32].rtol, TOLERANCES[torch.float32].atol)
    # what the old rule said about the same pair
    assert not float((got - expected).abs().max()) < 1e-4


@pytest.mark.parametrize("damage", ["logit_1pct", "small_logit_10pct", "swap_top5", "swap_rank5_6", "nan"])
def test_a_wrong_export_fails(damage):
    expected = _large_logits()
    got = expected.clone()
    if damage == "logit_1pct":
        got[0, 0] *= 1.01
    elif damage == "small_logit_10pct":
        got[1, 9] = expected[1, 9] * 1.1 + 1.0  # an ordinary logit of a row reaching 365
    elif damage == "swap_top5":
        got[0, [1, 3]] = expected[0, [3, 1]]
    elif damage == "swap_rank5_6":  # a class from outside the top-5 enters it
        sixth = int(expected[0].topk(6).indices[5])
        got[0, [4, sixth]] = expected[0, [sixth, 4]]
    else:
        got[1, 2] = float("nan")
    check = check_logits(got, expected)
    assert not check["passed"] and check["failures"]
    if damage.startswith("swap") or damage == "nan":
        assert not check["top_k_match"]


def test_ranking_allows_ties_and_near_ties_but_not_a_swap_the_values_cannot_explain():
    tol = Tolerance(rtol=1e-4, atol=1e-4)
    expected = torch.tensor([[10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 1.0]])
    bound = 1e-4 + 1e-4 * 10.0
    # exact tie at the top-5 boundary: either class may be 5th
    tied = expected.clone()
    tied[0, 5] = 6.0
    assert check_logits(tied[:, [0, 1, 2, 3, 5, 4, 6]], tied, tol)["passed"]
    # near-tie (closer than the tolerance) swapped by rounding: passes
    near = expected.clone()
    near[0, 5] = 6.0 - 0.5 * bound
    got = near.clone()
    got[0, 4], got[0, 5] = near[0, 4] - 0.3 * bound, near[0, 5] + 0.3 * bound
    assert got[0].topk(5).indices.tolist() != near[0].topk(5).indices.tolist()
    assert check_logits(got, near, tol)["passed"]
    # classes 1.5 tolerances apart swapped by errors each within the tolerance: the values
    # pass, the ranking does not
    apart = expected.clone()
    apart[0, 5] = 6.0 - 1.5 * bound
    got = apart.clone()
    got[0, 4], got[0, 5] = apart[0, 4] - 0.9 * bound, apart[0, 5] + 0.9 * bound
    check = check_logits(got, apart, tol)
    assert check["max_abs_diff"] <= bound and not check["passed"] and not check["top_k_match"]
    assert "rank 5" in check["failures"][0]


def test_top_k_is_at_most_the_number_of_classes_and_tolerances_follow_the_dtype():
    expected = torch.tensor([[2.0, 1.0, 0.5]])
    assert check_logits(expected + 1e-6, expected)["top_k"] == 3
    assert check_logits(expected.flip(-1), expected)["passed"] is False
    assert tolerance_for(torch.float16).rtol > tolerance_for(torch.float32).rtol > tolerance_for(torch.float64).rtol
    assert tolerance_for(torch.bfloat16).rtol >= tolerance_for(torch.float16).rtol
    half = expected.half()
    assert check_logits(half + 1e-3, half)["passed"] and not check_logits(expected + 1e-3, expected)["passed"]
    with pytest.raises(ValueError, match="no parity tolerance"):
        tolerance_for(torch.int64)


def test_compare_reports_both_differences_over_every_input():
    net = torch.nn.Linear(4, 6)
    inputs = [torch.randn(1, 4), torch.randn(3, 4)]
    check = compare(net, lambda x: net(x).detach().numpy() + 1e-5, inputs)
    assert check["passed"] and check["batch_sizes"] == [1, 3]
    assert check["max_abs_diff"] == pytest.approx(1e-5, rel=0.1) and check["max_rel_diff"] > 0
    assert not compare(net, lambda x: net(x) * 1.01, inputs)["passed"]


# --- the standard-op SoftPool form --------------------------------------------------------------

SIZES = {1: [(7,), (5,)], 2: [(7, 5), (4, 6)], 3: [(5, 4, 7), (3, 5, 4)]}
MIXED_3D = [((1, 3, 3), (1, 2, 2), (0, 1, 1), 1, False), ((2, 2, 2), (2, 2, 2), 0, 1, True),
            ((3, 1, 2), (1, 3, 2), (1, 0, 1), 1, True), ((2, 3, 1), (3, 1, 2), (1, 1, 0), (1, 2, 1), False)]


def geometry_grid(dims: int, size: tuple[int, ...]) -> list:
    """kernel 1-3, stride 1-3, padding 0..k//2, ceil_mode off/on, dilation 1-2 (all the
    valid ones for `size`), plus per-dim mixed geometries in 3D (I3D's among them)."""
    found = []
    specs = [(k, s, p, d, c) for k, s, c in itertools.product((1, 2, 3), (1, 2, 3), (False, True))
             for p in range(k // 2 + 1) for d in (1, 2)]
    if dims == 3:
        specs += MIXED_3D
    for k, s, p, d, c in specs:
        try:
            args = pool_args(dims, k, s, p, d, c)
            check_input(torch.zeros(1, 1, *size), args)
        except ValueError:
            continue
        found.append(args)
    return found


def hard_inputs(size: tuple[int, ...], seed: int = 0) -> dict[str, torch.Tensor]:
    """(2, 3, *size) inputs: ordinary, magnitude 1e4, and planes whose range is 2e4 (a shift by
    the plane's max underflows every window of them that does not hold that max)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, *size, generator=g)
    huge = x.clone()
    huge[0, 0] = torch.linspace(-1e4, 1e4, x[0, 0].numel()).reshape(x[0, 0].shape)
    huge[1, 2] = -1e4
    huge[1, 2].view(-1)[0] = 1e4
    return {"normal": x, "large": x * 1e4, "huge_range": huge}


def check_against_reference(x: torch.Tensor, args, out: torch.Tensor, lse: torch.Tensor | None = None) -> None:
    ref, ref_lse = soft_pool_reference(x.double(), args)
    assert out.shape == ref.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), ref, rtol=1e-6, atol=1e-5)
    if lse is not None:
        torch.testing.assert_close(lse.double(), ref_lse, rtol=1e-6, atol=1e-5)
    pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[args.dims]
    geometry = (list(args.kernel_size), list(args.stride), list(args.padding), list(args.dilation), args.ceil_mode)
    hi, lo = pool(x, *geometry), -pool(-x, *geometry)
    assert (out <= hi).all() and (out >= lo).all()  # within [min, max] of every window


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_standard_op_form_matches_the_float64_reference_in_pytorch(dims):
    cases = 0
    for size in SIZES[dims]:
        inputs = hard_inputs(size)
        for args in geometry_grid(dims, size):
            for x in inputs.values():
                out, lse = soft_pool_onnx(x, args)
                check_against_reference(x, args, out, lse)
                cases += 1
    assert cases > 150


def test_standard_op_form_keeps_low_precision_dtypes_and_skips_lse_when_asked():
    args = pool_args(3, 3, 2, 1, 1, True)
    x = torch.randn(2, 4, 5, 6, 7) * 50
    for dtype in (torch.float16, torch.bfloat16):
        out, lse = soft_pool_onnx(x.to(dtype), args)
        assert out.dtype == dtype and lse.dtype == torch.float32
        ref = soft_pool_reference(x.to(dtype).double(), args)[0]
        torch.testing.assert_close(out.double(), ref, rtol=1e-2, atol=1e-2)
    assert soft_pool_onnx(x, args, with_lse=False)[1] is None
    inf = x.clone()
    inf[0, 0, 0, 0, 0] = float("inf")
    out = soft_pool_onnx(inf, args)[0]
    assert out[0, 0, 0, 0, 0] == float("inf") and torch.isfinite(out.flatten()[1:]).all()


class _ManyPools(torch.nn.Module):
    """One graph holding the form for a list of geometries of 1d, 2d and 3d inputs."""

    def __init__(self, geometries: dict[int, list]) -> None:
        super().__init__()
        self.geometries = geometries

    def forward(self, x1, x2, x3):
        inputs = {1: x1, 2: x2, 3: x3}
        return tuple(soft_pool_onnx(inputs[d], args, with_lse=False)[0]
                     for d in (1, 2, 3) for args in self.geometries[d])


def _onnx_grid(geometries: dict[int, list], tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    sizes = {d: SIZES[d][0] for d in (1, 2, 3)}
    module = _ManyPools(geometries).eval()
    example = tuple(torch.randn(2, 3, *sizes[d]) for d in (1, 2, 3))
    path = tmp_path / "pools.onnx"
    torch.onnx.export(module, example, dynamo=True, verbose=False).save(str(path))
    graph = onnx.load(str(path)).graph
    ops = [n.op_type for n in graph.node]
    pools = sum(len(g) for g in geometries.values())
    assert not standard_domains_only(path) and "Slice" not in ops  # a few standard ops, no strided slices
    assert len(ops) <= 40 * pools, f"{len(ops)} nodes for {pools} pools"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    hard = {d: hard_inputs(sizes[d], seed=d) for d in (1, 2, 3)}
    for kind in ("normal", "large", "huge_range"):
        xs = [hard[d][kind] for d in (1, 2, 3)]
        outs = iter(session.run(None, {n: x.numpy() for n, x in zip(names, xs, strict=True)}))
        for d, x in zip((1, 2, 3), xs, strict=True):
            for args in geometries[d]:
                check_against_reference(x, args, torch.from_numpy(next(outs)))


def _sample(grid: list, every: int) -> list:
    return grid[::every]


def test_standard_op_form_matches_the_float64_reference_in_onnxruntime(tmp_path):
    # a spread of the grid (ceil_mode, padding, stride 3, dilation, I3D's pools); all of it: the matrix test below
    geometries = {d: _sample(geometry_grid(d, SIZES[d][0]), 9) for d in (1, 2, 3)}
    geometries[3] += [pool_args(3, *spec) for spec in MIXED_3D[:2]]  # I3D's strided pools
    _onnx_grid(geometries, tmp_path)


@pytest.mark.matrix
def test_standard_op_form_matches_the_float64_reference_in_onnxruntime_full_grid(tmp_path):
    for d in (1, 2, 3):
        _onnx_grid({e: (geometry_grid(d, SIZES[d][0]) if e == d else []) for e in (1, 2, 3)}, tmp_path)


# --- every model to ONNX and pt2 ------------------------------------------------------------------

# LSTMs (SRTG) are unrolled per step when traced: their export alone costs ~35 s of CPU, so the
# tiny SRTG joins the full-size models in the matrix (`make test-matrix`, ~30 min on 2 cores).
SLOW_TINY = {"srtg_r2plus1d_tiny"}


def _matrix():
    for arch in list_models():
        for pooling in ("max", "softpool"):
            slow = "tiny" not in arch or arch in SLOW_TINY
            yield pytest.param(arch, pooling, id=f"{arch}-{pooling}", marks=(pytest.mark.matrix,) if slow else ())


def _clip(arch: str) -> tuple[int, int, int]:
    if "tiny" in arch:
        return (4, 32, 32)
    if arch.startswith(("ptv_x3d", "tv_s3d", "ptv_csn", "ptv_slow", "ptv_i3d")):
        return (8, 64, 64)
    return (8, 48, 48)


@pytest.mark.slow
@pytest.mark.parametrize("arch,pooling", list(_matrix()))
def test_every_model_exports_to_onnx_and_pt2_and_matches_pytorch(arch, pooling, tmp_path):
    torch.manual_seed(0)
    net = create_model(arch, 7, pooling=pooling).eval()
    clip = torch.randn(1, 3, *_clip(arch))
    onnx_result = export_onnx(net, clip, tmp_path / "model.onnx")
    check = onnx_result["verification"]
    assert check["passed"], check["failures"]
    assert check["batch_sizes"] == [1, 3] and check["top_k"] == 5
    pt2 = export_pt2(net, clip, tmp_path / "model.pt2", decompose=True)
    assert pt2["verification"]["passed"], pt2["verification"]["failures"]
    assert not pt2["softpool_op_kept"] and not holds_softpool_op(torch.export.load(str(tmp_path / "model.pt2")))


# --- the parity clip --------------------------------------------------------------------------------

def _truncate(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def _garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 20000, np.uint8).tobytes())


@pytest.fixture
def data_copy(run, tmp_path) -> Path:
    """A private copy of the trained run's two-class dataset, to damage."""
    return Path(shutil.copytree(run.data_root, tmp_path / "data", symlinks=False))


def _listed(root: Path, name: str) -> list[Path]:
    return [root / "UCF-101" / line for line in (root / "ucfTrainTestlist" / name).read_text().split()
            if "/" in line]


def test_parity_clip_skips_unlisted_files_at_the_root(model, data_copy):
    # what a walk of the root met first: a corrupt file no split lists
    write_video(data_copy / "truncated.avi", 30)
    _truncate(data_copy / "truncated.avi", 0.4)
    _garbage(data_copy / "0_garbage.avi")
    clip, source = example_clip(replace(model, data={**model.data, "root": str(data_copy)}))
    assert Path(source) == _listed(data_copy, "testlist01.txt")[0]
    assert clip.shape == (1, 3, 8, 48, 48) and torch.isfinite(clip).all()


def test_parity_clip_from_a_checkpoint_with_flat_datamodule_arguments(model, data_copy):
    """Checkpoints written before the datamodule's arguments were grouped record them flat."""
    from softpool_video.datamodules import flatten_arguments

    assert "sampling" in model.data and "clip_len" not in model.data
    flat = {**flatten_arguments(model.data), "root": str(data_copy)}
    old = replace(model, data=flat)
    assert old.protocol == model.protocol
    clip, source = example_clip(old)
    assert Path(source) == _listed(data_copy, "testlist01.txt")[0] and clip.shape == (1, 3, 8, 48, 48)


def test_parity_clip_falls_back_to_the_next_listed_video(model, data_copy, caplog):
    first, second = _listed(data_copy, "testlist01.txt")[:2]
    first.unlink()  # replace the file, never write through a link into the shared data
    _garbage(first)
    with caplog.at_level(logging.WARNING, logger="softpool_video.export.api"):
        _, source = example_clip(replace(model, data={**model.data, "root": str(data_copy)}))
    assert Path(source) == second
    assert first.name in caplog.text and "trying the next listed video" in caplog.text


def test_parity_clip_gives_up_after_a_bounded_number_of_failures(model, data_copy, monkeypatch):
    monkeypatch.setattr(export_api, "MAX_CLIP_ATTEMPTS", 3)
    for path in _listed(data_copy, "testlist01.txt")[:3]:
        path.unlink()
        _garbage(path)
    with pytest.raises(ParityClipError, match=r"none of the 3 listed videos.*--video"):
        example_clip(replace(model, data={**model.data, "root": str(data_copy)}))


def test_random_values_only_without_a_recorded_root(model, tmp_path, caplog):
    no_root = {k: v for k, v in model.data.items() if k != "root"}
    with caplog.at_level(logging.WARNING, logger="softpool_video.export.api"):
        clip, source = example_clip(replace(model, data=no_root))
    assert clip.shape == (1, 3, 8, 48, 48) and "random" in source and "records no dataset root" in caplog.text
    with pytest.raises(ParityClipError, match="does not exist here"):
        example_clip(replace(model, data={**model.data, "root": str(tmp_path / "gone")}))


def test_export_uses_the_next_listed_video_and_refuses_an_undecodable_one(run, data_copy, tmp_path, capsys):
    first, second = _listed(data_copy, "testlist01.txt")[:2]
    first.unlink()
    _garbage(first)
    ckpt = torch.load(run.checkpoint, weights_only=True)
    ckpt["datamodule_hyper_parameters"]["root"] = str(data_copy)
    moved = tmp_path / "moved.ckpt"
    torch.save(ckpt, moved)
    result = export_checkpoint(moved, "safetensors", tmp_path / "out")
    assert Path(result["input"]) == second and result["verification"]["passed"]
    assert export_main([str(moved), "-f", "safetensors", "-o", str(tmp_path / "o2"), "--video", str(first)]) == 2
    assert "cannot be decoded" in capsys.readouterr().err
