"""The Python API behind ``distilrank plugin ...``: one function per subcommand, each taking a :class:`Transport`.

    from distilrank.plugin import api
    t = api.connect(url="https://search:9200", user="admin", password=..., ca_certs="ca.pem")
    out = api.register(t, "export/student.zip", group="products-rerank", deploy=True, promote_alias="staging",
                       index="products", document_fields=["title"], depth=100)
    api.promote(t, "prod", out["model_id"]);  api.rollback(t, "prod")

Every function returns a JSON-serialisable dict (what ``--json`` prints). Errors are :class:`DistilRankError`
subclasses whose message says what to fix; nothing half-registered is left behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from distilrank.errors import DistilRankError
from distilrank.plugin import aliases as aliases_mod
from distilrank.plugin import ml_api, registry_store
from distilrank.plugin.connection import load_connection
from distilrank.plugin.deploy import deploy_model, smoke_test
from distilrank.plugin.model_package import check_chunk_size, inspect_model_zip
from distilrank.plugin.pipelines import RerankSpec, put_rerank_pipeline, read_pipeline_spec
from distilrank.plugin.preflight import failed_checks, preflight_passed, run_preflight
from distilrank.plugin.register import register_package, wait_model_state
from distilrank.plugin.transport import ClusterError, Transport

Log = Callable[[str], None]


def connect(config_file: str | Path | None = None, *, dry_run: bool = False, log: Log = lambda m: None, **settings: Any) -> Transport:
    """A :class:`Transport` from flags/env/config file (see :func:`distilrank.plugin.connection.load_connection`)."""
    return Transport(load_connection(config_file, **settings), dry_run=dry_run, log=log)


def preflight(t: Transport) -> dict:
    checks = run_preflight(t)
    return {"passed": preflight_passed(checks), "checks": [asdict(c) for c in checks]}


def register(t: Transport, zip_path: str | Path, *, group: str = "distilrank", name: str | None = None,
             expected_sha256: str | None = None, chunk_size: int = ml_api.MAX_CHUNK_BYTES, wait: float = 300.0,
             deploy: bool = False, smoke: bool = True, tolerance: float = 1e-4, promote_alias: str | None = None,
             index: str | None = None, document_fields: list[str] | None = None, depth: int | None = None,
             size: int | None = None, check: bool = True, progress: bool = True, log: Log = lambda m: None,
             rescorer: bool = True) -> dict:
    """Zip -> (preflight) -> registered model [-> deployed + smoke-tested [-> alias promoted]]. Idempotent.

    When the cluster has the ``distilrank`` rescorer plugin (and ``rescorer``), the same zip is also uploaded to it
    under the ML Commons model id (``out["rescorer"]``), so ``"rescore": {"distilrank": {"model": ...}}`` can use it,
    with the model card's ``blend`` settings (if any) stored beside it for the rescorer.

    Everything about the zip (layout, ONNX inputs, tokenizer, ``expected_sha256``, ``chunk_size``) and, with
    ``promote_alias`` and ``index``, the index fields, is checked before the first write request.
    """
    check_chunk_size(chunk_size)
    pkg = inspect_model_zip(zip_path, expected_sha256=expected_sha256)
    out: dict[str, Any] = {"zip": str(pkg.path), "sha256": pkg.sha256, "bytes": pkg.size}
    if check:
        checks = run_preflight(t)
        failed = failed_checks(checks, need_rerank=bool(promote_alias))
        if failed:
            raise DistilRankError("preflight failed, nothing was registered:\n" + "\n".join(
                f"  {c.name}: {c.detail}" + (f"\n    fix: {c.fix}" if c.fix else "") for c in failed))
    if promote_alias and index:
        from distilrank.plugin.pipelines import check_fields

        check_fields(t, index, list(document_fields or ["title"]))
    reg = register_package(t, pkg, group=group, name=name, chunk_size=chunk_size, wait=wait, progress=progress, log=log)
    out.update(asdict(reg))
    if rescorer:
        from distilrank.plugin import rescore

        if rescore.rescorer_installed(t):
            out["rescorer"] = rescore.upload_model(t, reg.model_id, pkg.path, sha256=pkg.sha256, log=log, blend=pkg.blend)
    if deploy or promote_alias:
        reg, dep = _deploy_or_reregister(t, pkg, reg, group=group, name=name, chunk_size=chunk_size, wait=wait, log=log)
        out.update(asdict(reg))
        out["deployment"] = asdict(dep)
        if smoke and t.live(f"smoke test of {reg.model_id} (_predict vs local ONNX Runtime)"):
            out["smoke_test"] = asdict(smoke_test(t, reg.model_id, pkg.path, tolerance=tolerance))
    if promote_alias:
        out["promoted"] = asdict(aliases_mod.promote(t, promote_alias, reg.model_id, document_fields=document_fields,
                                                     depth=depth, size=size, index=index))
    return out


def _deploy_or_reregister(t: Transport, pkg, reg, *, group: str, name: str | None, chunk_size: int, wait: float, log: Log):
    """Deploy ``reg``; if ML Commons says "model content changed" (its local copy of the chunks was cut short, e.g.
    the node was killed during a deploy: measured on 3.6.0), delete that version and register the zip again under a
    new model id, whose copy is fresh, then deploy that. Returns (registration, deployment)."""
    from distilrank.plugin.transport import ClusterError

    try:
        return reg, deploy_model(t, reg.model_id, wait=wait, log=log)
    except ClusterError as exc:
        if "model content changed" not in str(exc) or not t.live(f"register the zip again after {reg.model_id}'s corrupt copy"):
            raise
    log(f"model {reg.model_id}: ML Commons' copy of it is corrupt (model content changed); registering the zip again")
    ml_api.undeploy(t, reg.model_id)
    ml_api.delete_model(t, reg.model_id)
    registry_store.delete_model_record(t, reg.model_id)
    again = register_package(t, pkg, group=group, name=name, chunk_size=chunk_size, wait=wait, progress=False, log=log)
    again.cleaned_up = [*reg.cleaned_up, reg.model_id, *again.cleaned_up]
    return again, deploy_model(t, again.model_id, wait=wait, log=log)


def deploy(t: Transport, model_id: str, *, zip_path: str | Path | None = None, wait: float = 300.0,
           tolerance: float = 1e-4, log: Log = lambda m: None) -> dict:
    """Deploy (idempotent); with ``zip_path``, smoke-test against it and undeploy on a mismatch."""
    out: dict[str, Any] = {"deployment": asdict(deploy_model(t, model_id, wait=wait, log=log))}
    if zip_path and t.live(f"smoke test of {model_id} (_predict vs local ONNX Runtime)"):
        out["smoke_test"] = asdict(smoke_test(t, model_id, zip_path, tolerance=tolerance))
    return out


def predict(t: Transport, model_id: str, query: str, docs: list[str], *, zip_path: str | Path | None = None) -> dict:
    """Scores (raw logits) of ``docs`` for ``query`` on the cluster; with ``zip_path`` also locally, side by side."""
    if not docs:
        raise DistilRankError("give at least one document to score")
    scores = ml_api.predict_similarity(t, model_id, query, docs)
    out: dict[str, Any] = {"model_id": model_id, "query": query,
                           "results": [{"doc": d, "score": s} for d, s in zip(docs, scores, strict=True)]}
    if zip_path:
        from distilrank.plugin.local_scoring import score_with_zip

        local = score_with_zip(zip_path, query, docs)
        for r, s in zip(out["results"], local, strict=True):
            r["local_score"] = s
        out["max_abs_diff"] = max(abs(r["score"] - r["local_score"]) for r in out["results"])
    return out


def pipeline(t: Transport, name: str, model_id: str, *, document_fields: list[str], depth: int = 100, size: int = 10,
             index: str | None = None) -> dict:
    """Create or update search pipeline ``name`` (oversample -> rerank -> truncate_hits)."""
    body = put_rerank_pipeline(t, name, RerankSpec(model_id, list(document_fields), depth, size), index=index)
    return {"pipeline": name, "body": body}


def promote(t: Transport, alias: str, model_id: str, **kw: Any) -> dict:
    return asdict(aliases_mod.promote(t, alias, model_id, **kw))


def rollback(t: Transport, alias: str) -> dict:
    return asdict(aliases_mod.rollback(t, alias))


def list_models(t: Transport, *, group: str | None = None) -> dict:
    """Every TEXT_SIMILARITY model (or those of ``group``) with state, version, hash, model card and the aliases
    and pipelines that use it; plus every alias."""
    query: dict = {"term": {"algorithm": "TEXT_SIMILARITY"}}
    groups = {}
    if group:
        found = ml_api.search_model_groups(t, group)
        if not found:
            raise DistilRankError(f"model group {group!r} does not exist")
        query = {"term": {"model_group_id": found[0]["_id"]}}
    alias_rows = aliases_mod.aliases(t)
    pipes = ml_api.all_search_pipelines(t)
    rows = []
    for hit in ml_api.search_models(t, query, size=500):
        src, mid = hit["_source"], hit["_id"]
        gid = src.get("model_group_id")
        if gid and gid not in groups:
            groups[gid] = (ml_api.get_model_group(t, gid) or {}).get("name", gid)
        record = registry_store.get_model_record(t, mid) or {}
        card = record.get("card") or {}
        rows.append({
            "model_id": mid, "name": src.get("name"), "version": src.get("model_version"), "state": src.get("model_state"),
            "group": groups.get(gid, gid), "sha256": src.get("model_content_hash_value"),
            "bytes": src.get("model_content_size_in_bytes"), "created": src.get("created_time"),
            "card": {"metrics": card.get("metrics"), "precision": card.get("precision"), "latency": card.get("latency"),
                     "student": {k: (card.get("student") or {}).get(k) for k in ("embedding_dim", "hidden", "interactions")}}
            if card else None,
            "aliases": [a["alias"] for a in alias_rows if a.get("model_id") == mid],
            "pipelines": sorted(n for n, b in pipes.items() if mid in ml_api.rerank_model_ids(b)),
        })
    from distilrank.plugin.ensure import serving_problems

    return {"models": rows, "aliases": alias_rows, "problems": serving_problems(t)}


def ensure(t: Transport, alias: str, *, zip_path: str | Path | None = None, index: str | None = None, wait: float = 300.0,
           tolerance: float = 1e-4, log: Log = lambda m: None) -> dict:
    """Make ``alias`` serve again (pipeline, deployed model, check); see :func:`distilrank.plugin.ensure.ensure_alias`."""
    from distilrank.plugin.ensure import ensure_alias

    return ensure_alias(t, alias, zip_path=zip_path, index=index, wait=wait, tolerance=tolerance, log=log)


#: model-document states that mean "no node serves it": ML Commons' sync-up job can write DEPLOY_FAILED for a model that
#: is being undeployed (observed on 3.6.0 when the undeploy and the job's refresh overlap); it stays registered and
#: redeployable. :func:`undeploy` also waits until no node holds the model in memory, which the document cannot show.
NOT_SERVING_STATES = ("UNDEPLOYED", "REGISTERED", "DEPLOY_FAILED")


def undeploy(t: Transport, model_id: str, *, force: bool = False, wait: float = 120.0) -> dict:
    """Undeploy unless a pipeline or alias uses the model (``force`` overrides); return once the model document is in
    one of :data:`NOT_SERVING_STATES` and no node reports the model in memory (``_plugins/_ml/profile``).

    Returns ``{"model_id", "state", "nodes_holding": {}, "references"}``; raises :class:`ClusterError` when a node still
    holds the model after ``wait`` s."""
    if ml_api.get_model(t, model_id) is None:
        raise DistilRankError(f"model {model_id} does not exist")
    refs = aliases_mod.safe_to_remove(t, model_id, "undeploy", force)
    ml_api.undeploy(t, model_id)
    deadline = time.monotonic() + wait
    state = wait_model_state(t, model_id, NOT_SERVING_STATES, wait).get("model_state") or "?"
    holding = ml_api.model_states_on_nodes(t, model_id)
    while holding and t.live(f"wait for {model_id} to leave every node"):
        if time.monotonic() > deadline:
            raise ClusterError(f"model {model_id} is {state} but still in memory on {holding} after {wait:g} s",
                               fix="retry the undeploy; check the node's ML tasks")
        time.sleep(0.5)
        holding = ml_api.model_states_on_nodes(t, model_id)
    return {"model_id": model_id, "state": state, "nodes_holding": holding, "references": refs}


def delete(t: Transport, model_id: str, *, force: bool = False, wait: float = 120.0) -> dict:
    """Delete a model version (undeploying it first) unless a pipeline, an alias or a rollback needs it."""
    model = ml_api.get_model(t, model_id)
    if model is None:
        raise DistilRankError(f"model {model_id} does not exist")
    refs = aliases_mod.safe_to_remove(t, model_id, "delete", force)
    if model.get("model_state") in ("DEPLOYED", "PARTIALLY_DEPLOYED", "DEPLOYING"):
        ml_api.undeploy(t, model_id)
        wait_model_state(t, model_id, NOT_SERVING_STATES, wait)
    ml_api.delete_model(t, model_id)
    registry_store.delete_model_record(t, model_id)
    from distilrank.plugin import rescore

    if rescore.rescorer_installed(t):
        rescore.delete_model(t, model_id)
    return {"model_id": model_id, "deleted": True, "references": refs}


def pipeline_spec(t: Transport, name: str) -> dict | None:
    spec = read_pipeline_spec(ml_api.get_search_pipeline(t, name))
    return asdict(spec) if spec else None
