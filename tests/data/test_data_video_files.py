"""video_files.py: one extension list, one walker, one cache folder, used by every parser."""
from __future__ import annotations

import pytest

from softpool_video.datamodules import decoders, video_files
from softpool_video.datamodules.video_files import CACHE_DIRNAME, find_videos, is_video_file, walk_dataset


def test_extensions_cover_every_list_the_package_used_to_keep():
    # the video index's list, which already held the retention benchmark's
    for ext in (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv", ".3gp"):
        assert ext in video_files.VIDEO_EXTENSIONS
    assert is_video_file("a/B.AVI") and is_video_file("clip.Mp4")
    assert not is_video_file("list.txt") and not is_video_file(".x.avi.prepare-tmp")


def test_walker_is_sorted_and_skips_the_cache_folder(tmp_path):
    for rel in ("b/2.avi", "b/1.mp4", "a/x.txt", f"{CACHE_DIRNAME}/index.json", f"{CACHE_DIRNAME}/c.avi",
                "a/deep/z.mkv"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    folders = [folder.relative_to(tmp_path).as_posix() for folder, _ in walk_dataset(tmp_path)]
    assert folders == [".", "a", "a/deep", "b"]
    assert dict((f.relative_to(tmp_path).as_posix(), n) for f, n in walk_dataset(tmp_path))["b"] == ["1.mp4", "2.avi"]
    assert find_videos(tmp_path) == ["a/deep/z.mkv", "b/1.mp4", "b/2.avi"]


def test_parsers_and_the_index_share_the_one_definition():
    from softpool_video.datamodules import demo, index_cache, kinetics, listing, records, split_lists

    # the folder listing, which the parsers and the index read, walks with the one definition
    assert listing.CACHE_DIRNAME is CACHE_DIRNAME and demo.CACHE_DIRNAME is CACHE_DIRNAME
    assert listing.is_video_file is is_video_file
    assert index_cache.cache_folder is video_files.cache_folder is listing.cache_folder
    assert kinetics.VideoListing is records.VideoListing is split_lists.VideoListing is listing.VideoListing


def test_reader_class_is_the_public_way_to_a_decoder():
    assert decoders.reader_class("decord") is decoders.DecordReader
    assert decoders.reader_class("pyav") is decoders.PyAVReader
    with pytest.raises(ValueError):
        decoders.reader_class("opencv")
