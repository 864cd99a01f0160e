"""Distributed: strategy fragments, the seeded train sampler, and a real 2-process
DDP fit + test on CPU (gloo) whose video-level test metrics equal a 1-process test."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from run_args import tiny_args
from torch.utils.data import DataLoader, Dataset

from softpool_video.commands import test as test_command
from softpool_video.datamodules.samplers import (
    SeededItems,
    SeededTrainSampler,
    item_seed,
)
from softpool_video.training import available_configs
from softpool_video.training.cli import VideoCLI
from softpool_video.training.configs import (
    available_strategies,
    expand_config_args,
    is_fragment,
    resolve_config,
)

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


# ---- the train sampler -------------------------------------------------------------------
def test_train_order_is_fixed_by_seed_and_epoch_and_ranks_split_it():
    data = range(23)
    one = SeededTrainSampler(data, seed=3)
    assert one.indices() == SeededTrainSampler(data, seed=3).indices()
    epoch0 = one.indices()
    one.set_epoch(1)
    assert sorted(epoch0) == sorted(one.indices()) == list(range(23)) and epoch0 != one.indices()
    assert SeededTrainSampler(data, seed=4).indices() != epoch0
    ranks = [SeededTrainSampler(data, 2, r, seed=3) for r in range(2)]
    assert [len(r) for r in ranks] == [12, 12]  # padded to equal length, as DDP training needs
    assert set(ranks[0].indices()) | set(ranks[1].indices()) == set(range(23))


def test_each_training_item_carries_its_own_seed():
    sampler = SeededTrainSampler(range(20), seed=0)
    sampler.set_epoch(2)
    whole = list(sampler)
    assert len(whole) == len(sampler) == 20
    assert [seed for _, seed, _ in whole] == [item_seed(0, 2, i) for i, _, _ in whole]
    assert {shard for _, _, shard in whole} == {sampler.shard()}  # what replacements are drawn from


class NoisyItems(Dataset):
    """Items drawn from torch's global RNG, like clip sampling and v2 transforms."""

    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.rand(3) + index


@pytest.mark.parametrize("workers", [0, 2])
def test_item_randomness_depends_on_seed_epoch_index_only(workers):
    def epoch(num_workers: int, replicas: int = 1, rank: int = 0) -> dict[int, torch.Tensor]:
        sampler = SeededTrainSampler(NoisyItems(), replicas, rank, seed=5)
        sampler.set_epoch(1)
        # a generator, as the datamodule passes: else DataLoader draws its worker base seed globally
        loader = DataLoader(SeededItems(NoisyItems()), sampler=sampler, batch_size=4, num_workers=num_workers,
                            generator=torch.Generator().manual_seed(0))
        items = torch.cat(list(loader))
        return {int(x[0].floor()): x for x in items}

    single = epoch(0)
    before = torch.get_rng_state()
    sharded = {**epoch(workers, 2, 0), **epoch(workers, 2, 1)}
    assert torch.equal(before, torch.get_rng_state())  # loading leaves the caller's RNG alone
    assert single.keys() == sharded.keys() == set(range(16))
    assert all(torch.equal(single[i], sharded[i]) for i in single)


# ---- strategy fragments ----------------------------------------------------------------
def test_strategy_fragments_resolve_by_name_and_are_not_experiments():
    assert {"strategy/ddp", "strategy/ddp_sync_bn", "strategy/fsdp"} <= set(available_strategies())
    assert not any(name.startswith("strategy/") for name in available_configs())
    assert is_fragment(resolve_config("strategy/ddp")) and not is_fragment(resolve_config("demo"))


