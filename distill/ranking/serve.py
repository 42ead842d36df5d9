"""The ``[serve]`` stage of a ranking run: each fold's student and teacher reranking on the real node, A/B vs BM25.

For every fold directory ``out_dir/folds/fold-<i>/`` (in fold order)::

    1. export   students/distilled          -> <serve.out>/exports/fold-<i>/student/  (ONNX zip, parity-checked)
                teachers/<cross-encoder>/best -> <serve.out>/exports/fold-<i>/teacher/  (skipped when already exported
                                                 from the same files: resumable)
    2. serve    distilrank.plugin.api.register (idempotent by sha256) + deploy + smoke test + promote to the aliases
                {alias_prefix}-fold-<i>-student / -teacher, whose rerank pipelines reorder the BM25 top
                ``serve.depth`` on [document.index_field] (the text the models were trained on)
    3. search   the fold's *test* queries (split.json) through three arms, with the A/B runner's search function:
                  bm25     the BM25 first pass (distilrank.plugin.catalogue_index.bm25_query), no pipeline
                  student  BM25 + the fold's distilled student rerank (its alias pipeline)
                  teacher  BM25 + the fold's cross-encoder teacher rerank (its alias pipeline)
                runs are cached in <serve.out>/runs/fold-<i>.json, keyed by the two zips' sha256, depth, k and
                the queries, so a resumed run does not search again
    4. undeploy the fold's two models (``serve.undeploy_after``)

Then the runs of all folds (each query is in exactly one fold's test set) are evaluated once against the human
judgments with :func:`distilrank.plugin.abtest.offline.evaluate_runs` (grades 3/2/1/0: ``ndcg@k`` with exponential gain
``2^g - 1``, relevant = Exact for MRR/precision/recall; plus ``ndcg_esci@k`` with the ESCI linear gains E 1.0,
S 0.1, C 0.01, I 0) and written with :func:`distilrank.plugin.abtest.report.write_report` to ``<serve.out>/report.json`` and
``report.html``.  Latency is the client-side wall time of each search (what a caller waits for, the rerank
processor included); the report has each arm's p50/p99 and what it adds to bm25's.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from distilrank.atomic import write_json
from distilrank.distill.ranking.config import RankingRunConfig
from distilrank.errors import DistilRankError

Log = Callable[[str], None]
ARMS = ("bm25", "student", "teacher")
STUDENT_VARIANT = "distilled"
EXPONENTIAL_THRESHOLD = 3.0  # relevant = Exact on the 3/2/1/0 scale
RUNS_FORMAT = 1


def fold_dirs(out_dir: Path) -> list[tuple[int, Path]]:
    """``[(i, out_dir/folds/fold-<i>)]`` in fold order."""
    found = []
    for d in (Path(out_dir) / "folds").glob("fold-*"):
        suffix = d.name.split("-", 1)[1]
        if d.is_dir() and suffix.isdigit():
            found.append((int(suffix), d))
    return sorted(found)


def alias_names(cfg: RankingRunConfig, fold: int) -> dict[str, str]:
    """``{"student": "<prefix>-fold-<i>-student", "teacher": "<prefix>-fold-<i>-teacher"}``."""
    return {role: f"{cfg.serve.alias_prefix}-fold-{fold}-{role}" for role in ("student", "teacher")}


def ab_arms(cfg: RankingRunConfig, fold: int) -> list:
    """The three :class:`distilrank.plugin.abtest.config.ArmConfig` of a fold: the same BM25 query template, two with a rerank alias."""
    from distilrank.plugin.abtest.config import PLACEHOLDER, ArmConfig
    from distilrank.plugin.catalogue_index import bm25_query

    template = bm25_query(PLACEHOLDER, cfg.index.bm25_fields)
    names = alias_names(cfg, fold)
    return [ArmConfig("bm25", template), ArmConfig("student", template, alias=names["student"]),
            ArmConfig("teacher", template, alias=names["teacher"])]


# --- exports (resumable) -------------------------------------------------------------------

def _fingerprint(src: Path) -> str:
    """Names, sizes and mtimes of every file under ``src``: changes when the model is retrained."""
    h = hashlib.sha256()
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(src)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _existing_export(out: Path, fingerprint: str) -> dict | None:
    from distilrank.plugin.serving_contract import sha256_file

    marker = out / "export.json"
    if not marker.exists():
        return None
    done = json.loads(marker.read_text(encoding="utf-8"))
    zip_path = Path(done.get("zip", ""))
    if done.get("source_fingerprint") != fingerprint or not zip_path.is_file() or sha256_file(zip_path) != done.get("sha256"):
        return None
    return {**done, "reused": True}


def export_fold_models(cfg: RankingRunConfig, fold: int, fdir: Path, out: Path, parity, log: Log) -> dict[str, dict]:
    """Export (or reuse) the fold's distilled student and cross-encoder teacher; ``{"student": {...}, "teacher": {...}}``
    with ``zip``, ``sha256``, ``name``, ``reused``."""
    from distilrank.distill.export.exporter import default_parity_pairs, export_student
    from distilrank.distill.export.teacher_export import default_teacher_parity_pairs, export_cross_encoder_teacher
    from distilrank.pairs import Pairs

    names = alias_names(cfg, fold)
    ce = next(t for t in cfg.teachers if t.kind == "cross-encoder")
    sources = {"student": fdir / "students" / STUDENT_VARIANT, "teacher": fdir / "teachers" / ce.name / "best"}
    done = {}
    for role, src in sources.items():
        if not src.is_dir():
            raise DistilRankError(f"{fdir}: no {role} to serve at {src} (did the fold finish?)")
        dest = out / role
        fp = _fingerprint(src)
        prev = _existing_export(dest, fp)
        if prev:
            done[role] = prev
            continue
        t0 = time.perf_counter()
        if role == "student":
            res = export_student(src, dest, name=names[role], parity_pairs=Pairs.concat([default_parity_pairs(), parity], source="bundled parity sample + ESCI pairs"),
                                 metrics={"fold": fold, "variant": STUDENT_VARIANT})
            info = {"zip": res.zip, "sha256": res.sha256, "max_abs_diff": res.parity.max_abs_diff, "n_pairs": res.parity.n_pairs,
                    "onnx_ms_per_pair": res.latency["onnx_ms_per_pair_single_call"]}
        else:
            res = export_cross_encoder_teacher(src, dest, name=names[role], parity_pairs=Pairs.concat(
                [parity, default_teacher_parity_pairs()], source="ESCI pairs + bundled Icecat pairs and edge cases"))
            info = {"zip": res["zip"], "sha256": res["sha256"], "max_abs_diff": res["parity"]["max_abs_diff"],
                    "n_pairs": res["parity"]["n_pairs"], "onnx_ms_per_pair": res["latency"]["onnx_ms_per_pair_single_call"]}
        info.update({"name": names[role], "source": str(src), "source_fingerprint": fp})
        write_json(dest / "export.json", info)
        log(f"serve fold {fold}: exported {role} {Path(info['zip']).name} (parity max |torch - onnx| {info['max_abs_diff']:.1e} "
            f"over {info['n_pairs']} pairs, {info['onnx_ms_per_pair']:.2f} ms/pair) in {time.perf_counter() - t0:.0f}s")
        done[role] = {**info, "reused": False}
    return done


def _parity_pairs(queries: list[str], judged: dict[str, dict[str, float]], texts: dict[str, str], n: int = 48):
    """Up to ``n`` real (query, product text) pairs: the fold's test queries with their judged products, round robin."""
    from distilrank.pairs import Pairs

    per_q = [[(q, texts[d]) for d in judged.get(q, {}) if d in texts] for q in queries]
    rows = [r for rank in range(max(map(len, per_q), default=0)) for lst in per_q if rank < len(lst) for r in [lst[rank]]][:n]
    if not rows:
        raise DistilRankError("no judged product of the fold's test queries is in the catalogue: nothing to check parity on")
    return Pairs([q for q, _ in rows], [t for _, t in rows], source="ESCI test queries x judged products")


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


