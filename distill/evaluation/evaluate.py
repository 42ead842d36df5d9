"""Evaluate student logits against gold labels and a teacher: one JSON-ready dict.

Result schema (plain Python types; undefined metrics are ``nan``)::

    {"n": int,                                  # rows
     "k": int,                                  # cut-off of the ranking metrics
     "labels": "binary" | "graded" | None,      # gold label kind; None = unlabeled
     "student": Block,
     "teacher": Block | None,                   # None without teacher logits
     "recovery": {"accuracy", "auc"[, "ndcg@k", "mrr@k"]} | None,   # student / teacher; needs labels + teacher
     "agreement": float | None,                 # fraction on the same side of 0 as the teacher
     "pearson": float | None, "spearman": float | None,             # student vs teacher logits
     "ranking": {"student": Ranking, "teacher": Ranking (with a teacher)} | None}

    Block   = {"positive_rate": float,          # fraction with logit > 0 (always)
               # with labels only:
               "accuracy": float, "accuracy_ci95": [lo, hi],   # 1000-resample percentile bootstrap, seed 0
               "auc": float, "log_loss": float,                # log-loss in nats
               "ece": float}                                   # expected calibration error, 10 bins
    Ranking = {"ndcg@k": float, "mrr@k": float, "n_queries": int, "n_skipped": int}

Binary metrics treat a label as positive when it is at least half the top
grade (see :mod:`distilrank.metrics`).  ``ranking`` is filled when the
pairs are labeled and have queries (not single-text mode); documents are
grouped by query string and ranked by logit.
"""

from __future__ import annotations

import numpy as np

from distilrank.errors import DistilRankError
from distilrank.metrics import (
    accuracy,
    agreement,
    bootstrap_ci,
    expected_calibration_error,
    grouped_ranking_metrics,
    log_loss,
    pearson,
    positives,
    recovery_ratio,
    roc_auc,
    spearman,
)
from distilrank.pairs import Pairs

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


def _logits(name: str, values: np.ndarray, n: int, source: str) -> np.ndarray:
    z = np.asarray(values, dtype=np.float64)
    if z.shape != (n,):
        raise DistilRankError(f"{source}: {name} logits have shape {z.shape} but the data has {n} rows")
    bad = int(np.count_nonzero(~np.isfinite(z)))
    if bad:
        raise DistilRankError(f"{source}: {bad} of {n} {name} logits are NaN or infinite")
    return z


def label_kind(labels: np.ndarray | None) -> str | None:
    """``"binary"`` when every label is 0 or 1, ``"graded"`` otherwise, ``None`` for no labels."""
    if labels is None:
        return None
    y = np.asarray(labels)
    return "binary" if np.all((y == 0) | (y == 1)) else "graded"


def score_block(logits: np.ndarray, labels: np.ndarray | None) -> dict:
    """One model's ``Block`` (see the module doc) for logits ``[N]`` and optional labels ``[N]``."""
    z = np.asarray(logits, dtype=np.float64)
    block: dict = {"positive_rate": float(np.mean(z > 0)) if z.size else float("nan")}
    if labels is None:
        return block
    correct = ((z > 0) == positives(labels)).astype(np.float64)
    lo, hi = bootstrap_ci(correct, resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)
    block.update({"accuracy": accuracy(z, labels), "accuracy_ci95": [lo, hi], "auc": roc_auc(z, labels),
                  "log_loss": log_loss(z, labels), "ece": expected_calibration_error(z, labels)})
    return block


def evaluate_scores(pairs: Pairs, student_logits: np.ndarray, teacher_logits: np.ndarray | None = None, *, k: int = 10) -> dict:
    """Compare ``student_logits`` ``[N]`` (and ``teacher_logits`` ``[N]``) on ``pairs``; schema in the module doc.

    Raises :class:`DistilRankError` when a logit array does not have one finite value per row.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n = len(pairs)
    s = _logits("student", student_logits, n, pairs.source)
    t = None if teacher_logits is None else _logits("teacher", teacher_logits, n, pairs.source)
    y = pairs.labels
    result: dict = {"n": n, "k": k, "labels": label_kind(y), "student": score_block(s, y), "teacher": None,
                    "recovery": None, "agreement": None, "pearson": None, "spearman": None, "ranking": None}
    if t is not None:
        result["teacher"] = score_block(t, y)
        result.update(agreement=agreement(s, t), pearson=pearson(s, t), spearman=spearman(s, t))
        if y is not None:
            result["recovery"] = {m: recovery_ratio(result["student"][m], result["teacher"][m]) for m in ("accuracy", "auc")}
    if y is not None and n and not pairs.single_text:
        result["ranking"] = {"student": grouped_ranking_metrics(pairs.queries, s, y, k)}
        if t is not None:
            result["ranking"]["teacher"] = grouped_ranking_metrics(pairs.queries, t, y, k)
            for m in (f"ndcg@{k}", f"mrr@{k}"):
                result["recovery"][m] = recovery_ratio(result["ranking"]["student"][m], result["ranking"]["teacher"][m])
    return result
