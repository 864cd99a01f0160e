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
    with DecordReader(hard / "UCF-101" / "Travel" / "v_Travel_g05_c01.avi") as reader:
        frames = reader.get(np.arange(0, 16, 2)).numpy()
    assert frames.shape == (8, spec.height, spec.width, 3)


def test_deterministic_from_seed(hard: Path, tmp_path: Path) -> None:
    spec = HardDemoSpec(seed=3, **SMALL)
    again = write_group(tmp_path / "same", spec, HARD_CLASSES.index("Swing"), 9)
    assert _md5(again[0]) == _md5(hard / "UCF-101" / "Swing" / "v_Swing_g09_c01.avi")
    other = write_group(tmp_path / "other", HardDemoSpec(seed=4, **SMALL), HARD_CLASSES.index("Swing"), 9)
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


def _grain_change(frames: np.ndarray, step: int = 6, reach: int = 14) -> tuple[float, float]:
    """(mean squared change from frame 0 to frame `step`, what is left of it after the best
    whole-pixel shift of frame 0 by up to `reach` pixels), over the middle of the frame."""
    h, w = frames.shape[1:]
    a, b = frames[0], frames[step, reach:h - reach, reach:w - reach]
    change = float(np.mean((b - a[reach:h - reach, reach:w - reach]) ** 2))
    left = min(float(np.mean((b - a[reach + dy:h - reach + dy, reach + dx:w - reach + dx]) ** 2))
               for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1))
    return change, left


NO_DOTS = {"dot_contrast": (0.0, 0.0), "drift_speed": (0.6, 0.6), "detail_scale": (3.0, 3.0)}  # 1.8 px a frame
ONLY_DOTS = {"grain_contrast": (0.0, 0.0), "clutter": 0.0, "dot_contrast": (100.0, 100.0), "jitter": 0.0}


def test_grain_classes_are_defined_by_the_grain() -> None:
    """Without dots: the grain holds still, moves as a whole (Drift) or is redrawn (Flicker)."""
    for seed in range(3):
        still, _ = _grain_change(_render("Still", seed, **NO_DOTS))
        drift, drift_shifted = _grain_change(_render("Drift", seed, **NO_DOTS))
        flicker, flicker_shifted = _grain_change(_render("Flicker", seed, **NO_DOTS))
        assert still < 0.5 < drift and flicker > 0.5
        assert drift_shifted < drift / 3  # a shift explains the drift's change ...
        assert flicker_shifted > flicker / 3  # ... and not the flicker's


def _dot_centroids(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, how bright the dots are in all and their brightness-weighted (x, y) centroid."""
    lit = np.clip(frames - np.median(frames), 0, None)
    ys, xs = np.mgrid[:frames.shape[1], :frames.shape[2]]
    total = lit.sum((1, 2))
    return total, np.stack([(lit * xs).sum((1, 2)), (lit * ys).sum((1, 2))], 1) / np.maximum(total, 1e-9)[:, None]


def test_dot_classes_are_defined_by_the_dots() -> None:
    """One dot, no grain: it holds still (Still), travels away (Travel), comes back (Swing) or blinks (Blink)."""
    for seed in range(3):
        def track(class_name: str, seed: int = seed) -> tuple[np.ndarray, np.ndarray]:
            return _dot_centroids(_render(class_name, seed, dots=1, detail_scale=(2.0, 2.0), **ONLY_DOTS))

        def reach(path: np.ndarray) -> float:  # furthest distance from the first position
            return float(np.linalg.norm(path - path[0], axis=1).max())

        (still_light, still), (_, travel), (_, swing) = track("Still"), track("Travel"), track("Swing")
        blink_light, _ = track("Blink")
        assert reach(still) < 3 and reach(travel) > 15 and reach(swing) > 4
        # a swing returns near where it was within a period; a travel keeps moving away
        spec = HardDemoSpec()
        period = int(spec.swing_period[1])
        assert min(np.linalg.norm(swing[period // 2:] - swing[0], axis=1)) < 1.5
        assert np.ptp(still_light) < 0.1 * still_light.mean()
        assert (blink_light < 0.1 * blink_light.max()).sum() >= 5  # off for several frames ...
        assert (blink_light > 0.5 * blink_light.max()).sum() >= 5  # ... and on for several


def test_details_range_from_fine_to_coarse() -> None:
    """The dots of a clip at the fine end are a few pixels across, those at the coarse end many times that."""
    def dot_pixels(scale: float) -> int:  # pixels lit to a tenth of the dot's peak or more
        frames = _render("Still", 1, dots=1, detail_scale=(scale, scale), **ONLY_DOTS)
        lit = frames[0] - np.median(frames[0])
        return int((lit > 0.1 * lit.max()).sum())

    spec = HardDemoSpec()
    fine, coarse = dot_pixels(spec.detail_scale[0]), dot_pixels(spec.detail_scale[1])
    assert 1 <= fine <= 9 and coarse > 10 * fine
