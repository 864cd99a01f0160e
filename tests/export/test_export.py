"""Export of a trained tiny SoftPool model to every format, reload, parity, model card, and
the refusal of tampered or mismatched checkpoints and cards."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import onnx
import pytest
import torch

import softpool_video  # noqa: F401  (registers the SoftPool op for reloading)
from softpool_video.checkpoint import CheckpointError, load_checkpoint, load_exported
from softpool_video.commands.export import main as export_main
from softpool_video.evaluation import video_views
from softpool_video.export import export_checkpoint
from softpool_video.export.decompose import softpool_ops


@pytest.fixture(scope="module")
def real_views(run, model) -> torch.Tensor:
    """All test views of a held-out video the exporter never saw, decoded separately."""
    video = next(v for v, label in run.test_videos if label == "Grow")
    return video_views(video, model.protocol)


def _graph_targets(program) -> set:
    return {n.target for n in program.graph.nodes if n.op == "call_function"}


def test_checkpoint_rebuilds_the_trained_network(run, model):
    from softpool_video.training import VideoClassifier

    trained = VideoClassifier.load_from_checkpoint(run.checkpoint, map_location="cpu").eval()
    x = torch.randn(2, *model.protocol.input_shape)
    with torch.no_grad():
        assert torch.equal(model.net(x), trained(x))
    assert (model.arch, model.pooling, model.class_names) == ("r2plus1d_tiny", "softpool", ["MoveUp", "Grow"])
    assert model.data["sampling"]["clip_len"] == 8 and model.data["transforms"]["crop_size"] == 48


def test_onnx_export_uses_standard_ops_and_matches_pytorch_on_a_real_clip(run, model, real_views, tmp_path):
    result = export_checkpoint(run.checkpoint, "onnx", tmp_path)
    path = tmp_path / "r2plus1d_tiny_softpool.onnx"
    assert path in result["files"] and path.is_file()
    assert result["input"].endswith(".avi")  # the exporter checked itself on a real clip too
    listed = (run.data_root / "ucfTrainTestlist" / "testlist01.txt").read_text().split()
    assert Path(result["input"]) == run.data_root / "UCF-101" / listed[0]  # the test list's first video
    check = result["verification"]
    assert check["passed"] and check["max_abs_diff"] < 1e-4 and check["max_rel_diff"] < 1e-3
    assert check["top_k"] == 2 and check["top_k_match"] and (check["rtol"], check["atol"]) == (1e-4, 1e-4)
    graph = onnx.load(str(path)).graph
    assert {n.domain for n in graph.node} <= {"", "ai.onnx"}
    assert {"Exp", "ReduceSum", "Pad"} <= {n.op_type for n in graph.node}  # SoftPool, decomposed
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"

    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model.net(real_views)
    got = session.run(None, {"video": real_views.numpy()})[0]  # all views: another batch size
    diff = float((torch.from_numpy(got) - expected).abs().max())
    print(f"onnxruntime vs PyTorch on {real_views.shape[0]} real views: max abs diff {diff:.3e}")
    assert diff < 1e-4
    assert got.argmax(1).tolist() == expected.argmax(1).tolist()


@pytest.mark.slow
def test_pt2_keeps_or_decomposes_the_op_and_reloads_with_torch_export_load(run, model, real_views, tmp_path):
    with torch.no_grad():
        expected = model.net(real_views)
    files = {}
    for decompose in (False, True):
        result = export_checkpoint(run.checkpoint, "pt2", tmp_path, decompose=decompose)
        pt2 = files[decompose] = next(f for f in result["files"] if f.suffix == ".pt2")
        program = torch.export.load(str(pt2))
        kept = bool(_graph_targets(program) & set(softpool_ops()))
        assert kept is (not decompose) and result["softpool_op_kept"] is kept
        assert (program.module()(real_views) - expected).abs().max() < 1e-4
    assert files[False] != files[True]
    # A fresh interpreter: the decomposed file loads with torch alone; the one that keeps the
    # op loads once `softpool_video` is imported.
    torch.save({"x": real_views, "y": expected}, tmp_path / "io.pt")
    script = ("import sys, torch\n"
              "io = torch.load(sys.argv[3], weights_only=True)\n"
              "def diff(path):\n"
              "    return float((torch.export.load(path).module()(io['x']) - io['y']).abs().max())\n"
              "print(diff(sys.argv[2]))\n"
              "assert 'softpool_video' not in sys.modules\n"
              "import softpool_video\n"
              "print(diff(sys.argv[1]))\n")
    argv = [sys.executable, "-c", script, str(files[False]), str(files[True]), str(tmp_path / "io.pt")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    diffs = [float(line) for line in done.stdout.split()]
    assert len(diffs) == 2 and max(diffs) < 1e-4


def test_torchscript_reloads_and_runs_other_batch_sizes(run, model, real_views, tmp_path):
    result = export_checkpoint(run.checkpoint, "torchscript", tmp_path)
    scripted = torch.jit.load(str(tmp_path / "r2plus1d_tiny_softpool.torchscript.pt"))
    with torch.no_grad():
        assert (scripted(real_views) - model.net(real_views)).abs().max() < 1e-4
    assert result["verification"]["batch_sizes"] == [1, 2]


def test_safetensors_card_describes_model_protocol_and_test_accuracy(run, model, real_views, tmp_path):
    result = export_checkpoint(run.checkpoint, "safetensors", tmp_path)
    card = json.loads((tmp_path / "r2plus1d_tiny_softpool.json").read_text())
    assert (card["arch"], card["pooling"]) == ("r2plus1d_tiny", "softpool")
    assert card["class_names"] == ["MoveUp", "Grow"]
    assert card["input"]["shape"] == [None, 3, 8, 48, 48]
    assert card["input"]["mean"] == pytest.approx(run_mean(run)) and len(card["input"]["std"]) == 3
    assert (card["evaluation_protocol"]["num_clips"], card["evaluation_protocol"]["num_crops"]) == (2, 1)
    assert card["metrics"]["test/video_acc1"] == pytest.approx(run.test_metrics["test/video_acc1"])
    assert result["metrics"] == card["metrics"]
    reloaded = load_exported(tmp_path)
    with torch.no_grad():
        assert torch.equal(reloaded.net(real_views), model.net(real_views))
    assert reloaded.protocol == model.protocol


def run_mean(run) -> list[float]:
    return list(torch.load(run.checkpoint, weights_only=True)["datamodule_hyper_parameters"]["transforms"]["mean"])


class _Payload:
    """Unpickling this would create a file: what a malicious checkpoint would do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_checkpoint_with_code_is_refused_without_running_it(run, tmp_path):
    ckpt = torch.load(run.checkpoint, weights_only=True)
    marker = tmp_path / "code_ran"
    ckpt["hyper_parameters"]["payload"] = _Payload(marker)
    bad = tmp_path / "tampered.ckpt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match=r"refused.*weights_only=True"):
        load_checkpoint(bad)
    assert not marker.exists()
    assert export_main([str(bad), "--format", "safetensors", "--out", str(tmp_path / "out")]) == 2
    assert not marker.exists() and not (tmp_path / "out").exists()
    torch.load(bad, weights_only=False)  # the payload is live: an unsafe load runs it
    assert marker.is_dir()


