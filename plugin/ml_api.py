"""Typed helpers for the ML Commons and search-pipeline REST endpoints the plugin uses (one function, one call).

Nothing here decides anything: the orchestration (idempotence, cleanup, waiting) lives in
:mod:`distilrank.plugin.register`, :mod:`distilrank.plugin.deploy` and :mod:`distilrank.plugin.aliases`.
"""

from __future__ import annotations

import time
from typing import Any

from distilrank.plugin import index_api
from distilrank.plugin.transport import Transport, dry_id

ML = "/_plugins/_ml"
#: ``upload_chunk`` accepts at most this many bytes per chunk.
MAX_CHUNK_BYTES = 10_000_000
TERMINAL_TASK_STATES = ("COMPLETED", "FAILED", "COMPLETED_WITH_ERROR", "CANCELLED")


def search_model_groups(t: Transport, name: str) -> list[dict]:
    """Model groups whose name is exactly ``name`` (``[{"_id":..., "_source":...}]``)."""
    resp = t.request("POST", f"{ML}/model_groups/_search",
                     {"query": {"bool": {"should": [{"term": {"name.keyword": name}}, {"term": {"name": name}}],
                                         "minimum_should_match": 1}}, "size": 10},
                     ok_statuses=(404,))
    hits = (resp.get("hits") or {}).get("hits", [])
    return [h for h in hits if h.get("_source", {}).get("name") == name]


def get_model_group(t: Transport, group_id: str) -> dict | None:
    """The model group document (``name``, ``description``, ...), or ``None`` when it does not exist."""
    resp = t.request("GET", f"{ML}/model_groups/{group_id}", ok_statuses=(404,), dry_response={"name": group_id})
    return None if resp.get("status") == 404 and "name" not in resp else resp


def register_model_group(t: Transport, name: str, description: str) -> str:
    """Create a model group; returns its id."""
    resp = t.request("POST", f"{ML}/model_groups/_register", {"name": name, "description": description},
                     idempotent=False, dry_response={"model_group_id": dry_id("model_group_id")})
    return resp["model_group_id"]


def search_models(t: Transport, query: dict, size: int = 100) -> list[dict]:
    """Model documents (never their stored chunks) matching ``query``; ``[{"_id":..., "_source":...}]``."""
    body = {"query": {"bool": {"must": [query], "must_not": [{"exists": {"field": "chunk_number"}}]}},
            "size": size, "sort": [{"created_time": {"order": "desc"}}]}
    resp = t.request("POST", f"{ML}/models/_search", body, ok_statuses=(404,))
    return (resp.get("hits") or {}).get("hits", [])


def register_meta(t: Transport, meta: dict) -> str:
    """``_register_meta``: create the model document; returns the model id."""
    resp = t.request("POST", f"{ML}/models/_register_meta", meta, idempotent=False,
                     dry_response={"model_id": dry_id("model_id"), "status": "CREATED"})
    return resp["model_id"]


def upload_chunk(t: Transport, model_id: str, index: int, data: bytes) -> dict:
    """Upload chunk ``index`` (0-based) of the model zip; re-sending a chunk overwrites it."""
    if len(data) > MAX_CHUNK_BYTES:
        raise ValueError(f"chunk {index} is {len(data):,} bytes; upload_chunk accepts at most {MAX_CHUNK_BYTES:,}")
    return t.request("POST", f"{ML}/models/{model_id}/upload_chunk/{index}", data, idempotent=True,
                     dry_response={"status": "Uploaded"})


def get_model(t: Transport, model_id: str) -> dict | None:
    """The model document, or ``None`` when it does not exist."""
    resp = t.request("GET", f"{ML}/models/{model_id}", ok_statuses=(404,),
                     dry_response={"model_state": "REGISTERED", "name": model_id})
    return None if resp.get("status") == 404 and "model_state" not in resp else resp


def deploy(t: Transport, model_id: str) -> dict:
    """``_deploy``: returns ``{"task_id":..., "status":...}``."""
    return t.request("POST", f"{ML}/models/{model_id}/_deploy", idempotent=False,
                     dry_response={"task_id": dry_id("task_id"), "status": "CREATED"})


def get_task(t: Transport, task_id: str) -> dict:
    """An ML task (``state``, ``error``, ``worker_node``...)."""
    return t.request("GET", f"{ML}/tasks/{task_id}", dry_response={"state": "COMPLETED", "task_id": task_id})


def model_states_on_nodes(t: Transport, model_id: str) -> dict[str, str]:
    """``{node_id: model_state}`` as each node reports the model in its own memory (``GET _plugins/_ml/profile/models``),
    empty when no node holds it (a node that lists the model without a state, e.g. only in its routing table, reports
    ``"listed, not loaded"``). Unlike the model document, this is not written by ML Commons' sync-up job."""
    resp = t.request("GET", f"{ML}/profile/models/{model_id}", ok_statuses=(404,), dry_response={"nodes": {}})
    nodes = resp.get("nodes") or {}
    return {node: str(((prof.get("models") or {}).get(model_id) or {}).get("model_state") or "listed, not loaded")
            for node, prof in nodes.items() if model_id in (prof.get("models") or {})}


