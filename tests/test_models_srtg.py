"""SRTG: the cycle-consistency check and the temporal gate, on constructed inputs."""
from __future__ import annotations

import pytest
import torch

from softpool_video.models import create_model
from softpool_video.models.srtg import SqueezeRecursionGate, cycle_consistency

C, T = 4, 4
pytestmark = pytest.mark.usefixtures("one_thread")


def distinct_frames(batch: int = 1) -> torch.Tensor:
    """(batch, T, C): frame t points along channel t."""
    return torch.eye(C)[:T].expand(batch, T, C).clone()


def test_identical_sequences_are_cycle_consistent():
    s = distinct_frames(2) + 0.01 * torch.randn(2, T, C)
    assert cycle_consistency(s, s).tolist() == [1.0, 1.0]
    # a monotone rescaling of every channel keeps every correspondence
    assert cycle_consistency(s, torch.tanh(3 * s)).tolist() == [1.0, 1.0]


def test_stalled_or_flat_recurrent_sequence_is_not_consistent():
    s = distinct_frames()
    stalled = s.clone()
    stalled[:, 1] = stalled[:, 0]  # the recurrent sequence stays on frame 0 for two steps
    assert cycle_consistency(s, stalled).item() < 1.0
    flat = torch.ones(1, T, C)  # no temporal change at all
    assert cycle_consistency(s, flat).item() == pytest.approx(1 / T)


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


def test_gate_opens_for_a_consistent_clip_and_closes_for_a_static_one():
    block = SqueezeRecursionGate(C, lstm_layers=1, gates=True)
    _set_lstm(block, pass_input=True)
    moving = distinct_frames()
    static = torch.full((1, T, C), 0.25)
    x = _clip(torch.cat([moving, static]))
    out = block(x)
    assert block.last_gate.tolist() == [1.0, 0.0]
    squeezed = x.mean(dim=(3, 4))  # (B, C, T)
    h = torch.tanh(torch.tanh(squeezed))[..., None, None]
    torch.testing.assert_close(out[0], x[0] + x[0] * h[0])  # open: recalibrated features fused
    torch.testing.assert_close(out[1], x[1], rtol=0, atol=0)  # closed: features pass unchanged
    assert not torch.equal(x[1] * h[1], torch.zeros_like(x[1]))  # it was closed, not a zero recalibration


def test_gate_closes_when_the_recurrence_has_no_temporal_structure():
    block = SqueezeRecursionGate(C, lstm_layers=1, gates=True)
    _set_lstm(block, pass_input=False)
    x = _clip(distinct_frames())
    out = block(x)
    assert block.last_gate.tolist() == [0.0]
    torch.testing.assert_close(out, x, rtol=0, atol=0)
    # without gates the same block always fuses
    block.gates = False
    fused = block(x)
    assert block.last_gate.tolist() == [1.0]
    h = torch.tanh(torch.tanh(torch.tensor(1.0)) * torch.sigmoid(torch.tensor(20.0))) * torch.sigmoid(torch.tensor(20.0))
    torch.testing.assert_close(fused, x * (1 + h))


def test_lstm_learns_only_through_open_gates():
    block = SqueezeRecursionGate(C, lstm_layers=1, gates=True)
    _set_lstm(block, pass_input=True)
    for frames, expect_grad in [(distinct_frames(), True), (torch.full((1, T, C), 0.25), False)]:
        block.zero_grad()
        x = _clip(frames)
        block(x).square().sum().backward()
        grad = block.lstm.weight_ih_l0.grad.abs().sum().item()
        assert (grad > 0) == expect_grad, (frames, grad)


def test_single_frame_is_trivially_consistent():
    s = torch.randn(3, 1, C)
    assert cycle_consistency(s, torch.randn(3, 1, C)).tolist() == [1.0, 1.0, 1.0]


def test_srtg_models_carry_gates_that_fire():
    torch.manual_seed(0)
    model = create_model("srtg_r2plus1d_tiny", 5, pooling="softpool").eval()
    blocks = [m for m in model.modules() if isinstance(m, SqueezeRecursionGate)]
    assert len(blocks) == 4 and all(b.gates for b in blocks)
    with torch.no_grad():
        model(torch.randn(2, 3, 8, 32, 32))
    gates = torch.stack([b.last_gate for b in blocks])
    assert set(gates.unique().tolist()) <= {0.0, 1.0}
    # the last stage sees one frame: its gate is open (trivially consistent)
    assert gates[-1].tolist() == [1.0, 1.0]
    off = create_model("srtg_r2plus1d_tiny", 5, gates=False, lstm_layers=2)
    assert not any(m.gates for m in off.modules() if isinstance(m, SqueezeRecursionGate))
    assert off.layer1[0].extra.lstm.num_layers == 2


@pytest.mark.parametrize("kwargs, message", [({"threshold": 0.0}, "threshold"), ({"temperature": 0.0}, "temperature")])
def test_bad_gate_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SqueezeRecursionGate(C, **kwargs)


@pytest.mark.filterwarnings("ignore:The tensor attributes self.lstm")  # torch's LSTM internals
def test_srtg_block_exports_with_its_gate():
    """No data-dependent Python branch: the gate is part of the exported graph."""
    block = SqueezeRecursionGate(C, lstm_layers=1, gates=True).eval()
    _set_lstm(block, pass_input=True)
    x = _clip(torch.cat([distinct_frames(), torch.full((1, T, C), 0.25)]))
    exported = torch.export.export(block, (x,)).module()
    torch.testing.assert_close(exported(x), block(x))
    assert not torch.equal(exported(x)[0], x[0]) and torch.equal(exported(x)[1], x[1])