@pytest.mark.parametrize("edit,message", [
    (lambda c: c["hyper_parameters"].update(num_classes=3, class_names=["a", "b", "c"]),
     r"wrong shape: fc\.weight"),
    (lambda c: c["hyper_parameters"].update(arch="r3d_tiny"), "do not match the model"),
    (lambda c: c["state_dict"].pop("net.fc.bias"), r"missing: fc\.bias"),
    (lambda c: c["state_dict"]["net.fc.weight"].fill_(float("nan")), "NaN or inf"),
    (lambda c: c["hyper_parameters"].update(class_names=["only one"]), "1 class_names for num_classes=2"),
    (lambda c: c.pop("hyper_parameters"), "not a Lightning checkpoint"),
], ids=["classes", "arch", "missing_key", "nan_weights", "class_names", "no_hparams"])
def test_mismatched_checkpoint_is_rejected(run, tmp_path, edit, message):
    ckpt = torch.load(run.checkpoint, weights_only=True)
    edit(ckpt)
    bad = tmp_path / "mismatched.ckpt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(bad)


def test_model_card_that_does_not_match_its_weights_is_rejected(run, tmp_path):
    export_checkpoint(run.checkpoint, "safetensors", tmp_path)
    card_path = tmp_path / "r2plus1d_tiny_softpool.json"
    card = json.loads(card_path.read_text())
    # another class count than the weights were trained for; checksum still right
    card_path.write_text(json.dumps({**card, "num_classes": 3, "class_names": ["a", "b", "c"]}))
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_exported(card_path)
    # weights changed after export
    card_path.write_text(json.dumps(card))
    weights = tmp_path / card["weights"]["file"]
    data = bytearray(weights.read_bytes())
    data[-8:] = bytes(8)
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_exported(tmp_path)


