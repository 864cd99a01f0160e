"""Video data for softpool-video: decoding, the official dataset formats, clip sampling,
transforms, Lightning DataModules and the built-in demo data.

    from softpool_video.datamodules import UCF101DataModule, make_demo_dataset
    root = make_demo_dataset("demo_data")
    dm = UCF101DataModule(root, split=1, loading={"batch_size": 8, "num_workers": 2})

One file per dataset (ucf101.py, hmdb51.py, kinetics.py) holds its annotation parser and
its DataModule; datamodule.py holds the base they share, split_lists.py what UCF-101 and
HMDB-51 share beyond it (a video folder, split lists, three splits), options.py the argument groups
(Decoding, ClipSampling, Transforms, Loading); demo.py (with demo_hard.py)
writes the built-in demo, which is UCF-101 on disk. video_files.py says which files are
videos and walks a dataset folder; clip_sampling.py picks frames, samplers.py orders items
for the DataLoader, collate.py batches them and leaves unreadable ones out.
"""
from .clip_sampling import ClipSampler, clip_at, clip_span, uniform_starts
from .dataset import VideoClipDataset
from .decoders import (
    DECODERS,
    DamagedStream,
    DecodeError,
    DecordReader,
    PyAVReader,
    VideoReader,
    open_video,
    read_frames,
)
from .demo import DEMO_CLASSES, DEMO_VARIANTS, make_demo_dataset
from .demo_hard import HARD_CLASSES
from .index_cache import ReadFailureLog, VideoIndex, VideoMeta, probe_video
from .options import ClipSampling, Decoding, Loading, Transforms, flatten_arguments, group_arguments
from .records import Subset, VideoRecord
from .samplers import VideoShardSampler
from .transforms import KINETICS_MEAN, KINETICS_STD, EvalTransform, MultiScaleCrop, TrainTransform
from .video_files import CACHE_DIRNAME, VIDEO_EXTENSIONS, find_videos, is_video_file

# The dataset files hold DataModules, which pull in Lightning (seconds to import); load them
# on first use so that `softpool-video make-demo-data` / `check-videos` and DataLoader
# worker processes stay light.
_LAZY: dict[str, str] = {
    "VideoDataModule": "datamodule", "split_holdout": "datamodule",
    "UCF101DataModule": "ucf101", "UCF101Annotations": "ucf101", "read_class_index": "ucf101",
    "read_split_list": "ucf101",
    "SplitListAnnotations": "split_lists", "SplitListDataModule": "split_lists",
    "HMDB51DataModule": "hmdb51", "HMDB51Annotations": "hmdb51", "read_hmdb51_splits": "hmdb51",
    "KineticsDataModule": "kinetics", "KineticsAnnotations": "kinetics",
    "kinetics_file_stem": "kinetics", "read_kinetics_csv": "kinetics",
    "read_path_label_list": "kinetics",
}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DECODERS", "CACHE_DIRNAME", "DamagedStream", "DEMO_CLASSES", "DEMO_VARIANTS", "HARD_CLASSES", "KINETICS_MEAN", "KINETICS_STD",
    "VIDEO_EXTENSIONS", "ClipSampler", "ClipSampling", "DecodeError", "Decoding", "DecordReader", "EvalTransform",
    "HMDB51Annotations", "HMDB51DataModule", "KineticsAnnotations", "KineticsDataModule", "Loading",
    "MultiScaleCrop", "PyAVReader", "ReadFailureLog", "SplitListAnnotations",
    "SplitListDataModule", "Subset", "TrainTransform", "Transforms", "UCF101Annotations",
    "UCF101DataModule", "VideoClipDataset", "VideoDataModule", "VideoIndex", "VideoMeta", "VideoReader",
    "VideoRecord", "VideoShardSampler", "clip_at", "clip_span", "find_videos", "flatten_arguments",
    "group_arguments", "is_video_file", "kinetics_file_stem", "make_demo_dataset", "open_video", "probe_video",
    "read_class_index", "read_frames", "read_hmdb51_splits", "read_kinetics_csv", "read_path_label_list",
    "read_split_list", "split_holdout", "uniform_starts",
]
