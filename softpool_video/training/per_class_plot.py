"""Figures of the per-class results: the confusion matrix of a test/validate run and, for
`study`, each method's per-class accuracy difference against the first method.

The confusion matrix must stay readable from 6 classes to 400 (Kinetics):
- rows and columns in a clustered order (`confusion_order`): classes confused with each
  other sit side by side, so the confusions form blocks near the diagonal instead of dots
  scattered over a 400 x 400 grid; classes confused with nothing come last, in label order;
- the figure grows with the class count (a fixed cell size down to 0.06 in, a tick font
  down to 3 pt, drawn at 150 dpi past 150 classes) so every class keeps a named row;
- a side panel repeats the most-confused classes at a size where the shares are printed,
  with the top confusions listed under it in words.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from softpool_video.reporting import new_figure

from .per_class import ClassResults

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SIDE_CLASSES = 20  # classes of the most-confused panel
LISTED = 15  # top confusions written out in the figure
SIDE_IN = 7.5  # width of the side column (inches)


def confusion_order(confusion: np.ndarray) -> list[int]:
    """A seriation of the classes: greedy chains along the strongest mutual confusion.

    Each chain starts at the class with the most confusion (as a share of its videos, both
    directions) not yet placed, and grows at whichever end has the stronger link to an
    unplaced class; a chain ends when neither end is confused with anything left.
    """
    counts = np.asarray(confusion, dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    np.fill_diagonal(rates, 0.0)
    link = rates + rates.T
    strength = link.sum(axis=1)
    left = np.ones(len(counts), dtype=bool)
    order: list[int] = []
    while left.any():
        candidates = np.flatnonzero(left)
        start = int(candidates[np.argmax(strength[candidates])])  # first of equals: label order
        chain, left[start] = [start], False
        while left.any():
            ends = (chain[0], chain[-1])
            weights = [np.where(left, link[end], -1.0) for end in ends]
            best = [int(np.argmax(w)) for w in weights]
            side = 0 if weights[0][best[0]] > weights[1][best[1]] else 1
            if weights[side][best[side]] <= 0.0:
                break
            if side == 0:
                chain.insert(0, best[0])
            else:
                chain.append(best[1])
            left[best[side]] = False
        order += chain
    return order


def _cell_inches(num_classes: int) -> float:
    return min(0.4, max(0.06, 14.0 / num_classes))


def _font(num_classes: int) -> float:
    return min(9.0, max(3.0, 0.75 * 72 * _cell_inches(num_classes)))


def dpi(num_classes: int) -> int:
    return 150 if num_classes > 150 else 100


def _with_side_matrix(results: ClassResults) -> bool:
    """Past 30 classes the full matrix has no room for numbers: repeat the most confused ones."""
    return results.num_classes > 30


def _side_inches(results: ClassResults) -> float:
    if _with_side_matrix(results):
        return SIDE_IN
    longest = 2 * max(len(name) for name in results.names) + 24  # a line of the top-confusion list
    return min(SIDE_IN, max(4.0, longest * 8 * 0.6 / 72 + 0.3))  # 4 in: the list's heading


def figure_size(results: ClassResults) -> tuple[float, float]:
    """(width, height) in inches of `confusion_figure`: the matrix at a fixed cell size plus room
    for its tick labels and colour bar, and the side column."""
    n = results.num_classes
    matrix = max(4.0, n * _cell_inches(n))
    longest = max(len(_tick(results, c)) for c in range(n))
    labels = longest * _font(n) * 0.6 / 72 + 0.6
    least = 9.0 if _with_side_matrix(results) else 5.0
    return round(matrix + labels + 1.2 + _side_inches(results), 2), round(max(matrix + labels + 1.0, least), 2)


def _tick(results: ClassResults, c: int) -> str:
    return f"{results.names[c]} ({int(results.videos[c])})"


def _side_classes(results: ClassResults, order: list[int]) -> list[int]:
    """The classes of the top confusions, both sides, until SIDE_CLASSES; in the clustered order."""
    chosen: list[int] = []
    for row in results.top_confusions():
        for c in (row["true_index"], row["predicted_index"]):
            if c not in chosen and len(chosen) < SIDE_CLASSES:
                chosen.append(c)
    return [c for c in order if c in chosen]


def _matrix(ax: Any, rates: np.ndarray, classes: list[int], results: ClassResults, font: float,
            annotate: bool) -> Any:
    shown = rates[np.ix_(classes, classes)]
    image = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="equal")
    ticks = range(len(classes))
    ax.set_xticks(ticks, [results.names[c] for c in classes], rotation=90, fontsize=font)
    ax.set_yticks(ticks, [_tick(results, c) for c in classes], fontsize=font)
    ax.tick_params(length=1.5, pad=1)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (videos)")
    if annotate:  # shares in percent, dark text on light cells
        for i, j in zip(*np.nonzero(shown >= 0.005)):
            ax.text(j, i, f"{100 * shown[i, j]:.0f}", ha="center", va="center", fontsize=max(font - 1, 5),
                    color="white" if shown[i, j] > 0.6 else "black")
    return image


def confusion_figure(results: ClassResults, title: str = "") -> Figure:
    """Row-normalised video-level confusion matrix, clustered; the most-confused classes and the
    top confusions beside it (see the module note)."""
    n = results.num_classes
    rates = results.rates().numpy()
    order = confusion_order(results.confusion.numpy())
    width, height = figure_size(results)
    side_width = _side_inches(results)
    fig = new_figure(figsize=(width, height), dpi=dpi(n), layout="constrained")
    grid = fig.add_gridspec(2, 2, width_ratios=[width - side_width, side_width], height_ratios=[1.0, 1.0])
    full = fig.add_subplot(grid[:, 0])
    image = _matrix(full, rates, order, results, _font(n), annotate=not _with_side_matrix(results))
    fig.colorbar(image, ax=full, shrink=0.5, label="share of the true class's videos")
    accuracy = float(results.confusion.diagonal().sum()) / max(int(results.confusion.sum()), 1)
    full.set_title(f"{title}{n} classes, {int(results.confusion.sum())} videos, video top-1 {100 * accuracy:.1f}%\n"
                   "rows: true class, normalised per row; classes confused with each other placed side by side",
                   fontsize=10)
    side = _side_classes(results, order)
    if _with_side_matrix(results) and len(side) > 1:
        top = fig.add_subplot(grid[0, 1])
        _matrix(top, rates, side, results, 7.0, annotate=True)
        top.set_title(f"the {len(side)} classes of the top confusions (%)", fontsize=10)
        listing = fig.add_subplot(grid[1, 1])
    else:
        listing = fig.add_subplot(grid[:, 1])
    listing.axis("off")
    lines = [f"{r['true']} -> {r['predicted']}: {100 * r['share_of_true']:.0f}% ({r['videos']}/{r['true_videos']})"
             for r in results.top_confusions(LISTED)]
    listing.text(0.0, 1.0, "top confusions\n(true -> predicted: share of the true class's videos)\n\n" +
                 ("\n".join(lines) or "none: every video was classified correctly"),
                 va="top", ha="left", fontsize=8, family="monospace", transform=listing.transAxes)
    return fig


# ---- the study grid -----------------------------------------------------------------------------------------

SHOWN_EACH_WAY = 12  # most helped and most hurt classes named per method


def difference_figure(rows: list[dict[str, Any]]) -> Figure:
    """Per method after the first: every class's video top-1 difference, sorted (left), and the
    classes it helps and hurts most, by name (right). `rows`: per_class.class_differences."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    named = 2 * SHOWN_EACH_WAY
    fig = new_figure(figsize=(13.0, max(4.0, 0.22 * named + 1.5) * len(methods)), layout="constrained")
    axes = fig.subplots(len(methods), 2, squeeze=False, width_ratios=[1.2, 1.0])
    for (spread, extremes), method in zip(axes, methods):
        mine = sorted((r for r in rows if r["method"] == method and not math.isnan(r["difference"])),
                      key=lambda r: r["difference"])
        baseline = rows[0]["baseline"]
        diffs = [100 * r["difference"] for r in mine]
        colors = ["tab:red" if d < 0 else "tab:green" for d in diffs]
        spread.bar(range(len(diffs)), diffs, width=1.0, color=colors)
        spread.axhline(0.0, color="black", linewidth=0.8)
        spread.set_xlabel("classes, sorted by difference")
        spread.set_ylabel("video top-1 difference (points)")
        better, worse = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
        spread.set_title(f"{method} - {baseline}, per class: {better} better, {worse} worse, "
                         f"{len(diffs) - better - worse} equal", fontsize=10)
        shown = mine if len(mine) <= named else mine[:SHOWN_EACH_WAY] + mine[-SHOWN_EACH_WAY:]
        extremes.barh(range(len(shown)), [100 * r["difference"] for r in shown],
                      color=["tab:red" if r["difference"] < 0 else "tab:green" for r in shown])
        extremes.set_yticks(range(len(shown)), [r["class"] for r in shown], fontsize=7)
        extremes.axvline(0.0, color="black", linewidth=0.8)
        extremes.set_xlabel("points")
        extremes.set_title(f"classes {method} hurts most (red) and helps most (green)", fontsize=10)
    return fig
