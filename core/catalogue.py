"""Product catalogues and judged (query, product) pairs.

A catalogue is a JSONL or Parquet file with one product per row: an id field
and text fields.  :class:`DocumentText` says which fields make a product's
text; the *same* setting feeds the teachers, the student and the index field
the rerank pipeline reads (``document_fields``), so training and serving see
identical text.

Field values: strings are stripped; lists (e.g. ``category``) are joined with
``" "``; newlines (e.g. ``bullet_points``) become spaces; ``null`` / missing is
``""``.  Errors name the file and line (JSONL) or row (Parquet).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distilrank.errors import ConfigError, DataError
from distilrank.formats.jsonl import jsonl_rows
from distilrank.pairs import Pairs

_SPACE = re.compile(r"\s+")


@dataclass
class DocumentText:
    """How a product's text is built from its fields.

    Attributes:
        fields: catalogue fields, in order (e.g. ``["title"]``, ``["title", "brand", "color"]``,
            ``["title", "brand", "color", "bullet_points"]``).
        max_chars: cap, in characters, on every field after the first (0 = no cap); keeps long
            bullets or descriptions from swamping the title.
        index_field: the index field that holds the combined text in OpenSearch (the rerank
            pipeline's ``document_fields``).
    """

    fields: list[str] = field(default_factory=lambda: ["title"])
    max_chars: int = 0
    index_field: str = "distilrank_text"

    def validate(self, source: str = "document") -> None:
        """Raise :class:`ConfigError` naming the bad field."""
        if not self.fields or not all(isinstance(f, str) and f for f in self.fields):
            raise ConfigError(source, "fields", f"need at least one non-empty field name, got {self.fields!r}")
        if self.max_chars < 0:
            raise ConfigError(source, "max_chars", f"must be >= 0, got {self.max_chars}")
        if not self.index_field:
            raise ConfigError(source, "index_field", "must not be empty")

    def render(self, record: Mapping[str, Any]) -> str:
        """The text of one product: the fields' values joined by single spaces."""
        parts = []
        for i, name in enumerate(self.fields):
            value = field_text(record.get(name))
            if i and self.max_chars and len(value) > self.max_chars:
                cut = value[: self.max_chars + 1]  # one more char: a cut right before a space keeps that word
                value = cut.rsplit(" ", 1)[0] if " " in cut else cut[:-1]
            if value:
                parts.append(value)
        return " ".join(parts)


def field_text(value: Any) -> str:
    """One field value as single-spaced text (``None`` -> ``""``, lists joined, whitespace collapsed)."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(t for t in (field_text(v) for v in value) if t)
    return _SPACE.sub(" ", str(value)).strip()


@dataclass
class Catalogue:
    """Products by id.

    Attributes:
        ids: product ids, in file order (unique).
        records: the raw field dicts, aligned with ``ids``.
        source: the file they came from.
    """

    ids: list[str]
    records: list[dict]
    source: str = "<memory>"

    def __post_init__(self) -> None:
        self._pos = {d: i for i, d in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._pos

    def position(self, doc_id: str) -> int:
        """Row of ``doc_id``; :class:`KeyError` when it is not in the catalogue."""
        return self._pos[doc_id]

    def texts(self, doc: DocumentText, ids: Iterable[str] | None = None) -> list[str]:
        """Rendered text of ``ids`` (all products when ``None``), in that order."""
        rows = self.records if ids is None else [self.records[self._pos[d]] for d in ids]
        return [doc.render(r) for r in rows]


def read_catalogue(path: str | Path, *, id_field: str = "asin", limit: int | None = None) -> Catalogue:
    """Read a JSONL (``.jsonl``/``.json``/``.ndjson``) or Parquet catalogue with an ``id_field`` per product.

    Raises :class:`DataError` naming the line (row) for invalid JSON, a missing or empty id, or a
    repeated id.  ``limit`` keeps the first ``limit`` products (``None``: every product; below 1 is a ValueError).
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None (every product), got {limit}")
    p = Path(path)
    if not p.exists():
        raise DataError(p, None, "catalogue file not found")
    rows: Iterable[tuple[int, Any]]
    if p.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        rows = enumerate(pq.read_table(p).to_pylist())
        where = "row"
    else:
        rows = jsonl_rows(p)
        where = "line"
    ids: list[str] = []
    records: list[dict] = []
    first: dict[str, int] = {}
    for pos, obj in rows:
        line = pos if where == "line" else None
        prefix = "" if where == "line" else f"row {pos}: "
        if not isinstance(obj, dict):
            raise DataError(p, line, f"{prefix}expected a JSON object per product, got {type(obj).__name__}")
        raw = obj.get(id_field)
        doc_id = "" if raw is None else str(raw).strip()
        if not doc_id:
            raise DataError(p, line, f"{prefix}missing or empty id field {id_field!r} (fields: {', '.join(sorted(obj))})")
        if doc_id in first:
            raise DataError(p, line, f"{prefix}product id {doc_id!r} repeats {where} {first[doc_id]}")
        first[doc_id] = pos
        ids.append(doc_id)
        records.append(obj)
        if limit is not None and len(ids) >= limit:
            break  # before the next line is even parsed
    return Catalogue(ids, records, str(p))


def check_fields(catalogue: Catalogue, doc: DocumentText, source: str = "document") -> None:
    """Raise :class:`ConfigError` when a configured field appears in no product of ``catalogue``."""
    seen: set[str] = set()
    for r in catalogue.records[:1000]:
        seen.update(r)
    missing = [f for f in doc.fields if f not in seen]
    if missing:
        raise ConfigError(source, "fields", f"{missing} not in {catalogue.source} (fields: {', '.join(sorted(seen))})")


def judged_pairs(grades: Mapping[str, Mapping[str, float]], catalogue: Catalogue, doc: DocumentText, *,
                 queries: Sequence[str] | None = None, origin: str = "judgments") -> Pairs:
    """(query, product text, grade) rows for every judgment of ``queries`` (all judged queries when ``None``).

    ``grades`` maps query -> {doc id: grade}.  The result's ``extra`` holds ``doc_id`` per row.
    Raises :class:`DataError` when a judged doc id is not in the catalogue.
    """
    qs, ds, gs = [], [], []
    for q in (queries if queries is not None else list(grades)):
        for d, g in grades.get(q, {}).items():
            if d not in catalogue:
                raise DataError(origin, None, f"query {q!r}: judged product {d!r} is not in the catalogue {catalogue.source}")
            qs.append(q)
            ds.append(d)
            gs.append(float(g))
    texts = catalogue.texts(doc, ds)
    return Pairs(qs, texts, np.asarray(gs, np.float32), source=origin, extra={"doc_id": ds})


def id_pairs(query_docs: Mapping[str, Sequence[str]], catalogue: Catalogue, doc: DocumentText, source: str = "pool") -> Pairs:
    """Unlabeled (query, product text) rows for ``{query: [doc id, ...]}``, ``extra["doc_id"]`` per row."""
    qs = [q for q, ds in query_docs.items() for _ in ds]
    ds = [d for docs in query_docs.values() for d in docs]
    return Pairs(qs, catalogue.texts(doc, ds), None, source=source, extra={"doc_id": ds})
