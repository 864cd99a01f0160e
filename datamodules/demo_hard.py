"""The hard demo (`softpool-video make-demo-data DIR --variant hard`): synthetic actions
told apart by small, fast or low-contrast details, the kind that a network's downsampling
keeps or destroys, so that pooling methods differ on it (configs/demo_hard.yaml). On the
default demo (demo.py) every pooling method reaches 100%.

Same UCF-101 layout, splits, writer and determinism as the default demo (demo.py
writes both). Every clip shows the same scene: a dim background under a low-contrast grain,
and four soft dots, three of them all but still. Six classes, in three pairs:

    DotRise, DotFall       the fourth dot moves steadily up / down
    DriftUp, DriftDown     the grain drifts up / down behind the dots (it holds still in
                           the other classes)
    SwingSlow, SwingFast   the fourth dot swings side to side, about one swing per
                           training clip or one every 2-3 sampled frames (the same motion
                           mirrored, so a flip keeps it)

Each clip draws the size of its details: the grain's grid, the dots' radius, the drift
speed and the swing amplitude grow with one scale. 70% of the clips are coarse (grain of
4-6 pixels, dots 4-10 pixels across), which every pooling method learns; the rest are fine
(grain of about one pixel, dots 1-3 pixels across, sub-pixel drifts), which a stride-2
stem followed by a stride-2 pool averages away (avg), keeps at its peak (max) or weighs
(SoftPool). Contrasts, speeds and periods are drawn per clip too. No class is left/right,
so the labels survive horizontal flips.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .demo import DemoSpec

HARD_CLASSES: tuple[str, ...] = ("DotRise", "DotFall", "DriftUp", "DriftDown", "SwingSlow", "SwingFast")
HARD_FORMAT_VERSION = 1


@dataclass(frozen=True)
class HardDemoSpec(DemoSpec):
    """The hard demo; the difficulty knobs are stored in demo_info.json with the rest."""

    classes: tuple[str, ...] = HARD_CLASSES
    width: int = 88  # decord decodes 96-pixel-wide MPEG-4 wrongly (rows 128 wide)
    height: int = 72
    bit_rate: int = 240_000  # enough for the grain and the dots to survive MPEG-4
    version: int = HARD_FORMAT_VERSION
    variant: str = "hard"
    dots: int = 4  # dots in every clip: the one that rises, falls or swings (if any) and near-still others
    dot_contrast: tuple[float, float] = (30.0, 140.0)  # peak grey levels above the background
    dot_sigma: tuple[float, float] = (0.6, 0.8)  # Gaussian dot radius, pixels, at detail scale 1
    # Per clip, the size of its details (grain grid, dot radius, drift speed, swing amplitude
    # grow with it): `coarse_fraction` of the clips at a coarse scale, the others at a fine one.
    fine_scale: tuple[float, float] = (0.6, 1.6)
    coarse_scale: tuple[float, float] = (3.5, 6.0)
    coarse_fraction: float = 0.7
    dot_speed: tuple[float, float] = (0.6, 1.0)  # pixels per frame, of the rising or falling dot
    wander_speed: tuple[float, float] = (0.0, 0.1)  # pixels per frame, of the other dots (random turns)
    clutter: float = 4.0  # standard deviation of the coarse background blocks, grey levels
    grain_contrast: tuple[float, float] = (5.0, 16.0)  # standard deviation of the fine grain, grey levels
    drift_speed: tuple[float, float] = (0.25, 0.4)  # pixels per frame at detail scale 1
    slow_period: tuple[float, float] = (12.0, 18.0)  # frames per swing
    fast_period: tuple[float, float] = (4.5, 7.0)
    swing_amplitude: tuple[float, float] = (4.0, 7.0)  # pixels, times max(1, scale / 2)

    def look(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """A group's background and dot colour, shared by its clips of every class."""
        h, w = self.height, self.width
        base = rng.integers(40, 90, 3).astype(np.float64)
        coarse = rng.normal(0, self.clutter, (h // 8 + 1, w // 8 + 1, 3))
        background = base + np.kron(coarse, np.ones((8, 8, 1)))[:h, :w]
        tint = rng.uniform(0.7, 1.0, 3)
        tint[rng.integers(3)] = 1.0
        return {"background": background, "dot": tint}

    def render(self, class_name: str, rng: np.random.Generator, look: Any) -> np.ndarray:
        return _render(class_name, rng, look, self)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _wander(rng: np.random.Generator, n: int, speed: float, box: tuple[float, float, float, float]
            ) -> np.ndarray:
    """(n, 2) positions of a dot moving at `speed` in a direction that turns every 4-10
    frames, reflected at the box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    pos = np.empty((n, 2))
    p = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
    heading, left = 0.0, 0
    for i in range(n):
        if left == 0:
            heading, left = float(rng.uniform(0, 2 * math.pi)), int(rng.integers(4, 11))
        pos[i] = p
        p = p + speed * np.array([math.cos(heading), math.sin(heading)])
        for axis, (lo, hi) in enumerate(((x0, x1), (y0, y1))):
            if not lo <= p[axis] <= hi:  # bounce off the wall
                p[axis] = 2 * (lo if p[axis] < lo else hi) - p[axis]
                heading = math.pi - heading if axis == 0 else -heading
        left -= 1
    return pos


def _zoom(grid: np.ndarray, scale: float, shape: tuple[int, int]) -> np.ndarray:
    """`grid` upsampled `scale` times (bilinear), cropped to `shape`."""
    out = grid
    for axis, size in enumerate(shape):
        pos = np.arange(size) / scale
        i = np.floor(pos).astype(int)
        f = (pos - i).reshape([-1 if a == axis else 1 for a in range(2)])
        out = np.take(out, i, axis) * (1 - f) + np.take(out, i + 1, axis) * f
    return out


def _shifted_rows(strip: np.ndarray, offset: float, h: int) -> np.ndarray:
    """Rows [offset, offset + h) of `strip`, linearly interpolated at a fractional offset."""
    k = math.floor(offset)
    f = offset - k
    rows = strip[k:k + h]
    return rows if f == 0 else (1 - f) * rows + f * strip[k + 1:k + 1 + h]


def _render(class_name: str, rng: np.random.Generator, look: dict[str, np.ndarray],
            spec: HardDemoSpec) -> np.ndarray:
    n = int(rng.integers(spec.min_frames, spec.max_frames + 1))
    h, w = spec.height, spec.width
    t = np.arange(n, dtype=np.float64)

    # The size of every detail in this clip: near 1, a grain of single pixels and dots 1-3
    # pixels across, which a stride-2 stem and a stride-2 pool can average away; 4-6 survives.
    scale = _uniform(rng, spec.coarse_scale if rng.random() < spec.coarse_fraction else spec.fine_scale)
    # Grain: noise on a grid `scale` pixels apart, interpolated, in a strip tall enough to drift.
    drift = scale * _uniform(rng, spec.drift_speed)
    pad = math.ceil(drift * n) + 2
    strip = (h + 2 * pad + 1, w)
    grain = _zoom(rng.normal(0, 1, tuple(math.ceil(size / scale) + 2 for size in strip)), scale, strip)
    grain *= _uniform(rng, spec.grain_contrast) / grain.std()
    offsets = np.full(n, float(pad))
    if class_name in ("DriftUp", "DriftDown"):
        # content moving down by d shows the strip from row pad - d
        offsets = pad - drift * t if class_name == "DriftDown" else pad + drift * t

    # Dots stay in the middle, inside every training and test crop.
    box = (0.34 * w, 0.18 * h, 0.66 * w, 0.82 * h)
    wander = _uniform(rng, spec.wander_speed)
    tracks = [_wander(rng, n, wander, box) for _ in range(spec.dots)]
    actor = tracks[0]
    if class_name in ("DotRise", "DotFall"):
        speed = _uniform(rng, spec.dot_speed)
        travel = speed * (n - 1)
        y0 = rng.uniform(box[1], max(box[1], box[3] - travel))
        y = y0 + speed * t
        actor[:, 0] = rng.uniform(box[0], box[2])
        actor[:, 1] = y[::-1] if class_name == "DotRise" else y  # y points down
    elif class_name in ("SwingSlow", "SwingFast"):
        # side to side and back: the same motion mirrored, so flips keep the class
        period = _uniform(rng, spec.slow_period if class_name == "SwingSlow" else spec.fast_period)
        amplitude = min(_uniform(rng, spec.swing_amplitude) * max(1.0, scale / 2), (box[2] - box[0]) / 2)
        actor[:, 1] = rng.uniform(box[1], box[3])
        actor[:, 0] = (rng.uniform(box[0] + amplitude, box[2] - amplitude)
                       + amplitude * np.sin(2 * math.pi * t / period + rng.uniform(0, 2 * math.pi)))
    if class_name not in ("DriftUp", "DriftDown"):
        actor += rng.normal(0, 0.15, actor.shape)  # as unsteady as a hand-held camera would make it

    contrast = rng.uniform(*spec.dot_contrast, spec.dots)
    sigma = scale * rng.uniform(*spec.dot_sigma, spec.dots)
    background, colour = look["background"], look["dot"]
    frames = np.empty((n, h, w, 3), dtype=np.uint8)
    r = math.ceil(3 * sigma.max())  # dot window half-size, pixels
    for i in range(n):
        dots = np.zeros((h, w))
        for track, c, s in zip(tracks, contrast, sigma):
            cx, cy = track[i]
            x_lo, y_lo = max(int(cx) - r, 0), max(int(cy) - r, 0)
            ys, xs = np.mgrid[y_lo:min(int(cy) + r + 1, h), x_lo:min(int(cx) + r + 1, w)] + 0.5
            blob = c * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * s * s))
            np.maximum(dots[y_lo:y_lo + blob.shape[0], x_lo:x_lo + blob.shape[1]], blob,
                       out=dots[y_lo:y_lo + blob.shape[0], x_lo:x_lo + blob.shape[1]])
        luma = _shifted_rows(grain, offsets[i], h)
        frame = background + luma[..., None] + dots[..., None] * colour
        frames[i] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return frames
