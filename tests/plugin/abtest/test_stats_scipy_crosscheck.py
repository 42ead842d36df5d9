"""The paired statistics of distilrank.plugin.abtest.stats against scipy.stats on the same deltas.

Exact sign-flip p-values, the sign test, Wilson intervals and nearest-rank percentiles must agree to
floating-point precision; Monte-Carlo p-values and bootstrap intervals (different random streams) within a
few standard errors.
"""

import numpy as np
import pytest
from scipy import stats as sps

from distilrank.plugin.abtest.stats import paired_bootstrap_ci, paired_permutation_test, percentile, sign_test, wilson_ci


def _scipy_sign_flip_p(d: np.ndarray, n_resamples: float = np.inf, seed: int = 0) -> float:
    res = sps.permutation_test((d,), np.sum, permutation_type="samples", alternative="two-sided",
                               n_resamples=n_resamples, rng=np.random.default_rng(seed))
    return float(res.pvalue)


@pytest.mark.parametrize("seed", range(6))
def test_exact_permutation_p_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    d = np.round(rng.normal(0.03 * seed, 0.1, size=int(rng.integers(3, 13))), 3)
    ours = paired_permutation_test(d)
    assert ours.method == "exact"
    assert ours.p_value == pytest.approx(_scipy_sign_flip_p(d), abs=1e-12)


def test_monte_carlo_permutation_p_agrees_with_scipy():
    d = np.random.default_rng(11).normal(0.02, 0.1, size=60)
    ours = paired_permutation_test(d, n_permutations=20_000, seed=1)
    assert ours.method == "monte-carlo"
    theirs = _scipy_sign_flip_p(d, n_resamples=20_000, seed=2)
    se = np.sqrt(theirs * (1 - theirs) / 20_000)
    assert 0.01 < theirs < 0.99 and abs(ours.p_value - theirs) < 5 * se + 1e-3


@pytest.mark.parametrize("kind", ["continuous", "zero-one"])
def test_bootstrap_percentile_ci_agrees_with_scipy(kind):
    rng = np.random.default_rng(5)
    d = rng.normal(0.05, 0.2, size=200) if kind == "continuous" else (rng.random(200) < 0.7).astype(float)
    lo, hi = paired_bootstrap_ci(d, resamples=20_000, seed=3)
    ref = sps.bootstrap((d,), np.mean, method="percentile", n_resamples=20_000, confidence_level=0.95,
                        rng=np.random.default_rng(4)).confidence_interval
    sem = d.std(ddof=1) / np.sqrt(d.size)
    assert abs(lo - ref.low) < 0.08 * sem and abs(hi - ref.high) < 0.08 * sem


@pytest.mark.parametrize(("wins", "losses"), [(0, 1), (3, 9), (10, 10), (17, 4), (40, 25)])
def test_sign_test_and_wilson_match_scipy_binomtest(wins, losses):
    ref = sps.binomtest(wins, wins + losses, 0.5)
    assert sign_test(wins, losses) == pytest.approx(ref.pvalue, rel=1e-9)
    ci = ref.proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_ci(wins, wins + losses) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_nearest_rank_percentile_is_numpy_inverted_cdf():
    v = np.random.default_rng(9).exponential(20.0, size=37)
    for q in (1, 25, 50, 90, 95, 99, 100):
        assert percentile(v, q) == pytest.approx(float(np.percentile(v, q, method="inverted_cdf")))
