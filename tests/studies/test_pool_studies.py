"""`softpool-video profile-pooling` and `softpool-video retention`, end to end on tiny inputs."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from softpool_video import cli
from softpool_video.commands import profile_pooling as profile_command
from softpool_video.commands import retention as retention_command
from softpool_video.measure import saved_tensor_bytes
from softpool_video.studies import retention


def _outputs(folder: Path, stem: str) -> dict[str, Path]:
    files = {ext: folder / f"{stem}.{ext}" for ext in ("md", "csv", "json", "png")}
    for path in files.values():
        assert path.is_file() and path.stat().st_size > 0, path
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return files


# --- profile-pooling -----------------------------------------------------------------------------------------------

def test_saved_tensor_bytes_counts_each_storage_once():
    a = torch.rand(10, 10, requires_grad=True)
    b = torch.rand(10, 10, requires_grad=True)
    _, saved = saved_tensor_bytes(lambda: a * b)  # saves a and b
    assert saved == 2 * 400
    _, saved = saved_tensor_bytes(lambda: a * a)  # saves a twice: one storage
    assert saved == 400
    _, saved = saved_tensor_bytes(lambda: a.exp())  # saves its output
    assert saved == 400
    _, saved = saved_tensor_bytes(lambda: (a + b).sum())  # saves nothing
    assert saved == 0


def test_profile_command_writes_every_output(tmp_path):
    out = tmp_path / "prof"
    methods = ["max", "avg", "softpool", "lip", "adapool", "s3"]
    rc = cli.main(["profile-pooling", "--input", "1,2,4,8,8", "--methods", ",".join(methods), "--warmup", "1",
                   "--repeats", "2", "--out", str(out)])
    assert rc == 0
    files = _outputs(out, "profile_pooling")
    rows = list(csv.DictReader(files["csv"].read_text().splitlines()))
    assert [r["method"] for r in rows] == methods
    for r in rows:
        assert r["device"] == "cpu" and r["dtype"] == "float32" and r["torch_version"] == torch.__version__
        assert int(r["threads"]) >= 1 and r["input_shape"] == "1x2x4x8x8"
        assert float(r["forward_ms"]) > 0 and float(r["backward_ms"]) > 0
        assert int(r["peak_rss_bytes"]) > 0
    by = {r["method"]: r for r in rows}
    # max_pool3d saves the input and int64 indices (1/8 of the elements, 8 bytes each); the
    # SoftPool op saves the input, the output and the fp32 log-sum-exp: both 1.25 x the input.
    assert float(by["max"]["saved_per_input"]) == pytest.approx(1.25)
    assert float(by["softpool"]["saved_per_input"]) == pytest.approx(1.25)
    assert json.loads(files["json"].read_text())["results"][0]["method"] == "max"
    table = files["md"].read_text()
    assert "| softpool |" in table and "vs max" in table


@pytest.mark.parametrize("argv,match", [
    (["--methods", "max,median"], "unknown pooling method"),
    (["--input", "1,2,x"], "comma-separated integers"),
    (["--input", "1,2"], "N,C,L"),
    (["--method-args", "{bad"], "JSON"),
    (["--method-args", '{"power": {"p": -1}}', "--methods", "power"], "p > 0"),
    (["--input", "1,2,2,2,2", "--kernel", "3"], "output would be empty"),
])
def test_profile_command_bad_input(argv, match, capsys, tmp_path):
    assert profile_command.main([*argv, "--out", str(tmp_path), "--repeats", "1", "--warmup", "0"]) == 2
    assert match in capsys.readouterr().err


# --- retention -------------------------------------------------------------------------------------------------------

def _write_video(path: Path, frames: np.ndarray, fps: int = 25) -> None:
    import av
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 400_000
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:32, 0:48]
    for i in range(3):
        frames = []
        for t in range(12):  # a moving bright square on a smooth gradient
            img = np.stack([(xs * 4 + t * 3) % 256, (ys * 6) % 256, np.full_like(xs, 40 * i)], -1)
            x0 = 4 + 2 * t + i
            img[8:20, x0:x0 + 12] = rng.integers(180, 255, 3)
            frames.append(img.astype(np.uint8))
        (root / "sub").mkdir(exist_ok=True)
        _write_video(root / "sub" / f"clip{i}.avi", np.stack(frames))
    (root / "notes.txt").write_text("not a video")
    return root


def test_retention_command_on_a_folder_of_videos(video_dir, tmp_path):
    out = tmp_path / "ret"
    rc = cli.main(["retention", "--data", str(video_dir), "--methods", "max,avg,softpool", "--kernels", "2,3",
                   "--clips", "2", "--frames", "8", "--out", str(out)])
    assert rc == 0
    files = _outputs(out, "retention")
    rows = list(csv.DictReader(files["csv"].read_text().splitlines()))
    assert [(r["method"], r["kernel_size"]) for r in rows] == [
        (m, k) for m in ("max", "avg", "softpool") for k in ("1x2x2", "1x3x3")]
    for r in rows:
        assert 0 < float(r["ssim"]) <= 1 and float(r["psnr"]) > 10
        assert r["clips"] == "2" and r["frames"] == "8" and r["device"] == "cpu"
    by = {(r["method"], r["kernel_size"]): r for r in rows}
    for m in ("max", "avg", "softpool"):  # a larger kernel keeps less
        assert float(by[(m, "1x3x3")]["psnr"]) < float(by[(m, "1x2x2")]["psnr"])
    meta = json.loads(files["json"].read_text())["meta"]
    assert len(meta["videos"]) == 2 and meta["skipped"] == 0
    assert "| softpool |" in files["md"].read_text()


def test_retention_is_exact_for_block_constant_clips():
    # 2x2 blocks of one value: every averaging method returns the block, nearest upsampling restores it
    gen = torch.Generator().manual_seed(0)
    blocks = torch.rand(3, 4, 8, 8, generator=gen)
    clip = blocks.repeat_interleave(2, -1).repeat_interleave(2, -2)
    results = retention.measure([clip], ["avg", "max", "softpool", "power", "adapool"], [2], upsample="nearest")
    for r in results:
        assert r.ssim == pytest.approx(1.0, abs=1e-4), r.method
        assert r.psnr > 60, r.method
    # a 3x3 kernel straddles the blocks: information is lost
    lossy = retention.measure([clip], ["avg"], [3], upsample="nearest")[0]
    assert lossy.psnr < 40 and lossy.ssim < 0.99


def test_retention_scale_moves_softpool_between_mean_and_max():
    clip = torch.rand(3, 2, 12, 12, generator=torch.Generator().manual_seed(1))

    def psnr(method, scale):
        return retention.measure([clip], [method], [2], scale=scale)[0].psnr

    assert psnr("softpool", 1e-4) == pytest.approx(psnr("avg", 1.0), abs=1e-3)
    assert psnr("softpool", 1e4) == pytest.approx(psnr("max", 1.0), abs=1e-3)
    assert psnr("max", 1.0) < psnr("softpool", 1.0) < psnr("avg", 1.0)
    with pytest.raises(ValueError, match="scale"):
        retention.measure([clip], ["avg"], [2], scale=0.0)


def test_retention_bad_input(video_dir, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert retention_command.main(["--data", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "no video files" in capsys.readouterr().err
    assert retention_command.main(["--data", str(video_dir), "--methods", "maxx", "--out", str(tmp_path / "o")]) == 2
    assert "unknown pooling method" in capsys.readouterr().err
    assert retention_command.main(["--data", str(video_dir), "--frames", "100", "--out", str(tmp_path / "o")]) == 2
    assert "gave 100 frames" in capsys.readouterr().err
