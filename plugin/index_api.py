"""Typed helpers for the OpenSearch core REST endpoints the plugin uses: indices, bulk, search (one function, one call).

The sibling of :mod:`plugin.ml_api` (ML Commons and search pipelines) and :mod:`plugin.rescorer_api` (the
distilrank rescorer's own endpoints), the way opensearch-py keeps ``client/indices.py`` apart from
``plugins/ml.py``: these calls are OpenSearch itself, not a plugin. Nothing here decides anything (reuse,
recreation, batching live in :mod:`plugin.catalogue_index` and the callers); the newline-delimited JSON of
``_bulk`` and ``_msearch`` is built here because it is part of the REST call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from plugin.transport import Transport


def get_mapping(t: Transport, index: str) -> dict | None:
    """``GET <index>/_mapping``: ``{index name: {"mappings": {...}}}`` (one entry per index an alias or pattern
    names), or ``None`` when nothing matches."""
    resp = t.request("GET", f"/{index}/_mapping", ok_statuses=(404,))
    return None if resp.get("status") == 404 and "error" in resp else resp


def count(t: Transport, index: str) -> int:
    """``GET <index>/_count``: the number of documents searches see (after the last refresh)."""
    return int(t.request("GET", f"/{index}/_count")["count"])


def create_index(t: Transport, index: str, body: dict) -> dict:
    """``PUT <index>`` with ``{"settings": ..., "mappings": ...}``."""
    return t.request("PUT", f"/{index}", body, dry_response={"acknowledged": True, "index": index})


def delete_index(t: Transport, index: str) -> dict:
    """``DELETE <index>`` (every document with it)."""
    return t.request("DELETE", f"/{index}", dry_response={"acknowledged": True})


def put_index_settings(t: Transport, index: str, settings: dict) -> dict:
    """``PUT <index>/_settings`` with the dynamic ``settings`` (e.g. ``{"index": {"refresh_interval": "1s"}}``)."""
    return t.request("PUT", f"/{index}/_settings", settings, dry_response={"acknowledged": True})


def refresh(t: Transport, index: str) -> dict:
    """``POST <index>/_refresh``: make every indexed document searchable now."""
    return t.request("POST", f"/{index}/_refresh")


def bulk_index(t: Transport, index: str, docs: Sequence[tuple[str, dict]]) -> dict:
    """``POST _bulk`` of one ``index`` action per ``(doc id, source)``; re-sending a batch overwrites the same ids.

    Returns the bulk response (``errors``: whether any item failed; ``items``: one ``{"index": {...}}`` per doc,
    in order). Sources are sent as UTF-8 JSON (non-ASCII text kept as is)."""
    lines = []
    for doc_id, source in docs:
        lines.append(json.dumps({"index": {"_index": index, "_id": doc_id}}))
        lines.append(json.dumps(source, ensure_ascii=False))
    return t.request("POST", "/_bulk", "\n".join(lines) + "\n", idempotent=True,
                     dry_response={"errors": False, "items": [{"index": {"_id": d, "result": "created"}} for d, _ in docs]})


def msearch(t: Transport, index: str, bodies: Sequence[dict]) -> list[dict]:
    """``POST _msearch`` of each search body against ``index``; one response per body, in order (a failed search
    is ``{"error": ...}`` in its place, the others still answer)."""
    ndjson = "".join(json.dumps({"index": index}) + "\n" + json.dumps(b) + "\n" for b in bodies)
    return t.request("POST", "/_msearch", ndjson, idempotent=True)["responses"]


def search(t: Transport, index: str, body: dict, *, params: dict | None = None) -> dict:
    """``POST <index>/_search`` (``params`` e.g. ``{"search_pipeline": name}``); the response with ``hits``."""
    return t.request("POST", f"/{index}/_search", body, params=params)


def mget_sources(t: Transport, index: str, ids: Sequence[str], *, source_includes: str | None = None) -> list[dict]:
    """``POST <index>/_mget``: one ``{"_id", "found", "_source"}`` per id, in order; ``source_includes`` keeps
    only those source fields (comma-separated)."""
    params = {"_source_includes": source_includes} if source_includes else None
    return t.request("POST", f"/{index}/_mget", {"ids": list(ids)}, params=params)["docs"]
