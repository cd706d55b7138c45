"""Wilson intervals and the exact McNemar test, against published and hand-worked examples."""

from __future__ import annotations

import pytest

from cnnviewer.core.stats import mcnemar_exact, wilson_interval


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, score method.
@pytest.mark.parametrize("k, n, low, high", [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605),
                                             (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)])
def test_wilson_matches_newcombe(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert round(lo, 4) == low and round(hi, 4) == high


def test_wilson_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(50, 50)
    assert hi == 1.0 and 0.92 < lo < 0.93  # 50 of 50 still leaves room below


def test_mcnemar_exact_worked_examples():
    # b=1, c=5: 2 * (C(6,0) + C(6,1)) / 2^6 = 2 * 7 / 64
    assert mcnemar_exact(1, 5) == pytest.approx(14 / 64)
    # b=2, c=10: 2 * (1 + 12 + 66) / 4096
    assert mcnemar_exact(2, 10) == pytest.approx(158 / 4096)
    assert mcnemar_exact(10, 2) == mcnemar_exact(2, 10)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
