"""The statistics a careful reader needs: Wilson intervals, the exact McNemar test and t-intervals of speed ratios."""

from __future__ import annotations

import math
from collections.abc import Sequence


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval for a proportion (95 % by default); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts.

    ``b``: images only the first model got right; ``c``: only the second. Under the null
    hypothesis each discordant image is a fair coin, so p = 2 * P(X <= min(b, c)), X ~ Bin(b + c, 1/2).
    """
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / (1 << n)  # 1 << n: 2**n, typed int
    return min(1.0, 2 * tail)


# Two-sided 95 % quantiles of Student's t for 1 to 30 degrees of freedom (timing rounds are few).
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
         2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
         2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)


def t_quantile_95(df: int) -> float:
    """The two-sided 95 % quantile of Student's t with ``df`` degrees of freedom (beyond 30: the
    Cornish-Fisher expansion around the normal's 1.96, good to 1e-4)."""
    if df < 1:
        raise ValueError("a t-interval needs at least 1 degree of freedom")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963984540054
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df * df)


def log_t_interval(values: Sequence[float]) -> tuple[float, float, float] | None:
    """(geometric mean, low, high): a 95 % t-interval on the logs of positive ``values``, taken back.

    Throughputs and their ratios are multiplicative, so the interval is worked out on log scale (a load
    burst that halves one round moves the log mean as much as one that doubles it). None when fewer than
    two values, or any is not positive: there is no interval then."""
    if len(values) < 2 or any(not (v > 0 and math.isfinite(v)) for v in values):
        return None
    logs = [math.log(v) for v in values]
    n = len(logs)
    mean = sum(logs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (n - 1))
    half = t_quantile_95(n - 1) * sd / math.sqrt(n)
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def ratio_interval(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float] | None:
    """(ratio, low, high) of throughputs ``a`` over ``b`` measured in the same rounds: the per-round
    ratios are paired (one round, one load), and their 95 % t-interval on log scale. None as
    log_t_interval, or when the rounds do not pair up."""
    if len(a) != len(b):
        return None
    if any(not (y > 0) for y in b):
        return None
    return log_t_interval([x / y for x, y in zip(a, b, strict=True)])


def excludes_one(low: float, high: float) -> bool:
    """Whether a ratio's interval lies wholly on one side of 1: only then is one faster than the other."""
    return low > 1.0 or high < 1.0