def _register(t, cfg: RankingRunConfig, role: str, export: dict, alias: str, log: Log) -> dict:
    from distilrank.plugin import api

    res = api.register(t, export["zip"], group=cfg.serve.group, name=export["name"], expected_sha256=export["sha256"], deploy=True,
                       promote_alias=alias, index=cfg.index.name, document_fields=[cfg.document.index_field], depth=cfg.serve.depth,
                       size=cfg.eval.k, progress=False, log=log)
    return {"model_id": res["model_id"], "reused": res.get("reused"), "alias": alias, "pipeline": res["promoted"]["pipeline"],
            "smoke_max_abs_diff": (res.get("smoke_test") or {}).get("max_abs_diff"), "sha256": res["sha256"]}


def _runs_to_json(runs) -> dict:
    return {a: {q: asdict(r) for q, r in per_q.items()} for a, per_q in runs.items()}


def _runs_from_json(raw: dict):
    from distilrank.plugin.abtest.offline import SearchRecord

    return {a: {q: SearchRecord(**r) for q, r in per_q.items()} for a, per_q in raw.items()}


def _fold_runs(t, cfg: RankingRunConfig, fold: int, queries: list[str], exports: dict[str, dict], cache: Path, log: Log) -> tuple[dict, dict]:
    """``(runs, served)`` of one fold: cached runs when the key matches, else register/deploy/promote, search, undeploy."""
    from distilrank.plugin import api
    from distilrank.plugin.abtest.config import ABConfig
    from distilrank.plugin.abtest.offline import collect_runs
    from distilrank.plugin.abtest.runner import resolve_arms

    sv = cfg.serve
    key = {"format": RUNS_FORMAT, "index": cfg.index.name, "bm25_fields": list(cfg.index.bm25_fields), "field": cfg.document.index_field,
           "depth": sv.depth, "k": cfg.eval.k, "queries": list(queries),
           "sha256": {role: exports[role]["sha256"] for role in ("student", "teacher")}}
    if cache.exists():
        stored = json.loads(cache.read_text(encoding="utf-8"))
        if stored.get("key") == key:
            log(f"serve fold {fold}: reusing the searches in {cache}")
            return _runs_from_json(stored["runs"]), {**stored["served"], "reused_runs": True}
    aliases = alias_names(cfg, fold)
    served: dict = {}
    try:
        for role in ("student", "teacher"):
            t0 = time.perf_counter()
            served[role] = _register(t, cfg, role, exports[role], aliases[role], log)
            log(f"serve fold {fold}: {role} {served[role]['model_id']} deployed, smoke-tested (max |node - local| "
                f"{served[role]['smoke_max_abs_diff'] or 0.0:.1e}) and promoted to {aliases[role]} in {time.perf_counter() - t0:.0f}s")
        abcfg = ABConfig(path=Path(cfg.source), name=f"{sv.alias_prefix}-fold-{fold}", index=cfg.index.name, arms=ab_arms(cfg, fold),
                         k=cfg.eval.k, baseline="bm25", seed=cfg.seed)
        arms = resolve_arms(t, abcfg)
        for role in ("student", "teacher"):
            if not arms[role]["rerank"] or arms[role]["model_id"] != served[role]["model_id"]:
                raise DistilRankError(f"serve fold {fold}: pipeline {arms[role]['pipeline']!r} does not rerank with "
                                      f"{served[role]['model_id']} (found {arms[role]['model_id']})")
        search = _search_fn(t, abcfg, arms)
        for arm in ARMS:  # untimed warm-up: the first call of a freshly deployed model pays for lazy initialisation
            search(arm, queries[0], cfg.eval.k)
        runs = collect_runs(queries, list(ARMS), search, cfg.eval.k)
        served["arms"] = {a: {"pipeline": arms[a]["pipeline"], "model_id": arms[a]["model_id"], "spec": arms[a]["spec"]} for a in ARMS}
    finally:
        if sv.undeploy_after:
            for role in ("student", "teacher"):
                if role in served:
                    api.undeploy(t, served[role]["model_id"], force=True)  # its own alias still points at it: resumed runs redeploy
            if served:
                log(f"serve fold {fold}: undeployed {', '.join(served[r]['model_id'] for r in ('student', 'teacher') if r in served)}")
    write_json(cache, {"key": key, "served": served, "runs": _runs_to_json(runs)})
    return runs, served


