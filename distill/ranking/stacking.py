"""Ranking-shaped teacher stacking: teachers normalised within each query's pool, combined by non-negative weights.

Teachers of a product-search run live on unrelated scales (a cosine in ``[-1, 1]``, a BM25 score, a logit) and a
reranker only needs the order *inside* a query, so stacking is done per query:

* :func:`pool_zscore`: each teacher's scores are z-scored within each query's pool (population std; a pool with one
  row or zero variance gets 0), so a teacher contributes its within-query order, not its global scale;
* :class:`RankStacker`: ``stacked = sum_k w_k * z_k`` with ``w_k >= 0`` and ``sum w = 1``.  :func:`equal_stack` sets
  every weight to ``1/K`` (no labels used); :func:`fit_rank_stacker` fits the weights by pairwise logistic regression
  on within-query pairs of judged products with different grades (``P(i above j) = sigmoid(c * w . (z_i - z_j))``),
  projected gradient descent onto ``w >= 0``, on queries no teacher trained on.

Score scale: the stacked score is a within-query z-score mixture (about unit scale), not a calibrated logit; it is
meant for ranking losses (:func:`distilrank.distill.student.train.listwise_loss`) and within-query metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


def group_index(queries: Sequence[str]) -> np.ndarray:
    """int64 ``[N]``: the index of each row's query in order of first appearance."""
    ids: dict[str, int] = {}
    return np.fromiter((ids.setdefault(q, len(ids)) for q in queries), np.int64, len(queries))


def pool_zscore(scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``scores`` float ``[N]`` z-scored within each group of ``groups`` int ``[N]``; float32 ``[N]``."""
    x = np.asarray(scores, dtype=np.float64)
    g = np.asarray(groups)
    n = int(g.max()) + 1 if len(g) else 0
    count = np.bincount(g, minlength=n).astype(np.float64)
    mean = np.bincount(g, weights=x, minlength=n) / np.maximum(count, 1)
    var = np.bincount(g, weights=(x - mean[g]) ** 2, minlength=n) / np.maximum(count, 1)
    sd = np.sqrt(var)
    out = np.where(sd[g] > 1e-12, (x - mean[g]) / np.where(sd[g] > 1e-12, sd[g], 1.0), 0.0)
    return out.astype(np.float32)


@dataclass
class RankStacker:
    """``stacked = sum_k weights[k] * pool_zscore(scores_k)``; ``fitted_on`` says how the weights were chosen."""

    teachers: list[str]
    weights: list[float]
    fitted_on: str
    pairs: int = 0

    def apply(self, scores: dict[str, np.ndarray], groups: np.ndarray) -> np.ndarray:
        """Stacked float32 ``[N]`` from ``{teacher: scores [N]}`` (every teacher of the stacker present)."""
        missing = [t for t in self.teachers if t not in scores]
        if missing:
            raise ValueError(f"scores of teacher(s) {missing} are missing (stacker of {self.teachers})")
        out = np.zeros(len(groups), np.float64)
        for t, w in zip(self.teachers, self.weights):
            if w:
                out += w * pool_zscore(scores[t], groups)
        return out.astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)


def equal_stack(teachers: Sequence[str]) -> RankStacker:
    """Every teacher weighted ``1/K``: a stack that uses no judgments."""
    return RankStacker(list(teachers), [1.0 / len(teachers)] * len(teachers), fitted_on="equal weights (no judgments)")


def _graded_pairs(grades: np.ndarray, groups: np.ndarray, max_per_query: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs ``(i, j)`` of one query with ``grade_i > grade_j`` (at most ``max_per_query`` per query, sampled)."""
    hi, lo = [], []
    order = np.argsort(groups, kind="stable")
    for rows in np.split(order, np.flatnonzero(np.diff(groups[order])) + 1):
        g = grades[rows]
        a, b = np.nonzero(g[:, None] > g[None, :])
        if len(a) > max_per_query:
            keep = rng.choice(len(a), max_per_query, replace=False)
            a, b = a[keep], b[keep]
        hi.append(rows[a])
        lo.append(rows[b])
    return (np.concatenate(hi), np.concatenate(lo)) if hi else (np.zeros(0, np.int64), np.zeros(0, np.int64))


def fit_rank_stacker(scores: dict[str, np.ndarray], grades: np.ndarray, groups: np.ndarray, *, scale: float = 2.0,
                     l2: float = 1e-3, steps: int = 500, lr: float = 0.5, max_pairs_per_query: int = 2000,
                     seed: int = 0) -> RankStacker:
    """Non-negative weights (summing to 1) for the teachers in ``scores`` from within-query graded pairs.

    ``scores``: ``{teacher: float [N]}`` over judged rows; ``grades`` float ``[N]``; ``groups`` int ``[N]`` (query).
    The loss is the mean of ``log(1 + exp(-scale * w . (z_i - z_j)))`` over pairs with ``grade_i > grade_j``, plus
    ``l2 * |w|^2``; ``w`` is projected onto ``w >= 0`` after each gradient step and normalised to sum 1 at the end
    (all-zero falls back to equal weights).  Deterministic for a given ``seed``."""
    names = list(scores)
    z = np.stack([pool_zscore(scores[t], groups) for t in names], axis=1).astype(np.float64)  # [N, K]
    i, j = _graded_pairs(np.asarray(grades, np.float64), np.asarray(groups), max_pairs_per_query, np.random.default_rng(seed))
    if len(i) == 0:
        return equal_stack(names)
    d = scale * (z[i] - z[j])  # [P, K]
    w = np.full(len(names), 1.0 / len(names))
    for _ in range(steps):
        m = d @ w
        p = 0.5 * (1.0 - np.tanh(0.5 * m))  # sigmoid(-m), stable
        grad = -(d * p[:, None]).mean(axis=0) + 2 * l2 * w
        w = np.maximum(w - lr * grad, 0.0)
    total = w.sum()
    weights = (w / total).tolist() if total > 0 else [1.0 / len(names)] * len(names)
    return RankStacker(names, weights, fitted_on="within-query graded pairs", pairs=int(len(i)))


__all__ = ["RankStacker", "equal_stack", "fit_rank_stacker", "group_index", "pool_zscore"]
