"""Per-query ranking metrics of a *returned ranked list* against graded judgments.

Input of every function: ``ranked``, the doc ids a search engine returned, best
first (only the first ``k`` count), and ``judged``, that query's judgments
``{doc_id: grade}`` (grades ``>= 0``, any scale).

Conventions:

* A returned doc without a judgment counts as non-relevant (grade 0);
  :func:`query_metrics` reports how many of the top ``k`` were unjudged.
* A doc id returned more than once is credited at its first position only
  (later copies have gain 0 and are not relevant), so duplicates never add.
* *Relevant* means ``grade >= threshold`` (``threshold > 0``; default 1.0: on ESCI's raw
  100/10/1/0 scale that counts Complement and better; pass the cut you mean).
* Gain ``"exponential"`` is ``2^g - 1`` (the convention of
  :mod:`distilrank.metrics`); ``"linear"`` is ``g``.  Discount is
  ``1 / log2(rank + 1)`` for 1-based ranks.
* NDCG@k = DCG@k / IDCG@k where the ideal DCG sorts *all* judged docs of the
  query (returned or not) by grade, so a list missing a highly graded doc loses.
* MRR@k = 1 / rank of the first relevant doc within the top ``k``, else 0 (reported as ``MRR``, SRW's name).
* Precision@k = relevant docs in the top ``k`` / ``k`` (a list shorter than
  ``k`` is not excused: missing slots count as non-relevant).
* Recall@k = relevant docs in the top ``k`` / all relevant judged docs.

Reports name the metrics as the Search Relevance Workbench does (:func:`metric_name`: ``NDCG@10``, ``MRR``,
``Precision@10``, ``Recall@10``); :func:`canonical_metric_name` and :func:`find_metric` read any spelling, also the
lower-case ``ndcg@10`` / ``mrr@10`` of older reports and configs.

Undefined values follow the convention of :mod:`distilrank.metrics`: the metric functions return
``nan``, never raise and never drop the query.  Every metric is ``nan`` for a query with no judgments
(:data:`NO_JUDGMENTS`); NDCG is ``nan`` when no judged doc has a positive gain and Recall when no judged doc
is relevant (:data:`NO_RELEVANT`).  MRR and Precision are 0 in that case.  :func:`query_metrics`, the
JSON-facing record, stores each ``nan`` as ``None`` with its reason.  DCG itself is
:func:`distilrank.metrics.dcg_at_k`, the one DCG core of the project.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from distilrank.errors import DistilRankError
from distilrank.metrics import dcg_at_k, ndcg_of_grades

METRICS = ("ndcg", "mrr", "precision", "recall")
GAINS = ("exponential", "linear")
NO_JUDGMENTS = "query has no judgments"
NO_RELEVANT = "query has no relevant judged document"
NO_GAIN = "query has no judged document with positive gain"


#: how reports name each metric, as the Search Relevance Workbench writes it (:mod:`.srw_schema`): ``MRR`` has no
#: ``@k`` there although it is cut at ``k`` (the report's ``k``)
REPORT_NAMES = {"ndcg": "NDCG@{k}", "mrr": "MRR", "precision": "Precision@{k}", "recall": "Recall@{k}"}
#: other spellings read back (reports written before the SRW names, configs): lower-case name -> metric
ALIASES = {"ndcg": "ndcg", "mrr": "mrr", "rr": "mrr", "precision": "precision", "p": "precision", "recall": "recall",
           "r": "recall"}


def metric_name(metric: str, k: int) -> str:
    """The name a report gives ``metric`` (one of :data:`METRICS`) at cut-off ``k``: ``"ndcg"``, 10 -> ``"NDCG@10"``,
    ``"precision"`` -> ``"Precision@10"``, ``"recall"`` -> ``"Recall@10"``, ``"mrr"`` -> ``"MRR"`` (SRW's spellings)."""
    if metric not in REPORT_NAMES:
        raise DistilRankError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")
    return REPORT_NAMES[metric].format(k=k)


def parse_metric_name(name: str) -> tuple[str, int | None] | None:
    """``(metric, k)`` for any spelling of a metric of :data:`METRICS`, case-insensitive: ``"NDCG@10"`` and
    ``"ndcg@10"`` -> ``("ndcg", 10)``, ``"MRR"`` -> ``("mrr", None)``, ``"P@5"`` -> ``("precision", 5)``; ``None`` for
    other names (``"ndcg_esci@10"``)."""
    base, _, k = str(name).strip().partition("@")
    metric = ALIASES.get(base.lower())
    if metric is None or (k and not k.isdigit()):
        return None
    return metric, int(k) if k else None


def canonical_metric_name(name: str, k: int | None = None) -> str:
    """``name`` in the spelling reports use (:func:`metric_name`), whatever spelling it came in; ``k`` is used when
    the name carries none (``"mrr"``, ``"ndcg"``). Names of other metrics come back unchanged. A name whose ``@k``
    differs from a given ``k`` raises :class:`DistilRankError`."""
    parsed = parse_metric_name(name)
    if parsed is None:
        return name
    metric, at = parsed
    if at is not None and k is not None and at != k:
        raise DistilRankError(f"metric {name!r} is cut at {at}, but the report's k is {k}")
    cut = at if at is not None else k
    if cut is None:
        if metric == "mrr":
            return REPORT_NAMES["mrr"]
        raise DistilRankError(f"metric {name!r} needs a cut-off: write it as {metric_name(metric, 10)!r}")
    return metric_name(metric, cut)


def find_metric(name: str, available: Sequence[str], k: int | None = None) -> str:
    """The entry of ``available`` (a report's metric names, old ``ndcg@10`` or current ``NDCG@10`` spellings) that
    names the same metric as ``name`` (any spelling); raises :class:`DistilRankError` listing ``available``."""
    want = canonical_metric_name(name, k)
    for have in available:
        if canonical_metric_name(have, k) == want:
            return have
    raise DistilRankError(f"metric {name!r} is not in the report (its metrics: {', '.join(available)})")


def _check(k: int, gain: str = "exponential") -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise DistilRankError(f"k must be an integer >= 1, got {k!r}")
    if gain not in GAINS:
        raise DistilRankError(f"gain must be one of {GAINS}, got {gain!r}")


def _top_grades(ranked: Sequence[str], judged: Mapping[str, float], k: int) -> list[float]:
    """Grades of the first ``k`` returned docs (0 for unjudged and for repeats of an earlier doc)."""
    seen: set[str] = set()
    out = []
    for doc in ranked[:k]:
        out.append(0.0 if doc in seen else float(judged.get(doc, 0.0)))
        seen.add(doc)
    return out


def dcg(grades_in_rank_order: Sequence[float], k: int, gain: str = "exponential") -> float:
    """``sum_{r=1..min(k, n)} gain(g_r) / log2(r + 1)`` (:func:`distilrank.metrics.dcg_at_k` after checking ``k``)."""
    _check(k, gain)
    return dcg_at_k(list(grades_in_rank_order)[:k], k, gain)


def ndcg_at_k(ranked: Sequence[str], judged: Mapping[str, float], k: int = 10, gain: str = "exponential") -> float:
    """NDCG@k in [0, 1] of ``ranked``; ``nan`` without judgments or without any positive-gain judged doc."""
    _check(k, gain)
    if not judged:
        return float("nan")
    return ndcg_of_grades(_top_grades(ranked, judged, k), list(judged.values()), k, gain)


def mrr_at_k(ranked: Sequence[str], judged: Mapping[str, float], k: int = 10, threshold: float = 1.0) -> float:
    """Reciprocal rank (1/rank) of the first doc with ``grade >= threshold`` in the top ``k``, else 0; ``nan`` without judgments."""
    _check(k)
    if not judged:
        return float("nan")
    _check_threshold(threshold)
    return next((1.0 / (r + 1) for r, g in enumerate(_top_grades(ranked, judged, k)) if g >= threshold), 0.0)


def precision_at_k(ranked: Sequence[str], judged: Mapping[str, float], k: int = 10, threshold: float = 1.0) -> float:
    """Relevant docs (``grade >= threshold``) in the top ``k`` divided by ``k``; ``nan`` without judgments."""
    _check(k)
    _check_threshold(threshold)
    if not judged:
        return float("nan")
    return _n_relevant_top(ranked, judged, k, threshold) / k


def recall_at_k(ranked: Sequence[str], judged: Mapping[str, float], k: int = 10, threshold: float = 1.0) -> float:
    """Relevant docs in the top ``k`` / relevant judged docs; ``nan`` without judgments or relevant docs."""
    _check(k)
    _check_threshold(threshold)
    total = sum(1 for g in judged.values() if _relevant(g, threshold))
    if total == 0:
        return float("nan")
    return _n_relevant_top(ranked, judged, k, threshold) / total


def _relevant(grade: float, threshold: float) -> bool:
    return grade >= threshold


def _check_threshold(threshold: float) -> None:
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
        raise DistilRankError(f"relevance threshold must be a finite number > 0, got {threshold!r}")


def _n_relevant_top(ranked: Sequence[str], judged: Mapping[str, float], k: int, threshold: float) -> int:
    seen: set[str] = set()
    n = 0
    for doc in ranked[:k]:
        if doc not in seen and doc in judged and _relevant(judged[doc], threshold):
            n += 1
        seen.add(doc)
    return n


@dataclass(frozen=True)
class QueryMetrics:
    """Metrics of one query for one arm.

    ``values``: ``{"NDCG@10": float | None, ...}`` (names of :func:`metric_name`) in the order asked; ``reasons``: for each
    ``None`` value, why it is undefined.  ``n_returned``: docs returned (before the cut at ``k``);
    ``n_unjudged_at_k``: distinct returned docs in the top ``k`` without a judgment;
    ``n_judged`` / ``n_relevant``: the query's judged / relevant docs.
    """

    values: dict[str, float | None]
    reasons: dict[str, str] = field(default_factory=dict)
    n_returned: int = 0
    n_unjudged_at_k: int = 0
    n_judged: int = 0
    n_relevant: int = 0


def query_metrics(ranked: Sequence[str], judged: Mapping[str, float], k: int = 10, *,
                  metrics: Sequence[str] = METRICS, gain: str = "exponential", threshold: float = 1.0) -> QueryMetrics:
    """Every metric of ``metrics`` (names from :data:`METRICS`) at ``k`` for one returned list, with reasons for ``None``."""
    _check(k, gain)
    _check_threshold(threshold)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise DistilRankError(f"unknown metric(s) {unknown} (known: {', '.join(METRICS)})")
    ranked = [str(d) for d in ranked]
    values: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    n_relevant = sum(1 for g in judged.values() if _relevant(g, threshold))
    for m in metrics:
        name = metric_name(m, k)
        if m == "ndcg":
            v = ndcg_at_k(ranked, judged, k, gain)
        elif m == "mrr":
            v = mrr_at_k(ranked, judged, k, threshold)
        elif m == "precision":
            v = precision_at_k(ranked, judged, k, threshold)
        else:
            v = recall_at_k(ranked, judged, k, threshold)
        values[name] = None if math.isnan(v) else v
        if math.isnan(v):
            reasons[name] = NO_JUDGMENTS if not judged else (NO_GAIN if m == "ndcg" else NO_RELEVANT)
    top = list(dict.fromkeys(ranked[:k]))
    return QueryMetrics(values, reasons, n_returned=len(ranked), n_unjudged_at_k=sum(1 for d in top if d not in judged),
                        n_judged=len(judged), n_relevant=n_relevant)
