"""Offline A/B on the cluster of each cross-validation fold's exported student and teacher, served behind per-fold
aliases, against BM25; all folds merged into one report.

For every fold (a :class:`FoldModels`: its test queries and the zips of its two models), in the order given::

    1. serve    distilrank.plugin.api.register (idempotent by sha256) + deploy + smoke test + promote to the aliases
                {alias_prefix}-fold-<i>-student / -teacher, whose rerank pipelines reorder the BM25 top ``depth``
                on ``field`` (the text the models were trained on)
    2. search   the fold's test queries through three arms, with the A/B runner's search function:
                  bm25     the BM25 first pass (distilrank.plugin.catalogue_index.bm25_query), no pipeline
                  student  BM25 + the fold's student rerank (its alias pipeline)
                  teacher  BM25 + the fold's teacher rerank (its alias pipeline)
                runs are cached in <out>/runs/fold-<i>.json, keyed by the two zips' sha256, index, BM25 fields,
                field, depth, k and the queries, so a resumed run does not search again
    3. undeploy the fold's two models (``undeploy_after``)

Then the runs of all folds (each query is in exactly one fold's test set) are evaluated once against the judgments
with :func:`distilrank.plugin.abtest.offline.evaluate_runs` (grades 3/2/1/0: ``NDCG@k`` with exponential gain
``2^g - 1``, relevant = Exact for MRR/precision/recall; plus ``ndcg_esci@k`` with the ESCI linear gains E 1.0,
S 0.1, C 0.01, I 0, given as a function of the grade) and written with
:func:`distilrank.plugin.abtest.report.write_report` to ``<out>/report.json`` and ``report.html``.  Latency is the
client-side wall time of each search (what a caller waits for, the rerank processor included); the report has each
arm's p50/p99 and what it adds to bm25's.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from distilrank.atomic import write_json
from distilrank.errors import DistilRankError
from distilrank.grades import esci_gain
from distilrank.judgments import Judgments
from distilrank.plugin.abtest.metrics import metric_name

Log = Callable[[str], None]
#: grades -> gains (same shape), e.g. the ESCI task's E 1.0, S 0.1, C 0.01, I 0 for grades 3/2/1/0
GainFn = Callable[[np.ndarray], np.ndarray]
ARMS = ("bm25", "student", "teacher")
ROLES = ("student", "teacher")
EXPONENTIAL_THRESHOLD = 3.0  # relevant = Exact on the 3/2/1/0 scale
RUNS_FORMAT = 1
_T = TypeVar("_T")


@dataclass(frozen=True)
class FoldAliasSetup:
    """Where and how the folds' models are served and compared.

    ``index`` / ``bm25_fields``: the catalogue index and the fields (with boosts) of the BM25 first pass; ``field``:
    the document field the models read; ``depth``: BM25 hits reranked per search; ``k``: hits evaluated per query;
    ``group``: the ML Commons model group; ``alias_prefix``: aliases ``{alias_prefix}-fold-<i>-student`` /
    ``-teacher``; ``out``: the report and the runs cache; ``config`` and ``judgments_file``: the files the report
    names; ``seed``: of the significance tests.
    """

    index: str
    bm25_fields: tuple[str, ...]
    field: str
    depth: int
    k: int
    group: str
    alias_prefix: str
    out: Path
    undeploy_after: bool = True
    seed: int = 0
    config: str = "<memory>"
    judgments_file: str = ""


@dataclass(frozen=True)
class FoldModels:
    """One fold's test queries (in order) and its exported models: ``exports["student"]`` and ``exports["teacher"]``
    each hold at least ``zip`` (path), ``sha256`` and ``name`` (the model's name in the group); the whole dict is
    kept in the report."""

    fold: int
    queries: list[str]
    exports: Mapping[str, Mapping[str, Any]]


def alias_names(alias_prefix: str, fold: int) -> dict[str, str]:
    """``{"student": "<prefix>-fold-<i>-student", "teacher": "<prefix>-fold-<i>-teacher"}``."""
    return {role: f"{alias_prefix}-fold-{fold}-{role}" for role in ROLES}


def ab_arms(bm25_fields: Iterable[str], alias_prefix: str, fold: int) -> list:
    """The three :class:`distilrank.plugin.abtest.config.ArmConfig` of a fold: the same BM25 query template, two with a rerank alias."""
    from distilrank.plugin.abtest.config import PLACEHOLDER, ArmConfig
    from distilrank.plugin.catalogue_index import bm25_query

    template = bm25_query(PLACEHOLDER, list(bm25_fields))
    names = alias_names(alias_prefix, fold)
    return [ArmConfig("bm25", template), ArmConfig("student", template, alias=names["student"]),
            ArmConfig("teacher", template, alias=names["teacher"])]


# --- serving and searching ------------------------------------------------------------------

def _search_fn(t, abcfg, arms: dict[str, dict]):
    """The runner's search function, tolerating one hazard: a query BM25 matches nothing makes a rerank pipeline
    answer HTTP 400 ("No text documents were provided"); such a query returns no hits in every arm."""
    from distilrank.plugin.abtest.runner import make_search_fn

    inner = make_search_fn(t, abcfg, arms)
    bm25_hits: dict[str, int] = {}

    def search(arm: str, query: str, k: int):
        try:
            ids, ms = inner(arm, query, k)
        except DistilRankError:
            if arm != "bm25" and bm25_hits.get(query, -1) == 0:
                return [], 0.0
            raise
        if arm == "bm25":
            bm25_hits[query] = len(ids)
        return ids, ms

    return search


def _register(t, setup: FoldAliasSetup, export: Mapping[str, Any], alias: str, log: Log) -> dict:
    from distilrank.plugin import api

    res = api.register(t, export["zip"], group=setup.group, name=export["name"], expected_sha256=export["sha256"], deploy=True,
                       promote_alias=alias, index=setup.index, document_fields=[setup.field], depth=setup.depth,
                       size=setup.k, progress=False, log=log)
    return {"model_id": res["model_id"], "reused": res.get("reused"), "alias": alias, "pipeline": res["promoted"]["pipeline"],
            "smoke_max_abs_diff": (res.get("smoke_test") or {}).get("max_abs_diff"), "sha256": res["sha256"]}


def _runs_to_json(runs) -> dict:
    return {a: {q: asdict(r) for q, r in per_q.items()} for a, per_q in runs.items()}


def _runs_from_json(raw: dict):
    from distilrank.plugin.abtest.offline import SearchRecord

    return {a: {q: SearchRecord(**r) for q, r in per_q.items()} for a, per_q in raw.items()}


def runs_key(setup: FoldAliasSetup, fm: FoldModels) -> dict:
    """What a fold's cached runs depend on: when it equals the stored key, the searches are reused."""
    return {"format": RUNS_FORMAT, "index": setup.index, "bm25_fields": list(setup.bm25_fields), "field": setup.field,
            "depth": setup.depth, "k": setup.k, "queries": list(fm.queries),
            "sha256": {role: fm.exports[role]["sha256"] for role in ROLES}}


def fold_runs(t, setup: FoldAliasSetup, fm: FoldModels, log: Log) -> tuple[dict, dict]:
    """``(runs, served)`` of one fold: the runs cached in ``<out>/runs/fold-<i>.json`` when their key matches, else
    register/deploy/promote, search every arm, undeploy (``undeploy_after``) and cache."""
    from distilrank.plugin import api
    from distilrank.plugin.abtest.config import ABConfig
    from distilrank.plugin.abtest.offline import collect_runs
    from distilrank.plugin.abtest.runner import resolve_arms

    fold, queries, cache = fm.fold, fm.queries, setup.out / "runs" / f"fold-{fm.fold}.json"
    key = runs_key(setup, fm)
    if cache.exists():
        stored = json.loads(cache.read_text(encoding="utf-8"))
        if stored.get("key") == key:
            log(f"serve fold {fold}: reusing the searches in {cache}")
            return _runs_from_json(stored["runs"]), {**stored["served"], "reused_runs": True}
    aliases = alias_names(setup.alias_prefix, fold)
    served: dict = {}
    try:
        for role in ROLES:
            t0 = time.perf_counter()
            served[role] = _register(t, setup, fm.exports[role], aliases[role], log)
            log(f"serve fold {fold}: {role} {served[role]['model_id']} deployed, smoke-tested (max |node - local| "
                f"{served[role]['smoke_max_abs_diff'] or 0.0:.1e}) and promoted to {aliases[role]} in {time.perf_counter() - t0:.0f}s")
        abcfg = ABConfig(path=Path(setup.config), name=f"{setup.alias_prefix}-fold-{fold}", index=setup.index,
                         arms=ab_arms(setup.bm25_fields, setup.alias_prefix, fold), k=setup.k, baseline="bm25", seed=setup.seed)
        arms = resolve_arms(t, abcfg)
        for role in ROLES:
            if not arms[role]["rerank"] or arms[role]["model_id"] != served[role]["model_id"]:
                raise DistilRankError(f"serve fold {fold}: pipeline {arms[role]['pipeline']!r} does not rerank with "
                                      f"{served[role]['model_id']} (found {arms[role]['model_id']})")
        search = _search_fn(t, abcfg, arms)
        for arm in ARMS:  # untimed warm-up: the first call of a freshly deployed model pays for lazy initialisation
            search(arm, queries[0], setup.k)
        runs = collect_runs(queries, list(ARMS), search, setup.k)
        served["arms"] = {a: {"pipeline": arms[a]["pipeline"], "model_id": arms[a]["model_id"], "spec": arms[a]["spec"]} for a in ARMS}
    finally:
        if setup.undeploy_after:
            for role in ROLES:
                if role in served:
                    api.undeploy(t, served[role]["model_id"], force=True)  # its own alias still points at it: resumed runs redeploy
            if served:
                log(f"serve fold {fold}: undeployed {', '.join(served[r]['model_id'] for r in ROLES if r in served)}")
    write_json(cache, {"key": key, "served": served, "runs": _runs_to_json(runs)})
    return runs, served


# --- evaluation -------------------------------------------------------------------------------

def gain_judgments(j: Judgments, gain: GainFn, label: str = "ESCI gains") -> Judgments:
    """The same judgments with each grade replaced by ``gain(grade)``, for linear-gain nDCG; ``label`` is appended to
    their origin."""
    from distilrank.judgments import from_pairs

    grades = {q: {d: float(gain(np.array([g]))[0]) for d, g in j[q].items()} for q in j.queries if j[q]}
    return from_pairs(grades, source=j.source, origin=f"{j.origin} ({label})", queries=list(j.queries))


def _merge_metric(results: dict, extra: dict, old: str, new: str) -> None:
    """Add metric ``old`` of ``extra`` (another evaluate_runs over the same runs) to ``results`` as ``new``."""
    results["metrics"].append(new)
    for a in results["arm_names"]:
        arm, other = results["arms"][a], extra["arms"][a]
        arm["summary"][new] = other["summary"][old]
        for q, pq in arm["queries"].items():
            pq["metrics"][new] = other["queries"][q]["metrics"][old]
            if old in other["queries"][q]["reasons"]:
                pq["reasons"][new] = other["queries"][q]["reasons"][old]
    for c in extra["comparisons"]:
        if c["metric"] == old:
            results["comparisons"].append({**c, "metric": new})


def _mean_ndcg(runs, j, queries, k: int) -> dict[str, float | None]:
    from distilrank.plugin.abtest.metrics import ndcg_at_k

    out = {}
    for a in runs:
        vals = [v for q in queries if j.get(q) and not math.isnan(v := ndcg_at_k(runs[a][q].doc_ids, j[q], k))]
        out[a] = float(np.mean(vals)) if vals else None
    return out


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def compare_fold_aliases(transport, setup: FoldAliasSetup, folds: Iterable[FoldModels], judgments: Judgments, *,
                         log: Log) -> dict:
    """Serve and A/B every fold's student and teacher against BM25 on the node; one merged report in ``setup.out``.

    ``folds`` is consumed lazily, one fold at a time (a generator may export a fold's models when asked for it);
    a fold's reported time includes what producing it took.  ``judgments``: grades 3/2/1/0 of (at least) every
    test query (:mod:`distilrank.grades`; ``ndcg_esci@k`` uses :func:`distilrank.grades.esci_gain`).

    Returns ``{"report": {"html", "json"}, "arms", "folds", "queries", "depth", "k", "ndcg" (mean nDCG@k,
    exponential gain), "ndcg_esci" (ESCI gains), "latency_ms" ({arm: {p50, p99, p50_added, p99_added}}),
    "reranked_share" ({arm: share of queries whose top k differs from bm25's}), "comparisons", "seconds"}``.
    """
    from distilrank.plugin.abtest.offline import evaluate_runs
    from distilrank.plugin.abtest.report import write_report

    k = setup.k
    t_all = time.perf_counter()
    merged, queries, fold_info = _serve_folds(transport, setup, folds, judgments, log)
    if not fold_info:
        raise DistilRankError(f"{setup.out}: no folds to serve")
    j = judgments.with_queries(queries)
    results = evaluate_runs(merged, j, k=k, baseline="bm25", gain="exponential", threshold=EXPONENTIAL_THRESHOLD, seed=setup.seed)
    esci = evaluate_runs(merged, gain_judgments(j, esci_gain), k=k, metrics=("ndcg",), baseline="bm25", gain="linear",
                         threshold=1.0, seed=setup.seed, click_model=None)
    _merge_metric(results, esci, metric_name("ndcg", k), f"ndcg_esci@{k}")
    _describe_results(results, setup, merged, queries, fold_info)
    title = (f"distilrank A/B on the cluster: bm25 vs student (BM25 + distilled student rerank) vs teacher "
             f"(BM25 + cross-encoder rerank), top {setup.depth} reranked, {len(fold_info)} folds, {len(queries)} queries")
    paths = write_report(results, setup.out, title=title)
    summary = _serve_summary(results, setup, paths, len(fold_info), len(queries), seconds=time.perf_counter() - t_all)
    lat = summary["latency_ms"]
    log(f"serve: A/B over {len(queries)} queries, nDCG@{k} (exp. gain) " + ", ".join(f"{a} {_f(summary['ndcg'][a])}" for a in ARMS)
        + "; ESCI gains " + ", ".join(f"{a} {_f(summary['ndcg_esci'][a])}" for a in ARMS)
        + "; p50/p99 ms " + ", ".join(f"{a} {lat[a]['p50']:.0f}/{lat[a]['p99']:.0f}" for a in ARMS) + f"; report {paths['html']}")
    return summary


def _timed(items: Iterable[_T]) -> Iterator[tuple[float, _T]]:
    """``(perf_counter before the item was produced, item)`` for each item."""
    it = iter(items)
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        yield t0, item


def _serve_folds(transport, setup: FoldAliasSetup, folds: Iterable[FoldModels], judgments: Judgments,
                 log: Log) -> tuple[dict[str, dict], list[str], list[dict]]:
    """Serve each fold's models and search its test queries with every arm.

    Returns the runs of all folds merged per arm (``{arm: {query: run}}``), the test queries in fold order
    (each query in exactly one fold's test set, asserted) and one info dict per fold.
    """
    k = setup.k
    merged: dict[str, dict] = {a: {} for a in ARMS}
    fold_of: dict[str, int] = {}
    fold_info = []
    for t0, fm in _timed(folds):
        i, queries = fm.fold, list(fm.queries)
        dup = sorted(set(queries) & set(fold_of))
        assert not dup, f"queries in the test sets of two folds (fold {fold_of.get(dup[0]) if dup else '?'} and {i}): {dup[:3]}"
        fold_of.update(dict.fromkeys(queries, i))
        runs, served = fold_runs(transport, setup, fm, log)
        assert set(runs) == set(ARMS), f"fold {i}: arms {sorted(runs)}, expected {list(ARMS)}"
        for a in ARMS:
            merged[a].update(runs[a])
        nd = _mean_ndcg(runs, judgments, queries, k)
        p50 = {a: float(np.median([r.took_ms for r in runs[a].values()])) for a in ARMS}
        log(f"serve fold {i}: {len(queries)} test queries; nDCG@{k} " + ", ".join(f"{a} {_f(nd[a])}" for a in ARMS)
            + "; median ms " + ", ".join(f"{a} {p50[a]:.0f}" for a in ARMS) + f" ({time.perf_counter() - t0:.0f}s)")
        fold_info.append({"fold": i, "queries": len(queries), "exports": fm.exports, "served": served, "ndcg": nd, "median_ms": p50})
    return merged, list(fold_of), fold_info


def _describe_results(results: dict, setup: FoldAliasSetup, merged: dict[str, dict], queries: list[str], fold_info: list[dict]) -> None:
    """Add what the A/B report shows beyond the metrics: latency added vs bm25, notes, experiment, arms and folds."""
    k, n_folds = setup.k, len(fold_info)
    ndcg, ndcg_esci = metric_name("ndcg", k), f"ndcg_esci@{k}"
    lat = {a: results["arms"][a]["latency_ms"] for a in ARMS}
    base = lat["bm25"]
    differs = {a: float(np.mean([merged[a][q].doc_ids != merged["bm25"][q].doc_ids for q in queries])) for a in ARMS}
    results["latency_vs_baseline"] = {
        a: {"p50_ms": lat[a]["p50"], "p99_ms": lat[a]["p99"], "p50_added_ms": lat[a]["p50"] - base["p50"],
            "p99_added_ms": lat[a]["p99"] - base["p99"], "rerank_depth": setup.depth if a != "bm25" else 0,
            "top_k_differs_from_bm25": differs[a]} for a in ARMS}
    results["notes"] = [
        f"{n_folds} query-grouped folds merged: each query was searched once, by the models of the fold whose test set "
        "holds it (models that never saw it); arm student/teacher = BM25 top "
        f"{setup.depth} reranked on the node by that fold's distilled student / cross-encoder teacher ({setup.field}).",
        f"{ndcg}: exponential gain 2^g - 1 on grades 3/2/1/0 (E/S/C/I); MRR, precision, recall: relevant = Exact (grade 3). "
        f"{ndcg_esci}: the ESCI task's linear gains E 1.0, S 0.1, C 0.01, I 0.",
        "Latency: client-side wall time per search on this node, one search at a time, after one untimed warm-up search per arm "
        "and fold; 'added' = arm percentile - bm25 percentile.",
    ]
    results["experiment"] = {"name": f"{setup.alias_prefix}: bm25 vs student vs teacher", "index": setup.index, "config": setup.config,
                             "judgments_file": setup.judgments_file, "queryset": None,
                             "latency": "client-side wall time per search, ms", "folds": n_folds, "rerank_depth": setup.depth}
    results["arms_config"] = {a: {"pipeline": None if a == "bm25" else "per fold", "rerank": a != "bm25", "model_id": None,
                                  "folds": {str(f["fold"]): (f["served"].get("arms") or {}).get(a) for f in fold_info}} for a in ARMS}
    results["folds"] = [{k_: v for k_, v in f.items() if k_ != "served"} | {"models": {r: f["served"].get(r) for r in ROLES}}
                        for f in fold_info]


def _serve_summary(results: dict, setup: FoldAliasSetup, paths: dict[str, Path], n_folds: int, n_queries: int, *,
                   seconds: float) -> dict:
    """The short summary :func:`compare_fold_aliases` returns (see there)."""
    k = setup.k
    ndcg, ndcg_esci = metric_name("ndcg", k), f"ndcg_esci@{k}"
    lat = {a: results["arms"][a]["latency_ms"] for a in ARMS}
    base = lat["bm25"]
    differs = {a: results["latency_vs_baseline"][a]["top_k_differs_from_bm25"] for a in ARMS}
    return {
        "report": {kind: str(p) for kind, p in paths.items()}, "arms": list(ARMS), "folds": n_folds, "queries": n_queries,
        "depth": setup.depth, "k": k,
        "ndcg": {a: results["arms"][a]["summary"][ndcg]["mean"] for a in ARMS},
        "ndcg_esci": {a: results["arms"][a]["summary"][ndcg_esci]["mean"] for a in ARMS},
        "latency_ms": {a: {"p50": lat[a]["p50"], "p99": lat[a]["p99"], "p50_added": lat[a]["p50"] - base["p50"],
                           "p99_added": lat[a]["p99"] - base["p99"]} for a in ARMS},
        "reranked_share": differs,
        "comparisons": [{key: c[key] for key in ("arm", "metric", "delta_mean", "ci95", "p_value", "p_holm", "wins", "losses", "ties")}
                        for c in results["comparisons"] if c["metric"] in (ndcg, ndcg_esci)],
        "seconds": seconds,
    }


__all__ = ["ARMS", "FoldAliasSetup", "FoldModels", "ab_arms", "alias_names", "compare_fold_aliases", "fold_runs", "gain_judgments",
           "runs_key"]
