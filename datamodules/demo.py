"""The built-in demo dataset: synthetic actions that need motion to tell apart, written in
the exact UCF-101 layout so the whole pipeline runs on it unchanged:

    <root>/UCF-101/<Class>/v_<Class>_gGG_cCC.avi      MPEG-4 part 2 (XVID tag) in AVI, as UCF-101
    <root>/ucfTrainTestlist/classInd.txt              "1 MoveUp" ...
    <root>/ucfTrainTestlist/trainlist0{1,2,3}.txt     "MoveUp/v_MoveUp_g08_c01.avi 1"
    <root>/ucfTrainTestlist/testlist0{1,2,3}.txt      "MoveUp/v_MoveUp_g01_c01.avi"

Six classes, each a shape doing one thing: moving up, moving down, growing, shrinking,
spinning, shaking side to side. Any single frame could come from any class (shapes,
colours, positions and angles are drawn from the same ranges, sizes overlap), so a model
has to use motion, and Up/Down, Grow/Shrink need its direction. The classes survive
horizontal flips (left/right or clockwise/anticlockwise classes would swap labels under
the default flip augmentation). Nuisances: shape, colours, position, size, speed, a
textured, grainy background and a little positional jitter. As in UCF-101, clips of one
group share a background and colours (here across all classes, so the look is no cue to
the class), and the splits are by group (test groups 1-7, 8-14, 15-21 for splits 1-3), so
no test group is seen in training.

Everything is drawn from `numpy.random.default_rng` seeded per video from `seed`, and the
encoder runs single-threaded, so the same seed writes the same bytes.

This is the "default" variant. Other variants (`hard`: demo_hard.py) are a spec class with
their own classes, look and renderer; the writer, the split lists, the completeness check
and the reuse of an existing copy here are shared by all of them.

The demo has no DataModule of its own: it is UCF-101 on disk, so `UCF101DataModule`
(ucf101.py) reads it.
"""
from __future__ import annotations

import importlib
import json
import logging
import math
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .video_files import CACHE_DIRNAME

log = logging.getLogger(__name__)

DEMO_CLASSES: tuple[str, ...] = ("MoveUp", "MoveDown", "Grow", "Shrink", "Spin", "Shake")
# UCF-101's official test groups per split.
TEST_GROUPS: dict[int, range] = {1: range(1, 8), 2: range(8, 15), 3: range(15, 22)}
INFO_FILE = "demo_info.json"
DEMO_FORMAT_VERSION = 1
# variant name -> (module, spec class); the modules are imported on first use.
_VARIANT_SPECS: dict[str, tuple[str, str]] = {"default": (__name__, "DemoSpec"),
                                              "hard": (f"{__package__}.demo_hard", "HardDemoSpec")}
DEMO_VARIANTS: tuple[str, ...] = tuple(_VARIANT_SPECS)

# Shapes as unions of convex polygons in unit coordinates (radius about 1); none has the
# mirror/rotation symmetry that would hide its motion at the sampled frame steps.
_SHAPES: dict[str, list[np.ndarray]] = {
    "triangle": [np.array([[0.0, -1.0], [0.95, 0.75], [-0.95, 0.75]])],
    "L": [np.array([[-0.8, -1.0], [-0.2, -1.0], [-0.2, 1.0], [-0.8, 1.0]]),
          np.array([[-0.2, 0.4], [0.8, 0.4], [0.8, 1.0], [-0.2, 1.0]])],
    "arrow": [np.array([[-1.0, -0.25], [0.2, -0.25], [0.2, 0.25], [-1.0, 0.25]]),
              np.array([[0.2, -0.7], [1.0, 0.0], [0.2, 0.7]])],
    "flag": [np.array([[-0.7, -1.0], [-0.4, -1.0], [-0.4, 1.0], [-0.7, 1.0]]),
             np.array([[-0.4, -1.0], [0.8, -0.55], [-0.4, -0.1]])],
}


