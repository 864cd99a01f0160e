"""Config files by name, and every shipped config parses into known models, poolings and datasets."""
from __future__ import annotations

from pathlib import Path

import pytest

from softpool_video.models import list_models
from softpool_video.pooling import available_pools
from softpool_video.training import configs
from softpool_video.training.configs import (
    available_configs,
    config_name,
    expand_config_args,
    resolve_config,
)

CHECKOUT = Path(__file__).resolve().parents[2] / "configs"


def test_names_resolve_with_or_without_suffix():
    path = resolve_config("ucf101/r2plus1d_50")
    assert path.is_file() and path.name == "r2plus1d_50.yaml" and path.parent.name == "ucf101"
    assert resolve_config("ucf101/r2plus1d_50.yaml") == path
    assert resolve_config("demo").name == "demo.yaml"
    assert resolve_config(str(path)) == path  # a path is used as is
    assert config_name(path) == "ucf101/r2plus1d_50"


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(FileNotFoundError, match=r"--config: .*'ucf101/nope'.*ucf101/r3d_50"):
        resolve_config("ucf101/nope")


def test_the_grid_of_configs_is_complete_and_fragments_are_not_names():
    names = set(available_configs())
    for dataset in ("ucf101", "hmdb51", "kinetics400"):
        for arch in ("i3d", "r2plus1d_50", "r3d_50", "srtg_r2plus1d_50"):
            assert f"{dataset}/{arch}" in names  # one file per dataset x architecture ...
    assert not any(name.endswith(("_max", "_softpool")) for name in names)  # ... the pooling is an option
    assert "demo" in names
    assert not any(name.split("/")[0] in configs.FRAGMENT_FOLDERS for name in names)
    assert configs.is_fragment(resolve_config("data/ucf101_112")) and configs.is_fragment(resolve_config("trainer/finetune"))
    assert not configs.is_fragment(resolve_config("ucf101/i3d"))


@pytest.mark.parametrize("name", [n for n in available_configs() if n.split("/")[0] in ("ucf101", "hmdb51", "kinetics400")
                                  and not n.endswith("_finetune")])
def test_experiment_configs_default_to_softpool_and_take_the_pooling_on_the_command_line(fit_parser, name):
    path = str(resolve_config(name))
    assert fit_parser.parse_args(["fit", "--config", path]).fit.model.pooling == "softpool"
    assert fit_parser.parse_args(["fit", "--config", path, "--model.pooling", "max"]).fit.model.pooling == "max"


def test_expand_config_args_rewrites_only_config_values():
    demo = str(resolve_config("demo"))
    argv = ["--config", "demo", "--model.pooling", "max", "-c", "demo", "--config=demo", "--trainer.max_epochs", "1"]
    assert expand_config_args(argv) == ["--config", demo, "--model.pooling", "max", "-c", demo,
                                        f"--config={demo}", "--trainer.max_epochs", "1"]


def test_installed_package_is_searched_before_the_checkout(tmp_path, monkeypatch):
    installed = tmp_path / "softpool_video" / "configs"
    (installed / "ucf101").mkdir(parents=True)
    (installed / "ucf101" / "r3d_50.yaml").write_text("seed_everything: 1\n")
    (installed / "only_installed.yaml").write_text("seed_everything: 2\n")

    class Spec:  # what find_spec returns for an installed softpool_video.configs
        pass

    monkeypatch.setattr(configs.importlib.util, "find_spec",
                        lambda name: Spec() if name == "softpool_video.configs" else None)
    monkeypatch.setattr(configs.importlib.resources, "files", lambda name: installed)
    assert configs.config_roots()[0] == installed
    assert resolve_config("ucf101/r3d_50") == installed / "ucf101" / "r3d_50.yaml"
    assert resolve_config("only_installed") == installed / "only_installed.yaml"
    assert resolve_config("ucf101/i3d") == CHECKOUT / "ucf101" / "i3d.yaml"


@pytest.mark.parametrize("name", available_configs())
def test_every_config_parses(fit_parser, name):
    cfg = fit_parser.parse_args(["fit", "--config", str(resolve_config(name))]).fit
    assert cfg.model.arch in list_models()
    assert cfg.model.pooling in available_pools()
    assert cfg.data.class_path.startswith("softpool_video.datamodules.")
    assert cfg.data.init_args.root
    assert isinstance(cfg.seed_everything, int)
    if not name.startswith("demo"):  # the CPU demos are small on purpose
        data = cfg.data.init_args
        assert cfg.trainer.max_epochs > 1 and data.sampling.test_clips * data.transforms.test_crops == 30


@pytest.mark.parametrize("name", available_configs())
def test_every_config_selects_checkpoints_on_a_holdout_never_on_the_test_list(fit_parser, name):
    cfg = fit_parser.parse_args(["fit", "--config", str(resolve_config(name))]).fit
    assert cfg.checkpoint.monitor  # checkpoints are selected on validation ...
    assert cfg.data.init_args.val_source == "holdout"  # ... which is held-out training data
    assert 0.0 < cfg.data.init_args.holdout_fraction < 0.5
    assert cfg.data.init_args.allow_test_selection is False


@pytest.mark.parametrize("name", [n for n in available_configs() if "/srtg_" in n])
def test_srtg_configs_put_a_pool_where_the_published_net_has_none(fit_parser, name):
    cfg = fit_parser.parse_args(["fit", "--config", str(resolve_config(name))]).fit
    assert cfg.model.model_kwargs["stem_pool"] is True  # else max and softpool runs are the same model


@pytest.mark.parametrize("name", [n for n in available_configs() if "srtg" in n])
def test_srtg_configs_leave_every_gated_stage_two_frames_or_more(fit_parser, name):
    """The LSTM of a stage whose feature map has one frame has no step to recur over (its
    weight_hh gets no gradient): each shipped SRTG config's clip length must keep T >= 2 in every
    stage. Measured on the tiny net, which downsamples time like the full ones."""
    import torch

    from softpool_video.models import create_model
    from softpool_video.models.srtg import SqueezeRecursionGate

    fit = fit_parser.parse_args(["fit", "--config", str(resolve_config(name))]).fit
    frames = fit.data.init_args.sampling.clip_len
    kwargs = {k: v for k, v in dict(fit.model.model_kwargs or {}).items() if k != "weights"}
    model = create_model("srtg_r2plus1d_tiny", 5, pooling=fit.model.pooling, **kwargs).eval()
    seen: list[int] = []
    for module in model.modules():
        if isinstance(module, SqueezeRecursionGate):
            module.register_forward_hook(lambda _m, args, _out: seen.append(args[0].shape[2]))
    with torch.no_grad():
        model(torch.randn(1, 3, frames, 32, 32))
    assert seen and min(seen) >= 2, f"{name}: {frames} frames give the stages {seen} frames"
