"""SRTG: the cycle-consistency check and the temporal gate on constructed inputs, gradients to
every LSTM, gates that open on some clips of the demo data after training, the published layout."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from softpool_video.models import create_model, pool_sites
from softpool_video.models.srtg import (
    SqueezeRecursionGate,
    SRTGBottleneck,
    cycle_consistency,
    frame_consistency,
    gate_open_rates,
)

C, T = 4, 4
pytestmark = pytest.mark.usefixtures("one_thread")


def distinct_frames(batch: int = 1) -> torch.Tensor:
    """(batch, T, C): frame t points along channel t."""
    return torch.eye(C)[:T].expand(batch, T, C).clone()


def lstm_params(model: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if ".lstm." in n or n.startswith("lstm.")}


# --- the cycle-consistency check -------------------------------------------------------------

def test_identical_sequences_are_cycle_consistent():
    s = distinct_frames(2) + 0.01 * torch.randn(2, T, C)
    assert cycle_consistency(s, s).tolist() == [1.0, 1.0]
    # a monotone rescaling of every channel keeps every correspondence
    assert cycle_consistency(s, torch.tanh(3 * s)).tolist() == [1.0, 1.0]


def test_stalled_or_flat_recurrent_sequence_is_not_consistent():
    s = distinct_frames()
    stalled = s.clone()
    stalled[:, 1] = stalled[:, 0]  # the recurrent sequence stays on frame 0 for two steps
    hard, _ = frame_consistency(s, stalled)
    assert hard.tolist() == [[False, False, True, True]]
    # no temporal change at all: every frame ties with every other, none cycles back
    assert cycle_consistency(s, torch.ones(1, T, C)).item() == 0.0


def test_one_or_two_frames_are_trivially_consistent():
    for frames in (1, 2):
        assert cycle_consistency(torch.randn(3, frames, C), torch.randn(3, frames, C)).tolist() == [1.0] * 3


# --- the block on constructed inputs ---------------------------------------------------------

def _set_lstm(block: SqueezeRecursionGate, pass_input: bool) -> None:
    """One-layer LSTM with no recurrence: h_t = tanh(tanh(s_t)) (pass_input) or a constant.

    Gate rows are ordered input, forget, cell, output; biases of +-20 saturate the gates.
    """
    lstm = block.lstm
    with torch.no_grad():
        for p in lstm.parameters():
            p.zero_()
        lstm.bias_ih_l0[0:C] = 20.0  # input gate open
        lstm.bias_ih_l0[C:2 * C] = -20.0  # forget gate shut: no memory
        lstm.bias_ih_l0[3 * C:4 * C] = 20.0  # output gate open
        if pass_input:
            lstm.weight_ih_l0[2 * C:3 * C] = torch.eye(C)  # cell candidate tanh(s_t)
        else:
            lstm.bias_ih_l0[2 * C:3 * C] = 1.0  # cell candidate tanh(1) at every step


def _clip(frames: torch.Tensor) -> torch.Tensor:
    """(B, T, C) frame means -> (B, C, T, 3, 3) features with those spatial means."""
    x = frames.transpose(1, 2)[..., None, None].expand(-1, -1, -1, 3, 3).clone()
    x[..., 0, 0] += 0.5  # some spatial structure; the means shift uniformly per frame
    return x


def _moving_and_static() -> torch.Tensor:
    return _clip(torch.cat([distinct_frames(), torch.full((1, T, C), 0.25)]))


@pytest.mark.parametrize("mode", ["frame", "clip"])
def test_gate_replaces_consistent_clips_and_passes_static_ones(mode):
    block = SqueezeRecursionGate(C, lstm_layers=1, gates=True, mode=mode)
    _set_lstm(block, pass_input=True)
    x = _moving_and_static()
    out = block(x)
    expected_gate = [[1.0] * T, [0.0] * T] if mode == "frame" else [1.0, 0.0]
    assert block.last_gate.tolist() == expected_gate
    assert block.last_consistency.tolist() == [1.0, 0.0]
    h = torch.tanh(torch.tanh(x.mean(dim=(3, 4))))[..., None, None]  # what the set LSTM computes
    torch.testing.assert_close(out[0], x[0] * h[0])  # open: the recalibrated features replace x
    torch.testing.assert_close(out[1], x[1], rtol=0, atol=0)  # shut: x passes unchanged
    assert not torch.allclose(x[1] * h[1], x[1])  # it was shut, not a recalibration by ~1


def test_frame_gate_decides_per_frame_and_clip_gate_needs_the_threshold():
    s = distinct_frames()
    x = _clip(s)
    x[:, :, 1] = x[:, :, 0]  # frames 0 and 1 equal: both tie, the other two cycle back
    block = SqueezeRecursionGate(C, lstm_layers=1, mode="frame")
    _set_lstm(block, pass_input=True)
    out = block(x)
    assert block.last_gate.tolist() == [[0.0, 0.0, 1.0, 1.0]]
    torch.testing.assert_close(out[:, :, :2], x[:, :, :2], rtol=0, atol=0)
    assert not torch.allclose(out[:, :, 2:], x[:, :, 2:])
    for threshold, opened in [(1.0, 0.0), (0.5, 1.0)]:
        clip_block = SqueezeRecursionGate(C, lstm_layers=1, threshold=threshold, mode="clip")
        _set_lstm(clip_block, pass_input=True)
        clip_block(x)
        assert clip_block.last_gate.tolist() == [opened]


def test_without_gates_the_block_is_plain_squeeze_and_recursion():
    block = SqueezeRecursionGate(C, lstm_layers=2, gates=False)
    x = torch.randn(3, C, T, 5, 6)
    h, _ = block.lstm(x.mean(dim=(3, 4)).transpose(1, 2))
    torch.testing.assert_close(block(x), x * h.transpose(1, 2)[..., None, None])
    assert block.last_gate.tolist() == [1.0, 1.0, 1.0]


def test_lstm_learns_through_a_shut_gate():
    """Straight-through: the forward pass is the hard gate, the LSTM still gets a gradient."""
    block = SqueezeRecursionGate(C, lstm_layers=1, gates=True, mode="clip")  # every frame must cycle back
    _set_lstm(block, pass_input=True)
    x = _clip(distinct_frames())
    x[:, :, 1] = x[:, :, 0]  # two frames tie: they do not cycle back, so the clip's gate stays shut
    out = block(x)
    assert block.last_gate.tolist() == [0.0] and block.last_consistency.tolist() == [0.5]
    torch.testing.assert_close(out, x, rtol=0, atol=0)
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.lstm.parameters())


def test_lstm_gate_biases_start_at_one():
    block = SqueezeRecursionGate(8, lstm_layers=2)
    lstm = block.lstm
    for layer in range(2):
        torch.testing.assert_close(getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}"),
                                   torch.ones(4 * 8))
    h, _ = lstm(torch.rand(5, T, 8))
    assert (h > 0).float().mean() > 0.9  # x * h starts as a positive rescaling of x


def _block_gradients(block: SqueezeRecursionGate, x: torch.Tensor, hold_gate: bool = False):
    """Output, input gradient and LSTM gradients of a weighted sum of the block's output;
    hold_gate: the gate taken as a constant (no straight-through gradient at all)."""
    if hold_gate:
        decide = block.gate
        block.gate = lambda s, r: tuple(t.detach() for t in decide(s, r))
    x = x.clone().requires_grad_(True)
    block.zero_grad()
    out = block(x)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), x.grad, [p.grad.clone() for p in block.lstm.parameters()]


@pytest.mark.parametrize("mode", ["frame", "clip"])
def test_default_gate_gradient_trains_the_lstm_only(mode):
    torch.manual_seed(0)
    backbone = SqueezeRecursionGate(C, lstm_layers=1, mode=mode, gradient="backbone")
    recurrent = SqueezeRecursionGate(C, lstm_layers=1, mode=mode)
    assert recurrent.gradient == "recurrent"  # the default, chosen by benchmarks/srtg_gate_gradient.py
    recurrent.load_state_dict(backbone.state_dict())
    held = SqueezeRecursionGate(C, lstm_layers=1, mode=mode)
    held.load_state_dict(backbone.state_dict())
    x = torch.randn(3, C, 6, 4, 4)
    out_b, dx_b, dlstm_b = _block_gradients(backbone, x)
    out_r, dx_r, dlstm_r = _block_gradients(recurrent, x)
    out_h, dx_h, dlstm_h = _block_gradients(held, x, hold_gate=True)
    # One decision, whatever the gradient's path.
    torch.testing.assert_close(out_r, out_b, rtol=0, atol=0)
    torch.testing.assert_close(out_h, out_b, rtol=0, atol=0)
    assert torch.equal(recurrent.last_gate, backbone.last_gate)
    with torch.no_grad():  # inference runs the LSTM once (torch's no-grad LSTM kernel: last-bit differences)
        torch.testing.assert_close(recurrent(x), out_r)
    assert torch.equal(recurrent.last_gate, backbone.last_gate)
    # "recurrent": the input gets exactly the gradient of a constant gate; "backbone" does not.
    torch.testing.assert_close(dx_r, dx_h, rtol=0, atol=0)
    assert not torch.allclose(dx_b, dx_h)
    # ...while the LSTM still learns through the gate in both.
    assert any(not torch.allclose(a, b) for a, b in zip(dlstm_r, dlstm_h, strict=True))
    assert any(not torch.allclose(a, b) for a, b in zip(dlstm_b, dlstm_h, strict=True))


@pytest.mark.parametrize("kwargs, message", [({"threshold": 0.0}, "threshold"), ({"temperature": 0.0}, "temperature"),
                                             ({"mode": "batch"}, "mode"), ({"gradient": "both"}, "gate_gradient")])
def test_bad_gate_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SqueezeRecursionGate(C, **kwargs)
    with pytest.raises(ValueError, match=message):
        create_model("srtg_r2plus1d_tiny", 5, **{f"gate_{k}": v for k, v in kwargs.items()})


@pytest.mark.filterwarnings("ignore:The tensor attributes self.lstm")  # torch's LSTM internals
def test_srtg_block_exports_with_its_gate():
    """No data-dependent Python branch: the gate is in the exported graph, with a symbolic batch."""
    block = SqueezeRecursionGate(C, lstm_layers=1, gates=True).eval()
    _set_lstm(block, pass_input=True)
    x = _moving_and_static()
    batch = torch.export.Dim("batch", min=1, max=64)
    exported = torch.export.export(block, (x,), dynamic_shapes=({0: batch},)).module()
    assert block.last_gate is None  # tracing keeps no side state
    for clips in (x, torch.cat([x[1:], x, x[:1]])):
        torch.testing.assert_close(exported(clips), block(clips))
    out = exported(x)
    assert not torch.equal(out[0], x[0]) and torch.equal(out[1], x[1])


# --- models -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, clip", [("srtg_r2plus1d_tiny", (16, 32, 32)), ("srtg_r3d_18", (16, 16, 16))])
def test_every_lstm_gets_a_gradient_in_one_training_step(name, clip):
    model = create_model(name, 5).train()
    model(torch.randn(2, 3, *clip)).square().sum().backward()
    params = lstm_params(model)
    assert len(params) == 4 * sum(m.lstm.num_layers for m in model.modules() if isinstance(m, SqueezeRecursionGate))
    dead = [n for n, p in params.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []
    rates = gate_open_rates(model)
    assert rates["layer1"] < 1 and rates["layer2"] < 1  # so some LSTMs learned through shut gates


@pytest.fixture(scope="module")
def demo_batches(tmp_path_factory) -> list[dict[str, torch.Tensor]]:
    from softpool_video.datamodules import UCF101DataModule, make_demo_dataset

    # the same demo as test_cli / test_benchmark_runner, so a full run writes it once
    root = make_demo_dataset(tmp_path_factory.getbasetemp() / "training_demo_tiny", groups=22, clips_per_group=1,
                             width=32, height=32)
    dm = UCF101DataModule(Path(root), sampling={"clip_len": 16}, transforms={"crop_size": 32, "resize_short": 32},
                          loading={"batch_size": 12, "num_workers": 0})
    dm.setup("fit")
    batches = []
    for batch in dm.train_dataloader():
        batches.append(batch)
        if len(batches) == 5:
            return batches
    raise AssertionError("the demo training set holds fewer than 5 batches")


def test_gates_open_on_some_demo_clips_after_a_few_training_steps(demo_batches):
    model = create_model("srtg_r2plus1d_tiny", 6).train()
    lstm_before = {n: p.detach().clone() for n, p in lstm_params(model).items()}
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)  # moves only what has a gradient
    for batch in demo_batches[:4]:
        loss = nn.functional.cross_entropy(model(batch["video"]), batch["label"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(not torch.equal(lstm_before[n], p) for n, p in lstm_params(model).items())  # every LSTM learned
    with torch.no_grad():
        model(demo_batches[4]["video"])
    rates = gate_open_rates(model)
    assert list(rates) == ["layer1", "layer2", "layer3", "layer4"]
    for stage in ("layer1", "layer2"):  # T = 16 and 8 frames
        assert 0 < rates[stage] < 1, rates
        gate = model.get_submodule(f"{stage}.0.extra").last_gate  # (clips, frames)
        per_clip = gate.mean(dim=1)
        assert per_clip.max() > per_clip.min(), gate  # open more on some clips than on others


@pytest.mark.parametrize("frames", [1, 2, 8, 16])
def test_any_clip_length(frames):
    model = create_model("srtg_r2plus1d_tiny", 5, pooling="softpool").eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, frames, 32, 32)).shape == (2, 5)
    gates = [m.last_gate for m in model.modules() if isinstance(m, SqueezeRecursionGate)]
    assert [g.shape[1] for g in gates] == [frames, -(-frames // 2), -(-frames // 4), -(-frames // 8)]
    assert gates[-1].all()  # one or two frames left: trivially consistent


def test_models_carry_the_configured_blocks():
    with torch.device("meta"):
        off = create_model("srtg_r2plus1d_tiny", 5, gates=False, lstm_layers=2)
        clip = create_model("srtg_r3d_18", 5, gate_mode="clip", gate_threshold=0.5)
    assert all(not m.gates and m.lstm.num_layers == 2 for m in off.modules() if isinstance(m, SqueezeRecursionGate))
    blocks = [m for m in clip.modules() if isinstance(m, SqueezeRecursionGate)]
    assert len(blocks) == 8 and all(b.mode == "clip" and b.threshold == 0.5 for b in blocks)


def test_stem_pool_is_off_by_default_and_on_for_the_softpool_study():
    with torch.device("meta"):
        default = create_model("srtg_r2plus1d_50", 10, pooling="softpool")
        pooled = create_model("srtg_r2plus1d_50", 10, pooling="softpool", stem_pool=True)
        tiny = create_model("srtg_r2plus1d_tiny", 10, pooling="avg", stem_pool=True)
    assert isinstance(default.stem_pool, nn.Identity) and [s for s in pool_sites(default) if not s.adaptive] == []
    for model, method in [(pooled, "softpool"), (tiny, "avg")]:
        sites = [s for s in pool_sites(model) if not s.adaptive]
        assert [(s.name, s.method) for s in sites] == [("stem_pool", method)]


def test_the_papers_stem_placement_differs_per_method_and_halves_time():
    from softpool_video.training.configs import resolve_config

    clip = torch.randn(1, 3, 8, 32, 32)
    shapes = {}
    for method in ("softpool", "max", "avg"):
        model = create_model("srtg_r2plus1d_tiny", 5, pooling=method, stem_pool=True, stem_pool_placement="paper")
        pool = model.stem_pool
        shapes[method] = tuple(model.stem_pool(model.stem(clip)).shape[2:])
        kernel = tuple(getattr(pool, "kernel_size", None) or pool.args.kernel_size)
        assert kernel == ((2, 2, 2) if method == "softpool" else (3, 3, 3)), (method, kernel)
    assert len(set(shapes.values())) == 1 and shapes["max"][0] == 4  # T 8 -> 4 for every method
    equal = create_model("srtg_r2plus1d_tiny", 5, pooling="softpool", stem_pool=True)
    assert equal.stem_pool(equal.stem(clip)).shape[2] == 8  # the default keeps time
    with pytest.raises(ValueError, match="stem_pool_placement must be one of"):
        create_model("srtg_r2plus1d_tiny", 5, stem_pool=True, stem_pool_placement="published")
    assert "stem_pool_placement: paper" in resolve_config("ucf101/srtg_r2plus1d_50_paper_stem").read_text()


@pytest.mark.parametrize("name, params", [("srtg_r3d_50", 56_904_656), ("srtg_r2plus1d_50", 55_043_255),
                                          ("srtg_r3d_18", 44_543_312)])
def test_published_layout(name, params):
    """Parameter counts of the published code's models (400 classes), no 4x expansion at depth 50,
    and the SRTG block at the end of every residual block."""
    with torch.device("meta"):
        model = create_model(name, 400)
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.fc.in_features == 512
    blocks = [b for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for b in stage]
    assert all(b.extra.lstm.input_size == b.extra.lstm.hidden_size for b in blocks)
    assert [b.extra.lstm.hidden_size for b in (model.layer1[0], model.layer4[-1])] == [64, 512]
    assert all(isinstance(b, SRTGBottleneck) for b in blocks) == name.endswith("50")


@pytest.mark.parametrize("name", ["srtg_r3d_50", "srtg_r2plus1d_18"])
def test_srtg_runs_on_the_block_output(name):
    """"final" placement: after the shortcut sum and the ReLU."""
    model = create_model(name, 5, layers=(1, 1, 1, 1), base_width=8).eval()
    seen: dict[str, torch.Tensor] = {}
    block = model.layer2[0]
    block.extra.register_forward_pre_hook(lambda m, args: seen.setdefault("input", args[0].clone()))
    x = torch.randn(1, 8, 4, 8, 8)
    with torch.no_grad():
        block(x)
        branch = block.conv1(x)
        branch = block.conv3(block.conv2(branch)) if name.endswith("50") else block.conv2(branch)
        after_sum = block.relu(branch + block.downsample(x))
    torch.testing.assert_close(seen["input"], after_sum)


def test_gate_open_rates_per_stage():
    model = create_model("srtg_r3d_18", 5, layers=(2, 1, 1, 1), base_width=8).train()
    assert gate_open_rates(model) == {}  # nothing ran yet
    model(torch.randn(3, 3, 8, 16, 16))
    rates = gate_open_rates(model)
    assert list(rates) == ["layer1", "layer2", "layer3", "layer4"]
    for rate in rates.values():
        assert rate.shape == () and rate.dtype == torch.float32 and not rate.requires_grad
        assert 0.0 <= rate.item() <= 1.0
    first, second = model.layer1[0].extra.last_gate, model.layer1[1].extra.last_gate
    torch.testing.assert_close(rates["layer1"], (first.mean() + second.mean()) / 2)
    assert rates["layer4"] == 1.0  # one frame left
    assert gate_open_rates(create_model("r2plus1d_tiny", 5)) == {}
