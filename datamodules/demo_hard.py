"""The hard demo (`softpool-video make-demo-data DIR --variant hard`): synthetic actions
told apart by small, fast or low-contrast details, the kind that a network's downsampling
keeps or destroys (configs/demo_hard.yaml). On the default demo (demo.py) every pooling
method reaches 100% in a few epochs.

Same UCF-101 layout, splits, writer and determinism as the default demo (demo.py writes
both). Every clip shows the same scene: a dim background under a low-contrast grain, and
soft dots spread over the middle of the frame. Six classes, each defined by what changes
over time (a single frame could come from any of them):

    Still      nothing moves (the dots wander a fraction of a pixel per frame)
    Travel     every dot travels steadily, each in its own direction
    Swing      every dot swings back and forth along its own axis
    Blink      every dot blinks on and off, each at its own pace
    Drift      the grain drifts in one direction behind still dots
    Flicker    the grain is redrawn every few frames behind still dots

Each clip draws the size of its details, uniformly over `detail_scale`: the grain's grid,
the dots' radius and the lengths they move grow with it. At the fine end (grain of single
pixels, dots of one to three) a stride-2 stem followed by a stride-2 pool can average the
evidence away (avg), keep its peak (max) or weigh it (SoftPool); at the coarse end every
method sees it. Contrasts, speeds, periods and directions are drawn per clip, and every dot
shakes alike in every class. Directions are drawn from the full circle, so horizontal
flips keep every class.

Why these classes: each is told by one local change (a moving, swinging or blinking dot, a
moving or renewed grain) that a small network picks up in every run. Classes told by the
direction of a motion (up against down) or by its frequency near the sampling rate were
learned in some runs and not in others, which made the study's spread a matter of luck.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .demo import DemoSpec

HARD_CLASSES: tuple[str, ...] = ("Still", "Travel", "Blink", "Swing", "Drift", "Flicker")
HARD_FORMAT_VERSION = 2


@dataclass(frozen=True)
class HardDemoSpec(DemoSpec):
    """The hard demo; the difficulty knobs are stored in demo_info.json with the rest."""

    classes: tuple[str, ...] = HARD_CLASSES
    clips_per_group: int = 6  # 252 test videos per split: one video is 0.4 points
    width: int = 88  # decord decodes 96-pixel-wide MPEG-4 wrongly (rows 128 wide)
    height: int = 72
    bit_rate: int = 240_000  # enough for the grain and the dots to survive MPEG-4
    version: int = HARD_FORMAT_VERSION
    variant: str = "hard"
    dots: int = 8  # dots in every clip; all near-still in Still, Drift and Flicker
    dot_contrast: tuple[float, float] = (30.0, 140.0)  # peak grey levels above the background
    dot_sigma: tuple[float, float] = (0.6, 0.8)  # Gaussian dot radius, pixels, at detail scale 1
    # Per clip, the size of its details (grain grid, dot radius, drift and swing lengths grow
    # with it), uniform over this range: from single pixels, which a stride-2 stem and a
    # stride-2 pool can average away, to blobs every method sees.
    detail_scale: tuple[float, float] = (0.5, 5.0)
    jitter: float = 0.15  # pixels, standard deviation of every dot's per-frame shake, in every class
    wander_speed: tuple[float, float] = (0.0, 0.1)  # pixels per frame, of the near-still dots
    travel_speed: tuple[float, float] = (0.8, 1.2)  # pixels per frame: at most 47 pixels in 40 frames
    blink_period: tuple[float, float] = (6.0, 10.0)  # frames per on-off cycle
    swing_period: tuple[float, float] = (8.0, 12.0)  # frames per swing: 4-6 sampled frames at interval 2
    swing_amplitude: tuple[float, float] = (3.0, 5.0)  # pixels, times max(1, scale / 2)
    clutter: float = 4.0  # standard deviation of the coarse background blocks, grey levels
    grain_contrast: tuple[float, float] = (5.0, 16.0)  # standard deviation of the fine grain, grey levels
    drift_speed: tuple[float, float] = (0.4, 0.6)  # pixels per frame, times max(1, scale)
    flicker_every: tuple[int, int] = (3, 5)  # frames between two redraws of the grain (Flicker)

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


def _grain(rng: np.random.Generator, scale: float, shape: tuple[int, int], contrast: float) -> np.ndarray:
    """Noise on a grid `scale` pixels apart, interpolated to `shape`, with std `contrast`."""
    grain = _zoom(rng.normal(0, 1, tuple(math.ceil(size / scale) + 2 for size in shape)), scale, shape)
    return grain * (contrast / grain.std())


def _shifted(field: np.ndarray, y: float, x: float, shape: tuple[int, int]) -> np.ndarray:
    """The `shape` window of `field` at fractional offset (y, x), bilinearly interpolated."""
    (h, w), (ky, kx) = shape, (math.floor(y), math.floor(x))
    fy, fx = y - ky, x - kx
    window = field[ky:ky + h + 1, kx:kx + w + 1]
    rows = (1 - fy) * window[:h] + fy * window[1:h + 1]
    return (1 - fx) * rows[:, :w] + fx * rows[:, 1:w + 1]


def _place(rng: np.random.Generator, path: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """(n, 2) `path` (offsets from its start) moved to a random start from which all of it
    lies in the box (x0, y0, x1, y1); callers keep paths shorter than the box."""
    lo = np.array(box[:2]) - path.min(0)
    hi = np.array(box[2:]) - path.max(0)
    return rng.uniform(lo, np.maximum(lo, hi)) + path


def _render(class_name: str, rng: np.random.Generator, look: dict[str, np.ndarray],
            spec: HardDemoSpec) -> np.ndarray:
    n = int(rng.integers(spec.min_frames, spec.max_frames + 1))
    h, w = spec.height, spec.width
    t = np.arange(n, dtype=np.float64)
    # The size of every detail in this clip, and a direction for whatever moves (any
    # direction: the set of directions is symmetric, so horizontal flips keep the class).
    scale = _uniform(rng, spec.detail_scale)
    heading = rng.uniform(0, 2 * math.pi)
    direction = np.array([math.cos(heading), math.sin(heading)])  # (x, y), of the drift

    # Grain: still, drifting (Drift) or redrawn every few frames (Flicker).
    contrast = _uniform(rng, spec.grain_contrast)
    pad = 2
    if class_name == "Drift":
        pad += math.ceil(_uniform(rng, spec.drift_speed) * max(1.0, scale) * n)
        speed = (pad - 2) / n
    field = _grain(rng, scale, (h + 2 * pad + 1, w + 2 * pad + 1), contrast)
    grains = []
    redraw = int(rng.integers(spec.flicker_every[0], spec.flicker_every[1] + 1))
    for i in range(n):
        if class_name == "Flicker" and i and i % redraw == 0:
            field = _grain(rng, scale, field.shape, contrast)
        if class_name == "Drift":  # content moves along `direction`: the window moves against it
            dx, dy = pad - speed * i * direction
            grains.append(_shifted(field, dy, dx, (h, w)))
        else:
            grains.append(field[pad:pad + h, pad:pad + w])

    # Dots stay inside the centre crop, all of them, in every class (so a single frame does
    # not tell the class), and all of them shake alike.
    box = (0.16 * w, 0.08 * h, 0.84 * w, 0.92 * h)
    wander = _uniform(rng, spec.wander_speed)
    tracks = [_wander(rng, n, wander, box) for _ in range(spec.dots)]
    visible = np.ones((spec.dots, n), dtype=bool)
    # In Travel, Swing and Blink every dot acts, each on its own course or phase: the
    # evidence is several small details, not one. Paths are placed to fit the box whole, so
    # a travelling dot never bounces back (which would make a swing of it).
    for k, actor in enumerate(tracks):
        heading = rng.uniform(0, 2 * math.pi)
        direction = np.array([math.cos(heading), math.sin(heading)])  # (x, y); any direction survives flips
        if class_name == "Travel":
            path = _uniform(rng, spec.travel_speed) * t[:, None] * direction
            actor[:] = _place(rng, path, box)
        elif class_name == "Swing":
            period = _uniform(rng, spec.swing_period)
            amplitude = _uniform(rng, spec.swing_amplitude) * max(1.0, scale / 2)
            swing = amplitude * np.sin(2 * math.pi * t / period + rng.uniform(0, 2 * math.pi))
            actor[:] = _place(rng, swing[:, None] * direction, box)
        elif class_name == "Blink":
            visible[k] = ((t / _uniform(rng, spec.blink_period) + rng.uniform(0, 1)) % 1.0) < 0.5
    for track in tracks:
        track += rng.normal(0, spec.jitter, track.shape)

    contrasts = rng.uniform(*spec.dot_contrast, spec.dots)
    sigma = scale * rng.uniform(*spec.dot_sigma, spec.dots)
    background, colour = look["background"], look["dot"]
    frames = np.empty((n, h, w, 3), dtype=np.uint8)
    r = math.ceil(3 * sigma.max())  # dot window half-size, pixels
    for i in range(n):
        dots = np.zeros((h, w))
        for k, (track, c, s) in enumerate(zip(tracks, contrasts, sigma)):
            if not visible[k, i]:
                continue
            cx, cy = track[i]
            x_lo, y_lo = max(int(cx) - r, 0), max(int(cy) - r, 0)
            ys, xs = np.mgrid[y_lo:min(int(cy) + r + 1, h), x_lo:min(int(cx) + r + 1, w)] + 0.5
            blob = c * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * s * s))
            np.maximum(dots[y_lo:y_lo + blob.shape[0], x_lo:x_lo + blob.shape[1]], blob,
                       out=dots[y_lo:y_lo + blob.shape[0], x_lo:x_lo + blob.shape[1]])
        frame = background + grains[i][..., None] + dots[..., None] * colour
        frames[i] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return frames
