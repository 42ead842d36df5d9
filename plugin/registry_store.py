"""distilrank's own bookkeeping in the cluster: model cards and alias history, in one small index.

Index ``distilrank-registry`` (one shard, ``auto_expand_replicas 0-1``); documents:

* ``model-<model_id>``: ``{"kind": "model", "model_id", "sha256", "name", "card", "registered_at"}``; the card
  is stored, not indexed (``enabled: false``), so any card shape is accepted;
* ``alias-<name>``: ``{"kind": "alias", "alias", "pipeline", "model_id", "params", "history": [...]}``, where
  ``history`` lists earlier targets, newest last (what ``rollback`` returns to).

Writes use ``refresh=wait_for`` so a following read sees them. The search pipelines stay the source of truth
for what searches use; this index only remembers what they pointed at before.
"""

from __future__ import annotations

import time
from typing import Any

from plugin.transport import Transport

INDEX = "distilrank-registry"
MAPPING = {
    "settings": {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}},
    "mappings": {"dynamic": False, "properties": {
        "kind": {"type": "keyword"}, "model_id": {"type": "keyword"}, "sha256": {"type": "keyword"},
        "alias": {"type": "keyword"}, "pipeline": {"type": "keyword"}, "name": {"type": "keyword"},
        "registered_at": {"type": "date", "format": "epoch_second"},
        "card": {"type": "object", "enabled": False}, "history": {"type": "object", "enabled": False},
        "params": {"type": "object", "enabled": False}}},
}


def now() -> int:
    return int(time.time())


def ensure_index(t: Transport) -> None:
    """Create the registry index if it does not exist."""
    if t.request("HEAD", f"/{INDEX}") is True:  # opensearch-py answers HEAD with True/False
        return
    resp = t.request("PUT", f"/{INDEX}", MAPPING, ok_statuses=(400,))
    if resp.get("status") == 400 and "resource_already_exists" not in str(resp.get("error")):
        from plugin.transport import ClusterError

        raise ClusterError(f"cannot create the {INDEX} index: {resp.get('error')}")


def _get(t: Transport, doc_id: str) -> dict | None:
    resp = t.request("GET", f"/{INDEX}/_doc/{doc_id}", ok_statuses=(404,))
    return resp.get("_source") if resp.get("found") else None


def _put(t: Transport, doc_id: str, doc: dict) -> None:
    ensure_index(t)
    t.request("PUT", f"/{INDEX}/_doc/{doc_id}", doc, params={"refresh": "wait_for"})


def save_model(t: Transport, model_id: str, sha256: str, name: str, card: dict) -> None:
    _put(t, f"model-{model_id}", {"kind": "model", "model_id": model_id, "sha256": sha256, "name": name,
                                  "card": card, "registered_at": now()})


def get_model_record(t: Transport, model_id: str) -> dict | None:
    return _get(t, f"model-{model_id}")


def delete_model_record(t: Transport, model_id: str) -> None:
    t.request("DELETE", f"/{INDEX}/_doc/model-{model_id}", params={"refresh": "wait_for"}, ok_statuses=(404,))


def get_alias(t: Transport, alias: str) -> dict | None:
    return _get(t, f"alias-{alias}")


def save_alias(t: Transport, record: dict[str, Any]) -> None:
    _put(t, f"alias-{record['alias']}", {"kind": "alias", **record})


def all_aliases(t: Transport) -> list[dict]:
    resp = t.request("POST", f"/{INDEX}/_search", {"query": {"term": {"kind": "alias"}}, "size": 1000},
                     ok_statuses=(404,))
    return [h["_source"] for h in (resp.get("hits") or {}).get("hits", [])]
