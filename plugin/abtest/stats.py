"""Paired significance tests, confidence intervals and latency percentiles (pure numpy + stdlib).

Every input ``deltas`` is a float array ``[n]`` of per-query differences
``metric(arm) - metric(baseline)`` over the queries where both are defined.
Every random procedure takes a ``seed`` and is deterministic for it.
Undefined results (no data) are ``None``, never ``nan``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from distilrank.errors import DistilRankError
from distilrank.metrics import bootstrap_ci

EXACT_MAX_N = 16  # exact sign-flip enumeration (2^n sign vectors) up to this many non-zero deltas
_REL_TOL = 1e-9  # |statistic| within this relative margin of the observed one counts as "as extreme"


@dataclass(frozen=True)
class PermutationResult:
    """``p_value``: two-sided p of the paired randomization test (``None`` for no deltas);
    ``method``: ``"exact"`` or ``"monte-carlo"``; ``n_permutations``: sign vectors evaluated."""

    p_value: float | None
    method: str
    n_permutations: int


def _as_deltas(deltas: Sequence[float] | np.ndarray) -> np.ndarray:
    d = np.asarray(deltas, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(d)):
        raise DistilRankError("paired deltas must be finite numbers (drop undefined queries first)")
    return d


def paired_permutation_test(deltas: Sequence[float] | np.ndarray, *, n_permutations: int = 10_000, seed: int = 0,
                            exact_max_n: int = EXACT_MAX_N) -> PermutationResult:
    """Two-sided paired randomization (sign-flip) test of ``H0: mean delta = 0``.

    Under H0 each query's delta is equally likely to have either sign.  Statistic
    ``T = |sum(s_i * d_i)|``; p = P(T_perm >= T_obs).  Zero deltas are left out
    (flipping them changes nothing).  With ``n <= exact_max_n`` non-zero deltas all
    ``2^n`` sign vectors are enumerated (exact p, includes the observed one, so
    ``p >= 2^-n``); otherwise ``n_permutations`` random sign vectors give
    ``p = (1 + #{T_perm >= T_obs}) / (1 + n_permutations)`` (the +1 correction makes
    it a valid p-value).  All deltas zero -> p = 1.
    """
    d = _as_deltas(deltas)
    if d.size == 0:
        return PermutationResult(None, "exact", 0)
    d = d[d != 0.0]
    if d.size == 0:
        return PermutationResult(1.0, "exact", 1)
    observed = abs(float(d.sum()))
    cut = observed - _REL_TOL * max(1.0, float(np.abs(d).sum()))
    if d.size <= exact_max_n:
        bits = (np.arange(2 ** d.size, dtype=np.int64)[:, None] >> np.arange(d.size)) & 1
        stats = np.abs((1 - 2 * bits) @ d)
        return PermutationResult(float(np.count_nonzero(stats >= cut)) / stats.size, "exact", int(stats.size))
    if n_permutations < 1:
        raise DistilRankError(f"n_permutations must be >= 1, got {n_permutations}")
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // d.size)
    hits = 0
    for start in range(0, n_permutations, chunk):
        signs = rng.integers(0, 2, size=(min(chunk, n_permutations - start), d.size), dtype=np.int8) * 2 - 1
        hits += int(np.count_nonzero(np.abs(signs @ d) >= cut))
    return PermutationResult((1 + hits) / (1 + n_permutations), "monte-carlo", n_permutations)


def paired_bootstrap_ci(deltas: Sequence[float] | np.ndarray, *, resamples: int = 10_000, seed: int = 0,
                        alpha: float = 0.05) -> tuple[float, float] | None:
    """Percentile bootstrap ``(lo, hi)`` ``1 - alpha`` interval of the mean delta (queries resampled
    with replacement, paired: a query's delta moves as one); ``None`` for no deltas.

    Uses :func:`distilrank.metrics.bootstrap_ci` (quantiles with numpy's linear interpolation).
    """
    d = _as_deltas(deltas)
    if d.size == 0:
        return None
    lo, hi = bootstrap_ci(d, resamples=resamples, seed=seed, alpha=alpha)
    return lo, hi


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni step-down adjusted p-values, in the input order.

    With the ``m`` defined p-values sorted ascending ``p_(1) <= ... <= p_(m)``:
    ``adj_(i) = min(1, max_{j <= i} (m - j + 1) * p_(j))``.  Rejecting ``adj <= alpha``
    controls the family-wise error rate at ``alpha``.  ``None`` entries stay ``None``
    and do not count in ``m``.
    """
    idx = [i for i, p in enumerate(p_values) if p is not None]
    for i in idx:
        p = p_values[i]
        if not (0.0 <= float(p) <= 1.0):  # type: ignore[arg-type]
            raise DistilRankError(f"p-value #{i} = {p!r} is not in [0, 1]")
    order = sorted(idx, key=lambda i: float(p_values[i]))  # type: ignore[arg-type]
    m = len(order)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (m - j) * float(p_values[i])))  # type: ignore[arg-type]
        out[i] = running
    return out


