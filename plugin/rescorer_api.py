"""Typed helpers for the distilrank rescorer's own REST endpoints, ``_plugins/distilrank/*`` (one function, one call).

The rescorer is the Java plugin in ``plugin/opensearch`` (not ML Commons, so not :mod:`distilrank.plugin.ml_api`); what to
upload and when lives in :mod:`distilrank.plugin.rescore`. In a dry run the transport answers the writes with what the node
would answer (:func:`upload_chunk`: ``complete`` on the last chunk).
"""

from __future__ import annotations

import base64

from distilrank.errors import DistilRankError
from distilrank.plugin.transport import Transport

BASE = "/_plugins/distilrank"


def model_record(t: Transport, model_id: str) -> dict | None:
    """``GET _plugins/distilrank/models/<id>``: the upload record (``sha256``, ``size``, ``complete``, ``blend`` when
    stored, ...) or ``None``."""
    resp = t.request("GET", f"{BASE}/models/{model_id}", ok_statuses=(404,))
    return None if resp.get("status") == 404 else resp


def upload_chunk(t: Transport, model_id: str, index: int, data: bytes, *, sha256: str, size: int, total_chunks: int,
                 blend: dict | None = None) -> dict:
    """``POST _plugins/distilrank/models/<id>/_upload_chunk/<index>`` (0-based) of a zip of ``size`` bytes whose
    SHA-256 is ``sha256``; the answer to the last chunk says ``complete`` once the node has checked the hash.
    ``blend`` (``BlendSettings.to_dict()``): the model's blend settings, which the last chunk stores in the upload
    record (field ``blend``) for the rescorer to use when a search does not set them."""
    body: dict = {"sha256": sha256, "size": size, "total_chunks": total_chunks, "data": base64.b64encode(data).decode("ascii")}
    if blend is not None:
        body["blend"] = blend
    return t.request("POST", f"{BASE}/models/{model_id}/_upload_chunk/{index}", body,
                     dry_response={"model_id": model_id, "complete": index + 1 == total_chunks})


def delete_model(t: Transport, model_id: str) -> dict:
    """``DELETE _plugins/distilrank/models/<id>``: remove the rescorer's copy, then evict it from every node's cache;
    answers ``deleted``, ``evicted_on`` (the names of the nodes that held it) and ``_nodes`` (``failures``: nodes that did
    not answer the eviction)."""
    return t.request("DELETE", f"{BASE}/models/{model_id}", dry_response={"model_id": model_id, "deleted": True, "evicted_on": []})


def warm(t: Transport, model_id: str, *, window_size: int = 100, alias: str | None = None) -> dict:
    """``POST _plugins/distilrank/models/<id>/_warm``: every data node loads the model (unless loaded) and scores one dummy
    window of ``window_size``, with the models behind every alias but ``alias`` (the one about to move) protected from
    eviction. Answers ``protected`` and, per node id, ``nodes[id]`` = ``name``, ``already_loaded``, ``load_ms``,
    ``warm_window_ms``, ``load_steps_ms``, ``evicted``, ``models_loaded``. Raises :class:`DistilRankError` naming the nodes
    that could not warm it (a search there would pay the load or fail)."""
    params: dict = {"window_size": int(window_size)}
    if alias:
        params["alias"] = alias
    resp = t.request("POST", f"{BASE}/models/{model_id}/_warm", params=params, ok_statuses=(400,),
                     dry_response={"model_id": model_id, "window_size": int(window_size), "protected": [], "nodes": {},
                                   "_nodes": {"total": 0, "successful": 0, "failed": 0}})
    if resp.get("status") == 400 and "no handler found" in str(resp.get("error")):
        return {"model_id": model_id, "skipped": "the rescorer plugin on this cluster predates _warm: the first search that "
                                                 "names the model loads it"}
    if resp.get("status") == 400:
        raise DistilRankError(f"warming model {model_id} in the rescorer failed: {resp.get('error')}")
    failures = resp.get("_nodes", {}).get("failures") or []
    if failures:
        why = "; ".join(f"node {f.get('node_id')}: {f.get('reason')}" for f in failures)
        raise DistilRankError(f"warming model {model_id} in the rescorer failed on {len(failures)} of "
                              f"{resp['_nodes'].get('total')} data node(s): {why}")
    return resp


def stats(t: Transport, *, nodes: str | None = None) -> dict:
    """``GET _plugins/distilrank/_stats``: per node (``nodes``, keyed by node id, each with its ``name``) the loaded models
    (load time and steps, sizes, rescores, stage times), the ``protected`` ids, ``max_models`` and the heap. ``nodes``:
    OpenSearch's node filter (``_local``, ``data:true``, names; default every node)."""
    return t.request("GET", f"{BASE}/_stats", params={"nodes": nodes} if nodes else None)


def loaded_models(t: Transport, *, nodes: str | None = None) -> list[dict]:
    """Every loaded model of every node (see :func:`stats`), one dict per (node, model) with the node's ``node`` name and
    ``node_id`` added."""
    return [{**m, "node": n.get("name"), "node_id": node_id}
            for node_id, n in stats(t, nodes=nodes).get("nodes", {}).items() for m in n.get("models", [])]