@dataclass(frozen=True)
class DemoSpec:
    """What the demo contains; stored in demo_info.json to recognise an existing copy.

    A variant subclasses this and overrides `look` and `render` (and the defaults).
    """

    seed: int = 0
    classes: tuple[str, ...] = DEMO_CLASSES
    groups: int = 25
    clips_per_group: int = 2
    width: int = 128
    height: int = 96
    fps: int = 25
    min_frames: int = 32
    max_frames: int = 40
    bit_rate: int = 48_000
    version: int = DEMO_FORMAT_VERSION

    def look(self, rng: np.random.Generator) -> Any:
        """What the clips of one group share (drawn from the group's generator)."""
        return _group_look(rng, self)

    def render(self, class_name: str, rng: np.random.Generator, look: Any) -> np.ndarray:
        """(T, H, W, 3) uint8 frames of one clip of `class_name`."""
        return _render_video(class_name, rng, look, self)


def _fill(mask: np.ndarray, polygon: np.ndarray) -> None:
    """Set the pixels whose centres lie inside a convex polygon (x, y vertices, either
    winding). Only the polygon's bounding box is evaluated."""
    h, w = mask.shape
    x_lo, y_lo = np.floor(polygon.min(0)).astype(int)
    x_hi, y_hi = np.ceil(polygon.max(0)).astype(int)
    x_lo, y_lo, x_hi, y_hi = max(x_lo, 0), max(y_lo, 0), min(x_hi + 1, w), min(y_hi + 1, h)
    if x_lo >= x_hi or y_lo >= y_hi:
        return
    ys, xs = np.mgrid[y_lo:y_hi, x_lo:x_hi].astype(np.float32) + 0.5
    nxt = np.roll(polygon, -1, axis=0)
    area = float(np.sum(polygon[:, 0] * nxt[:, 1] - nxt[:, 0] * polygon[:, 1]))
    sign = 1.0 if area >= 0 else -1.0
    inside = np.ones(xs.shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(polygon, nxt, strict=True):
        inside &= sign * ((x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0)) >= 0
    mask[y_lo:y_hi, x_lo:x_hi] |= inside


def _render_mask(shape: str, cx: float, cy: float, radius: float, angle: float,
                 size: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    for part in _SHAPES[shape]:
        _fill(mask, part @ rot.T * radius + np.array([cx, cy]))
    return mask


def _group_look(rng: np.random.Generator, spec: DemoSpec) -> dict:
    """Background and colours shared by the clips of one group, across classes.

    Always a bright shape on a darker textured background: colour varies, polarity does
    not, which keeps the demo learnable by a tiny model in a few CPU epochs.
    """
    base = rng.integers(15, 80, 3)
    # Low-frequency texture: random blocks, 8 pixels wide.
    coarse = rng.normal(0, 12, (spec.height // 8 + 1, spec.width // 8 + 1, 3))
    texture = np.kron(coarse, np.ones((8, 8, 1)))[: spec.height, : spec.width]
    grain = rng.normal(0, 3, (spec.height, spec.width, 1))  # static, so cheap to encode
    background = np.clip(base + texture + grain, 0, 255)
    fg = rng.integers(190, 256, 3)
    fg[rng.integers(3)] = rng.integers(60, 256)  # a tint; still far brighter than the background
    return {"background": background, "foreground": fg.astype(np.float64)}


def _render_video(class_name: str, rng: np.random.Generator, look: dict,
                  spec: DemoSpec) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of one clip of `class_name`."""
    n = int(rng.integers(spec.min_frames, spec.max_frames + 1))
    w, h = spec.width, spec.height
    shape = list(_SHAPES)[int(rng.integers(len(_SHAPES)))]
    radius = float(rng.uniform(0.15, 0.2) * h)
    angle0 = float(rng.uniform(0, 2 * math.pi))
    t = np.arange(n, dtype=np.float64)
    radii = np.full(n, radius)
    angles = np.full(n, angle0)
    if class_name in ("Grow", "Shrink"):
        # Exponential growth looks uniform; both classes span the same sizes.
        small = float(rng.uniform(0.1, 0.13) * h)
        big = min(small * float(rng.uniform(2.6, 3.2)), 0.38 * h)
        radii = small * (big / small) ** (t / (n - 1))
        if class_name == "Shrink":
            radii = radii[::-1]
    # Centres stay in the middle of the frame, so that training crops keep the shape.
    cx, cy = float(rng.uniform(0.35, 0.65) * w), float(rng.uniform(0.35, 0.65) * h)
    centres = np.tile([cx, cy], (n, 1))
    if class_name in ("MoveUp", "MoveDown"):
        travel = float(rng.uniform(0.5, 0.6) * h)
        y_start = float(np.clip(cy - travel / 2, radius, h - radius - travel))
        path = y_start + travel * t / (n - 1)
        centres[:, 1] = path[::-1] if class_name == "MoveUp" else path  # y points down
    elif class_name == "Spin":
        omega = math.radians(float(rng.uniform(8.0, 12.0))) * (1 if rng.random() < 0.5 else -1)
        angles = angle0 + omega * t
    elif class_name == "Shake":
        amplitude = float(rng.uniform(0.12, 0.16) * w)
        period = float(rng.uniform(12.0, 18.0))
        centres[:, 0] = cx + amplitude * np.sin(2 * math.pi * t / period + rng.uniform(0, 2 * math.pi))
    # Small positional jitter in every class, so "not moving" is not a cue on its own.
    centres = centres + rng.normal(0, 0.4, centres.shape)
    frames = np.empty((n, h, w, 3), dtype=np.uint8)
    bg, fg = look["background"], look["foreground"]
    bg8 = bg.astype(np.uint8)
    fg8 = fg.astype(np.uint8)
    for i in range(n):
        mask = _render_mask(shape, centres[i, 0], centres[i, 1], radii[i], angles[i], (h, w))
        frames[i] = np.where(mask[..., None], fg8, bg8)
    return frames


def write_avi(path: Path, frames: np.ndarray, fps: int = 25, bit_rate: int = 48_000) -> None:
    """Write uint8 (T, H, W, 3) frames as MPEG-4 part 2 in AVI with the XVID tag, as UCF-101."""
    import av

    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_tag = "XVID"
        stream.bit_rate = bit_rate
        stream.codec_context.gop_size = 12
        stream.codec_context.thread_count = 1  # single-threaded: same bytes every time
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _video_name(class_name: str, group: int, clip: int) -> str:
    return f"v_{class_name}_g{group:02d}_c{clip:02d}.avi"


def _write_lists(list_dir: Path, spec: DemoSpec) -> None:
    list_dir.mkdir(parents=True, exist_ok=True)
    crlf = "\r\n"  # the official lists use Windows line ends
    (list_dir / "classInd.txt").write_bytes(
        "".join(f"{i} {c}{crlf}" for i, c in enumerate(spec.classes, 1)).encode())
    for split, test_groups in TEST_GROUPS.items():
        train, test = [], []
        for label, c in enumerate(spec.classes, 1):
            for g in range(1, spec.groups + 1):
                for k in range(1, spec.clips_per_group + 1):
                    rel = f"{c}/{_video_name(c, g, k)}"
                    (test.append(rel) if g in test_groups else train.append(f"{rel} {label}"))
        (list_dir / f"trainlist0{split}.txt").write_bytes("".join(x + crlf for x in train).encode())
        (list_dir / f"testlist0{split}.txt").write_bytes("".join(x + crlf for x in test).encode())


def demo_spec(variant: str = "default", **fields: Any) -> DemoSpec:
    """The spec of a demo `variant` (one of DEMO_VARIANTS); fields given as None keep the
    variant's defaults."""
    if variant not in _VARIANT_SPECS:
        raise ValueError(f"variant={variant!r} is not a demo variant; choose one of {', '.join(DEMO_VARIANTS)}")
    module, name = _VARIANT_SPECS[variant]
    spec_cls = getattr(importlib.import_module(module), name)
    return spec_cls(**{k: v for k, v in fields.items() if v is not None})


def check_spec(spec: DemoSpec) -> None:
    if not isinstance(spec.seed, int) or spec.seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {spec.seed!r}")
    if spec.groups < 22:
        raise ValueError(f"groups={spec.groups} must be >= 22: UCF-101 split 3 tests on groups 15-21 and "
                         "each split needs training groups")
    if spec.clips_per_group < 1:
        raise ValueError(f"clips_per_group must be >= 1, got {spec.clips_per_group}")
    if spec.width < 32 or spec.height < 32 or spec.width % 2 or spec.height % 2:
        raise ValueError(f"width and height must be even and >= 32, got {spec.width}x{spec.height}")


def make_demo_dataset(root: str | Path, seed: int = 0, *, variant: str = "default", groups: int | None = None,
                      clips_per_group: int | None = None, width: int | None = None, height: int | None = None,
                      overwrite: bool = False, workers: int = 2) -> Path:
    """Write the demo dataset `variant` (DEMO_VARIANTS) under `root` (UCF-101 layout) and
    return `root`. Sizes left as None take the variant's defaults.

    An existing demo with the same parameters is kept as it is (so this is cheap to call
    before every run); a different one is replaced only with `overwrite=True`.
    `groups` must be at least 22 so every official test group exists.
    """
    spec = demo_spec(variant, seed=seed, groups=groups, clips_per_group=clips_per_group, width=width,
                     height=height)
    return write_dataset(root, spec, overwrite=overwrite, workers=workers)


def write_dataset(root: str | Path, spec: DemoSpec, *, overwrite: bool = False, workers: int = 2) -> Path:
    """Write the demo described by `spec` under `root` (see make_demo_dataset)."""
    check_spec(spec)
    root = Path(root)
    info_path = root / INFO_FILE
    expected = json.loads(json.dumps(asdict(spec)))
    if info_path.is_file():
        try:
            existing = json.loads(info_path.read_text())
        except ValueError:
            existing = None
        if existing == expected and _complete(root, spec):
            log.info("demo dataset already present at %s (seed %d)", root, spec.seed)
            return root
        if not overwrite:
            raise FileExistsError(f"{root} holds a demo dataset with other parameters "
                                  f"({existing}); pass overwrite=True to replace it")
    elif root.exists() and any(p.name != CACHE_DIRNAME for p in root.iterdir()) and not overwrite:
        raise FileExistsError(f"root={str(root)!r} exists and is not a demo dataset; choose an "
                              "empty folder or pass overwrite=True")
    for sub in ("UCF-101", "ucfTrainTestlist", CACHE_DIRNAME):
        shutil.rmtree(root / sub, ignore_errors=True)
    info_path.unlink(missing_ok=True)

    start = time.perf_counter()
    jobs = [(ci, g) for ci in range(len(spec.classes)) for g in range(1, spec.groups + 1)]
    # numpy and the encoder release the GIL for most of the work; threads are enough.
    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(lambda job: write_group(root / "UCF-101", spec, *job), jobs))
    _write_lists(root / "ucfTrainTestlist", spec)
    info_path.write_text(json.dumps(expected, indent=1) + "\n")
    log.info("wrote %d demo videos to %s in %.1fs", len(jobs) * spec.clips_per_group, root,
             time.perf_counter() - start)
    return root


def write_group(video_root: Path, spec: DemoSpec, class_index: int, group: int) -> list[Path]:
    """Render and encode the clips of one (class, group); returns their paths.

    Seeded by (seed, group, class_index) alone, so any group can be rebuilt on its own.
    """
    class_name = spec.classes[class_index]
    # The look depends on the group only: like a UCF-101 group (one actor, one place)
    # filmed doing every action, so backgrounds and colours say nothing about the class.
    look = spec.look(np.random.default_rng(np.random.SeedSequence([spec.seed, group])))
    clip_ss = np.random.SeedSequence([spec.seed, group, class_index]).spawn(spec.clips_per_group)
    folder = video_root / class_name
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, ss in enumerate(clip_ss, 1):
        frames = spec.render(class_name, np.random.default_rng(ss), look)
        path = folder / _video_name(class_name, group, k)
        write_avi(path, frames, spec.fps, spec.bit_rate)
        paths.append(path)
    return paths


def _complete(root: Path, spec: DemoSpec) -> bool:
    lists = root / "ucfTrainTestlist"
    if not all((lists / f"{kind}list0{s}.txt").is_file() for kind in ("train", "test") for s in (1, 2, 3)):
        return False
    return all((root / "UCF-101" / c / _video_name(c, g, k)).is_file()
               for c in spec.classes for g in range(1, spec.groups + 1)
               for k in range(1, spec.clips_per_group + 1))