# --- evaluation -------------------------------------------------------------------------------

def _esci_gain_judgments(j):
    """The same judgments with grades replaced by their ESCI gains (E 1.0, S 0.1, C 0.01, I 0), for linear-gain nDCG."""
    from distilrank.distill.ranking.evaluate import esci_gain
    from distilrank.judgments import from_pairs

    grades = {q: {d: float(esci_gain(np.array([g]))[0]) for d, g in j[q].items()} for q in j.queries if j[q]}
    return from_pairs(grades, source=j.source, origin=f"{j.origin} (ESCI gains)", queries=list(j.queries))


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


def serve_and_compare(cfg: RankingRunConfig, transport, out_dir: Path, log: Log) -> dict:
    """Export, serve and A/B every fold's student and teacher against BM25 on the node; one merged report.

    Returns ``{"report": {"html", "json"}, "arms", "folds", "queries", "depth", "k", "ndcg" (mean nDCG@k,
    exponential gain), "ndcg_esci" (ESCI gains), "latency_ms" ({arm: {p50, p99, p50_added, p99_added}}),
    "reranked_share" ({arm: share of queries whose top k differs from bm25's})}``.
    """
    from distilrank.judgments import load_judgments
    from distilrank.plugin.abtest.offline import evaluate_runs
    from distilrank.plugin.abtest.report import write_report

    sv = cfg.serve
    out_dir = Path(out_dir)
    ab_dir = out_dir / sv.out
    folds = fold_dirs(out_dir)
    if not folds:
        raise DistilRankError(f"{out_dir / 'folds'}: no fold directories to serve")
    if not any(t.kind == "cross-encoder" for t in cfg.teachers):
        raise DistilRankError(f"{cfg.source}: [serve] needs a cross-encoder teacher (the teacher arm)")
    k = cfg.eval.k
    human = load_judgments(cfg.judgments.path, grade_map=cfg.judgments.grade_map or None)
    t_all = time.perf_counter()
    merged, queries, fold_info = _serve_folds(cfg, transport, folds, human, ab_dir, log)
    j = human.with_queries(queries)
    results = evaluate_runs(merged, j, k=k, baseline="bm25", gain="exponential", threshold=EXPONENTIAL_THRESHOLD, seed=cfg.seed)
    esci = evaluate_runs(merged, _esci_gain_judgments(j), k=k, metrics=("ndcg",), baseline="bm25", gain="linear", threshold=1.0,
                         seed=cfg.seed, click_model=None)
    ndcg, ndcg_esci = f"ndcg@{k}", f"ndcg_esci@{k}"
    _merge_metric(results, esci, ndcg, ndcg_esci)
    _describe_results(results, cfg, merged, queries, fold_info)
    title = (f"distilrank A/B on the cluster: bm25 vs student (BM25 + distilled student rerank) vs teacher "
             f"(BM25 + cross-encoder rerank), top {sv.depth} reranked, {len(folds)} folds, {len(queries)} queries")
    paths = write_report(results, ab_dir, title=title)
    summary = _serve_summary(results, cfg, paths, len(folds), len(queries), seconds=time.perf_counter() - t_all)
    lat = summary["latency_ms"]
    log(f"serve: A/B over {len(queries)} queries, nDCG@{k} (exp. gain) " + ", ".join(f"{a} {_f(summary['ndcg'][a])}" for a in ARMS)
        + "; ESCI gains " + ", ".join(f"{a} {_f(summary['ndcg_esci'][a])}" for a in ARMS)
        + "; p50/p99 ms " + ", ".join(f"{a} {lat[a]['p50']:.0f}/{lat[a]['p99']:.0f}" for a in ARMS) + f"; report {paths['html']}")
    return summary


