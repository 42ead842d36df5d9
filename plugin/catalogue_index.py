"""A product catalogue in OpenSearch: bulk indexing, BM25 retrieval in batches (``_msearch``), BM25 scores of given ids.

The REST calls are :mod:`distilrank.plugin.index_api`'s; this module decides what to index, when to reuse an index, and batching.

The index holds every catalogue field as ``text`` (so BM25 can search them),
the product id as ``keyword``, and the combined model text
(:class:`distilrank.catalogue.DocumentText`, field ``index_field``) that the
rescorer and the rerank pipeline's ``document_fields`` read, so the student scores exactly the
text it was trained on.  The model text is a ``keyword`` with doc values and no index (nothing searches it):
the rescorer reads it column-wise (``text_source`` ``auto`` picks ``doc_values``) instead of parsing each hit's
``_source``; it is cut to :data:`MAX_TEXT_BYTES` of UTF-8 (Lucene's doc-values limit is 32,766 bytes; the student
reads its first 128 words).

Scores are OpenSearch BM25 scores (unbounded, >= 0), not logits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from distilrank.catalogue import Catalogue, DocumentText, field_text
from distilrank.errors import DistilRankError
from distilrank.plugin import index_api
from distilrank.plugin.transport import Transport

ID_FIELD = "doc_id"
#: the longest model text kept in the index, in UTF-8 bytes (below Lucene's 32,766-byte doc-values limit)
MAX_TEXT_BYTES = 32_000
#: the mapping of the model text: read by the rescorer from doc values, never searched
MODEL_TEXT_MAPPING = {"type": "keyword", "index": False, "doc_values": True}
DEFAULT_BM25_FIELDS = ("title^2", "brand", "color", "bullet_points", "description")


def bm25_query(query: str, fields: Sequence[str] = DEFAULT_BM25_FIELDS) -> dict:
    """The first-pass query: ``multi_match`` (best_fields, tie_breaker 0.3) of ``query`` over ``fields``."""
    return {"multi_match": {"query": query, "fields": list(fields), "type": "best_fields", "tie_breaker": 0.3}}


def index_catalogue(t: Transport, index: str, catalogue: Catalogue, doc: DocumentText, *, batch: int = 1000,
                    recreate: bool = False, log: Callable[[str], None] = lambda m: None) -> dict:
    """Create ``index`` (unless it already holds exactly this catalogue) and bulk-index every product.

    The index's ``_meta`` records the catalogue source, size and the document-text setting; an
    existing index with the same ``_meta`` is reused as is (idempotent), a different one is an
    error unless ``recreate``.  Returns ``{"index", "docs", "reused"}``.
    """
    meta = {"distilrank": {"catalogue": catalogue.source, "docs": len(catalogue), "document": {
        "fields": doc.fields, "max_chars": doc.max_chars, "index_field": doc.index_field, "index_field_mapping": MODEL_TEXT_MAPPING}}}
    existing = index_api.get_mapping(t, index)
    if existing is not None:
        old = existing.get(index, {}).get("mappings", {}).get("_meta", {})
        count = index_api.count(t, index)
        if old == meta and count == len(catalogue):
            log(f"index {index}: reusing ({count} products)")
            return {"index": index, "docs": count, "reused": True}
        if not recreate:
            raise DistilRankError(f"index {index!r} exists with other contents ({count} docs, _meta {json.dumps(old)}); "
                                  "pass recreate=True (--recreate-index) or choose another index name")
        index_api.delete_index(t, index)
    fields = sorted({k for r in catalogue.records for k in r} - {ID_FIELD, doc.index_field})
    props: dict[str, Any] = {f: {"type": "text"} for f in fields}
    props[ID_FIELD] = {"type": "keyword"}
    props[doc.index_field] = dict(MODEL_TEXT_MAPPING)
    index_api.create_index(t, index, {"settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"},
                                      "mappings": {"_meta": meta, "properties": props}})
    texts = catalogue.texts(doc)
    for start in range(0, len(catalogue), batch):
        docs = []
        for i in range(start, min(start + batch, len(catalogue))):
            src = {k: field_text(v) for k, v in catalogue.records[i].items() if k in props}
            src[ID_FIELD] = catalogue.ids[i]
            src[doc.index_field] = truncate_utf8(texts[i], MAX_TEXT_BYTES)
            docs.append((catalogue.ids[i], src))
        res = index_api.bulk_index(t, index, docs)
        if res.get("errors"):
            bad = next(it["index"] for it in res["items"] if it["index"].get("error"))
            raise DistilRankError(f"bulk indexing into {index!r} failed for product {bad.get('_id')!r}: {bad['error']}")
        log(f"index {index}: {min(start + batch, len(catalogue))}/{len(catalogue)} products")
    index_api.put_index_settings(t, index, {"index": {"refresh_interval": "1s"}})
    index_api.refresh(t, index)
    return {"index": index, "docs": len(catalogue), "reused": False}


def truncate_utf8(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, at a character boundary."""
    raw = text.encode("utf-8")
    return text if len(raw) <= max_bytes else raw[:max_bytes].decode("utf-8", errors="ignore")


def bm25_top_k(t: Transport, index: str, queries: Sequence[str], k: int, *, fields: Sequence[str] = DEFAULT_BM25_FIELDS,
               batch: int = 200, on_batch: Callable[[int], None] | None = None) -> dict[str, list[tuple[str, float]]]:
    """Each query's BM25 top ``k`` as ``[(doc id, score), ...]`` best first, ``batch`` queries per ``_msearch``.

    A query that matches nothing maps to ``[]``.  Raises :class:`DistilRankError` naming the query when
    one search of a batch fails.
    """
    out: dict[str, list[tuple[str, float]]] = {}
    distinct = list(dict.fromkeys(queries))
    for start in range(0, len(distinct), batch):
        chunk = distinct[start : start + batch]
        responses = index_api.msearch(t, index, [
            {"query": bm25_query(q, fields), "size": k, "_source": False, "track_total_hits": False} for q in chunk])
        for q, r in zip(chunk, responses):
            if "error" in r:
                raise DistilRankError(f"BM25 search for {q!r} in {index!r} failed: {r['error']}")
            out[q] = [(h["_id"], float(h["_score"])) for h in r["hits"]["hits"]]
        if on_batch is not None:
            on_batch(len(chunk))
    return out


def bm25_scores(t: Transport, index: str, query_docs: Mapping[str, Sequence[str]], *,
                fields: Sequence[str] = DEFAULT_BM25_FIELDS, batch: int = 100,
                on_batch: Callable[[int], None] | None = None) -> dict[str, dict[str, float]]:
    """BM25 score of each query for each of its doc ids, ``{query: {doc id: score}}``; 0.0 where the query
    does not match the product.  ``batch`` queries per ``_msearch`` (an ``ids`` filter per query)."""
    out: dict[str, dict[str, float]] = {}
    items = [(q, list(dict.fromkeys(ids))) for q, ids in query_docs.items()]
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        responses = index_api.msearch(t, index, [
            {"query": {"bool": {"must": [bm25_query(q, fields)], "filter": [{"ids": {"values": ids}}]}},
             "size": len(ids), "_source": False, "track_total_hits": False} for q, ids in chunk])
        for (q, ids), r in zip(chunk, responses):
            if "error" in r:
                raise DistilRankError(f"BM25 scoring for {q!r} in {index!r} failed: {r['error']}")
            scores = dict.fromkeys(ids, 0.0)
            scores.update({h["_id"]: float(h["_score"]) for h in r["hits"]["hits"]})
            out[q] = scores
        if on_batch is not None:
            on_batch(len(chunk))
    return out
