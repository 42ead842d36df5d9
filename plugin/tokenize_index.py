"""Write index-time token ids (:mod:`distilrank.plugin.token_ids`) into every document of an existing index.

:func:`tokenize_index` maps the token-ids field (``binary``, doc values) when it is missing, reads each document's
model text from ``_source`` exactly as the rescorer joins it (the values of ``fields`` in order, lists flattened,
joined by one space), tokenizes it with the model zip's ``tokenizer.json``, and bulk-updates the documents in
batches (scroll + ``_bulk`` ``update``; other fields are left as they are). A rescore that names the field
(``token_ids_field``) then reads ids instead of texts. Run it again after changing the model's tokenizer: documents
still holding another tokenizer's ids are scored from their text, never wrongly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from distilrank.errors import DistilRankError
from distilrank.plugin import index_api
from distilrank.plugin.token_ids import DEFAULT_FIELD, TOKEN_IDS_MAPPING, DocumentTokenizer
from distilrank.plugin.transport import Transport


def model_text(source: dict[str, Any], fields: Sequence[str]) -> str:
    """The text the rescorer reads from ``_source``: each field's value(s) (dotted paths into objects), one space apart."""
    parts: list[str] = []

    def add(value: Any) -> None:
        if value is None:
            return
        if isinstance(value, list):
            for v in value:
                add(v)
            return
        parts.append(value if isinstance(value, str) else json.dumps(value))

    for f in fields:
        node: Any = source
        for key in f.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        add(node)
    return " ".join(parts)


def ensure_mapping(t: Transport, index: str, field: str) -> bool:
    """Map ``field`` as :data:`TOKEN_IDS_MAPPING` unless it is; True when it was added. Raises when it is mapped otherwise."""
    mapping = index_api.get_mapping(t, index)
    if mapping is None:
        raise DistilRankError(f"index {index!r} does not exist")
    props = next(iter(mapping.values())).get("mappings", {}).get("properties", {})
    if field in props:
        have = {k: props[field].get(k) for k in ("type", "doc_values")}
        if have != TOKEN_IDS_MAPPING:
            raise DistilRankError(f"index {index!r}: field {field!r} is mapped as {json.dumps(props[field])}, not "
                                  f"{json.dumps(TOKEN_IDS_MAPPING)}; choose another --field")
        return False
    index_api.put_mapping(t, index, {field: dict(TOKEN_IDS_MAPPING)})
    return True


def tokenize_index(t: Transport, index: str, zip_path: str | Path, fields: Sequence[str], *, field: str = DEFAULT_FIELD,
                   batch: int = 500, log: Callable[[str], None] = lambda m: None) -> dict:
    """Fill ``field`` of every document of ``index`` with the token ids of its model text under ``zip_path``'s tokenizer.

    Returns ``{"index", "field", "documents", "empty_texts", "fingerprint", "mapping_added"}``."""
    if not fields:
        raise DistilRankError("fields: give the document fields the model reads, e.g. ['title']")
    tok = DocumentTokenizer.from_zip(zip_path)
    added = ensure_mapping(t, index, field)
    done = empty = 0
    resp = index_api.scroll_start(t, index, {"size": batch, "_source": list(fields), "sort": ["_doc"]})
    scroll_id = resp.get("_scroll_id")
    try:
        while resp["hits"]["hits"]:
            hits = resp["hits"]["hits"]
            texts = [model_text(h.get("_source") or {}, fields) for h in hits]
            empty += sum(1 for x in texts if not x)
            _bulk_update(t, index, [h["_id"] for h in hits], field, tok.encoded(texts))
            done += len(hits)
            log(f"tokenize {index}: {done} documents")
            resp = index_api.scroll_next(t, scroll_id)
            scroll_id = resp.get("_scroll_id", scroll_id)
    finally:
        if scroll_id:
            index_api.scroll_clear(t, scroll_id)
    index_api.refresh(t, index)
    return {"index": index, "field": field, "documents": done, "empty_texts": empty, "fingerprint": tok.fingerprint.hex(),
            "mapping_added": added}


def _bulk_update(t: Transport, index: str, ids: Sequence[str], field: str, values: Sequence[str]) -> None:
    res = index_api.bulk_update(t, index, [(doc_id, {field: value}) for doc_id, value in zip(ids, values, strict=True)])
    if res.get("errors"):
        bad = next(it["update"] for it in res["items"] if it["update"].get("error"))
        raise DistilRankError(f"writing token ids into {index!r} failed for document {bad.get('_id')!r}: {bad['error']}")
