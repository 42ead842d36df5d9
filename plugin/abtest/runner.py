"""``distilrank ab run``: run a judged query set through every arm on a cluster and write the report.

Each arm is a query template plus an optional search pipeline (or a distilrank alias, i.e. its pipeline), or a
``distilrank`` rescore (the rescorer plugin; its model an alias or a model id, resolved here to check it). For an
arm whose pipeline has a ``rerank`` processor the body gets ``ext.rerank.query_context.query_text`` and is checked
with :func:`distilrank.plugin.pipelines.check_search_body`. Arms without a pipeline are searched with
``search_pipeline=_none``, so an index default pipeline does not leak into the baseline. Latency is the client-side
wall time of each search in milliseconds (what a caller waits for, processors included).

The results dict is :mod:`distilrank.plugin.abtest.offline`'s, plus ``experiment`` (name, index, config path, judgment file,
``query_placeholder``) and ``arms_config``: per arm the pipeline, for a distilrank rerank pipeline the model id and
rerank settings *as evaluated* (what ``distilrank ab promote`` promotes), and ``search_body``: the body every search of
the arm sent, with ``experiment.query_placeholder`` (``{{query}}``) where the query text went (what ``ab export-srw``
turns into a Search Relevance Workbench search configuration).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distilrank.errors import DistilRankError
from distilrank.judgments import Judgments, from_pairs, load_judgments, load_queryset
from distilrank.plugin import index_api, ml_api
from distilrank.plugin.abtest.config import PLACEHOLDER, ABConfig, ArmConfig
from distilrank.plugin.abtest.metrics import canonical_metric_name
from distilrank.plugin.abtest.offline import collect_runs, evaluate_runs, pool, teacher_judge
from distilrank.plugin.abtest.report import write_report
from distilrank.plugin.pipelines import check_search_body, read_pipeline_spec
from distilrank.plugin.transport import Transport


def resolve_arms(t: Transport, cfg: ABConfig) -> dict[str, dict]:
    """Per arm: ``{"pipeline", "rerank", "model_id", "spec"}``; fails on a pipeline or alias that does not exist."""
    from distilrank.plugin import aliases, registry_store

    out = {}
    for arm in cfg.arms:
        pipeline = arm.pipeline
        if not pipeline and arm.alias:  # the pipeline recorded at promote time (a custom --pipeline included)
            record = registry_store.get_alias(t, arm.alias)
            pipeline = record["pipeline"] if record else aliases.pipeline_name(arm.alias)
        info: dict[str, Any] = {"pipeline": pipeline, "alias": arm.alias, "rerank": False, "model_id": None, "spec": None}
        if arm.rescore:
            from distilrank.plugin import rescore

            model = arm.rescore["model"]
            record = registry_store.get_alias(t, model)
            model_id = record["model_id"] if record else model
            uploaded = rescore.model_record(t, model_id)
            if not uploaded or not uploaded.get("complete"):
                raise DistilRankError(f"{cfg.path}: arm {arm.name!r}: model {model_id!r}"
                                      + (f" (alias {model!r})" if record else "")
                                      + " has not been uploaded to the distilrank rescorer (distilrank plugin register uploads it)")
            info.update(model_id=model_id, rescore=dict(arm.rescore), alias=model if record else None)
        if pipeline:
            body = ml_api.get_search_pipeline(t, pipeline)
            if body is None:
                raise DistilRankError(f"{cfg.path}: arm {arm.name!r}: search pipeline {pipeline!r} does not exist")
            has_rerank = any("rerank" in p for p in body.get("response_processors", []))
            info["rerank"] = has_rerank if arm.rerank is None else arm.rerank
            spec = read_pipeline_spec(body)
            ids = ml_api.rerank_model_ids(body)
            info["model_id"] = spec.model_id if spec else (ids[0] if ids else None)
            info["spec"] = spec.__dict__ if spec else None
        out[arm.name] = info
    return out


def arm_search_body(arm: ArmConfig, info: dict, query: str, k: int) -> dict:
    """The body one search of ``arm`` sends: its template with ``query`` filled in (:meth:`ArmConfig.body`: the
    ``distilrank`` rescore of a rescorer arm included), plus ``ext.rerank`` when its pipeline reranks (``info`` from
    :func:`resolve_arms`)."""
    body = arm.body(query, k)
    if info["rerank"]:
        body["ext"] = {"rerank": {"query_context": {"query_text": query}}}
        check_search_body(body)
    return body


def make_search_fn(t: Transport, cfg: ABConfig, arms: dict[str, dict]) -> Callable[[str, str, int], tuple[list[str], float]]:
    """``search_fn(arm, query, k) -> (doc ids best first, wall ms)`` for :func:`distilrank.plugin.abtest.offline.collect_runs`."""
    by_name = {a.name: a for a in cfg.arms}

    def search_fn(arm: str, query: str, k: int) -> tuple[list[str], float]:
        info = arms[arm]
        body = arm_search_body(by_name[arm], info, query, k)
        params = {"search_pipeline": info["pipeline"] or "_none"}
        t0 = time.perf_counter()
        resp = index_api.search(t, cfg.index, body, params=params)
        ms = 1000 * (time.perf_counter() - t0)
        hits = resp["hits"]["hits"]
        if cfg.id_field == "_id":
            ids = [h["_id"] for h in hits]
        else:
            ids = [str((h.get("_source") or {}).get(cfg.id_field, h["_id"])) for h in hits]
        return ids, ms

    return search_fn


def _doc_texts(t: Transport, index: str, ids: set[str], field: str) -> dict[str, str]:
    texts: dict[str, str] = {}
    idl = sorted(ids)
    for start in range(0, len(idl), 500):
        for doc in index_api.mget_sources(t, index, idl[start:start + 500], source_includes=field):
            if doc.get("found") and isinstance((doc.get("_source") or {}).get(field), str):
                texts[doc["_id"]] = doc["_source"][field]
    return texts


#: ``score(pairs) -> logits``: a teacher judge's scores for (query, text) pairs
ScoreFn = Callable[[list[tuple[str, str]]], list[float]]


def _teacher_score_fn(cfg: ABConfig, checkpoint_scorer: Callable[[str], ScoreFn] | None) -> ScoreFn:
    tj = cfg.teacher_judge
    assert tj is not None
    if tj.zip:
        from distilrank.plugin.local_scoring import LocalScorer

        scorer = LocalScorer(tj.zip)

        def score(pairs: list[tuple[str, str]]) -> list[float]:
            return [float(scorer.score(q, [d])[0]) for q, d in pairs]

        return score
    if checkpoint_scorer is None:
        raise DistilRankError(f"{cfg.path}: experiment.teacher_judge.checkpoint needs the training half to load the checkpoint "
                              "(the distilrank command passes it; from Python pass checkpoint_scorer="
                              "distilrank.distill.teacher.model.checkpoint_scorer); or export the teacher with "
                              "'distilrank export --teacher DIR' and set teacher_judge.zip")
    return checkpoint_scorer(str(tj.checkpoint))


def load_query_judgments(cfg: ABConfig) -> Judgments:
    """Human judgments (if any) restricted to / extended by the queryset; queries without judgments are kept."""
    extra = load_queryset(cfg.queryset) if cfg.queryset else None
    if cfg.judgments:
        return load_judgments(cfg.judgments, grade_map=cfg.grade_map, queryset=extra)
    return from_pairs({}, origin=str(cfg.queryset), queries=extra)


def run_ab(t: Transport, cfg: ABConfig, *, log: Callable[[str], None] = lambda m: None, write: bool = True,
           checkpoint_scorer: Callable[[str], ScoreFn] | None = None) -> dict:
    """Run the experiment of ``cfg`` and (with ``write``) write ``report.json`` and ``report.html`` into ``cfg.out``.

    ``checkpoint_scorer(path)`` loads a teacher judge given as a checkpoint directory (the training half's
    :func:`distilrank.distill.teacher.model.checkpoint_scorer`); a judge given as an exported zip needs none."""
    if ml_api.index_mapping_fields(t, cfg.index) is None:
        raise DistilRankError(f"{cfg.path}: index {cfg.index!r} does not exist")
    arms = resolve_arms(t, cfg)
    human = load_query_judgments(cfg)
    queries = list(human.queries)
    log(f"{len(queries)} queries x {len(arms)} arms on {cfg.index} ...")
    runs = collect_runs(queries, [a.name for a in cfg.arms], make_search_fn(t, cfg, arms), cfg.k)
    judgments = human
    if cfg.teacher_judge:
        tj = cfg.teacher_judge
        pooled = pool(runs, tj.depth)
        if tj.mode == "fill":
            pooled = {q: [d for d in ids if d not in human.get(q, {})] for q, ids in pooled.items()}
        texts = _doc_texts(t, cfg.index, {d for ids in pooled.values() for d in ids}, tj.text_field)
        log(f"teacher {tj.name} grades {sum(map(len, pooled.values()))} pooled documents ...")
        model = teacher_judge({q: ids for q, ids in pooled.items() if ids}, _teacher_score_fn(cfg, checkpoint_scorer), texts.get, name=tj.name)
        if tj.mode == "replace":
            judgments = from_pairs({q: dict(model.get(q, {})) for q in queries}, source=model.source,
                                   origin=model.origin, queries=queries)
        else:
            merged = {q: {**dict(model.get(q, {})), **dict(human.get(q, {}))} for q in queries}
            judgments = from_pairs({q: g for q, g in merged.items() if g},
                                   source=f"{human.source} + {model.source} for unjudged documents",
                                   origin=f"{human.origin} + {model.origin}", queries=queries)
    results = evaluate_runs(runs, judgments, k=cfg.k, baseline=cfg.baseline or cfg.arms[0].name, gain=cfg.gain,
                            threshold=cfg.threshold, alpha=cfg.alpha, seed=cfg.seed, n_permutations=cfg.n_permutations,
                            bootstrap_resamples=cfg.bootstrap_resamples, impressions=cfg.impressions,
                            primary_metric=cfg.primary_metric)
    results["experiment"] = {"name": cfg.name, "index": cfg.index, "config": str(cfg.path), "judgments_file": cfg.judgments,
                             "queryset": cfg.queryset, "latency": "client-side wall time per search, ms",
                             "query_placeholder": PLACEHOLDER}
    by_name = {a.name: a for a in cfg.arms}
    results["arms_config"] = {name: {**info, "search_body": arm_search_body(by_name[name], info, PLACEHOLDER, cfg.k)}
                              for name, info in arms.items()}
    if write:
        paths = write_report(results, cfg.out, title=f"A/B: {cfg.name}")
        results["report"] = {k: str(v) for k, v in paths.items()}
    return results


def choose_winner(results: dict, arm: str | None = None, *, alpha: float | None = None) -> tuple[str, str]:
    """(arm, reason): ``arm`` if given, else the arm with the best primary metric among those significantly better
    than the baseline (Holm-adjusted p <= alpha and delta > 0). Raises when no arm beats the baseline."""
    primary, k = results["primary_metric"], results.get("k")
    if arm:
        if arm not in results["arms"]:
            raise DistilRankError(f"arm {arm!r} is not in the report (arms: {results['arm_names']})")
        return arm, "chosen explicitly"
    alpha = results["settings"]["alpha"] if alpha is None else alpha
    winners = [c for c in results["comparisons"] if canonical_metric_name(c["metric"], k) == canonical_metric_name(primary, k)
               and c["p_holm"] is not None
               and c["p_holm"] <= alpha and (c["delta_mean"] or 0) > 0]
    if not winners:
        raise DistilRankError(f"no arm is significantly better than the baseline {results['baseline']!r} on {primary} "
                              f"(alpha {alpha}); nothing promoted (name one with --arm to override)")
    best = max(winners, key=lambda c: c["mean_arm"])
    return best["arm"], f"{primary} {best['mean_arm']:.4f} vs {best['mean_baseline']:.4f}, Holm p = {best['p_holm']:.3g}"


def promote_winner(t: Transport, report: str | Path, alias: str, *, arm: str | None = None) -> dict:
    """Point ``alias`` at the model of the winning arm of ``report`` (see :func:`choose_winner`)."""
    import json

    from distilrank.plugin import api

    results = json.loads(Path(report).read_text(encoding="utf-8"))
    name, reason = choose_winner(results, arm)
    info = (results.get("arms_config") or {}).get(name) or {}
    if not info.get("model_id"):
        raise DistilRankError(f"arm {name!r} has no rerank model (pipeline {info.get('pipeline')!r}); nothing to promote")
    spec = info.get("spec") or {}
    change = api.promote(t, alias, info["model_id"], document_fields=spec.get("document_fields"), depth=spec.get("depth"),
                         size=spec.get("size"))
    return {"arm": name, "reason": reason, "model_id": info["model_id"], "promoted": change}
