"""Paired statistics of the benchmark report against hand-computed examples."""
from __future__ import annotations

import math

import pytest

from softpool_video.studies.grid import markdown_table, summarize
from softpool_video.studies.statistics import paired_difference

CELLS = [(1, 0), (1, 1), (1, 2)]


def test_paired_t_interval_and_p_value_by_hand():
    base = dict(zip(CELLS, [0.50, 0.60, 0.70]))
    other = dict(zip(CELLS, [0.55, 0.68, 0.72]))  # differences 0.05, 0.08, 0.02
    d = paired_difference("softpool", other, "max", base)
    assert d.n == 3 and d.mean == pytest.approx(0.05) and d.std == pytest.approx(0.03)
    # t_{0.975, 2} = 4.302653; half width = t * s / sqrt(n)
    half = 4.302652729911275 * 0.03 / math.sqrt(3)
    assert (d.ci_low, d.ci_high) == pytest.approx((0.05 - half, 0.05 + half))
    # two-sided p for 2 degrees of freedom in closed form: 1 - t / sqrt(2 + t^2)
    t = 0.05 / (0.03 / math.sqrt(3))
    assert d.p_value == pytest.approx(1 - t / math.sqrt(2 + t * t))
    assert d.significant is False
    assert d.verdict(100, " points").startswith("higher by 5.0 points (95% CI -2.5 to +12.5), not significant")


def test_a_consistent_difference_is_significant_and_pairs_only_matching_cells():
    base = dict(zip(CELLS, [0.50, 0.60, 0.70])) | {(2, 0): 0.9}  # a cell the other method lacks
    other = dict(zip(CELLS, [0.40, 0.49, 0.61]))  # differences -0.10, -0.11, -0.09
    d = paired_difference("avg", other, "max", base)
    assert d.n == 3 and d.mean == pytest.approx(-0.10)
    t = -0.10 / (0.01 / math.sqrt(3))
    assert d.p_value == pytest.approx(1 - abs(t) / math.sqrt(2 + t * t)) and d.significant
    assert "lower by 10.0 points" in d.verdict(100, " points") and ", significant at 5%" in d.verdict(100, " points")


def test_degenerate_cases_say_why_there_is_no_test():
    one = paired_difference("a", {(1, 0): 0.6}, "b", {(1, 0): 0.5})
    assert one.n == 1 and one.p_value is None and math.isnan(one.ci_low)
    assert "one cell: no interval, no test" in one.verdict(100)
    same = paired_difference("a", dict(zip(CELLS, [0.6, 0.7, 0.8])), "b", dict(zip(CELLS, [0.5, 0.6, 0.7])))
    assert same.p_value is None and same.ci_low == pytest.approx(same.ci_high) == pytest.approx(0.1)
    assert "identical differences" in same.verdict(100)
    none = paired_difference("a", {(1, 0): 0.6}, "b", {(2, 0): 0.5})
    assert none.n == 0 and none.verdict() == "no common cells"


def test_benchmark_rows_and_table_carry_the_comparison_in_words():
    def cell(pooling, seed, video):
        return {"name": f"{pooling}-{seed}", "cell": {"pooling": pooling, "split": 1, "seed": seed},
                "metrics": {"test/video_acc1": video}, "metrics_last": {"test/video_acc1": video - 0.05}}
    cells = [cell("max", s, v) for s, v in zip(range(3), (0.50, 0.60, 0.70))]
    cells += [cell("softpool", s, v) for s, v in zip(range(3), (0.55, 0.68, 0.72))]
    rows = summarize(cells)
    assert "video top-1 vs max diff" not in rows[0]  # the baseline is not compared with itself
    assert rows[1]["video top-1 vs max diff"] == pytest.approx(0.05)
    assert rows[1]["video top-1 vs max significant"] is False
    assert rows[1]["last-epoch video top-1 mean"] == pytest.approx(0.60)  # (0.55 + 0.68 + 0.72) / 3 - 0.05
    table = markdown_table(rows)
    assert "Paired differences against max" in table
    # one comparison: Holm's adjustment leaves its p as it is, and says so
    assert "| softpool | video top-1 | +5.0 | -2.5 to +12.5 | 0.102 (Holm) | 3 | higher by 5.0 points" in table
    assert "not significant at 5% (paired t-test, Holm-adjusted over 1 comparison:" in table
    assert "Unit of analysis: one training run, a (split, seed) cell" in table
    assert "| softpool | last-epoch video top-1 | +5.0 | -2.5 to +12.5 | 0.102 (unadj.) |" in table


def test_holm_adjustment_by_hand_and_over_a_reports_headline_comparisons():
    from softpool_video.studies.statistics import holm_adjust

    # sorted 0.01, 0.02, 0.04 of m = 3: 3 * 0.01, max(0.03, 2 * 0.02), max(0.04, 1 * 0.04)
    assert holm_adjust([0.04, 0.01, None, 0.02]) == pytest.approx([0.04, 0.03, None, 0.04])
    assert holm_adjust([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1, never below the raw p
    assert holm_adjust([]) == []

    def cell(pooling, seed, video):
        return {"name": f"{pooling}-{seed}", "cell": {"pooling": pooling, "split": 1, "seed": seed},
                "metrics": {"test/video_acc1": video}}
    base = (0.50, 0.60, 0.70, 0.55)
    cells = [cell("max", s, v) for s, v in enumerate(base)]
    for name, shift in (("softpool", (0.06, 0.05, 0.07, 0.05)), ("avg", (0.02, -0.03, 0.04, 0.0))):
        cells += [cell(name, s, v + d) for s, (v, d) in enumerate(zip(base, shift, strict=True))]
    rows = summarize(cells)
    raw = [r["video top-1 vs max p unadjusted"] for r in rows[1:]]
    assert [r["video top-1 vs max p"] for r in rows[1:]] == pytest.approx(holm_adjust(raw))
    assert all(r["video top-1 vs max p"] >= p for r, p in zip(rows[1:], raw, strict=True))
    assert "Holm-adjusted over its 2 comparison(s)" in markdown_table(rows)


def test_detectable_difference_has_the_power_it_claims():
    """At the returned difference, simulated paired t-tests reject in 80% of repeats; with many
    pairs it approaches the normal formula (z_0.975 + z_0.8) s / sqrt(n); a Holm family raises it."""
    import numpy as np
    from scipy import stats

    from softpool_video.studies.statistics import detectable_difference

    n, std = 5, 0.02
    delta = detectable_difference(n, std)
    rng = np.random.default_rng(0)
    diffs = rng.normal(delta, std, (40_000, n))
    p = stats.ttest_1samp(diffs, 0.0, axis=1).pvalue
    assert np.mean(p < 0.05) == pytest.approx(0.8, abs=0.01)
    assert detectable_difference(200, std) == pytest.approx((1.959964 + 0.841621) * std / math.sqrt(200), rel=0.01)
    assert detectable_difference(n, std, comparisons=2) > delta
    assert detectable_difference(1, std) is None and detectable_difference(n, 0.0) is None
