"""Pure-numpy metrics for binary decisions, calibration and per-query ranking.

Conventions shared by every function here:

* ``logits`` / ``scores`` are float arrays ``[N]`` of raw logits; the decision
  threshold is 0 (``logit > 0`` means "positive", so a logit of exactly 0 is
  negative), and ``sigmoid(logit)`` is the predicted probability.
* ``labels`` are gold labels ``[N]``: binary {0, 1}, probabilities in [0, 1],
  or graded relevance (any non-negative number, e.g. 0..3).  Where a metric
  needs a binary label, a row is *positive* when its label is at least half
  the top grade, ``label >= 0.5 * max(1, labels.max())`` (see :func:`positives`):
  binary and [0, 1] labels cut at 0.5, grades 0..3 count 2 and 3 as positive.
  The top grade is taken from the array passed in.
* Ranking metrics use the graded label itself as the gain (``2^g - 1``).
* Undefined values (one class only, constant input, no relevant document)
  are ``nan``, never an exception.  This is the project's one convention for
  metric functions (:mod:`distilrank.plugin.abtest.metrics` follows it); only JSON
  records turn ``nan`` into ``null`` with a reason.
* :func:`dcg_at_k` is the one DCG core: every NDCG here, in
  :mod:`distilrank.plugin.abtest.metrics` and in :mod:`distilrank.distill.ranking.evaluate` is built on it.

Ties in scores are resolved without favouring either side: AUC counts a tied
positive/negative pair as half a win, and NDCG/MRR return the expectation over
all orderings of tied documents (so a constant scorer does not look good just
because the input happens to list relevant documents first).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def positives(labels: np.ndarray) -> np.ndarray:
    """Boolean ``[N]``: ``labels >= 0.5 * max(1, labels.max())`` (binary labels unchanged, graded cut at half the top grade)."""
    y = np.asarray(labels, dtype=np.float64)
    top = float(y.max()) if y.size else 1.0
    return y >= 0.5 * max(1.0, top)


def accuracy(logits: np.ndarray, labels: np.ndarray, threshold: float = 0.0) -> float:
    """Fraction of rows where ``logit > threshold`` equals ``positives(labels)``; ``nan`` for no rows."""
    z = np.asarray(logits, dtype=np.float64)
    if z.size == 0:
        return float("nan")
    return float(np.mean((z > threshold) == positives(labels)))


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks ``[N]`` of ``x`` in ascending order; tied values share the average of their ranks."""
    x = np.asarray(x)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts  # 0-based first position of each distinct value
    return (starts + (counts + 1) / 2.0)[inverse.reshape(-1)]


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a random positive > a random negative), ties counting 1/2.

    Computed as the Mann-Whitney U statistic from average ranks, O(N log N).
    ``nan`` when ``positives(labels)`` has only one class.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = positives(labels)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = float(average_ranks(s)[y].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def binary_nll(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean negative log-likelihood in nats of ``targets`` in [0, 1] (hard or soft) under ``sigmoid(logits)``.

    ``mean(log(1 + e^z) - y z)``, numerically stable for any logit; ``nan`` for no rows.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.size == 0:
        return float("nan")
    y = np.asarray(targets, dtype=np.float64)
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def log_loss(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean binary cross-entropy in nats of ``sigmoid(logits)`` against ``positives(labels)``: :func:`binary_nll` of the cut labels."""
    return binary_nll(logits, positives(labels).astype(np.float64))


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))`` as float64 ``[N]`` without overflow warnings."""
    z = np.asarray(logits, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def calibration_bins(logits: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Reliability table over ``n_bins`` equal-width bins of ``sigmoid(logits)`` in [0, 1].

    Returns arrays ``[n_bins]``: ``count`` (rows per bin), ``mean_prob`` (mean predicted
    probability) and ``frac_pos`` (fraction of ``positives(labels)``); the last two are
    ``nan`` for empty bins.  Bin ``b`` holds ``b/n_bins <= p < (b+1)/n_bins`` (p = 1 goes to the last).
    """
    p = sigmoid(logits)
    y = positives(labels).astype(np.float64)
    b = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(b, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.bincount(b, weights=p, minlength=n_bins) / count
        frac_pos = np.bincount(b, weights=y, minlength=n_bins) / count
    return {"count": count, "mean_prob": mean_prob, "frac_pos": frac_pos}


def expected_calibration_error(logits: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> float:
    """ECE: ``sum_b (count_b / N) * |frac_pos_b - mean_prob_b|`` over :func:`calibration_bins`; ``nan`` for no rows."""
    t = calibration_bins(logits, labels, n_bins)
    n = t["count"].sum()
    if n == 0:
        return float("nan")
    used = t["count"] > 0
    return float(np.sum(t["count"][used] / n * np.abs(t["frac_pos"][used] - t["mean_prob"][used])))


def agreement(student_logits: np.ndarray, teacher_logits: np.ndarray) -> float:
    """Fraction of rows where student and teacher fall on the same side of 0 (``logit > 0``); ``nan`` for no rows."""
    a, b = np.asarray(student_logits), np.asarray(teacher_logits)
    if a.size == 0:
        return float("nan")
    return float(np.mean((a > 0) == (b > 0)))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two ``[N]`` arrays; ``nan`` when either is constant or has fewer than 2 rows."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size < 2:
        return float("nan")
    da, db = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(np.dot(da, da)) * float(np.dot(db, db)))
    if denom == 0.0:
        return float("nan")
    return float(np.clip(np.dot(da, db) / denom, -1.0, 1.0))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation: Pearson on average ranks (ties share their mean rank)."""
    return pearson(average_ranks(a), average_ranks(b))


def _discounts(n: int, k: int) -> np.ndarray:
    """``1 / log2(rank + 1)`` for ranks 1..n, zero beyond rank ``k``."""
    d = 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))
    d[k:] = 0.0
    return d


def _tie_groups(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order by descending score and the start index of each run of equal scores in that order."""
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    ordered = s[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]])) if s.size else np.zeros(0, np.int64)
    return order, starts


def _gain(grades: np.ndarray, gain: str) -> np.ndarray:
    if gain == "exponential":
        return 2.0**grades - 1.0
    if gain == "linear":
        return grades
    raise ValueError(f"gain must be 'exponential' or 'linear', got {gain!r}")


def dcg_at_k(gains_in_rank_order: np.ndarray, k: int, gain: str = "exponential") -> float:
    """DCG of grades already in rank order: ``sum_{r<=k} gain(g_r) / log2(r + 1)``, gain ``2^g - 1`` or ``g`` (linear)."""
    g = np.asarray(gains_in_rank_order, dtype=np.float64)
    return float(np.sum(_gain(g, gain) * _discounts(g.size, k)))


def ndcg_of_grades(grades_in_rank_order: Sequence[float] | np.ndarray, all_grades: Sequence[float] | np.ndarray, k: int,
                   gain: str = "exponential") -> float:
    """NDCG@k of a returned list given its grades in rank order, the ideal DCG taken over ``all_grades``.

    ``all_grades`` are every judged grade of the query (returned or not), so a list that misses a
    relevant document is not excused.  ``nan`` when the ideal DCG is 0 (no positive gain).
    """
    ideal = dcg_at_k(np.sort(np.asarray(all_grades, dtype=np.float64))[::-1], k, gain)
    if ideal <= 0.0:
        return float("nan")
    return dcg_at_k(np.asarray(grades_in_rank_order, dtype=np.float64), k, gain) / ideal


def ndcg_at_k(scores: np.ndarray, gains: np.ndarray, k: int = 10, gain: str = "exponential") -> float:
    """NDCG@k of one query's documents ranked by descending ``scores``.

    ``gains`` are the grades ``g``; gain ``2^g - 1`` (``"exponential"``) or ``g`` (``"linear"``, e.g. the ESCI
    task gains E 1.0 / S 0.1 / C 0.01 / I 0), discount ``1 / log2(rank + 1)``, normalised by the DCG of
    the ideal order.  Documents with tied scores share the mean gain of their tie
    group (the expected DCG over all orders of the ties).  ``nan`` when every
    gain is 0 (no ideal ranking to compare with).  ``gains`` must be >= 0.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    g = np.asarray(gains, dtype=np.float64)
    if g.shape != np.shape(scores):
        raise ValueError(f"scores shape {np.shape(scores)} != gains shape {g.shape}")
    if np.any(g < 0):
        raise ValueError("gains must be non-negative")
    ideal = dcg_at_k(np.sort(g)[::-1], k, gain)
    if ideal == 0.0:
        return float("nan")
    order, starts = _tie_groups(scores)
    gain_sorted = _gain(g[order], gain)
    sizes = np.diff(np.append(starts, g.size))
    group_gain = np.add.reduceat(gain_sorted, starts) / sizes
    group_discount = np.add.reduceat(_discounts(g.size, k), starts)
    return float(np.sum(group_gain * group_discount) / ideal)


def mrr_at_k(scores: np.ndarray, relevant: np.ndarray, k: int = 10) -> float:
    """Reciprocal rank of the first relevant document if it is within the top ``k``, else 0.

    With ties, the expectation over all orders of the tie group holding the first
    relevant documents.  0 when nothing is relevant.  ``relevant``: bool ``[N]``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rel = np.asarray(relevant, dtype=bool)
    if rel.shape != np.shape(scores):
        raise ValueError(f"scores shape {np.shape(scores)} != relevant shape {rel.shape}")
    order, starts = _tie_groups(scores)
    rel = rel[order]
    ends = np.append(starts[1:], rel.size)
    for start, end in zip(starts, ends):
        if start >= k:
            return 0.0
        m, r = int(end - start), int(rel[start:end].sum())
        if r == 0:
            continue
        # P(the first relevant one sits j places into the group) for a uniformly random order of the group
        expected, p_none_before = 0.0, 1.0
        for j in range(min(m - r, k - 1 - int(start)) + 1):
            expected += p_none_before * r / (m - j) / (start + j + 1)
            p_none_before *= (m - r - j) / (m - j)
        return float(expected)
    return 0.0


def grouped_ranking_metrics(query_ids: Sequence[str], scores: np.ndarray, labels: np.ndarray, k: int = 10) -> dict:
    """Mean NDCG@k and MRR@k over queries (documents grouped by equal query id).

    Gains are the labels themselves; MRR's "relevant" is ``positives(labels)`` over
    the whole array.  Queries whose gains are all 0 have no defined NDCG: they are
    left out of both means and counted in ``n_skipped``.

    Returns ``{"ndcg@k": float, "mrr@k": float, "n_queries": int, "n_skipped": int}``
    (means ``nan`` when no query is left).
    """
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if not (len(query_ids) == s.size == y.size):
        raise ValueError(f"{len(query_ids)} query ids, {s.size} scores, {y.size} labels")
    rel = positives(y)
    _, qid = np.unique(np.asarray(query_ids, dtype=object).astype(str), return_inverse=True)
    order = np.argsort(qid, kind="stable")
    bounds = np.flatnonzero(np.diff(qid[order])) + 1
    ndcgs, mrrs, skipped = [], [], 0
    for idx in np.split(order, bounds) if s.size else []:
        n = ndcg_at_k(s[idx], y[idx], k)
        if math.isnan(n):
            skipped += 1
            continue
        ndcgs.append(n)
        mrrs.append(mrr_at_k(s[idx], rel[idx], k))
    return {
        f"ndcg@{k}": float(np.mean(ndcgs)) if ndcgs else float("nan"),
        f"mrr@{k}": float(np.mean(mrrs)) if mrrs else float("nan"),
        "n_queries": len(ndcgs),
        "n_skipped": skipped,
    }


def recovery_ratio(student_metric: float, teacher_metric: float) -> float:
    """``student / teacher`` (0.97 = the student keeps 97% of the teacher's metric); ``nan`` if teacher is 0 or either is nan."""
    s, t = float(student_metric), float(teacher_metric)
    if t == 0.0 or math.isnan(s) or math.isnan(t):
        return float("nan")
    return s / t


def bootstrap_ci(values: np.ndarray, *, resamples: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap ``(lo, hi)`` interval (``1 - alpha``) of the mean of per-row ``values`` ``[N]``.

    Deterministic for a given ``seed``.  For 0/1 values (e.g. per-row correctness)
    the mean of a resample is exactly ``Binomial(N, mean) / N``, which is drawn
    directly (O(resamples) instead of O(resamples * N)); other values are
    resampled in chunks so memory stays bounded.  ``(nan, nan)`` for no rows.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    if np.all((v == 0.0) | (v == 1.0)):
        means = rng.binomial(v.size, float(v.mean()), size=resamples) / v.size
    else:
        chunk = max(1, 4_000_000 // v.size)
        means = np.concatenate([v[rng.integers(0, v.size, size=(min(chunk, resamples - i), v.size))].mean(axis=1)
                                for i in range(0, resamples, chunk)])
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))
