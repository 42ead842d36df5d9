"""Paired randomization test vs brute force, Holm on known p-values, bootstrap, sign test, Wilson, percentiles."""

import itertools

import numpy as np
import pytest

from distilrank.errors import DistilRankError
from distilrank.plugin.abtest.stats import (
    holm,
    latency_summary,
    paired_bootstrap_ci,
    paired_permutation_test,
    percentile,
    sign_test,
    wilson_ci,
    win_loss_tie,
)


def brute_sign_flip_p(d):
    obs = abs(sum(d))
    hits = total = 0
    for signs in itertools.product((1, -1), repeat=len(d)):
        total += 1
        hits += abs(sum(s * x for s, x in zip(signs, d))) >= obs - 1e-12
    return hits / total


def test_exact_permutation_matches_brute_force():
    assert paired_permutation_test([1.0, 1.0, 1.0]).p_value == pytest.approx(2 / 8)  # only +++ and --- reach |3|
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 9, 12):
        d = np.round(rng.normal(0.1, 0.3, size=n), 2)  # rounding makes ties of |sum| likely
        d[0] = 0.0 if n > 3 else d[0]  # a zero delta (flipping it changes nothing)
        r = paired_permutation_test(d)
        assert r.method == "exact"
        assert r.p_value == pytest.approx(brute_sign_flip_p(list(d)), abs=1e-12)


def test_monte_carlo_close_to_exact_seeded_and_corrected():
    d = np.random.default_rng(1).normal(0.15, 0.5, size=18)
    exact = paired_permutation_test(d, exact_max_n=18)
    mc = paired_permutation_test(d, n_permutations=20_000, seed=7, exact_max_n=16)
    assert exact.method == "exact" and mc.method == "monte-carlo" and mc.n_permutations == 20_000
    assert mc.p_value == pytest.approx(exact.p_value, abs=0.015)
    assert paired_permutation_test(d, n_permutations=20_000, seed=7, exact_max_n=16).p_value == mc.p_value
    huge = paired_permutation_test(np.full(40, 1.0), n_permutations=999, seed=0)
    assert huge.p_value == pytest.approx(1 / 1000)  # +1 correction: never 0


def test_permutation_edge_cases():
    assert paired_permutation_test([]).p_value is None
    assert paired_permutation_test([0.0, 0.0]).p_value == 1.0
    with pytest.raises(DistilRankError, match="finite"):
        paired_permutation_test([0.1, float("nan")])


def test_holm_known_values():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.02, None, 0.5]) == [pytest.approx(0.04), None, pytest.approx(0.5)]
    assert holm([0.6, 0.7]) == [1.0, 1.0]
    assert holm([0.2]) == [0.2] and holm([]) == []
    with pytest.raises(DistilRankError, match="not in"):
        holm([1.5])


def test_paired_bootstrap_ci_seeded_and_contains_mean():
    d = np.random.default_rng(2).normal(0.05, 0.2, size=60)
    lo, hi = paired_bootstrap_ci(d, resamples=2000, seed=3)
    assert lo < d.mean() < hi
    assert paired_bootstrap_ci(d, resamples=2000, seed=3) == (lo, hi)
    lo2, hi2 = paired_bootstrap_ci(np.tile(d, 16), resamples=2000, seed=3)
    assert hi2 - lo2 < (hi - lo) / 2  # 16x the queries -> about a quarter of the width
    assert paired_bootstrap_ci([]) is None


def test_sign_test_wilson_and_win_loss_tie():
    assert sign_test(9, 1) == pytest.approx(2 * (1 + 10) / 2 ** 10)
    assert sign_test(5, 5) == 1.0 and sign_test(0, 0) is None
    lo, hi = wilson_ci(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)  # textbook Wilson 95% values
    assert wilson_ci(0, 10)[0] == 0.0 and wilson_ci(0, 0) is None
    assert win_loss_tie([0.1, -0.2, 0.0, 1e-15, 0.3]) == (2, 1, 2)


def test_nearest_rank_percentiles():
    v = [15, 20, 35, 40, 50]  # the textbook nearest-rank example
    assert [percentile(v, q) for q in (5, 30, 40, 50, 100)] == [15, 20, 20, 35, 50]
    s = latency_summary(np.arange(1, 101, dtype=float))
    assert (s["p50"], s["p95"], s["p99"], s["max"], s["n"]) == (50.0, 95.0, 99.0, 100.0, 100)
    assert s["mean"] == pytest.approx(50.5)
    assert latency_summary([])["p99"] is None
    with pytest.raises(DistilRankError, match="latencies"):
        latency_summary([1.0, -2.0])
