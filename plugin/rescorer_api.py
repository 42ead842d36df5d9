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
    """``DELETE _plugins/distilrank/models/<id>``: remove the rescorer's copy (and evict it from the answering node's cache)."""
    return t.request("DELETE", f"{BASE}/models/{model_id}")


def warm(t: Transport, model_id: str, *, window_size: int = 100) -> dict:
    """``POST _plugins/distilrank/models/<id>/_warm``: the answering node loads the model (unless loaded) and scores one
    dummy window of ``window_size``; answers ``already_loaded``, ``load_ms``, ``warm_window_ms``, ``node``, ``load_steps_ms``."""
    resp = t.request("POST", f"{BASE}/models/{model_id}/_warm", params={"window_size": int(window_size)}, ok_statuses=(400,),
                     dry_response={"model_id": model_id, "already_loaded": False, "load_ms": 0.0, "warm_window_ms": 0.0})
    if resp.get("status") == 400 and "no handler found" in str(resp.get("error")):
        return {"model_id": model_id, "skipped": "the rescorer plugin on this cluster predates _warm: the first search that "
                                                 "names the model loads it"}
    if resp.get("status") == 400:
        raise DistilRankError(f"warming model {model_id} in the rescorer failed: {resp.get('error')}")
    return resp


def stats(t: Transport) -> dict:
    """``GET _plugins/distilrank/_stats`` of the node that answers: loaded models (load time, sizes) and heap."""
    return t.request("GET", f"{BASE}/_stats")
