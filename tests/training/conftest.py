"""Fixtures of the training tests."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """Demo videos at the smallest size the generator allows (22 groups x 6 classes, 32x32);
    shared with the other training tests of the session through the base temp folder."""
    from softpool_video.datamodules import make_demo_dataset
    return make_demo_dataset(tmp_path_factory.getbasetemp() / "training_demo_tiny", groups=22, clips_per_group=1,
                             width=32, height=32)
