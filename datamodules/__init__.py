"""Video data for softpool-video: decoding, the official dataset formats, clip sampling,
transforms, Lightning DataModules and the built-in demo data.

    from softpool_video.datamodules import UCF101DataModule, make_demo_dataset
    root = make_demo_dataset("demo_data")
    dm = UCF101DataModule(root, split=1, num_workers=2)
"""
from .dataset import VideoClipDataset
from .decoders import BACKENDS, DecodeError, DecordReader, PyAVReader, VideoReader, open_video, read_frames
from .demo_data import DEMO_CLASSES, DEMO_VARIANTS, make_demo_dataset
from .demo_hard import HARD_CLASSES
from .hmdb51 import HMDB51Annotations, read_hmdb51_splits
from .index_cache import ReadFailureLog, VideoIndex, VideoMeta, find_videos, probe_video
from .kinetics import KineticsAnnotations, kinetics_file_stem, read_kinetics_csv, read_path_label_list
from .records import Subset, VideoRecord
from .samplers import VideoShardSampler
from .sampling import ClipSampler, clip_at, clip_span, uniform_starts
from .transforms import KINETICS_MEAN, KINETICS_STD, EvalTransform, MultiScaleCrop, TrainTransform
from .ucf101 import UCF101Annotations, read_class_index, read_split_list

# The DataModules pull in Lightning (seconds to import); load them on first use so that
# `softpool-video make-demo-data` / `check-videos` and worker processes stay light.
_LAZY = {"VideoDataModule", "UCF101DataModule", "HMDB51DataModule", "KineticsDataModule",
         "split_holdout"}


def __getattr__(name: str):
    if name in _LAZY:
        from . import datamodule

        return getattr(datamodule, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "BACKENDS", "DEMO_CLASSES", "DEMO_VARIANTS", "HARD_CLASSES", "KINETICS_MEAN", "KINETICS_STD", "ClipSampler",
    "DecodeError", "DecordReader", "EvalTransform", "HMDB51Annotations", "HMDB51DataModule",
    "KineticsAnnotations", "KineticsDataModule", "MultiScaleCrop", "PyAVReader", "ReadFailureLog", "Subset",
    "TrainTransform", "UCF101Annotations", "UCF101DataModule", "VideoClipDataset", "VideoDataModule",
    "VideoIndex", "VideoMeta", "VideoReader", "VideoRecord", "VideoShardSampler", "clip_at", "clip_span",
    "find_videos", "kinetics_file_stem", "make_demo_dataset", "open_video", "probe_video", "read_class_index",
    "read_frames", "read_hmdb51_splits", "read_kinetics_csv", "read_path_label_list", "read_split_list",
    "split_holdout", "uniform_starts",
]
