"""The demo dataset: exact UCF-101 layout, real videos, deterministic, motion-defined classes."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from softpool_video.commands.make_demo_data import main as make_demo_data_main
from softpool_video.datamodules import DEMO_CLASSES, DecordReader, UCF101Annotations, VideoIndex, make_demo_dataset
from softpool_video.datamodules.demo import DemoSpec, write_group

SMALL = {"groups": 22, "clips_per_group": 1}  # the smallest demo with every official split


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "data"
    rc = make_demo_data_main([str(root), "--seed", "3", "--groups", "22", "--clips-per-group", "1"])
    assert rc == 0
    return root


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_layout_is_ucf101(demo: Path) -> None:
    lists = demo / "ucfTrainTestlist"
    assert (lists / "classInd.txt").read_bytes() == "".join(
        f"{i} {c}\r\n" for i, c in enumerate(DEMO_CLASSES, 1)).encode()
    for split, test_groups in ((1, range(1, 8)), (2, range(8, 15)), (3, range(15, 22))):
        ann = UCF101Annotations(demo, split=split)
        train, test = ann.subset("train"), ann.subset("test")
        assert len(test) == 7 * 6 and len(train) == 15 * 6
        assert not train.missing and not test.missing
        assert {int(r.rel.split("_g")[1][:2]) for r in test.records} == set(test_groups)
        assert not {r.rel for r in train.records} & {r.rel for r in test.records}
        first = (lists / f"trainlist0{split}.txt").read_text().splitlines()[0]
        assert first.endswith(" 1") and first.startswith("MoveUp/v_MoveUp_g")
    videos = sorted((demo / "UCF-101").rglob("*.avi"))
    assert len(videos) == 22 * 6
    assert videos[0].relative_to(demo).as_posix() == "UCF-101/Grow/v_Grow_g01_c01.avi"


def test_videos_are_real_xvid_avi(demo: Path) -> None:
    import av

    path = demo / "UCF-101" / "Spin" / "v_Spin_g05_c01.avi"
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert c.format.name == "avi"
        assert stream.codec_context.name == "mpeg4" and stream.codec_tag == "XVID"
        assert (stream.width, stream.height) == (128, 96)
        assert stream.average_rate == 25
    rels = [p.relative_to(demo).as_posix() for p in (demo / "UCF-101").rglob("*.avi")]
    metas = VideoIndex(demo).ensure(rels)
    assert all(m.ok for m in metas.values())
    assert {32 <= m.num_frames <= 40 for m in metas.values()} == {True}
    total = sum((demo / r).stat().st_size for r in rels)
    assert total < 4 * 2**20  # 132 videos; the default 300 are about 2.3x this


def test_deterministic_from_seed(demo: Path, tmp_path: Path) -> None:
    spec = DemoSpec(seed=3, **SMALL)
    again = write_group(tmp_path / "same", spec, DEMO_CLASSES.index("Shrink"), 9)
    assert _md5(again[0]) == _md5(demo / "UCF-101" / "Shrink" / "v_Shrink_g09_c01.avi")
    other = write_group(tmp_path / "other", DemoSpec(seed=4, **SMALL), DEMO_CLASSES.index("Shrink"), 9)
    assert _md5(other[0]) != _md5(again[0])


def test_existing_demo_is_reused_other_folders_are_protected(demo: Path, tmp_path: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in (demo / "UCF-101" / "Grow").iterdir()}
    assert make_demo_dataset(demo, seed=3, **SMALL) == demo  # same parameters: nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in (demo / "UCF-101" / "Grow").iterdir()} == before
    with pytest.raises(FileExistsError, match="other parameters"):
        make_demo_dataset(demo, seed=4, **SMALL)
    info = json.loads((demo / "demo_info.json").read_text())
    assert info["seed"] == 3
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not a demo dataset"):
        make_demo_dataset(busy)
    with pytest.raises(ValueError, match="groups=10"):
        make_demo_dataset(tmp_path / "few", groups=10)


def _track(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame foreground centroid (x, y) and area, against the static background."""
    with DecordReader(path) as r:
        frames = r.get(np.arange(r.num_frames)).numpy().astype(np.int16)
    background = np.median(frames, axis=0)
    fg = np.abs(frames - background).max(axis=-1) > 60
    area = fg.sum(axis=(1, 2)).astype(float)
    ys, xs = np.mgrid[0:fg.shape[1], 0:fg.shape[2]]
    cx = (fg * xs).sum(axis=(1, 2)) / np.maximum(area, 1)
    cy = (fg * ys).sum(axis=(1, 2)) / np.maximum(area, 1)
    return cx, cy, area


def test_classes_are_defined_by_motion(demo: Path) -> None:
    """Each class moves as named, and no single-frame size or position gives it away."""
    stats: dict[str, list[tuple[float, float, float, float]]] = {c: [] for c in DEMO_CLASSES}
    for cls in DEMO_CLASSES:
        for g in range(1, 23, 4):
            cx, cy, area = _track(demo / "UCF-101" / cls / f"v_{cls}_g{g:02d}_c01.avi")
            t = np.arange(len(cy))
            stats[cls].append((np.polyfit(t, cy, 1)[0], np.polyfit(t, area, 1)[0] / area.mean(),
                               np.abs(np.diff(cx)).mean(), area.mean()))
    s = {c: np.array(v) for c, v in stats.items()}
    assert (s["MoveUp"][:, 0] < -0.5).all() and (s["MoveDown"][:, 0] > 0.5).all()  # px / frame
    assert (s["Grow"][:, 1] > 0.02).all() and (s["Shrink"][:, 1] < -0.02).all()
    shake = s["Shake"][:, 2]
    assert shake.min() > max(s[c][:, 2].max() for c in ("MoveUp", "MoveDown", "Spin"))
    # Spin: the shape turns in place (no drift, steady area) yet its pixels change.
    assert (np.abs(s["Spin"][:, 0]) < 0.4).all() and (np.abs(s["Spin"][:, 1]) < 0.02).all()
    # A single frame does not tell Up from Down or Grow from Shrink: same size ranges.
    for a, b in (("MoveUp", "MoveDown"), ("Grow", "Shrink")):
        lo = max(s[a][:, 3].min(), s[b][:, 3].min())
        hi = min(s[a][:, 3].max(), s[b][:, 3].max())
        assert lo < hi
