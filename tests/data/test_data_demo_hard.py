"""The hard demo (make-demo-data --variant hard): the default demo's layout, splits and
determinism, with classes defined by small, fast or low-contrast details."""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from softpool_video.datamodules import DEMO_VARIANTS, DecordReader, UCF101Annotations, VideoIndex, make_demo_dataset
from softpool_video.datamodules.demo import TEST_GROUPS, write_group
from softpool_video.datamodules.demo_hard import HARD_CLASSES, HardDemoSpec

SMALL = {"groups": 22, "clips_per_group": 1}  # the smallest demo with every official split


@pytest.fixture(scope="module")
def hard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from softpool_video.cli import main as cli_main  # through the command line's entry point

    root = tmp_path_factory.mktemp("demo_hard") / "data"
    assert cli_main(["make-demo-data", str(root), "--variant", "hard", "--seed", "3", "--groups", "22",
                     "--clips-per-group", "1"]) == 0
    return root


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _group(rel: str) -> int:
    return int(rel.split("_g")[1][:2])


def test_variant_option_writes_the_hard_classes(hard: Path) -> None:
    lists = hard / "ucfTrainTestlist"
    assert (lists / "classInd.txt").read_bytes() == "".join(
        f"{i} {c}\r\n" for i, c in enumerate(HARD_CLASSES, 1)).encode()
    info = json.loads((hard / "demo_info.json").read_text())
    assert info["variant"] == "hard" and info["seed"] == 3 and info["classes"] == list(HARD_CLASSES)
    # the same call again reuses it; asking for the default variant there is refused
    assert make_demo_dataset(hard, seed=3, variant="hard", **SMALL) == hard
    with pytest.raises(FileExistsError, match="other parameters"):
        make_demo_dataset(hard, seed=3, **SMALL)


def test_splits_are_balanced_and_group_disjoint(hard: Path) -> None:
    for split, test_groups in TEST_GROUPS.items():
        ann = UCF101Annotations(hard, split=split)
        train, test = ann.subset("train"), ann.subset("test")
        assert not train.missing and not test.missing
        for subset, groups in ((train, 22 - len(test_groups)), (test, len(test_groups))):
            per_class = Counter(r.rel.split("/")[-2] for r in subset.records)
            assert per_class == {c: groups for c in HARD_CLASSES}
        train_groups = {_group(r.rel) for r in train.records}
        assert {_group(r.rel) for r in test.records} == set(test_groups)
        assert not train_groups & set(test_groups)


def test_listed_videos_exist_and_decode(hard: Path) -> None:
    ann = UCF101Annotations(hard, split=1)
    rels = [r.rel for name in ("train", "test") for r in ann.subset(name).records]
    assert len(rels) == len(set(rels)) == 22 * len(HARD_CLASSES)
    metas = VideoIndex(hard).ensure(rels)
    assert all(m.ok for m in metas.values())
    spec = HardDemoSpec()
    assert {spec.min_frames <= m.num_frames <= spec.max_frames for m in metas.values()} == {True}
    with DecordReader(hard / "UCF-101" / "DotRise" / "v_DotRise_g05_c01.avi") as reader:
        frames = reader.get(np.arange(0, 16, 2)).numpy()
    assert frames.shape == (8, spec.height, spec.width, 3)


def test_deterministic_from_seed(hard: Path, tmp_path: Path) -> None:
    spec = HardDemoSpec(seed=3, **SMALL)
    again = write_group(tmp_path / "same", spec, HARD_CLASSES.index("SwingFast"), 9)
    assert _md5(again[0]) == _md5(hard / "UCF-101" / "SwingFast" / "v_SwingFast_g09_c01.avi")
    other = write_group(tmp_path / "other", HardDemoSpec(seed=4, **SMALL), HARD_CLASSES.index("SwingFast"), 9)
    assert _md5(other[0]) != _md5(again[0])


