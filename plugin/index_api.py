"""Typed helpers for the OpenSearch core REST endpoints the plugin uses: indices, bulk, search (one function, one call).

The sibling of :mod:`distilrank.plugin.ml_api` (ML Commons and search pipelines) and :mod:`distilrank.plugin.rescorer_api` (the
distilrank rescorer's own endpoints), the way opensearch-py keeps ``client/indices.py`` apart from
``plugins/ml.py``: these calls are OpenSearch itself, not a plugin. Nothing here decides anything (reuse,
recreation, batching live in :mod:`distilrank.plugin.catalogue_index` and the callers); the newline-delimited JSON of
``_bulk`` and ``_msearch`` is built here because it is part of the REST call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from distilrank.plugin.transport import ClusterError, Transport, dry_id


def get_mapping(t: Transport, index: str) -> dict | None:
    """``GET <index>/_mapping``: ``{index name: {"mappings": {...}}}`` (one entry per index an alias or pattern
    names), or ``None`` when nothing matches."""
    resp = t.request("GET", f"/{index}/_mapping", ok_statuses=(404,))
    return None if resp.get("status") == 404 and "error" in resp else resp


def count(t: Transport, index: str) -> int:
    """``GET <index>/_count``: the number of documents searches see (after the last refresh)."""
    return int(t.request("GET", f"/{index}/_count")["count"])


def index_exists(t: Transport, index: str) -> bool:
    """``HEAD <index>``: whether the index (or alias) exists."""
    return t.request("HEAD", f"/{index}") is True  # opensearch-py answers HEAD with True/False


def create_index(t: Transport, index: str, body: dict, *, ok_statuses: tuple[int, ...] = ()) -> dict:
    """``PUT <index>`` with ``{"settings": ..., "mappings": ...}`` (``ok_statuses`` e.g. ``(400,)`` to see
    ``resource_already_exists_exception`` as ``{"status": 400, "error": ...}``)."""
    return t.request("PUT", f"/{index}", body, ok_statuses=ok_statuses, dry_response={"acknowledged": True, "index": index})


def delete_index(t: Transport, index: str) -> dict:
    """``DELETE <index>`` (every document with it)."""
    return t.request("DELETE", f"/{index}", dry_response={"acknowledged": True})


def put_index_settings(t: Transport, index: str, settings: dict) -> dict:
    """``PUT <index>/_settings`` with the dynamic ``settings`` (e.g. ``{"index": {"refresh_interval": "1s"}}``)."""
    return t.request("PUT", f"/{index}/_settings", settings, dry_response={"acknowledged": True})


def wait_for_status(t: Transport, status: str = "green", *, index: str | None = None, timeout: float = 300.0) -> tuple[float, dict]:
    """Wait until the cluster (``index``: that index) reports ``status`` (``yellow`` is also met by ``green``); returns
    ``(seconds waited, the health document)``. Asked in waits of at most 10 s, so no client read timeout ends it;
    raises :class:`~distilrank.plugin.transport.ClusterError` after ``timeout`` s."""
    met = {"green": ("green",), "yellow": ("yellow", "green"), "red": ("red", "yellow", "green")}[status]
    t0 = time.monotonic()
    while True:
        wait = max(1, min(10, int(timeout - (time.monotonic() - t0))))
        health = t.request("GET", f"/_cluster/health{'/' + index if index else ''}",
                           params={"wait_for_status": status, "timeout": f"{wait}s"}, ok_statuses=(408,))
        if health.get("status") in met or not t.live(f"wait for {index or 'the cluster'} to be {status}"):
            return time.monotonic() - t0, health
        if time.monotonic() - t0 > timeout:
            raise ClusterError(f"{index or 'the cluster'} did not reach {status} within {timeout:g} s: {json.dumps(health)[:500]}")


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


def search(t: Transport, index: str, body: dict, *, params: dict | None = None, ok_statuses: tuple[int, ...] = ()) -> dict:
    """``POST <index>/_search`` (``params`` e.g. ``{"search_pipeline": name}``); the response with ``hits``
    (``ok_statuses=(404,)``: a missing index answers ``{"status": 404, "error": ...}``)."""
    return t.request("POST", f"/{index}/_search", body, params=params, ok_statuses=ok_statuses)


def mget_sources(t: Transport, index: str, ids: Sequence[str], *, source_includes: str | None = None) -> list[dict]:
    """``POST <index>/_mget``: one ``{"_id", "found", "_source"}`` per id, in order; ``source_includes`` keeps
    only those source fields (comma-separated)."""
    params = {"_source_includes": source_includes} if source_includes else None
    return t.request("POST", f"/{index}/_mget", {"ids": list(ids)}, params=params)["docs"]


# --- single documents ------------------------------------------------------------
#: What a dry run answers for a skipped document write (the version a compare-and-set would be made against).
_DRY_WRITE = {"result": "created", "_seq_no": dry_id("seq_no"), "_primary_term": dry_id("primary_term")}


def _doc_params(refresh: str | None, cas: tuple[int | None, int | None] | None) -> dict | None:
    params: dict = {"refresh": refresh} if refresh else {}
    if cas is not None:
        params["if_seq_no"], params["if_primary_term"] = cas
    return params or None


def get_doc(t: Transport, index: str, doc_id: str) -> dict | None:
    """``GET <index>/_doc/<id>``: ``{"found": True, "_source", "_seq_no", "_primary_term", ...}``, or ``None``
    when the document (or the index) does not exist."""
    resp = t.request("GET", f"/{index}/_doc/{doc_id}", ok_statuses=(404,))
    return resp if resp.get("found") else None


def put_doc(t: Transport, index: str, doc_id: str, doc: dict, *, refresh: str | None = "wait_for",
            cas: tuple[int | None, int | None] | None = None, ok_statuses: tuple[int, ...] = ()) -> dict:
    """``PUT <index>/_doc/<id>`` (create or overwrite). ``cas=(seq_no, primary_term)`` adds ``if_seq_no`` /
    ``if_primary_term``: the write happens only if the document is still at that version, else HTTP 409
    ``version_conflict_engine_exception``. Returns the response (``result``, ``_seq_no``, ``_primary_term``)."""
    return t.request("PUT", f"/{index}/_doc/{doc_id}", doc, params=_doc_params(refresh, cas), ok_statuses=ok_statuses,
                     dry_response=dict(_DRY_WRITE))


def create_doc(t: Transport, index: str, doc_id: str, doc: dict, *, refresh: str | None = "wait_for",
               ok_statuses: tuple[int, ...] = ()) -> dict:
    """``PUT <index>/_create/<id>``: create the document only if it does not exist (else HTTP 409
    ``version_conflict_engine_exception``)."""
    return t.request("PUT", f"/{index}/_create/{doc_id}", doc, params=_doc_params(refresh, None), ok_statuses=ok_statuses,
                     dry_response=dict(_DRY_WRITE))


def delete_doc(t: Transport, index: str, doc_id: str, *, refresh: str | None = "wait_for",
               cas: tuple[int | None, int | None] | None = None, ok_statuses: tuple[int, ...] = ()) -> dict:
    """``DELETE <index>/_doc/<id>`` (``cas`` as for :func:`put_doc`); a missing document is HTTP 404."""
    return t.request("DELETE", f"/{index}/_doc/{doc_id}", params=_doc_params(refresh, cas), ok_statuses=ok_statuses)


def put_mapping(t: Transport, index: str, properties: dict) -> dict:
    """``PUT <index>/_mapping`` adding ``properties`` (existing fields must keep their mapping)."""
    return t.request("PUT", f"/{index}/_mapping", {"properties": properties})


def scroll_start(t: Transport, index: str, body: dict, *, keep_alive: str = "2m") -> dict:
    """``POST <index>/_search?scroll=<keep_alive>``: the first page and its ``_scroll_id``."""
    return t.request("POST", f"/{index}/_search", body, params={"scroll": keep_alive})


def scroll_next(t: Transport, scroll_id: str, *, keep_alive: str = "2m") -> dict:
    """``POST _search/scroll``: the next page of a scroll."""
    return t.request("POST", "/_search/scroll", {"scroll": keep_alive, "scroll_id": scroll_id})


def scroll_clear(t: Transport, scroll_id: str) -> dict:
    """``DELETE _search/scroll`` of one scroll (404 when it already expired)."""
    return t.request("DELETE", "/_search/scroll", {"scroll_id": scroll_id}, ok_statuses=(404,))


def bulk_update(t: Transport, index: str, updates: Sequence[tuple[str, dict]]) -> dict:
    """``POST _bulk`` of one partial ``update`` (``{"doc": fields}``) per ``(doc id, fields)``; the bulk response."""
    lines = []
    for doc_id, fields in updates:
        lines.append(json.dumps({"update": {"_index": index, "_id": doc_id}}))
        lines.append(json.dumps({"doc": fields}, ensure_ascii=False))
    return t.request("POST", "/_bulk", "\n".join(lines) + "\n", idempotent=True,
                     dry_response={"errors": False, "items": [{"update": {"_id": d, "result": "updated"}} for d, _ in updates]})


def pit_open(t: Transport, index: str, *, keep_alive: str) -> dict | None:
    """``POST <index>/_search/point_in_time?keep_alive=..``: ``{"pit_id", ...}``, or ``None`` when the index does not exist."""
    resp = t.request("POST", f"/{index}/_search/point_in_time", params={"keep_alive": keep_alive}, ok_statuses=(404,))
    return None if resp.get("status") == 404 else resp


def pit_search(t: Transport, body: dict) -> dict:
    """``POST _search`` with a ``pit`` section in ``body`` (no index in the path: the point in time names it)."""
    return t.request("POST", "/_search", body)


def pit_close(t: Transport, pit_id: str) -> dict:
    """``DELETE _search/point_in_time`` of one point in time (404 when it already expired)."""
    return t.request("DELETE", "/_search/point_in_time", {"pit_id": [pit_id]}, ok_statuses=(404,))
