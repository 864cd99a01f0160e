"""torchvision / pytorchvideo wrappers, local weights, and the `softpool-video models` command."""
from __future__ import annotations

import logging

import pytest
import torch
from torch import nn
from torch.nn.modules import pooling as torch_pooling

from softpool_video.commands.models import main as models_main
from softpool_video.models import count_parameters, create_model, list_models, pool_sites
from softpool_video.models.summary import where

THIRD_PARTY = list_models("tv_*") + list_models("ptv_*")
pytestmark = pytest.mark.usefixtures("one_thread")


def _fixed_pools(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, (torch_pooling._MaxPoolNd, torch_pooling._AvgPoolNd))]


@pytest.mark.parametrize("name", THIRD_PARTY)
def test_third_party_builds_with_adaptive_head(name):
    with torch.device("meta"):
        model = create_model(name, 11).eval()
        out = model(torch.zeros(2, 3, 16, 112, 112))  # smaller than the libraries' fixed head pools
    assert out.shape == (2, 11)
    assert not any(isinstance(m, (nn.AvgPool3d, nn.Softmax)) for m in model.modules())


def test_torchvision_wrapper_is_torchvision_model():
    from torchvision.models.video import r2plus1d_18

    with torch.device("meta"):
        ours, theirs = create_model("tv_r2plus1d_18", 400), r2plus1d_18(num_classes=400)
        ours_s3d = create_model("tv_s3d", 400)
    assert type(ours) is type(theirs) and count_parameters(ours) == count_parameters(theirs) == 31_505_325
    assert len(_fixed_pools(ours_s3d)) == 13  # all max pools; the (2, 7, 7) head pool is now adaptive


def test_tiny_clip_runs_through_s3d_on_cpu():
    torch.manual_seed(0)
    model = create_model("tv_s3d", 3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 8, 64, 64)).shape == (1, 3)


@pytest.mark.parametrize("name", ["tv_s3d", "ptv_i3d_r50", "ptv_csn_r101", "ptv_slow_r50"])
def test_swap_pooling_replaces_every_pool(name):
    pytest.importorskip("softpool_video.pooling.swap")
    with torch.device("meta"):
        plain = create_model(name, 10)
        model = create_model(name, 10, pooling="softpool").eval()
        assert model(torch.zeros(1, 3, 16, 112, 112)).shape == (1, 10)
    assert _fixed_pools(model) == []
    swapped = [s for s in pool_sites(model) if not s.adaptive]
    assert len(swapped) == len(_fixed_pools(plain)) > 0
    assert all(s.method == "softpool" for s in swapped)


# --- local weights --------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_local_weights_round_trip(tmp_path, suffix):
    torch.manual_seed(0)
    source = create_model("r2plus1d_tiny", 5, pooling="softpool").eval()
    path = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    else:  # a Lightning-style checkpoint: nested and prefixed
        torch.save({"state_dict": {f"model.{k}": v for k, v in source.state_dict().items()}}, path)
    torch.manual_seed(1)
    loaded = create_model("r2plus1d_tiny", 5, pooling="softpool", weights=path).eval()
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x))


def test_weights_for_other_classes_skip_the_head(tmp_path, caplog):
    source = create_model("r3d_tiny", 400)
    path = tmp_path / "k400.pt"
    torch.save(source.state_dict(), path)
    with caplog.at_level(logging.WARNING, logger="softpool_video.models.weights"):
        loaded = create_model("r3d_tiny", 7, weights=path)
    assert "fc.weight" in caplog.text and "fc.bias" in caplog.text
    torch.testing.assert_close(loaded.stem[0].weight, source.stem[0].weight)
    assert loaded.fc.weight.shape == (7, loaded.num_features)


def test_weights_with_foreign_keys_are_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(create_model("r2plus1d_tiny", 5).state_dict(), path)
    with pytest.raises(ValueError, match="keys the model lacks"):
        create_model("i3d_tiny", 5, weights=path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        create_model("i3d_tiny", 5, weights=tmp_path / "missing.pt")


# --- the models command ---------------------------------------------------------------------

def test_models_command_markdown(capsys):
    assert models_main(["r2plus1d_tiny", "i3d*", "--pooling", "softpool", "--markdown"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| model | family | params (M) | GFLOPs")
    names = [r.split("|")[1].strip() for r in rows[1:]]
    assert names == ["r2plus1d_tiny", "i3d", "i3d_tiny"]
    i3d = rows[2].split("|")
    with torch.device("meta"):
        assert i3d[3].strip() == f"{count_parameters(create_model('i3d', 400)) / 1e6:.2f}"
    assert i3d[5].strip() == "13" and i3d[6].strip() == "softpool x13"
    assert "mixed*.branch3.0 (x9)" in i3d[7]


def test_models_command_sites_and_errors(capsys):
    assert models_main(["r3d_tiny", "--sites", "--clip", "8", "64", "64"]) == 0
    out = capsys.readouterr().out
    assert "stem_pool" in out and "k=1x3x3 s=1x2x2 p=0x1x1" in out and "8x64x64" in out
    assert models_main(["no_such_model"]) == 2
    assert "softpool-video models: error: unknown model 'no_such_model'" in capsys.readouterr().err


def test_where_collapses_repeated_sites():
    with torch.device("meta"):
        sites = [s for s in pool_sites(create_model("i3d", 10)) if not s.adaptive]
    assert where(sites) == "pool* (x4), mixed*.branch3.0 (x9)"