def _serve_folds(cfg: RankingRunConfig, transport, folds: list[tuple[int, Path]], human, ab_dir: Path,
                 log: Log) -> tuple[dict[str, dict], list[str], list[dict]]:
    """Export and serve each fold's models and search its test queries with every arm.

    Returns the runs of all folds merged per arm (``{arm: {query: run}}``), the test queries in fold order
    (each query in exactly one fold's test set, asserted) and one info dict per fold.
    """
    from distilrank.catalogue import read_catalogue

    k = cfg.eval.k
    catalogue = read_catalogue(cfg.catalogue.path, id_field=cfg.catalogue.id_field, limit=cfg.catalogue.limit)
    texts = dict(zip(catalogue.ids, catalogue.texts(cfg.document)))
    merged: dict[str, dict] = {a: {} for a in ARMS}
    fold_of: dict[str, int] = {}
    fold_info = []
    for i, fdir in folds:
        t0 = time.perf_counter()
        split = json.loads((fdir / "split.json").read_text(encoding="utf-8"))
        queries = list(dict.fromkeys(split["test"]))
        dup = sorted(set(queries) & set(fold_of))
        assert not dup, f"queries in the test sets of two folds (fold {fold_of.get(dup[0]) if dup else '?'} and {i}): {dup[:3]}"
        missing = [q for q in queries if q not in human]
        if missing:
            raise DistilRankError(f"{fdir / 'split.json'}: test queries without judgments in {cfg.judgments.path}, e.g. {missing[0]!r}")
        fold_of.update(dict.fromkeys(queries, i))
        exports = export_fold_models(cfg, i, fdir, ab_dir / "exports" / f"fold-{i}",
                                     _parity_pairs(queries, {q: dict(human[q]) for q in queries}, texts), log)
        runs, served = _fold_runs(transport, cfg, i, queries, exports, ab_dir / "runs" / f"fold-{i}.json", log)
        assert set(runs) == set(ARMS), f"fold {i}: arms {sorted(runs)}, expected {list(ARMS)}"
        for a in ARMS:
            merged[a].update(runs[a])
        nd = _mean_ndcg(runs, human, queries, k)
        p50 = {a: float(np.median([r.took_ms for r in runs[a].values()])) for a in ARMS}
        log(f"serve fold {i}: {len(queries)} test queries; nDCG@{k} " + ", ".join(f"{a} {_f(nd[a])}" for a in ARMS)
            + "; median ms " + ", ".join(f"{a} {p50[a]:.0f}" for a in ARMS) + f" ({time.perf_counter() - t0:.0f}s)")
        fold_info.append({"fold": i, "queries": len(queries), "exports": exports, "served": served, "ndcg": nd, "median_ms": p50})
    return merged, list(fold_of), fold_info


