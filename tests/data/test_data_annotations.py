"""Split-file parsing for UCF-101, HMDB-51 and Kinetics on fixtures in the official formats."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
from data_fixtures import (
    HMDB_CLASSES,
    KINETICS_CLASSES,
    UCF_CLASSES,
    make_hmdb_tree,
    make_kinetics_tree,
    make_ucf_tree,
    ucf_file,
)

from softpool_video.datamodules import (
    HMDB51Annotations,
    KineticsAnnotations,
    UCF101Annotations,
    kinetics_file_stem,
    read_class_index,
    read_split_list,
)


@pytest.fixture(scope="module")
def ucf_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_ucf_tree(tmp_path_factory.mktemp("ucf_lists"), clips=2, videos=False)


# ---- UCF-101 ------------------------------------------------------------------------------
def test_ucf_class_index_is_one_based_and_labels_zero_based(ucf_root: Path) -> None:
    names = read_class_index(ucf_root / "ucfTrainTestlist" / "classInd.txt")
    assert names == list(UCF_CLASSES)
    ann = UCF101Annotations(ucf_root, split=1)
    train = ann.subset("train")
    # trainlist says "... 1" for ApplyEyeMakeup: label 0.
    assert {r.label for r in train.records if "ApplyEyeMakeup" in r.rel} == {0}
    assert {r.label for r in train.records if "YoYo" in r.rel} == {2}


@pytest.mark.parametrize("split,test_groups", [(1, range(1, 8)), (2, range(8, 15)), (3, range(15, 22))])
def test_ucf_splits_counts_and_disjointness(ucf_root: Path, split: int, test_groups: range) -> None:
    ann = UCF101Annotations(ucf_root, split=split)
    train, test = ann.subset("train"), ann.subset("test")
    per_class_test = len(test_groups) * 2
    assert len(test) == per_class_test * len(UCF_CLASSES)
    assert len(train) == (25 * 2 - per_class_test) * len(UCF_CLASSES)
    assert not {r.rel for r in train.records} & {r.rel for r in test.records}
    groups = {int(r.rel.split("_g")[1][:2]) for r in test.records}
    assert groups == set(test_groups)
    # Test labels come from the folder name.
    for r in test.records:
        assert UCF_CLASSES[r.label] == r.rel.split("/")[1]
    assert train.missing == [] and test.missing == []


def test_ucf_handstand_pushups_name_mismatch(ucf_root: Path) -> None:
    ann = UCF101Annotations(ucf_root, split=1)
    recs = [r for r in ann.subset("test").records if r.label == UCF_CLASSES.index("HandstandPushups")]
    assert len(recs) == 14
    # Files keep the official "HandStand" spelling inside the "Handstand" folder.
    assert all(r.rel.startswith("UCF-101/HandstandPushups/v_HandStandPushups_g") for r in recs)
    assert all((ucf_root / r.rel).is_file() for r in recs)


def test_ucf_mirror_with_renamed_folder(tmp_path: Path) -> None:
    root = make_ucf_tree(tmp_path / "mirror", groups=22, videos=False,
                         folder_case={"HandstandPushups": "HandStandPushups"})
    ann = UCF101Annotations(root, split=2)
    label = UCF_CLASSES.index("HandstandPushups")
    train = [r for r in ann.subset("train").records if r.label == label]
    test = [r for r in ann.subset("test").records if r.label == label]
    assert len(train) == 22 - 7 and len(test) == 7
    assert all(r.rel.startswith("UCF-101/HandStandPushups/") for r in train + test)


def test_ucf_missing_videos_reported_once_and_excluded(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    root = make_ucf_tree(tmp_path / "ucf", groups=22, videos=False)
    (root / "UCF-101" / "YoYo" / ucf_file("YoYo", 1, 1)).unlink()
    (root / "UCF-101" / "YoYo" / ucf_file("YoYo", 2, 1)).unlink()
    with caplog.at_level(logging.WARNING):
        test = UCF101Annotations(root, split=1).subset("test")
    assert len(test) == 7 * 3 - 2
    assert sorted(test.missing) == [f"YoYo/{ucf_file('YoYo', 1, 1)}", f"YoYo/{ucf_file('YoYo', 2, 1)}"]
    warnings = [r for r in caplog.records if "missing" in r.getMessage()]
    assert len(warnings) == 1 and "2 of 21" in warnings[0].getMessage()


def test_ucf_bad_files_give_clear_errors(tmp_path: Path) -> None:
    names = ["A", "B"]
    bad_index = tmp_path / "classInd.txt"
    bad_index.write_text("1 A\n3 B\n")
    with pytest.raises(ValueError, match="without gaps"):
        read_class_index(bad_index)
    wrong_label = tmp_path / "trainlist01.txt"
    wrong_label.write_text("A/v_A_g01_c01.avi 2\n")
    with pytest.raises(ValueError, match="disagrees with folder"):
        read_split_list(wrong_label, names, labelled=True)
    unknown = tmp_path / "testlist01.txt"
    unknown.write_text("C/v_C_g01_c01.avi\n")
    with pytest.raises(ValueError, match="not in classInd"):
        read_split_list(unknown, names, labelled=False)
    with pytest.raises(ValueError, match="split=4"):
        UCF101Annotations(tmp_path, split=4)


# ---- HMDB-51 --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hmdb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hmdb_tree(tmp_path_factory.mktemp("hmdb_lists"), videos=False)


@pytest.mark.parametrize("split", [1, 2, 3])
def test_hmdb_splits(hmdb_root: Path, split: int) -> None:
    ann = HMDB51Annotations(hmdb_root, split=split)
    assert ann.class_names == sorted(HMDB_CLASSES)  # labels in sorted class order
    train, test = ann.subset("train"), ann.subset("test")
    # 9 videos per class: tags cycle 1, 2, 0 -> 3 train, 3 test, 3 unused.
    assert len(train) == len(test) == 9
    assert not {r.rel for r in train.records} & {r.rel for r in test.records}
    for r in train.records + test.records:
        cls = r.rel.split("/")[1]
        assert ann.class_names[r.label] == cls
        assert f"_{cls}_" in r.rel
    # The same video changes role across splits (the split files differ).
    other = HMDB51Annotations(hmdb_root, split=split % 3 + 1).subset("train")
    assert {r.rel for r in other.records} != {r.rel for r in train.records}


def test_hmdb_unused_videos_excluded_and_bad_tag_rejected(hmdb_root: Path, tmp_path: Path) -> None:
    ann = HMDB51Annotations(hmdb_root, split=1)
    listed = {r.rel for r in ann.subset("train").records + ann.subset("test").records}
    on_disk = {p.relative_to(hmdb_root).as_posix() for p in (hmdb_root / "hmdb51_org").rglob("*.avi")}
    assert len(on_disk - listed) == 9  # the tag-0 videos
    bad = make_hmdb_tree(tmp_path / "bad", per_class=3, videos=False)
    (bad / "testTrainMulti_7030_splits" / "cartwheel_test_split1.txt").write_text("x.avi 3\n")
    with pytest.raises(ValueError, match="0 = unused, 1 = train, 2 = test"):
        HMDB51Annotations(bad, split=1)


# ---- Kinetics -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kinetics_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_kinetics_tree(tmp_path_factory.mktemp("kinetics_lists"), videos=False, drop=2)


def test_kinetics_file_stem() -> None:
    assert kinetics_file_stem("--07WQ2iBlw", 1, 11) == "--07WQ2iBlw_000001_000011"
    assert kinetics_file_stem("abc_def-123", "14.0", "24.0") == "abc_def-123_000014_000024"


def test_kinetics_csv(kinetics_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        ann = KineticsAnnotations(kinetics_root)
        train, val = ann.subset("train"), ann.subset("val")
    assert ann.class_names == sorted(KINETICS_CLASSES)
    assert len(train) == 3 * 4 - 2 and len(train.missing) == 2
    assert len(val) == 3 * 4 and not val.missing
    missing_warnings = [r for r in caplog.records if "missing" in r.getMessage()]
    assert len(missing_warnings) == 1 and "2 of 12" in missing_warnings[0].getMessage()
    for r in train.records:
        assert r.rel.startswith(f"train/{ann.class_names[r.label]}/")
    for r in val.records:
        assert r.rel.startswith("val/")  # flat layout found by file name
    guitar = ann.class_names.index("playing guitar")
    assert sum(r.label == guitar for r in val.records) == 4
    assert not {r.rel for r in train.records} & {r.rel for r in val.records}
    test = ann.subset("test")  # no label column: unlabelled
    assert len(test) == 3 and {r.label for r in test.records} == {-1}


def test_kinetics_list_and_folder_formats(kinetics_root: Path, tmp_path: Path) -> None:
    ann = KineticsAnnotations(kinetics_root)
    train = ann.subset("train")
    # A plain "path label" list with integer labels, written from the CSV result.
    (kinetics_root / "train.txt").write_text("".join(f"{r.rel} {r.label}\n" for r in train.records))
    (kinetics_root / "val.txt").write_text("".join(
        f"{r.rel} {ann.class_names[r.label]}\n" for r in ann.subset("val").records))
    (kinetics_root / "classes.txt").write_text("\n".join(ann.class_names) + "\n")
    listed = KineticsAnnotations(kinetics_root, "list", classes_file="classes.txt")
    assert [(r.rel, r.label) for r in listed.subset("train").records] == [(r.rel, r.label) for r in train.records]
    val_named = listed.subset("val")  # class names as labels map through classes.txt
    assert [r.label for r in val_named.records] == [r.label for r in ann.subset("val").records]

    # Class-per-folder: train/<class>/... exists in the fixture; build val/<class>/ too.
    folder_root = tmp_path / "folder"
    for subset, n in (("train", 2), ("val", 1)):
        for cls in KINETICS_CLASSES:
            for i in range(n):
                p = folder_root / subset / cls / f"clip{i}.mp4"
                p.parent.mkdir(parents=True, exist_ok=True)
                p.touch()
    folder = KineticsAnnotations(folder_root, "folder")
    assert folder.class_names == sorted(KINETICS_CLASSES)
    assert len(folder.subset("train")) == 6 and len(folder.subset("val")) == 3
    for r in folder.subset("val").records:
        assert r.rel.split("/")[1] == folder.class_names[r.label]


def test_kinetics_errors(tmp_path: Path) -> None:
    root = tmp_path / "k"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "train.csv").write_text("label,time_start\nx,1\n")
    with pytest.raises(ValueError, match="missing \\['time_end', 'youtube_id'\\]"):
        KineticsAnnotations(root)
    with pytest.raises(ValueError, match="annotation_format='json'"):
        KineticsAnnotations(root, "json")
    with pytest.raises(FileNotFoundError, match="val_annotations"):
        (root / "annotations" / "train.csv").write_text(
            "label,youtube_id,time_start,time_end,split\na,xyz,0,10,train\n")
        KineticsAnnotations(root).subset("val")


def test_hmdb_groups_are_source_videos() -> None:
    from softpool_video.datamodules.hmdb51 import hmdb51_source_video

    # Clips of one source differ in their tags as well as their number: one group.
    a = hmdb51_source_video("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "brush_hair")
    b = hmdb51_source_video("brush_hair/April_09_brush_hair_h_nm_np2_fr_med_1.avi", "brush_hair")
    assert a == b == "April_09"
    # A source name may hold underscores and even the class word; the last `_<class>_` counts.
    assert hmdb51_source_video("kick_ball/Kick_the_kick_ball_game_kick_ball_f_cm_np1_ri_bad_3.avi",
                               "kick_ball") == "Kick_the_kick_ball_game"
    # One source in two classes is one group (held out on one side for both).
    assert hmdb51_source_video("eat/Pulp_Fiction_eat_h_nm_np1_fr_goo_0.avi", "eat") == \
        hmdb51_source_video("drink/Pulp_Fiction_drink_u_cm_np1_le_med_2.avi", "drink")
    # A name without `_<class>_`: everything before the clip number, as before.
    assert hmdb51_source_video("run/odd_name_4.avi", "run") == "odd_name"


def test_holdout_cannot_be_made_names_the_cause() -> None:
    from softpool_video.datamodules import VideoRecord, split_holdout

    one_group_each = [VideoRecord(f"c{c}/v{i}.avi", c, f"src{c}") for c in range(3) for i in range(4)]
    with pytest.raises(ValueError, match=r"val_source='holdout', holdout_fraction=0.1: no class has two or more"):
        split_holdout(one_group_each, 0.1, seed=0)
    # Two classes share both sources: holding one out of class 0 and the other out of class 1
    # (or any draw that takes both) leaves one of them nothing to train on.
    shared = [VideoRecord(f"c{c}/{s}.avi", c, s) for c in range(2) for s in ("x", "y")]
    failures = 0
    for seed in range(20):
        try:
            kept, held = split_holdout(shared, 0.5, seed=seed, class_names=["eat", "drink"])
        except ValueError as err:
            failures += 1
            assert "class 'eat'" in str(err) or "class 'drink'" in str(err)
            assert "holdout_fraction=0.5" in str(err) and "val_source" in str(err)
        else:
            assert {r.label for r in kept} == {0, 1} and {r.label for r in held} == {0, 1}
    assert failures > 0
    # Two groups per class and a small fraction still hold one group of each class out.
    two = [VideoRecord(f"c{c}/g{g}_{i}.avi", c, f"c{c}g{g}") for c in range(3) for g in range(2) for i in range(2)]
    kept, held = split_holdout(two, 0.1, seed=0)
    assert {r.label for r in held} == {r.label for r in kept} == {0, 1, 2}
