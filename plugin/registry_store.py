"""distilrank's own bookkeeping in the cluster: model cards and alias history, in one small index.

Index ``distilrank-registry`` (one shard, ``auto_expand_replicas 0-1``); documents:

* ``model-<model_id>``: ``{"kind": "model", "model_id", "sha256", "name", "card", "registered_at"}``; the card
  is stored, not indexed (``enabled: false``), so any card shape is accepted;
* ``alias-<name>``: ``{"kind": "alias", "alias", "pipeline", "model_id", "params", "history": [...]}``, where
  ``history`` lists earlier targets, newest last (what ``rollback`` returns to).

Writes use ``refresh=wait_for`` so a following read sees them. The search pipelines stay the source of truth
for what searches use; this index only remembers what they pointed at before.

Alias documents are written by compare-and-set (:func:`read_alias` + :func:`write_alias`): every write names the
``_seq_no``/``_primary_term`` it read (or creates the document with ``op_type=create``), so two operators changing
one alias at once cannot both succeed; the loser gets :class:`ConcurrentChangeError` and nothing of its change is kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from distilrank.errors import DistilRankError
from distilrank.plugin import index_api
from distilrank.plugin.transport import Transport

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
    if index_api.index_exists(t, INDEX):
        return
    resp = index_api.create_index(t, INDEX, MAPPING, ok_statuses=(400,))
    if resp.get("status") == 400 and "resource_already_exists" not in str(resp.get("error")):
        from distilrank.plugin.transport import ClusterError

        raise ClusterError(f"cannot create the {INDEX} index: {resp.get('error')}")


def _get(t: Transport, doc_id: str) -> dict | None:
    resp = index_api.get_doc(t, INDEX, doc_id)
    return resp["_source"] if resp else None


def _put(t: Transport, doc_id: str, doc: dict) -> None:
    ensure_index(t)
    index_api.put_doc(t, INDEX, doc_id, doc)


def save_model(t: Transport, model_id: str, sha256: str, name: str, card: dict) -> None:
    _put(t, f"model-{model_id}", {"kind": "model", "model_id": model_id, "sha256": sha256, "name": name,
                                  "card": card, "registered_at": now()})


def get_model_record(t: Transport, model_id: str) -> dict | None:
    return _get(t, f"model-{model_id}")


def delete_model_record(t: Transport, model_id: str) -> None:
    index_api.delete_doc(t, INDEX, f"model-{model_id}", ok_statuses=(404,))


def get_alias(t: Transport, alias: str) -> dict | None:
    return _get(t, f"alias-{alias}")


def delete_alias(t: Transport, alias: str) -> None:
    """Delete an alias document unconditionally (a missing one is fine); for tearing down test and benchmark aliases.
    The alias's search pipeline and model are left alone."""
    index_api.delete_doc(t, INDEX, f"alias-{alias}", ok_statuses=(404,))


def save_alias(t: Transport, record: dict[str, Any]) -> None:
    """Overwrite an alias document unconditionally (for repairs; operators go through :func:`write_alias`)."""
    _put(t, f"alias-{record['alias']}", {"kind": "alias", **record})


class ConcurrentChangeError(DistilRankError):
    """Another operator changed the alias between this operator's read and write; nothing of this change was kept."""


@dataclass(frozen=True)
class Versioned:
    """An alias document as read: ``source`` (``None`` when it does not exist) and the version to write against."""

    alias: str
    source: dict | None
    seq_no: int | None = None
    primary_term: int | None = None


def read_alias(t: Transport, alias: str) -> Versioned:
    """The alias document with its ``_seq_no``/``_primary_term`` (for :func:`write_alias`)."""
    resp = index_api.get_doc(t, INDEX, f"alias-{alias}")
    if resp is None:
        return Versioned(alias, None)
    return Versioned(alias, resp["_source"], resp["_seq_no"], resp["_primary_term"])


def write_alias(t: Transport, expected: Versioned, record: dict[str, Any] | None) -> Versioned:
    """Compare-and-set: write ``record`` (``None``: delete) only if the document is still as ``expected`` was read.

    Raises :class:`ConcurrentChangeError` (HTTP 409 from OpenSearch) when someone wrote it in between."""
    doc_id = f"alias-{expected.alias}"
    doc = None if record is None else {"kind": "alias", **record, "alias": expected.alias}
    if expected.source is None:
        if doc is None:  # nothing to delete, nothing to create
            return expected
        ensure_index(t)
        resp = index_api.create_doc(t, INDEX, doc_id, doc, ok_statuses=(409,))
    else:
        cas = (expected.seq_no, expected.primary_term)
        resp = (index_api.delete_doc(t, INDEX, doc_id, cas=cas, ok_statuses=(409,)) if doc is None
                else index_api.put_doc(t, INDEX, doc_id, doc, cas=cas, ok_statuses=(409,)))
    if resp.get("status") == 409:
        now_doc = read_alias(t, expected.alias).source or {}
        raise ConcurrentChangeError(
            f"alias {expected.alias!r} was changed by another operator at the same time (compare-and-set on "
            f"{INDEX}/{doc_id} failed: version conflict); it now points at {now_doc.get('model_id')}"
            + (f", {now_doc['pending']['op']} to {now_doc['pending'].get('model_id')} by {now_doc['pending'].get('by')} in progress"
               if now_doc.get("pending") else "")
            + ". Nothing of this change was kept: check 'distilrank plugin list' and run the command again")
    if record is None:
        return Versioned(expected.alias, None)
    return Versioned(expected.alias, doc, resp.get("_seq_no"), resp.get("_primary_term"))


def all_aliases(t: Transport) -> list[dict]:
    resp = index_api.search(t, INDEX, {"query": {"term": {"kind": "alias"}}, "size": 1000}, ok_statuses=(404,))
    return [h["_source"] for h in (resp.get("hits") or {}).get("hits", [])]