def win_loss_tie(deltas: Sequence[float] | np.ndarray, *, tol: float = 1e-12) -> tuple[int, int, int]:
    """``(wins, losses, ties)`` of the arm: deltas ``> tol``, ``< -tol``, and within ``tol`` of 0."""
    d = _as_deltas(deltas)
    return int(np.count_nonzero(d > tol)), int(np.count_nonzero(d < -tol)), int(np.count_nonzero(np.abs(d) <= tol))


@dataclass(frozen=True)
class PairedSummary:
    """One paired comparison: ``mean`` delta (``None`` for no deltas), bootstrap ``ci`` ``(lo, hi)``, permutation
    ``p_value`` and ``p_method``, and ``wins``/``losses``/``ties`` of the arm over ``n`` paired units."""

    mean: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    p_method: str
    wins: int
    losses: int
    ties: int
    n: int


def paired_summary(deltas: Sequence[float] | np.ndarray, *, n_permutations: int = 10_000, resamples: int = 10_000,
                   seed: int = 0, alpha: float = 0.05) -> PairedSummary:
    """:func:`paired_permutation_test`, :func:`paired_bootstrap_ci` and :func:`win_loss_tie` of the same deltas."""
    d = _as_deltas(deltas)
    perm = paired_permutation_test(d, n_permutations=n_permutations, seed=seed)
    w, l_, t = win_loss_tie(d)
    return PairedSummary(float(d.mean()) if d.size else None, paired_bootstrap_ci(d, resamples=resamples, seed=seed, alpha=alpha),
                         perm.p_value, perm.method, w, l_, t, int(d.size))


def sign_test(wins: int, losses: int) -> float | None:
    """Two-sided exact binomial (sign) test of ``P(win) = 1/2`` over ``wins + losses`` non-tied trials.

    ``p = min(1, 2 * P(X <= min(wins, losses)))`` with ``X ~ Binomial(n, 1/2)``; ``None`` when ``n = 0``.
    """
    if wins < 0 or losses < 0:
        raise DistilRankError(f"wins and losses must be >= 0, got {wins}, {losses}")
    n = wins + losses
    if n == 0:
        return None
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1))
    return min(1.0, 2 * tail / 2 ** n)


def wilson_ci(successes: int, n: int, *, alpha: float = 0.05) -> tuple[float, float] | None:
    """Wilson score ``1 - alpha`` interval of a binomial proportion ``successes / n``; ``None`` when ``n = 0``."""
    if n == 0:
        return None
    if not 0 <= successes <= n:
        raise DistilRankError(f"successes must be in [0, n={n}], got {successes}")
    z = NormalDist().inv_cdf(1 - alpha / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact bounds at the extremes (no rounding residue)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float | None:
    """Nearest-rank percentile: the smallest observed value ``v`` with at least ``q``% of values ``<= v``,
    i.e. ``sorted(values)[ceil(q / 100 * n) - 1]`` (``q = 0`` gives the minimum); ``None`` for no values."""
    if not 0 <= q <= 100:
        raise DistilRankError(f"percentile q must be in [0, 100], got {q}")
    v = np.sort(np.asarray(values, dtype=np.float64).reshape(-1))
    if v.size == 0:
        return None
    rank = max(1, math.ceil(q / 100.0 * v.size - 1e-9))
    return float(v[rank - 1])


def latency_summary(latencies_ms: Sequence[float] | np.ndarray) -> dict[str, float | int | None]:
    """``{"n", "mean", "p50", "p95", "p99", "max"}`` of per-query latencies in milliseconds
    (nearest-rank percentiles, see :func:`percentile`); values ``None`` for no latencies."""
    v = np.asarray(latencies_ms, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise DistilRankError("latencies must be finite numbers >= 0 (milliseconds)")
    return {"n": int(v.size), "mean": float(v.mean()) if v.size else None,
            "p50": percentile(v, 50), "p95": percentile(v, 95), "p99": percentile(v, 99),
            "max": float(v.max()) if v.size else None}
