"""Make an alias serve again (after a node restart, a crash, an undeploy) and find what cannot serve.

:func:`ensure_alias` is idempotent: it reads the alias's search pipeline, recreates the pipeline from the
registry record if it is gone, and redeploys the model the pipeline calls when ``_predict`` does not answer or when
an eligible ML node does not hold it in memory (:mod:`distilrank.plugin.model_nodes`: the nodes' own view, since the
model document lags them both ways around a node restart; a node that reports it ``DEPLOYING``, ML Commons' own
redeploy to a node that rejoined, is waited for first). Then it verifies the model:
with the zip, the smoke test against local ONNX Runtime (:func:`distilrank.plugin.deploy.smoke_test`); without it, finite
scores for the sample pairs; with ``index``, one search through the pipeline.

:func:`serving_problems` lists every search pipeline and alias that calls a model that does not exist or is not
deployed, and every alias whose pipeline is missing or calls another model (what ``plugin list`` flags).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from distilrank.errors import DistilRankError
from distilrank.plugin import index_api, ml_api, model_nodes, registry_store
from distilrank.plugin.deploy import deploy_model, remaining_wait, smoke_test
from distilrank.plugin.pipelines import RerankSpec, put_rerank_pipeline, read_pipeline_spec, rerank_search_body
from distilrank.plugin.transport import ClusterError, Transport

SERVING = ("DEPLOYED",)


def serving_problems(t: Transport) -> list[dict]:
    """``[{"kind": "pipeline"|"alias", "name", "model_id", "problem"}]`` for everything a search would fail on."""
    problems: list[dict] = []
    states: dict[str, str | None] = {}

    def state(mid: str) -> str | None:
        if mid not in states:
            model = ml_api.get_model(t, mid)
            states[mid] = None if model is None else model.get("model_state")
        return states[mid]

    pipes = ml_api.all_search_pipelines(t)
    for name, body in sorted(pipes.items()):
        for mid in ml_api.rerank_model_ids(body):
            st = state(mid)
            if st is None:
                problems.append({"kind": "pipeline", "name": name, "model_id": mid,
                                 "problem": f"search pipeline {name} calls model {mid}, which was deleted: its searches fail"})
            elif st not in SERVING:
                problems.append({"kind": "pipeline", "name": name, "model_id": mid,
                                 "problem": f"search pipeline {name} calls model {mid}, which is {st}: its searches fail "
                                            f"(distilrank plugin deploy --model-id {mid}, or plugin ensure ALIAS)"})
    for rec in registry_store.all_aliases(t):
        alias, pipe = rec["alias"], rec.get("pipeline")
        live = read_pipeline_spec(pipes.get(pipe)) if pipe else None
        if pipe not in pipes:
            problems.append({"kind": "alias", "name": alias, "model_id": rec.get("model_id"),
                             "problem": f"alias {alias}: its search pipeline {pipe} does not exist (distilrank plugin ensure {alias})"})
        elif live and live.model_id != rec.get("model_id"):
            problems.append({"kind": "alias", "name": alias, "model_id": rec.get("model_id"),
                             "problem": f"alias {alias}: pipeline {pipe} calls {live.model_id}, the registry says {rec.get('model_id')}"})
        if rec.get("pending"):
            problems.append({"kind": "alias", "name": alias, "model_id": rec.get("model_id"),
                             "problem": f"alias {alias}: a {rec['pending'].get('op')} by {rec['pending'].get('by')} is in progress "
                                        "(or died; it expires after 120 s)"})
    return problems


def _predict_ok(t: Transport, model_id: str) -> tuple[bool, str]:
    from distilrank.plugin.deploy import default_smoke_pairs

    query, docs = default_smoke_pairs(4)[0]
    try:
        scores = ml_api.predict_similarity(t, model_id, query, docs)
    except ClusterError as exc:
        return False, str(exc).splitlines()[0]
    if len(scores) != len(docs) or not all(math.isfinite(s) for s in scores):
        return False, f"_predict gave {scores} for {len(docs)} documents"
    return True, f"_predict: {len(scores)} finite scores"


def ensure_alias(t: Transport, alias: str, *, zip_path: str | Path | None = None, index: str | None = None,
                 wait: float = 300.0, tolerance: float = 1e-4, log: Callable[[str], None] = lambda m: None) -> dict:
    """Make ``alias`` serve: pipeline present, its model deployed and answering; returns what was done.

    Raises :class:`DistilRankError` when the alias does not exist or its model was deleted (nothing to redeploy)."""
    t0 = time.monotonic()
    record = registry_store.get_alias(t, alias)
    if not record or not record.get("model_id"):
        raise DistilRankError(f"alias {alias!r} does not exist (promote a model to it first)")
    actions: list[str] = []
    pipe = record["pipeline"]
    spec = read_pipeline_spec(ml_api.get_search_pipeline(t, pipe))
    if spec is None:
        spec = RerankSpec(**{**record["params"], "alias": alias})
        if ml_api.get_model(t, spec.model_id) is None:
            raise DistilRankError(f"alias {alias}: pipeline {pipe} is gone and model {spec.model_id} was deleted; "
                                  f"promote another model: distilrank plugin promote {alias} --model-id ...")
        put_rerank_pipeline(t, pipe, spec)
        actions.append(f"recreated search pipeline {pipe}")
    model_id = spec.model_id
    model = ml_api.get_model(t, model_id)
    if model is None:
        raise DistilRankError(f"alias {alias}: search pipeline {pipe} calls model {model_id}, which was deleted; promote "
                              f"another model: distilrank plugin promote {alias} --model-id ...")
    state_before = model.get("model_state")
    eligible = model_nodes.eligible_nodes_now(t)
    missing = model_nodes.nodes_without_model(t, model_id, eligible)
    waited = 0.0
    if "DEPLOYING" in missing.values():  # ML Commons' own redeploy to a rejoined node: let it finish, then judge
        log(f"alias {alias}: model {model_id} is DEPLOYING on {sorted(n for n, s in missing.items() if s == 'DEPLOYING')}; "
            f"waiting up to {min(wait, 120.0):g} s for it to finish")
        missing, waited = model_nodes.wait_while_nodes_deploying(t, model_id, min(wait, 120.0), eligible=eligible)
    ok, detail = _predict_ok(t, model_id)
    if not ok or missing:
        why = f"does not answer ({detail})" if not ok else f"is not held by node(s) {missing}"
        log(f"alias {alias}: model {model_id} (document: {state_before}) {why}; deploying it")
        deploy_model(t, model_id, wait=wait, force=True, log=log)  # even if the document says DEPLOYED
        actions.append(f"deployed {model_id} (document: {state_before}; "
                       + (f"not on {', '.join(sorted(missing))})" if missing else f"{detail})"))
        left, _ = model_nodes.wait_while_nodes_deploying(t, model_id, remaining_wait(wait, t0),
                                                         eligible=eligible)
        if left and t.live("check the nodes hold the model"):
            raise ClusterError(f"alias {alias}: model {model_id} was deployed but node(s) {left} do not hold it",
                               fix="check the ML Commons log of those nodes, then run plugin ensure again")
        ok, detail = _predict_ok(t, model_id)
        if not ok:
            raise ClusterError(f"alias {alias}: model {model_id} is deployed but _predict fails: {detail}")
    from distilrank.plugin.aliases import warm_rescorer

    warmed = warm_rescorer(t, model_id, window_size=spec.depth)  # after a restart: the rescorer's first search is warm
    cold = [n for n in ((warmed or {}).get("nodes") or {}).values() if not n.get("already_loaded")]
    if cold:
        actions.append(f"loaded {model_id} into the rescorer on {', '.join(str(n.get('name')) for n in cold)} "
                       f"(slowest {max(n.get('load_ms', 0) for n in cold):.0f} ms)")
    out: dict = {"alias": alias, "pipeline": pipe, "model_id": model_id, "state_before": state_before, "actions": actions,
                 "nodes_without_model": missing, "waited_for_deploying_s": round(waited, 3),
                 "check": detail, "rescorer_warmed": warmed}
    if zip_path and t.live(f"smoke test of {model_id} against {zip_path}"):
        out["smoke_test"] = asdict(smoke_test(t, model_id, zip_path, tolerance=tolerance))
    if index:
        body = rerank_search_body("test", size=spec.size, query={"match_all": {}})
        resp = index_api.search(t, index, body, params={"search_pipeline": pipe})
        out["search_hits"] = len(resp["hits"]["hits"])
    out["seconds"] = round(time.monotonic() - t0, 3)
    return out
