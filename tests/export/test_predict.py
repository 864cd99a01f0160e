"""`softpool-video predict`: the multi-view test protocol on video files, top-k classes, JSON."""
from __future__ import annotations

import json

import pytest
import torch

from softpool_video.commands.predict import main as predict_main
from softpool_video.evaluation import EvaluationProtocol, video_views
from softpool_video.export import export_checkpoint
from softpool_video.inference import predict_video


def _one_per_class(run) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for video, label in run.test_videos:
        seen.setdefault(label, str(video))
    return [(video, label) for label, video in seen.items()]


def test_views_are_the_test_datamodule_views(run, model):
    """Same frames, resize, crops and normalisation as the test set of the DataModule."""
    from softpool_video.datamodules import UCF101DataModule

    # the checkpoint's groups as they are, loading changed
    data = {k: model.data[k] for k in ("sampling", "transforms")}
    dm = UCF101DataModule(str(run.data_root), split=1, loading={"num_workers": 0}, **data)
    dm.setup("test")
    assert EvaluationProtocol.from_datamodule(dm, model.aggregation) == model.protocol
    dataset = dm.datasets["test"]
    views = video_views(run.data_root / dataset.records[0].rel, model.protocol)
    assert views.shape == (dataset.views_per_video, 3, 8, 48, 48)
    for i in range(dataset.views_per_video):
        assert torch.equal(views[i], dataset[i]["video"])


def test_predict_names_the_true_class_of_held_out_videos(run, capsys):
    videos = _one_per_class(run)
    code = predict_main([*(v for v, _ in videos), "--model", str(run.checkpoint), "--top-k", "2", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["protocol"]["num_clips"] == 2 and report["failed"] == []
    for prediction, (video, label) in zip(report["predictions"], videos, strict=True):
        assert prediction["video"] == video and prediction["num_views"] == 2
        probs = [t["probability"] for t in prediction["top"]]
        assert prediction["top"][0]["class"] == label
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-5)


def test_trained_model_classifies_most_held_out_videos(run, model):
    correct = sum(predict_video(model, video, top_k=1).label == label for video, label in run.test_videos)
    assert correct >= len(run.test_videos) - 2, f"{correct}/{len(run.test_videos)}"


def test_export_folder_predicts_like_the_checkpoint(run, model, tmp_path, capsys):
    export_checkpoint(run.checkpoint, "safetensors", tmp_path)
    video, _ = _one_per_class(run)[0]
    assert predict_main([video, "--model", str(tmp_path), "--json", "--clips", "3", "--crops", "2"]) == 0
    from_export = json.loads(capsys.readouterr().out)["predictions"][0]
    protocol = model.protocol
    from dataclasses import replace
    direct = predict_video(model, video, replace(protocol, num_clips=3, num_crops=2))
    assert from_export["num_views"] == 6 == direct.num_views
    assert [t["class"] for t in from_export["top"]] == [name for name, _ in direct.top]
    assert [t["probability"] for t in from_export["top"]] == pytest.approx([p for _, p in direct.top], abs=1e-6)


def test_undecodable_video_is_reported_and_the_rest_predicted(run, tmp_path, capsys):
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"RIFF" + bytes(500))
    video, label = _one_per_class(run)[0]
    code = predict_main([str(broken), video, "--model", str(run.checkpoint), "--json", "-k", "1"])
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    assert [f["video"] for f in report["failed"]] == [str(broken)]
    assert [p["top"][0]["class"] for p in report["predictions"]] == [label]


def test_table_output_and_bad_arguments(run, capsys):
    video, label = _one_per_class(run)[0]
    assert predict_main([video, "--model", str(run.checkpoint), "--top-k", "1"]) == 0
    out = capsys.readouterr().out
    assert label in out and "2 clips x 1 crops" in out
    assert predict_main([video, "--model", str(run.checkpoint), "--top-k", "0"]) == 2
    assert "--top-k must be a positive integer, got 0" in capsys.readouterr().err
    assert predict_main([video, "--model", str(run.data_root)]) == 2
    assert "model card" in capsys.readouterr().err
