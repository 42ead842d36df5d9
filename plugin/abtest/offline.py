"""Offline A/B comparison of search arms through an injected ``search_fn`` (no cluster needed).

``search_fn(arm, query_text, k) -> (ordered_doc_ids, took_ms)`` runs one query
on one arm (e.g. an OpenSearch search with that arm's search pipeline) and
returns the doc ids best first and the latency in milliseconds (OpenSearch's
``took`` or a wall-clock measurement).  Only the first ``k`` ids are kept.

Flow: :func:`collect_runs` (every query through every arm, query by query so
that drift hits all arms alike) -> optional :func:`pool` + :func:`teacher_judge`
when there are no human judgments -> :func:`evaluate_runs`.
:func:`run_comparison` is collect + evaluate.

Results dict (strict-JSON-able; ``None`` for undefined; schema ``"distilrank.abtest/2"``)::

    {"schema": "distilrank.abtest/2",
     "k": 10, "metrics": ["NDCG@10", "MRR", "Precision@10", "Recall@10"], "primary_metric": "NDCG@10",
     "gain": "exponential", "relevance_threshold": 1.0,
     "judgment_source": "human" | "model (teacher cross-encoder <name>)",
     "judgments": {"origin", "n_queries", "n_judged_queries", "n_judgments",
                   "grades": {"<query>": {"<doc id>": grade}}},   # the grades the metrics used (judged queries)
     "baseline": "<arm>", "arm_names": ["<baseline>", "<arm>", ...],
     "settings": {"alpha", "seed", "n_permutations", "bootstrap_resamples", "holm_family": "per metric, arms vs baseline"},
     "arms": {"<arm>": {
         "summary": {"<metric>": {"mean", "ci95": [lo, hi] | None, "n"}},
         "latency_ms": {"n", "mean", "p50", "p95", "p99", "max"},
         "unjudged": {"at_k": int, "returned_at_k": int, "fraction": float | None},
         "queries": {"<query>": {"metrics": {"<metric>": float | None}, "reasons": {"<metric>": str},
                                 "took_ms", "n_returned", "n_unjudged_at_k", "doc_ids": [top k]}}}},
     "comparisons": [{"arm", "baseline", "metric", "n", "mean_baseline", "mean_arm", "delta_mean",
                      "ci95": [lo, hi] | None, "p_value", "p_method", "p_holm", "significant",
                      "wins", "losses", "ties", "deltas": {"<query>": delta}}],
     "interleaving": [{"arm", "baseline", "n_queries", "impressions_per_query", "wins_baseline", "wins_arm",
                       "ties", "win_rate_arm", "ci95", "p_value", "click_model": {...}}],
     "queries_without_judgments": [query, ...],
     "queries_without_relevant": [query, ...]}

Metric names are the Search Relevance Workbench's (:func:`distilrank.plugin.abtest.metrics.metric_name`).
Schema ``distilrank.abtest/1`` (older reports) spelled them ``ndcg@10``, ``mrr@10``, ``precision@10``,
``recall@10`` and had no ``judgments.grades``; readers take both
(:func:`distilrank.plugin.abtest.metrics.find_metric`).

``delta = metric(arm) - metric(baseline)`` per query, over the queries where
the metric is defined (that depends only on the judgments, so it is the same
set for every arm).  ``significant`` is ``p_holm <= alpha``; Holm's family is
the comparisons of all non-baseline arms against the baseline on one metric.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from distilrank.errors import DistilRankError
from distilrank.judgments import Judgments, from_pairs, model_source
from distilrank.metrics import bootstrap_ci
from distilrank.plugin.abtest.interleaving import ClickModel, interleave_query, summarize
from distilrank.plugin.abtest.metrics import METRICS, find_metric, metric_name, query_metrics
from distilrank.plugin.abtest.stats import holm, latency_summary, paired_summary

SCHEMA = "distilrank.abtest/2"
#: every schema of a results dict that readers (``ab promote``, ``ab export-srw``) accept
SCHEMAS = ("distilrank.abtest/1", SCHEMA)
SearchFn = Callable[[str, str, int], tuple[Sequence[str], float]]
ScoreFn = Callable[[list[tuple[str, str]]], Sequence[float]]
#: logit cut points so that grade = round-half-up(3 * sigmoid(logit)): ln(1/5), 0, ln(5)
SIGMOID3_THRESHOLDS = (math.log(1 / 5), 0.0, math.log(5))


@dataclass(frozen=True)
class SearchRecord:
    """One search: the top-``k`` returned doc ids (best first), how many came back, and the latency in ms."""

    doc_ids: list[str]
    took_ms: float
    n_returned: int


Runs = dict[str, dict[str, SearchRecord]]  # arm -> query -> record


def _arm_name(arm: Any) -> str:
    name = getattr(arm, "name", arm)
    if not isinstance(name, str) or not name:
        raise DistilRankError(f"arm must be a non-empty name (or have .name), got {arm!r}")
    return name


def collect_runs(queries: Sequence[str], arms: Sequence[Any], search_fn: SearchFn, k: int = 10) -> Runs:
    """Run every query through every arm (query-major order); keep the top ``k`` ids and the latency.

    ``arms``: names (or objects with ``.name``, e.g. :class:`distilrank.plugin.abtest.router.Arm`), unique.
    A ``search_fn`` error, or a result that is not ``(sequence of ids, latency ms >= 0)``, raises
    :class:`DistilRankError` naming the arm and the query.
    """
    names = [_arm_name(a) for a in arms]
    if len(set(names)) != len(names) or not names:
        raise DistilRankError(f"arms must be a non-empty list of unique names, got {names}")
    if not isinstance(k, int) or k < 1:
        raise DistilRankError(f"k must be an integer >= 1, got {k!r}")
    runs: Runs = {a: {} for a in names}
    for q in queries:
        for a in names:
            try:
                out = search_fn(a, q, k)
            except DistilRankError:
                raise
            except Exception as e:
                raise DistilRankError(f"search_fn(arm={a!r}, query={q!r}) failed: {type(e).__name__}: {e}") from e
            if not (isinstance(out, tuple) and len(out) == 2) or isinstance(out[0], (str, bytes)):
                raise DistilRankError(f"search_fn(arm={a!r}, query={q!r}) must return (doc_ids, took_ms), got {out!r:.200}")
            ids, took = out
            if isinstance(took, bool) or not isinstance(took, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(float(took)) or took < 0:
                raise DistilRankError(f"search_fn(arm={a!r}, query={q!r}) returned took_ms={took!r}, expected a number >= 0")
            ids = [str(d) for d in ids]
            runs[a][q] = SearchRecord(ids[:k], float(took), len(ids))
    return runs


def pool(runs: Runs, depth: int | None = None) -> dict[str, list[str]]:
    """Per query, the union of every arm's top ``depth`` ids (all kept ids by default), deduplicated,
    interleaved by rank (rank 1 of each arm in arm order, then rank 2, ...)."""
    out: dict[str, list[str]] = {}
    for arm_runs in runs.values():
        for q in arm_runs:
            out.setdefault(q, [])
    for q in out:
        lists = [r[q].doc_ids[:depth] for r in runs.values() if q in r]
        merged = [d for rank in range(max(map(len, lists), default=0)) for ids in lists if rank < len(ids) for d in [ids[rank]]]
        out[q] = list(dict.fromkeys(merged))
    return out


def teacher_judge(pooled: Mapping[str, Sequence[str]], score_fn: ScoreFn,
                  doc_text: Mapping[str, str] | Callable[[str], str | None], *, name: str,
                  thresholds: Sequence[float] = SIGMOID3_THRESHOLDS, batch_size: int = 64) -> Judgments:
    """Judge pooled docs with a teacher cross-encoder; return model-labelled :class:`Judgments`.

    ``pooled``: query -> doc ids (e.g. :func:`pool`).  ``doc_text``: doc id -> text (mapping or
    function).  ``score_fn(pairs)`` gets a batch of ``(query, doc_text)`` pairs (at most
    ``batch_size``) and returns one raw logit each.  Grade = number of ``thresholds``
    (ascending) that the logit reaches (``logit >= t``); the default
    :data:`SIGMOID3_THRESHOLDS` gives grades 0..3 equal to ``3 * sigmoid(logit)`` rounded half
    up, so grade >= 2 means ``logit >= 0`` (use relevance threshold 2 for "teacher says
    relevant").  ``source`` is ``"model (teacher cross-encoder <name>)"``.  A doc without text,
    a wrong number of scores or a non-finite score raises :class:`DistilRankError`.
    """
    cuts = [float(t) for t in thresholds]
    if cuts != sorted(cuts) or not cuts:
        raise DistilRankError(f"teacher_judge thresholds must be a non-empty ascending list, got {list(thresholds)}")
    lookup = doc_text.get if isinstance(doc_text, Mapping) else doc_text
    pairs, keys = [], []
    for q, docs in pooled.items():
        for d in dict.fromkeys(docs):
            text = lookup(d)
            if not isinstance(text, str):
                raise DistilRankError(f"teacher_judge: no text for doc {d!r} (query {q!r})")
            pairs.append((q, text))
            keys.append((q, d))
    grades: dict[str, dict[str, float]] = {q: {} for q in pooled}
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start:start + batch_size]
        scores = np.asarray(score_fn(batch), dtype=np.float64).reshape(-1)
        if scores.size != len(batch):
            raise DistilRankError(f"teacher_judge: score_fn returned {scores.size} scores for {len(batch)} pairs")
        for (q, d), z in zip(keys[start:start + batch_size], scores):
            if not math.isfinite(z):
                raise DistilRankError(f"teacher_judge: score_fn returned {z} for query {q!r} doc {d!r}")
            grades[q][d] = float(sum(z >= t for t in cuts))
    return from_pairs({q: g for q, g in grades.items() if g}, source=model_source(name),
                      origin=f"teacher {name} on pooled results", queries=list(pooled))


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _check_runs(runs: Runs, queries: list[str], baseline: str | None) -> tuple[list[str], str]:
    """``(arm names, baseline)`` after checking that the baseline is an arm and every arm answered every query."""
    arm_names = list(runs)
    if not arm_names:
        raise DistilRankError("evaluate_runs: no arms")
    baseline = arm_names[0] if baseline is None else _arm_name(baseline)
    if baseline not in runs:
        raise DistilRankError(f"baseline arm {baseline!r} is not among the arms {arm_names}")
    for a in arm_names:
        missing = [q for q in queries if q not in runs[a]]
        if missing:
            raise DistilRankError(f"arm {a!r} has no search result for {len(missing)} queries, e.g. {missing[0]!r}")
    return arm_names, baseline


def _arm_results(arm_runs: dict, judgments: Judgments, queries: list[str], names: list[str], *, k: int,
                 metrics: Sequence[str], gain: str, threshold: float, alpha: float, seed: int, bootstrap_resamples: int) -> dict:
    """One arm's ``{"summary", "latency_ms", "unjudged", "queries"}`` (per-query metrics, means with bootstrap CIs)."""
    per_query, took, unjudged, returned = {}, [], 0, 0
    for q in queries:
        rec = arm_runs[q]
        qm = query_metrics(rec.doc_ids, judgments[q], k, metrics=metrics, gain=gain, threshold=threshold)
        per_query[q] = {"metrics": qm.values, "reasons": qm.reasons, "took_ms": rec.took_ms,
                        "n_returned": rec.n_returned, "n_unjudged_at_k": qm.n_unjudged_at_k, "doc_ids": rec.doc_ids}
        took.append(rec.took_ms)
        unjudged += qm.n_unjudged_at_k
        returned += len(dict.fromkeys(rec.doc_ids))
    summary = {}
    for name in names:
        vals = [pq["metrics"][name] for pq in per_query.values() if pq["metrics"][name] is not None]
        ci = bootstrap_ci(np.asarray(vals), resamples=bootstrap_resamples, seed=seed, alpha=alpha) if vals else None
        summary[name] = {"mean": _mean(vals), "ci95": list(ci) if ci else None, "n": len(vals)}
    return {"summary": summary, "latency_ms": latency_summary(took),
            "unjudged": {"at_k": unjudged, "returned_at_k": returned, "fraction": unjudged / returned if returned else None},
            "queries": per_query}


def _compare_arms(arms_out: dict, arm_names: list[str], baseline: str, queries: list[str], names: list[str], *,
                  alpha: float, seed: int, n_permutations: int, bootstrap_resamples: int) -> list[dict]:
    """Paired comparisons of every arm with ``baseline`` per metric, Holm-adjusted within each metric's family."""
    comparisons = []
    for name in names:
        family = []
        for a in arm_names:
            if a == baseline:
                continue
            base_q, arm_q = arms_out[baseline]["queries"], arms_out[a]["queries"]
            both = [q for q in queries if base_q[q]["metrics"][name] is not None and arm_q[q]["metrics"][name] is not None]
            deltas = np.array([arm_q[q]["metrics"][name] - base_q[q]["metrics"][name] for q in both], dtype=np.float64)
            s = paired_summary(deltas, n_permutations=n_permutations, resamples=bootstrap_resamples, seed=seed, alpha=alpha)
            family.append({"arm": a, "baseline": baseline, "metric": name, "n": len(both),
                           "mean_baseline": _mean([base_q[q]["metrics"][name] for q in both]),
                           "mean_arm": _mean([arm_q[q]["metrics"][name] for q in both]),
                           "delta_mean": s.mean, "ci95": list(s.ci) if s.ci else None,
                           "p_value": s.p_value, "p_method": s.p_method, "p_holm": None, "significant": False,
                           "wins": s.wins, "losses": s.losses, "ties": s.ties,
                           "deltas": {q: float(d) for q, d in zip(both, deltas)}})
        for c, p in zip(family, holm([c["p_value"] for c in family])):
            c["p_holm"] = p
            c["significant"] = p is not None and p <= alpha
        comparisons += family
    return comparisons


def _interleave_arms(runs: Runs, judgments: Judgments, arm_names: list[str], baseline: str, queries: list[str], *, k: int,
                     alpha: float, seed: int, click_model: ClickModel, impressions: int) -> list[dict]:
    """Team-draft interleaving of ``baseline`` (team A) against each arm (team B) over the judged queries."""
    interleaving = []
    judged = [q for q in queries if judgments[q]]
    for a in arm_names:
        if a == baseline:
            continue
        outcomes = [interleave_query(q, runs[baseline][q].doc_ids, runs[a][q].doc_ids, judgments[q], click_model,
                                     seed=seed, length=k, impressions=impressions) for q in judged]
        s = summarize(outcomes, alpha=alpha)
        interleaving.append({"arm": a, "baseline": baseline, "n_queries": len(outcomes),
                             "impressions_per_query": impressions, "wins_baseline": s.wins_a, "wins_arm": s.wins_b,
                             "ties": s.ties, "win_rate_arm": s.win_rate_b, "ci95": list(s.ci95) if s.ci95 else None,
                             "p_value": s.p_value, "click_model": click_model.describe()})
    return interleaving


def evaluate_runs(runs: Runs, judgments: Judgments, *, k: int = 10, metrics: Sequence[str] = METRICS,
                  baseline: str | None = None, gain: str = "exponential", threshold: float = 1.0,
                  alpha: float = 0.05, seed: int = 0, n_permutations: int = 10_000, bootstrap_resamples: int = 10_000,
                  click_model: ClickModel | None = ClickModel(), impressions: int = 10,
                  primary_metric: str | None = None) -> dict:
    """Metrics, paired comparisons vs ``baseline`` (default: first arm), Holm, latency, interleaving.

    Queries evaluated: ``judgments.queries`` (each must be in every arm's runs).  Interleaving
    (skipped when ``click_model`` is ``None``) simulates ``impressions`` users per judged query
    on ``baseline`` (team A) vs each arm (team B).  ``primary_metric`` (any spelling, e.g. ``"ndcg@10"`` or
    ``"NDCG@10"``; default the first of ``metrics``) is the one ``ab promote`` and the report's plots use.
    Returns the results dict of the module docstring.
    """
    queries = list(judgments.queries)
    arm_names, baseline = _check_runs(runs, queries, baseline)
    names = [metric_name(m, k) for m in metrics]
    primary = find_metric(primary_metric, names, k) if primary_metric else (names[0] if names else None)
    arms_out: dict[str, Any] = {
        a: _arm_results(runs[a], judgments, queries, names, k=k, metrics=metrics, gain=gain, threshold=threshold, alpha=alpha,
                        seed=seed, bootstrap_resamples=bootstrap_resamples) for a in arm_names}
    comparisons = _compare_arms(arms_out, arm_names, baseline, queries, names, alpha=alpha, seed=seed,
                                n_permutations=n_permutations, bootstrap_resamples=bootstrap_resamples)
    interleaving = [] if click_model is None else _interleave_arms(
        runs, judgments, arm_names, baseline, queries, k=k, alpha=alpha, seed=seed, click_model=click_model, impressions=impressions)
    return {
        "schema": SCHEMA, "k": k, "metrics": names, "primary_metric": primary,
        "gain": gain, "relevance_threshold": threshold, "judgment_source": judgments.source,
        "judgments": {"origin": judgments.origin, "n_queries": len(queries),
                      "n_judged_queries": sum(1 for q in queries if judgments[q]), "n_judgments": judgments.n_judgments,
                      "grades": {q: dict(judgments[q]) for q in queries if judgments[q]}},
        "baseline": baseline, "arm_names": arm_names,
        "settings": {"alpha": alpha, "seed": seed, "n_permutations": n_permutations,
                     "bootstrap_resamples": bootstrap_resamples, "holm_family": "per metric, arms vs baseline"},
        "arms": arms_out, "comparisons": comparisons, "interleaving": interleaving,
        "queries_without_judgments": [q for q in queries if not judgments[q]],
        "queries_without_relevant": [q for q in queries if judgments[q]
                                     and not any(g >= threshold for g in judgments[q].values())],
    }


def run_comparison(judgments: Judgments, arms: Sequence[Any], search_fn: SearchFn, k: int = 10,
                   metrics: Sequence[str] = METRICS, baseline: str | None = None, **options: Any) -> dict:
    """Run every query of ``judgments`` through every arm and compare them (``baseline``: default ``arms[0]``).

    ``options`` go to :func:`evaluate_runs` (``gain``, ``threshold``, ``alpha``, ``seed``,
    ``n_permutations``, ``bootstrap_resamples``, ``click_model``, ``impressions``).
    """
    runs = collect_runs(judgments.queries, arms, search_fn, k)
    return evaluate_runs(runs, judgments, k=k, metrics=metrics,
                         baseline=_arm_name(arms[0]) if baseline is None else baseline, **options)
