"""Choose the rescorer's blend of BM25 and a model on training queries, the way the node will apply it.

The served score of a hit in a rescore window is ``query_weight * norm(bm25) + model_weight * norm(model)``
(:mod:`distilrank.plugin.blend`).  :func:`fit_blend` searches a small grid (normalisation ``min_max`` / ``z_score``,
``model_weight = a``, ``query_weight = 1 - a`` for ``a`` in ``BLEND_GRID``) for the best mean nDCG@k with ESCI gains
over the given *training* queries in the rerank setting (the BM25 top ``depth`` reordered, unjudged = 0); ties go to
the smaller ``a`` (closer to the first pass), then to ``min_max``.  :func:`inner_cv_blend_score` scores a model by
nested choice: the blend is fitted on ``folds - 1`` inner folds and measured on the held-out one, so a variant's score
never uses a query that chose its own weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from distilrank.distill.data.folds import query_folds
from distilrank.distill.ranking.evaluate import rerank_setting
from distilrank.plugin.blend import BlendSettings, blend_window

BLEND_GRID = tuple(round(float(a), 2) for a in np.linspace(0.0, 1.0, 21))
BLEND_NORMALIZATIONS = ("min_max", "z_score")

PerQuery = Mapping[str, np.ndarray]


def blended(first: PerQuery, model: PerQuery, settings: BlendSettings, queries: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """``{query: combined scores}`` of each query's list (``first[q]`` and ``model[q]`` aligned, one window per query)."""
    return {q: blend_window(first[q], model[q], settings) for q in (queries if queries is not None else first)}


def rerank_mean(pool: Mapping[str, Sequence[str]], scores: PerQuery, grades: Mapping[str, Mapping[str, float]], queries: Sequence[str],
                k: int, metric: str = "ndcg_esci") -> float:
    """Mean ``metric`` of ``queries``' pools reordered by ``scores`` (:func:`rerank_setting`)."""
    per_q = rerank_setting({q: pool[q] for q in queries}, {q: scores[q] for q in queries}, grades, k)
    return float(np.mean([m[metric] for m in per_q.values()])) if per_q else float("nan")


def fit_blend(pool: Mapping[str, Sequence[str]], first: PerQuery, model: PerQuery, grades: Mapping[str, Mapping[str, float]],
              queries: Sequence[str], k: int = 10) -> tuple[BlendSettings, list[dict]]:
    """The grid's best :class:`BlendSettings` on ``queries`` and every grid point ``{"normalization", "a", "score"}``."""
    rows = []
    best: tuple[float, BlendSettings] | None = None
    for norm in BLEND_NORMALIZATIONS:
        for a in BLEND_GRID:
            s = BlendSettings(query_weight=round(1.0 - a, 2), model_weight=a, normalization=norm)
            score = rerank_mean(pool, blended(first, model, s, queries), grades, queries, k)
            rows.append({"normalization": norm, "a": a, "score": score})
            if best is None or score > best[0] + 1e-12:
                best = (score, s)
    assert best is not None
    return best[1], rows


def inner_cv_blend_score(pool: Mapping[str, Sequence[str]], first: PerQuery, model: PerQuery,
                         grades: Mapping[str, Mapping[str, float]], queries: Sequence[str], *, k: int = 10, folds: int = 4,
                         seed: int = 0) -> dict:
    """Mean held-out nDCG@k of ``model`` blended with BM25 when each inner fold's blend is fitted on the other folds.

    Returns ``{"score", "per_query": {q: ndcg}, "settings": [each inner fold's BlendSettings as dict]}``."""
    per_query: dict[str, float] = {}
    chosen = []
    for fold in query_folds(list(queries), folds, seed=seed):
        settings, _ = fit_blend(pool, first, model, grades, fold.train, k)
        chosen.append(settings.to_dict())
        per_q = rerank_setting({q: pool[q] for q in fold.test}, blended(first, model, settings, fold.test), grades, k)
        per_query.update({q: m["ndcg_esci"] for q, m in per_q.items()})
    return {"score": float(np.mean(list(per_query.values()))), "per_query": per_query, "settings": chosen}


__all__ = ["BLEND_GRID", "BLEND_NORMALIZATIONS", "blended", "fit_blend", "inner_cv_blend_score", "rerank_mean"]