def test_run_is_named_after_the_experiment_not_the_fragment(demo_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = tiny_args(demo_root, tmp_path)
    at = args.index("--trainer.default_root_dir")
    del args[at:at + 2]
    args += ["--config", str(resolve_config("strategy/ddp"))]
    with pytest.warns(UserWarning, match="args parameter"):  # pytest's own argv is there too
        cli = VideoCLI(args=expand_config_args([*args, "--trainer.logger", "false"]), run=False)
    assert Path(cli.trainer.default_root_dir) == Path("runs/demo_max")  # <experiment>_<pooling>
    assert type(cli.trainer.strategy).__name__ == "DDPStrategy"
    kwargs = cli.trainer.strategy._ddp_kwargs
    assert kwargs["find_unused_parameters"] is False and kwargs["gradient_as_bucket_view"] is True


def test_sync_batchnorm_on_cpu_is_refused_before_training(demo_root, tmp_path, capsys):
    from softpool_video.commands.fit import main as fit_main
    assert fit_main([*tiny_args(demo_root, tmp_path), "--config", "strategy/ddp_sync_bn"]) == 2
    assert "trainer.sync_batchnorm=true needs GPUs" in capsys.readouterr().err
    assert not (tmp_path / "checkpoints").exists()


def test_fsdp_on_cpu_is_a_clear_error(demo_root, tmp_path, capsys):
    from softpool_video.commands.fit import main as fit_main
    assert fit_main([*tiny_args(demo_root, tmp_path), "--config", "strategy/fsdp"]) == 2
    err = capsys.readouterr().err
    assert "fsdp" in err and "GPU accelerator" in err
    assert not (tmp_path / "checkpoints").exists()


# ---- real DDP ----------------------------------------------------------------------------
def ddp_command(subcommand: str, root: Path, out: Path, *extra: str) -> list[str]:
    args = tiny_args(root, out, epochs=1)
    # the whole test set (limits would apply per rank and pick different views)
    at = args.index("--trainer.limit_test_batches")
    del args[at:at + 2]
    return [sys.executable, "-m", "softpool_video.cli", subcommand, *args, "--config", "strategy/ddp",
            "--trainer.devices", "2", *extra]


def results(out: Path, stage: str) -> dict:
    records = sorted(out.glob("logs/version_*/run.json"), key=lambda p: int(p.parent.name.split("_")[1]))
    return json.loads(records[-1].read_text())["results"][stage]


@pytest.mark.slow
def test_two_process_ddp_fit_and_test_equal_one_process_test(demo_root, tmp_path):
    out = tmp_path / "ddp"
    found = {}
    for subcommand, extra in (("fit", ()), ("test", ("--ckpt_path", "last"))):
        done = subprocess.run(ddp_command(subcommand, demo_root, out, *extra), env=ENV, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        found[subcommand] = results(out, subcommand)
    fit, ddp = found["fit"], found["test"]
    assert fit["world_size"] == 2 and fit["global_step"] == 2  # 2 steps, each on 2 ranks x 4 clips

    # the same checkpoint tested by one process (in this one)
    args = ddp_command("test", demo_root, out)[4:-4]
    assert test_command.main([*args, "--ckpt_path", "last"]) == 0
    single = results(out, "test")
    num_videos = 42  # the demo's test split: 7 groups x 6 classes
    assert ddp["test/num_videos"] == single["test/num_videos"] == num_videos
    for key in ("video_acc1", "video_acc5", "video_mean_class_acc", "clip_acc1", "clip_acc5"):
        assert ddp[f"test/{key}"] == single[f"test/{key}"], key
    assert ddp["test/loss"] == pytest.approx(single["test/loss"], rel=1e-5)


# ---- learnable pools under DDP ------------------------------------------------------------
LEARNABLE_POOLS = [("lip", {}), ("adapool", {}), ("mixed", {}), ("gated", {}), ("softpool", {"learnable": True})]


@pytest.mark.slow
@pytest.mark.parametrize("pooling,pool_args", LEARNABLE_POOLS, ids=[p for p, _ in LEARNABLE_POOLS])
def test_learnable_pools_train_under_two_process_ddp(demo_root, tmp_path, pooling, pool_args):
    """Lazy pools (lip, adapool) are materialised before DDP wraps the model; every pooling
    parameter is in the optimizer and moves, identically on both ranks (one checkpoint)."""
    extra = ["--model.pooling", pooling]
    if pool_args:
        extra += ["--model.model_kwargs", json.dumps({"pool_args": pool_args})]
    out = tmp_path / pooling
    done = subprocess.run(ddp_command("fit", demo_root, out, *extra), env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    trained = {k: v for k, v in saved["state_dict"].items() if k.startswith("net.stem_pool.")}
    assert trained, "the stem pool has no parameters"

    from softpool_video.training import VideoClassifier
    fresh = VideoClassifier(6, arch="r2plus1d_tiny", pooling=pooling, model_kwargs={"pool_args": pool_args})
    fresh.materialize((4, 32, 32))
    initial = fresh.state_dict()
    for name, value in trained.items():
        assert value.shape == initial[name].shape, name
        assert not torch.equal(value, initial[name]), f"{name} did not train"
    groups = saved["optimizer_states"][0]["param_groups"]
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in fresh.parameters())
