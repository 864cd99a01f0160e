"""Paired comparison of two pooling methods over the same study cells.

Two methods run on identical (split, seed) cells share the data split, the holdout and
the initial draw of everything but the pooling, so their difference is judged cell by
cell: d_i = method_i - baseline_i. Over the n cells both have:

    mean difference  d = mean(d_i),  s = std(d_i) (n - 1 in the denominator)
    95% CI           d +- t_{0.975, n-1} * s / sqrt(n)
    p-value          two-sided paired t-test (scipy.stats.ttest_rel)

Unit of analysis: one training run, a (split, seed) cell. The inference is over training
randomness (initialisation, clip draws, data order) on the given test lists: seeds of one split
share its test list, so their differences are not independent draws of test videos, and an
interval says how much another set of seeds could move the difference, not another test set.

Several methods compared with one baseline on the headline metric (video top-1) make several
tests; their p-values are Holm-adjusted over those comparisons (`holm_adjust`), which keeps the
chance of any false "significant" at 5%. The other metrics' p-values are unadjusted, and
labelled so: they describe, the headline decides.

With one pair there is no spread, so no interval and no test; with n pairs whose
differences are all equal (s = 0, up to rounding) the t statistic is undefined: the interval collapses
to the difference and the p-value is left out, said in words. Few cells (3 seeds) give
wide intervals: the verdict says "not significant" rather than "no difference".
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

CONFIDENCE = 0.95
ALPHA = 1.0 - CONFIDENCE
_NO_SPREAD = 1e-9


@dataclass(frozen=True)
class PairedDifference:
    """`method` minus `baseline` on the cells both ran (in the metric's own units)."""

    method: str
    baseline: str
    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    p_value: float | None
    # Holm-adjusted over the report's comparisons on the headline metric; None when unadjusted
    p_adjusted: float | None = None
    comparisons: int = 1  # how many comparisons the adjustment was over

    @property
    def significant(self) -> bool | None:
        """At the 5% level, on the adjusted p-value where there is one; None where no test is possible."""
        p = self.p_adjusted if self.p_adjusted is not None else self.p_value
        return None if p is None else p < ALPHA

    def verdict(self, scale: float = 1.0, unit: str = "") -> str:
        """The comparison in words, e.g. 'higher by 3.1 points (95% CI 0.4 to 5.8), significant (p = 0.03)'."""
        if self.n == 0:
            return "no common cells"
        if math.isnan(self.mean):
            return "no values"
        size = f"{abs(self.mean) * scale:.1f}{unit}"
        direction = "equal" if self.mean == 0 else ("higher" if self.mean > 0 else "lower")
        text = direction if self.mean == 0 else f"{direction} by {size}"
        if self.n == 1:
            return f"{text} (one cell: no interval, no test)"
        interval = f"95% CI {self.ci_low * scale:+.1f} to {self.ci_high * scale:+.1f}"
        if self.p_value is None:
            return f"{text} ({interval}; identical differences in all {self.n} cells: no t-test)"
        word = "significant" if self.significant else "not significant"
        if self.p_adjusted is not None:
            family = f"{self.comparisons} comparison{'s' if self.comparisons != 1 else ''}"
            return (f"{text} ({interval}), {word} at 5% (paired t-test, Holm-adjusted over {family}: "
                    f"p = {self.p_adjusted:.3g}, n = {self.n})")
        return f"{text} ({interval}), {word} at 5% (paired t-test, unadjusted p = {self.p_value:.3g}, n = {self.n})"

    def detectable(self, power: float = 0.8) -> float | None:
        """The smallest true mean difference that a repeat of this comparison (same n, the same
        spread of differences) detects with probability `power`; see `detectable_difference`."""
        return detectable_difference(self.n, self.std, self.comparisons, power)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "significant": self.significant, "detectable": self.detectable()}


def detectable_difference(n: int, std: float, comparisons: int = 1, power: float = 0.8) -> float | None:
    """The smallest true mean difference a two-sided paired t-test over `n` pairs whose
    differences spread with `std` finds significant with probability `power`, at level
    ALPHA / `comparisons` (Holm's strictest step, so the bound holds for any rank).

    Exact for normal differences: under a true difference delta the t statistic follows a
    noncentral t with n - 1 degrees of freedom and noncentrality delta * sqrt(n) / std.
    None where no test is possible (fewer than 2 pairs, or no spread).
    """
    from scipy import optimize, stats

    if n < 2 or not std > _NO_SPREAD or math.isnan(std):
        return None
    df, alpha = n - 1, ALPHA / max(1, comparisons)
    critical = float(stats.t.ppf(1.0 - alpha / 2, df))

    def shortfall(delta: float) -> float:
        nc = delta * math.sqrt(n) / std
        # the wrong-sign tail; scipy's nct.cdf can return NaN that far out, where it is ~0
        wrong_sign = float(stats.nct.cdf(-critical, df, nc))
        return float(stats.nct.sf(critical, df, nc)) + (0.0 if math.isnan(wrong_sign) else wrong_sign) - power

    high = std
    while shortfall(high) < 0:
        high *= 2
    return float(optimize.brentq(shortfall, 0.0, high, xtol=1e-9 * std))


def paired_difference(method: str, values: Mapping[Hashable, float], baseline: str,
                      baseline_values: Mapping[Hashable, float]) -> PairedDifference:
    """Compare two methods on the cell keys (e.g. (split, seed)) they both have a value for."""
    from scipy import stats

    keys = [k for k in values if k in baseline_values
            and not (math.isnan(values[k]) or math.isnan(baseline_values[k]))]
    diffs = [float(values[k]) - float(baseline_values[k]) for k in keys]
    n = len(diffs)
    if n == 0:
        return PairedDifference(method, baseline, 0, math.nan, math.nan, math.nan, math.nan, None)
    mean = statistics.fmean(diffs)
    if n == 1:
        return PairedDifference(method, baseline, 1, mean, 0.0, math.nan, math.nan, None)
    std = statistics.stdev(diffs)
    if std <= _NO_SPREAD:  # equal up to rounding (accuracies are multiples of 1 / videos)
        return PairedDifference(method, baseline, n, mean, 0.0, mean, mean, None)
    half = float(stats.t.ppf(1.0 - ALPHA / 2, n - 1)) * std / math.sqrt(n)
    p_value = float(stats.ttest_rel([float(values[k]) for k in keys],
                                    [float(baseline_values[k]) for k in keys]).pvalue)
    return PairedDifference(method, baseline, n, mean, std, mean - half, mean + half, p_value)


def holm_adjust(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (None: no test, left out of the
    family and left None). Sorted ascending, the i-th of m becomes max over j <= i of
    min(1, (m - j + 1) p_(j)): rejecting where the adjusted p < alpha keeps the family-wise
    error rate at alpha, without Bonferroni's loss of power."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m, running = len(tested), 0.0
    adjusted: list[float | None] = [None] * len(p_values)
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