def _describe_results(results: dict, cfg: RankingRunConfig, merged: dict[str, dict], queries: list[str], fold_info: list[dict]) -> None:
    """Add what the A/B report shows beyond the metrics: latency added vs bm25, notes, experiment, arms and folds."""
    sv, k, n_folds = cfg.serve, cfg.eval.k, len(fold_info)
    ndcg, ndcg_esci = f"ndcg@{k}", f"ndcg_esci@{k}"
    lat = {a: results["arms"][a]["latency_ms"] for a in ARMS}
    base = lat["bm25"]
    differs = {a: float(np.mean([merged[a][q].doc_ids != merged["bm25"][q].doc_ids for q in queries])) for a in ARMS}
    results["latency_vs_baseline"] = {
        a: {"p50_ms": lat[a]["p50"], "p99_ms": lat[a]["p99"], "p50_added_ms": lat[a]["p50"] - base["p50"],
            "p99_added_ms": lat[a]["p99"] - base["p99"], "rerank_depth": sv.depth if a != "bm25" else 0,
            "top_k_differs_from_bm25": differs[a]} for a in ARMS}
    results["notes"] = [
        f"{n_folds} query-grouped folds merged: each query was searched once, by the models of the fold whose test set "
        "holds it (models that never saw it); arm student/teacher = BM25 top "
        f"{sv.depth} reranked on the node by that fold's distilled student / cross-encoder teacher ({cfg.document.index_field}).",
        f"{ndcg}: exponential gain 2^g - 1 on grades 3/2/1/0 (E/S/C/I); MRR, precision, recall: relevant = Exact (grade 3). "
        f"{ndcg_esci}: the ESCI task's linear gains E 1.0, S 0.1, C 0.01, I 0.",
        "Latency: client-side wall time per search on this node, one search at a time, after one untimed warm-up search per arm "
        "and fold; 'added' = arm percentile - bm25 percentile.",
    ]
    results["experiment"] = {"name": f"{sv.alias_prefix}: bm25 vs student vs teacher", "index": cfg.index.name, "config": cfg.source,
                             "judgments_file": cfg.judgments.path, "queryset": None,
                             "latency": "client-side wall time per search, ms", "folds": n_folds, "rerank_depth": sv.depth}
    results["arms_config"] = {a: {"pipeline": None if a == "bm25" else "per fold", "rerank": a != "bm25", "model_id": None,
                                  "folds": {str(f["fold"]): (f["served"].get("arms") or {}).get(a) for f in fold_info}} for a in ARMS}
    results["folds"] = [{k_: v for k_, v in f.items() if k_ != "served"} | {"models": {r: f["served"].get(r) for r in ("student", "teacher")}}
                        for f in fold_info]