def delete_model_group(t: Transport, group_id: str, *, wait: float = 10.0) -> bool:
    """Delete a model group (404: already gone). ML Commons still counts a just-deleted model version for a moment and
    answers HTTP 409 "has associated model versions": retried every 0.5 s for up to ``wait`` s. True once deleted or
    absent; False when it kept answering 409."""
    deadline = time.monotonic() + wait
    while True:
        resp = t.request("DELETE", f"{ML}/model_groups/{group_id}", ok_statuses=(404, 409))
        if resp.get("status") != 409:
            return True
        if time.monotonic() > deadline or not t.live(f"wait for model group {group_id} to have no versions"):
            return False
        time.sleep(0.5)


def undeploy(t: Transport, model_id: str) -> dict:
    """``_undeploy`` on every node."""
    return t.request("POST", f"{ML}/models/{model_id}/_undeploy", idempotent=True)


def delete_model(t: Transport, model_id: str) -> dict:
    """Delete a model (it must not be deployed)."""
    return t.request("DELETE", f"{ML}/models/{model_id}", ok_statuses=(404,))


def predict_similarity(t: Transport, model_id: str, query: str, docs: list[str]) -> list[float]:
    """``_predict`` for a TEXT_SIMILARITY model: one raw score (the model's logit) per document, in order."""
    resp = t.request("POST", f"{ML}/models/{model_id}/_predict", {"query_text": query, "text_docs": docs}, idempotent=True)
    return [float(r["output"][0]["data"][0]) for r in resp["inference_results"]]


def get_search_pipeline(t: Transport, name: str) -> dict | None:
    """The pipeline body, or ``None`` when it does not exist."""
    resp = t.request("GET", f"/_search/pipeline/{name}", ok_statuses=(404,))
    if resp.get("status") == 404 and name not in resp:
        return None
    return resp.get(name)


def all_search_pipelines(t: Transport) -> dict[str, dict]:
    resp = t.request("GET", "/_search/pipeline", ok_statuses=(404,))
    return {} if resp.get("status") == 404 else {k: v for k, v in resp.items() if isinstance(v, dict)}


def put_search_pipeline(t: Transport, name: str, body: dict) -> dict:
    return t.request("PUT", f"/_search/pipeline/{name}", body, dry_response={"acknowledged": True})


def delete_search_pipeline(t: Transport, name: str) -> dict:
    return t.request("DELETE", f"/_search/pipeline/{name}", ok_statuses=(404,))


def rerank_model_ids(pipeline: dict) -> list[str]:
    """Model ids used by ``rerank``/``ml_inference`` processors of a pipeline body."""
    out: list[str] = []
    for proc in pipeline.get("response_processors", []) + pipeline.get("request_processors", []):
        for kind, conf in proc.items():
            if not isinstance(conf, dict):
                continue
            mid = (conf.get("ml_opensearch") or {}).get("model_id") if kind == "rerank" else conf.get("model_id")
            if mid:
                out.append(mid)
    return out


def pipelines_using(t: Transport, model_id: str) -> list[str]:
    """Names of the search pipelines that call ``model_id``."""
    return sorted(name for name, body in all_search_pipelines(t).items() if model_id in rerank_model_ids(body))


def index_mapping_fields(t: Transport, index: str) -> dict[str, str] | None:
    """``{dotted.field: type}`` of an index (or alias / pattern, merged); ``None`` when it does not exist."""
    resp = index_api.get_mapping(t, index)
    if resp is None:
        return None
    fields: dict[str, str] = {}

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            path = f"{prefix}{name}"
            if "type" in spec:
                fields[path] = spec["type"]
            if "properties" in spec:
                walk(spec["properties"], path + ".")
            for sub, sspec in (spec.get("fields") or {}).items():
                fields[f"{path}.{sub}"] = sspec.get("type", "object")

    for body in resp.values():
        walk((body.get("mappings") or {}).get("properties", {}), "")
    return fields


# --- cluster facts (preflight) ------------------------------------------------


def cluster_info(t: Transport) -> dict:
    """``GET /``: cluster name and ``version.number``."""
    return t.request("GET", "/")


def nodes_plugins(t: Transport) -> dict:
    """``GET _nodes/plugins``: node id -> node (``name``, ``plugins``, ``modules``, ``roles``)."""
    return t.request("GET", "/_nodes/plugins")["nodes"]


def nodes_roles(t: Transport) -> dict:
    """``GET _nodes``, filtered: node id -> ``{"name", "roles", "attributes"}`` for every node in the cluster now."""
    resp = t.request("GET", "/_nodes", params={"filter_path": "nodes.*.name,nodes.*.roles,nodes.*.attributes"},
                     dry_response={"nodes": {}})
    return resp.get("nodes") or {}


def cluster_settings(t: Transport) -> dict:
    """``GET _cluster/settings`` with defaults, flat (``{"persistent": {...}, "transient": {...}, "defaults": {...}}``)."""
    return t.request("GET", "/_cluster/settings", params={"include_defaults": "true", "flat_settings": "true"})


def nodes_stats(t: Transport, metrics: str = "jvm,os,fs,breaker") -> dict:
    """``GET _nodes/stats/<metrics>``: node id -> stats."""
    return t.request("GET", f"/_nodes/stats/{metrics}")["nodes"]
