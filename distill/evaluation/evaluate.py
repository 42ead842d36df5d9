"""Evaluate student logits against gold labels and a teacher.

Result schema (plain JSON)::

    {"n": int,
     "student": {"accuracy", "accuracy_ci95": [lo, hi], "auc", "log_loss"} | {} without labels,
     "teacher": same keys | None,
     "recovery": {"accuracy", "auc"} | None,          # student / teacher
     "agreement": float | None, "pearson": float | None,  # student vs teacher logits
     "ranking": {"student": {"ndcg@k", "mrr@k", "n_queries", "n_skipped"}, "teacher": ...} | None}
"""

from __future__ import annotations

import numpy as np

from distill.data.pairs import Pairs
from distill.evaluation.metrics import (
    accuracy,
    agreement,
    bootstrap_ci,
    grouped_ranking_metrics,
    log_loss,
    pearson,
    positives,
    recovery_ratio,
    roc_auc,
)


def gold_metrics(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy (with bootstrap 95% CI), AUC and log-loss of logits ``[N]`` against labels ``[N]``."""
    correct = ((np.asarray(logits) > 0) == positives(labels)).astype(np.float64)
    lo, hi = bootstrap_ci(correct)
    return {"accuracy": accuracy(logits, labels), "accuracy_ci95": [lo, hi], "auc": roc_auc(logits, labels), "log_loss": log_loss(logits, labels)}


def evaluate_scores(pairs: Pairs, student_logits: np.ndarray, teacher_logits: np.ndarray | None = None, *, k: int = 10) -> dict:
    """Compare ``student_logits`` ``[N]`` (and ``teacher_logits`` ``[N]``) on ``pairs``; see the module doc."""
    s = np.asarray(student_logits, dtype=np.float32)
    if s.shape != (len(pairs),):
        raise ValueError(f"student_logits shape {s.shape} != ({len(pairs)},)")
    t = None if teacher_logits is None else np.asarray(teacher_logits, dtype=np.float32)
    labeled = pairs.labels is not None
    result: dict = {"n": len(pairs), "student": gold_metrics(s, pairs.labels) if labeled else {}, "teacher": None,
                    "recovery": None, "agreement": None, "pearson": None, "ranking": None}
    if t is not None:
        result["agreement"] = agreement(s, t)
        result["pearson"] = pearson(s, t)
        if labeled:
            result["teacher"] = gold_metrics(t, pairs.labels)
            result["recovery"] = {m: recovery_ratio(result["student"][m], result["teacher"][m]) for m in ("accuracy", "auc")}
    if labeled and not pairs.single_text:
        result["ranking"] = {"student": grouped_ranking_metrics(pairs.queries, s, pairs.labels, k)}
        if t is not None:
            result["ranking"]["teacher"] = grouped_ranking_metrics(pairs.queries, t, pairs.labels, k)
    return result


def format_summary(result: dict) -> str:
    """A few lines for the terminal: teacher vs student accuracy, recovery, AUC, agreement."""
    lines = []
    st, te = result.get("student") or {}, result.get("teacher") or {}
    if te:
        lines.append(f"teacher  accuracy {te['accuracy']:.4f}  AUC {te['auc']:.4f}")
    if st:
        lo, hi = st["accuracy_ci95"]
        lines.append(f"student  accuracy {st['accuracy']:.4f} (95% CI {lo:.4f}-{hi:.4f})  AUC {st['auc']:.4f}")
    if result.get("recovery"):
        lines.append(f"recovery {100 * result['recovery']['accuracy']:.1f}% of teacher accuracy, {100 * result['recovery']['auc']:.1f}% of AUC")
    if result.get("agreement") is not None:
        lines.append(f"agreement with teacher {result['agreement']:.4f}  pearson {result['pearson']:.3f}")
    for who, r in (result.get("ranking") or {}).items():
        lines.append(f"{who} ranking: " + "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()))
    return "\n".join(lines)