def _serve_summary(results: dict, cfg: RankingRunConfig, paths: dict[str, Path], n_folds: int, n_queries: int, *,
                   seconds: float) -> dict:
    """The short summary :func:`serve_and_compare` returns (see there)."""
    k = cfg.eval.k
    ndcg, ndcg_esci = f"ndcg@{k}", f"ndcg_esci@{k}"
    lat = {a: results["arms"][a]["latency_ms"] for a in ARMS}
    base = lat["bm25"]
    differs = {a: results["latency_vs_baseline"][a]["top_k_differs_from_bm25"] for a in ARMS}
    return {
        "report": {kind: str(p) for kind, p in paths.items()}, "arms": list(ARMS), "folds": n_folds, "queries": n_queries,
        "depth": cfg.serve.depth, "k": k,
        "ndcg": {a: results["arms"][a]["summary"][ndcg]["mean"] for a in ARMS},
        "ndcg_esci": {a: results["arms"][a]["summary"][ndcg_esci]["mean"] for a in ARMS},
        "latency_ms": {a: {"p50": lat[a]["p50"], "p99": lat[a]["p99"], "p50_added": lat[a]["p50"] - base["p50"],
                           "p99_added": lat[a]["p99"] - base["p99"]} for a in ARMS},
        "reranked_share": differs,
        "comparisons": [{key: c[key] for key in ("arm", "metric", "delta_mean", "ci95", "p_value", "p_holm", "wins", "losses", "ties")}
                        for c in results["comparisons"] if c["metric"] in (ndcg, ndcg_esci)],
        "seconds": seconds,
    }


__all__ = ["serve_and_compare", "export_fold_models", "alias_names", "ab_arms", "fold_dirs"]