def test_unknown_variant_names_the_option_and_the_choices(tmp_path: Path, capsys) -> None:
    from softpool_video.cli import main as cli_main

    with pytest.raises(SystemExit) as exc:
        cli_main(["make-demo-data", str(tmp_path / "x"), "--variant", "extreme"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--variant" in err and "'extreme'" in err and all(f"'{v}'" in err for v in DEMO_VARIANTS)
    with pytest.raises(ValueError, match=r"variant='extreme'.*default, hard"):
        make_demo_dataset(tmp_path / "y", variant="extreme")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def _render(class_name: str, seed: int = 0, **knobs) -> np.ndarray:
    spec = HardDemoSpec(seed=seed, **knobs)
    rng = np.random.default_rng(seed)
    return spec.render(class_name, rng, spec.look(rng)).astype(np.float64).mean(-1)


def _vertical_shift(frames: np.ndarray) -> float:
    """The vertical shift (pixels per frame, + is down) that best maps each frame onto the next."""
    a, b = frames[:-1, 8:-8], frames[1:]
    errors = [np.mean((a - b[:, 8 + dy:b.shape[1] - 8 + dy]) ** 2) for dy in range(-3, 4)]
    return float(np.argmin(errors) - 3)


def test_classes_are_defined_by_their_details() -> None:
    """Rendered without the encoder: the grain drifts as named; a lone dot rises, falls or swings as named."""
    no_dots = {"dot_contrast": (0.0, 0.0), "drift_speed": (1.0, 1.0), "fine_scale": (1.0, 1.0), "coarse_fraction": 0.0}
    assert _vertical_shift(_render("DriftDown", **no_dots)) == 1
    assert _vertical_shift(_render("DriftUp", **no_dots)) == -1
    assert _vertical_shift(_render("DotRise", **no_dots)) == 0  # the grain holds still

    def actor(class_name: str, seed: int, axis: int) -> np.ndarray:
        # one dot, no grain or clutter: its row (axis 1) or column (axis 2) is the
        # brightness-weighted centroid
        frames = _render(class_name, seed, dots=1, grain_contrast=(0.0, 0.0), clutter=0.0)
        frames = frames - np.median(frames, axis=0)
        weight = np.clip(frames, 0, None)
        position = np.arange(frames.shape[axis]).reshape((-1, 1) if axis == 1 else (1, -1))
        return (weight * position).sum((1, 2)) / weight.sum((1, 2))

    def actor_y(class_name: str, seed: int) -> np.ndarray:
        return actor(class_name, seed, 1)

    def actor_x(class_name: str, seed: int) -> np.ndarray:  # the swing is side to side
        return actor(class_name, seed, 2)

    def period(y: np.ndarray) -> float:
        spectrum = np.abs(np.fft.rfft((y - y.mean()) * np.hanning(len(y))))
        return len(y) / (int(np.argmax(spectrum[1:])) + 1)

    spec = HardDemoSpec()
    for seed in range(3):
        assert np.polyfit(np.arange(len(y := actor_y("DotRise", seed))), y, 1)[0] < -0.3
        assert np.polyfit(np.arange(len(y := actor_y("DotFall", seed))), y, 1)[0] > 0.3
        assert period(actor_x("SwingSlow", seed)) > 1.5 * spec.fast_period[1]
        assert period(actor_x("SwingFast", seed)) < 1.5 * spec.fast_period[1]


def test_details_come_fine_or_coarse() -> None:
    """The dots of a fine clip are a few pixels across, those of a coarse clip many times that."""
    def dot_pixels(coarse_fraction: float) -> int:
        frames = _render("DotRise", 1, coarse_fraction=coarse_fraction, grain_contrast=(0.0, 0.0), clutter=0.0,
                         dot_contrast=(100.0, 100.0))
        lit = frames[0] - np.median(frames[0])
        return int((lit > 50).sum())

    fine, coarse = dot_pixels(0.0), dot_pixels(1.0)
    assert 1 <= fine <= 4 * 12 and coarse > 6 * fine
