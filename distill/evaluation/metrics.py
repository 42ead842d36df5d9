"""Pure-numpy metrics.

Score scale: ``scores``/``logits`` are raw logits (decision threshold 0).
Binary labels are {0, 1}; graded labels are any non-negative numbers, and a
graded label counts as positive when it is at least half the largest grade.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np


def positives(labels: np.ndarray) -> np.ndarray:
    """Boolean ``[N]``: binary labels as they are, graded labels ``>= max/2``."""
    y = np.asarray(labels, dtype=np.float64)
    top = y.max() if y.size else 1.0
    return y >= (0.5 * top if top > 1.0 else 0.5)


def accuracy(logits: np.ndarray, labels: np.ndarray, threshold: float = 0.0) -> float:
    """Fraction of rows where ``logit > threshold`` equals the positive label."""
    z = np.asarray(logits)
    return float(np.mean((z > threshold) == positives(labels))) if z.size else float("nan")


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); NaN with one class."""
    s = np.asarray(scores, dtype=np.float64)
    y = positives(labels)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean binary cross-entropy (nats) of ``sigmoid(logits)`` against positive labels."""
    z = np.asarray(logits, dtype=np.float64)
    y = positives(labels).astype(np.float64)
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def agreement(student_logits: np.ndarray, teacher_logits: np.ndarray) -> float:
    """Fraction of rows on which student and teacher make the same binary decision."""
    return float(np.mean((np.asarray(student_logits) > 0) == (np.asarray(teacher_logits) > 0)))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (Pearson on average ranks)."""
    def ranks(x: np.ndarray) -> np.ndarray:
        _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return (starts + (counts - 1) / 2.0)[inv]
    return pearson(ranks(np.asarray(a)), ranks(np.asarray(b)))


def dcg_at_k(gains_in_rank_order: np.ndarray, k: int) -> float:
    """DCG with exponential gain ``2^g - 1`` and ``log2(rank + 1)`` discount."""
    g = np.asarray(gains_in_rank_order, dtype=np.float64)[:k]
    return float(np.sum((2.0**g - 1.0) / np.log2(np.arange(2, len(g) + 2))))


def ndcg_at_k(scores: np.ndarray, gains: np.ndarray, k: int = 10) -> float:
    """NDCG@k of one query's documents ranked by ``scores`` (descending); NaN if all gains are 0.

    Ties in ``scores`` keep input order (stable sort), so results are deterministic.
    """
    s, g = np.asarray(scores), np.asarray(gains, dtype=np.float64)
    ideal = dcg_at_k(np.sort(g)[::-1], k)
    if ideal == 0:
        return float("nan")
    return dcg_at_k(g[np.argsort(-s, kind="stable")], k) / ideal


def mrr_at_k(scores: np.ndarray, relevant: np.ndarray, k: int = 10) -> float:
    """Reciprocal rank of the first relevant document within the top ``k`` (0 if none)."""
    rel = np.asarray(relevant, dtype=bool)[np.argsort(-np.asarray(scores), kind="stable")][:k]
    hits = np.flatnonzero(rel)
    return 1.0 / (hits[0] + 1) if hits.size else 0.0


def grouped_ranking_metrics(query_ids: Sequence[str], scores: np.ndarray, labels: np.ndarray, k: int = 10) -> dict:
    """Mean NDCG@k and MRR@k over queries; queries without any relevant document are skipped and counted."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(query_ids):
        groups[q].append(i)
    s, y = np.asarray(scores), np.asarray(labels, dtype=np.float64)
    rel = positives(y)
    ndcgs, mrrs, skipped = [], [], 0
    for idx in groups.values():
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
    """``student / teacher`` (e.g. 0.97 = the student keeps 97% of the teacher's accuracy)."""
    return float(student_metric / teacher_metric) if teacher_metric else float("nan")


def bootstrap_ci(values: np.ndarray, *, resamples: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of per-row ``values``."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(resamples, v.size))].mean(axis=1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))