def test_cli_names_bad_formats_and_missing_files(run, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        export_main([str(run.checkpoint), "--format", "tflite", "--out", str(tmp_path)])
    assert exit_.value.code == 2 and "tflite" in capsys.readouterr().err
    assert export_main([str(tmp_path / "none.ckpt"), "--format", "onnx", "--out", str(tmp_path)]) == 2
    assert "none.ckpt" in capsys.readouterr().err


def test_cli_json_reports_files_and_difference(run, tmp_path, capsys):
    assert export_main([str(run.checkpoint), "-f", "safetensors", "--out", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (entry,) = report["exports"]
    assert entry["format"] == "safetensors" and entry["max_abs_diff"] == 0.0 == entry["max_rel_diff"]
    assert entry["top_k_match"] and entry["rtol"] > 0 and entry["atol"] > 0
    assert all(Path(f).is_file() for f in entry["files"])


def test_random_fallback_clip_only_without_a_dataset_root(run, model, tmp_path):
    from softpool_video.export import ParityClipError
    from softpool_video.export.api import example_clip
    unrecorded = replace(model, data={k: v for k, v in model.data.items() if k != "root"})
    clip, source = example_clip(unrecorded)
    assert clip.shape == (1, 3, 8, 48, 48) and "random" in source
    # a recorded root that is gone: no silent random check, a clear error naming --video
    moved = replace(model, data={**model.data, "root": str(tmp_path / "gone")})
    with pytest.raises(ParityClipError, match="--video"):
        example_clip(moved)


def test_torchscript_refusal_says_why_and_what_to_use_instead(tmp_path):
    from softpool_video.export import ExportError
    from softpool_video.export.torchscript_export import export_torchscript

    class PythonNumberOut(torch.nn.Module):
        def forward(self, x):
            return {"score": x.mean(), "label": "not a tensor"}

    with pytest.raises(ExportError, match=r"TorchScript cannot represent tiny.*--format pt2 or onnx"):
        export_torchscript(PythonNumberOut(), torch.randn(1, 3, 2, 4, 4), tmp_path / "m.pt", model_name="tiny")
    assert not (tmp_path / "m.pt").exists()


def test_reader_names_the_file_and_what_is_wrong(tmp_path):
    from softpool_video.checkpoint import read_checkpoint

    notes = tmp_path / "notes.ckpt"
    notes.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"^--ckpt_path: '.*notes\.ckpt' is not a readable checkpoint"):
        read_checkpoint(notes)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(1)}, plain)
    with pytest.raises(CheckpointError, match=r"^checkpoint: '.*plain\.pt' is not a Lightning checkpoint"):
        read_checkpoint(plain, label="checkpoint")
    with pytest.raises(FileNotFoundError, match=r"none\.ckpt"):
        read_checkpoint(tmp_path / "none.ckpt")
