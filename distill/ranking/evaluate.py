"""Query-grouped ranking evaluation in the two settings a relevance engineer cares about.

* **judged**: rank each evaluation query's judged products by a system's scores (the ESCI
  paper's ranking task).  Ties are averaged over (tie-aware nDCG/MRR), so a first pass that
  gives many products the same BM25 score is neither helped nor hurt by an arbitrary order.
* **rerank**: reorder each evaluation query's BM25 top ``depth`` from the whole catalogue by
  the system's scores (ties keep BM25 order), what a deployed rerank stage returns; unjudged
  products count as not relevant and their share in the top ``k`` is reported.

Metrics per query: nDCG@k with ESCI gains (E 1.0, S 0.1, C 0.01, I 0; linear), nDCG@k with
graded gains (``2^g - 1`` on 3/2/1/0) and MRR@k (relevant = Exact).  Every system is compared
with BM25 by a paired sign-flip permutation test and a paired bootstrap CI over queries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from distilrank.grades import EXACT, esci_gain
from distilrank.metrics import mrr_at_k as scores_mrr
from distilrank.metrics import ndcg_at_k as scores_ndcg
from distilrank.metrics import ndcg_of_grades

METRICS = ("ndcg_esci", "ndcg_graded", "mrr")


def query_metrics(scores: np.ndarray, grades: np.ndarray, k: int) -> dict[str, float]:
    """The three metrics of one query from scores and grades of the same ``n`` products (unjudged = grade 0)."""
    g = np.asarray(grades, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    return {"ndcg_esci": scores_ndcg(s, esci_gain(g), k, gain="linear"), "ndcg_graded": scores_ndcg(s, g, k),
            "mrr": scores_mrr(s, g >= EXACT, k)}


def judged_setting(queries: Sequence[str], row_queries: Sequence[str], grades: np.ndarray, scores: np.ndarray, k: int
                   ) -> dict[str, dict[str, float]]:
    """Per-query metrics of ranking each query's judged products; rows are (query, product) judgments."""
    rq = np.asarray(row_queries, dtype=object)
    out = {}
    for q in queries:
        m = rq == q
        out[q] = query_metrics(scores[m], grades[m], k)
    return out


def rerank_setting(pool: Mapping[str, Sequence[str]], scores: Mapping[str, np.ndarray] | None,
                   judged: Mapping[str, Mapping[str, float]], k: int) -> dict[str, dict[str, float]]:
    """Per-query metrics of each query's BM25 pool reordered by ``scores[q]`` (``None`` = BM25 order itself).

    The ideal DCG is taken over all of the query's judged products (in the pool or not), so a
    first pass that misses relevant products is not excused.  Adds ``unjudged`` (share of the top
    ``k`` without a judgment).
    """
    out = {}
    for q, ids in pool.items():
        order = np.arange(len(ids)) if scores is None else np.argsort(-np.asarray(scores[q]), kind="stable")
        ranked = [ids[i] for i in order[:k]]
        grades = np.array([judged[q].get(d, 0.0) for d in ranked] + [0.0] * (k - len(ranked)))
        all_grades = np.array(sorted(judged[q].values(), reverse=True))
        out[q] = {"ndcg_esci": ndcg_of_grades(esci_gain(grades), esci_gain(all_grades), k, "linear"),
                  "ndcg_graded": ndcg_of_grades(grades, all_grades, k, "exponential"),
                  "mrr": next((1.0 / (r + 1) for r, g in enumerate(grades) if g >= EXACT), 0.0),
                  "unjudged": float(np.mean([d not in judged[q] for d in ranked])) if ranked else 0.0}
    return out


def paired(a: Mapping[str, Mapping[str, float]], b: Mapping[str, Mapping[str, float]], *, metric: str = "ndcg_esci",
           seed: int = 0) -> dict:
    """Paired ``a - b`` on ``metric`` over the queries both define: mean delta, permutation p-value, 95% bootstrap
    CI and wins/losses/ties of ``a``."""
    from distilrank.plugin.abtest.stats import paired_summary

    queries = [q for q in a if q in b and np.isfinite(a[q][metric]) and np.isfinite(b[q][metric])]
    s = paired_summary(np.array([a[q][metric] - b[q][metric] for q in queries]), seed=seed)
    return {f"delta_{metric}": float("nan") if s.mean is None else s.mean, "ci_low": s.ci[0] if s.ci else None,
            "ci_high": s.ci[1] if s.ci else None, "p_value": s.p_value, "wins": s.wins, "losses": s.losses, "ties": s.ties,
            "queries": len(queries)}


def compare(per_query: Mapping[str, Mapping[str, Mapping[str, float]]], baseline: str, *, metric: str = "ndcg_esci",
            seed: int = 0) -> list[dict]:
    """One row per system: mean of each metric, and ``metric``'s paired delta vs ``baseline`` (:func:`paired`)."""
    base = per_query[baseline]
    rows = []
    for name, pq in per_query.items():
        row: dict = {"system": name, "queries": sum(1 for q in pq if np.isfinite(pq[q][metric]))}
        for m in next(iter(pq.values())).keys():
            vals = [pq[q][m] for q in pq if np.isfinite(pq[q][m])]
            row[m] = float(np.mean(vals)) if vals else float("nan")
        if name != baseline:
            row.update({k: v for k, v in paired(pq, base, metric=metric, seed=seed).items() if k != "queries"})
        rows.append(row)
    return rows


def recovery(student: float, teacher: float, baseline: float) -> dict[str, float]:
    """``recovery`` = student / teacher; ``gain_kept`` = (student - baseline) / (teacher - baseline), ``nan`` when the
    teacher does not beat the baseline (there is no gain to keep)."""
    gain = teacher - baseline
    return {"recovery": student / teacher if teacher else float("nan"),
            "gain_kept": (student - baseline) / gain if gain > 0 else float("nan")}
