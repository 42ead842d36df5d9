"""Read pairs from JSONL, CSV, TSV, Parquet and the Blitzer Amazon-review files.

Column mapping: ``query_field`` / ``text_field`` / ``label_field`` name the
columns.  ``query_field=None`` (CLI: ``--query-field ""``) is single-text mode:
every query is ``""``.  ``label_field=None`` reads unlabeled pairs; a missing
label column is an error only with ``require_labels``.

Errors are :class:`~distill.errors.DataError` naming the file and the 1-based
physical line (CSV/TSV: the header is line 1; Parquet: ``row N``).
"""

from __future__ import annotations

import csv
import html
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from distill.data.pairs import Pairs
from distill.errors import DataError

FORMATS = ("jsonl", "csv", "tsv", "parquet", "amazon-reviews")


def detect_format(path: Path) -> str:
    """Format from the suffix (``.jsonl``/``.json`` -> jsonl, ...); a directory means amazon-reviews."""
    if path.is_dir():
        return "amazon-reviews"
    suffix = path.suffix.lower()
    mapping = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".review": "amazon-reviews"}
    if suffix not in mapping:
        raise DataError(path, None, f"cannot tell the format from suffix {suffix!r}; pass format= one of {FORMATS}")
    return mapping[suffix]


def _rows_jsonl(path: Path, encoding: str) -> Iterator[tuple[int, dict]]:
    with open(path, encoding=encoding) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(path, lineno, f"invalid JSON: {exc.msg}") from None
            if not isinstance(row, dict):
                raise DataError(path, lineno, f"expected a JSON object, got {type(row).__name__}")
            yield lineno, row


def _rows_delimited(path: Path, encoding: str, delimiter: str) -> Iterator[tuple[int, dict]]:
    csv.field_size_limit(sys.maxsize)
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    with open(path, encoding=encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter, quoting=quoting)
        header = next(reader, None)
        if header is None:
            raise DataError(path, 1, "empty file (expected a header line)")
        header = [h.strip() for h in header]
        for row in reader:
            lineno = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                raise DataError(path, lineno, f"expected {len(header)} columns {header}, got {len(row)}")
            yield lineno, dict(zip(header, row))


def _rows_parquet(path: Path) -> Iterator[tuple[int, dict]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(path, None, f"cannot read Parquet: {exc}") from None
    for i, row in enumerate(table.to_pylist()):
        yield i + 1, row


def read_pairs(
    path: str | Path,
    *,
    query_field: str | None = "query",
    text_field: str = "text",
    label_field: str | None = "label",
    format: str = "auto",
    require_labels: bool = False,
    limit: int = 0,
    encoding: str = "utf-8",
) -> Pairs:
    """Read a pair table. ``limit > 0`` keeps the first ``limit`` rows."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, "file not found")
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "amazon-reviews":
        return read_amazon_reviews(path, limit=limit)
    query_field = query_field or None
    label_field = label_field or None
    where = "row" if fmt == "parquet" else "line"
    rows = {"jsonl": lambda: _rows_jsonl(path, encoding), "csv": lambda: _rows_delimited(path, encoding, ","),
            "tsv": lambda: _rows_delimited(path, encoding, "\t"), "parquet": lambda: _rows_parquet(path)}.get(fmt)
    if rows is None:
        raise DataError(path, None, f"unknown format {fmt!r}; expected one of {FORMATS}")
    queries: list[str] = []
    texts: list[str] = []
    labels: list[float] = []
    has_labels: bool | None = None
    try:
        for lineno, row in rows():
            if limit and len(texts) >= limit:
                break
            if text_field not in row:
                raise DataError(path, lineno, f"missing field {text_field!r} (fields: {sorted(row)})")
            if query_field is not None and query_field not in row:
                raise DataError(path, lineno, f"missing field {query_field!r} (fields: {sorted(row)}); use query_field=None for single-text data")
            text = row[text_field]
            query = "" if query_field is None else row[query_field]
            for name, value in ((text_field, text), (query_field, query)):
                if value is not None and not isinstance(value, str):
                    raise DataError(path, lineno, f"field {name!r} must be a string, got {value!r}")
            if has_labels is None:
                has_labels = label_field is not None and label_field in row
                if require_labels and not has_labels:
                    raise DataError(path, lineno, f"missing label field {label_field!r} (fields: {sorted(row)})")
            if has_labels:
                value = row.get(label_field)
                try:
                    label = float(value)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    raise DataError(path, lineno, f"field {label_field!r}: label {value!r} is not a number") from None
                if not np.isfinite(label) or label < 0:
                    raise DataError(path, lineno, f"field {label_field!r}: label {value!r} must be a finite number >= 0")
                labels.append(label)
            queries.append((query or "").strip())
            texts.append((text or "").strip())
    except UnicodeDecodeError as exc:
        raise DataError(path, None, f"not {encoding} text: {exc.reason} at byte {exc.start}") from None
    if not texts:
        raise DataError(path, None, "no rows")
    return Pairs(queries, texts, np.array(labels, dtype=np.float32) if has_labels else None, source=str(path))


_REVIEW = re.compile(rb"<review>(.*?)</review>", re.S)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*\n")


def _field(block: bytes, name: str) -> str | None:
    m = re.search(rb"<" + name.encode() + rb">(.*?)</" + name.encode() + rb">", block, re.S)
    return html.unescape(m.group(1).decode("latin-1")).strip() if m else None


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences on ``.!?`` followed by a capital/digit, and on blank lines."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def read_amazon_reviews(
    path: str | Path,
    *,
    include_title: bool = False,
    sentences: bool = False,
    min_words: int = 3,
    with_labels: bool = False,
    limit: int = 0,
) -> Pairs:
    """Read Blitzer et al. ``*.review`` pseudo-XML files (Latin-1) as single-text pairs.

    ``path`` is a file or a directory of ``*.review`` files (read in name order).
    ``sentences`` emits one row per sentence of at least ``min_words`` words
    (SST-2 is sentence-level).  ``with_labels`` attaches 1/0 from the file name
    (``*.positive.review`` / ``*.negative.review``).
    """
    path = Path(path)
    files = sorted(path.glob("*.review")) if path.is_dir() else [path]
    if not files:
        raise DataError(path, None, "no *.review files")
    texts: list[str] = []
    labels: list[float] = []
    for f in files:
        data = f.read_bytes()
        blocks = _REVIEW.findall(data)
        if not blocks:
            raise DataError(f, None, "no <review> elements found (is this a Blitzer .review file?)")
        polarity = 1.0 if ".positive." in f.name else 0.0 if ".negative." in f.name else None
        if with_labels and polarity is None:
            raise DataError(f, None, "cannot tell polarity from the file name (*.positive.review / *.negative.review)")
        for block in blocks:
            body = _field(block, "review_text")
            if body is None:
                line = data[: data.find(block)].count(b"\n") + 1
                raise DataError(f, line, "review without <review_text>")
            title = _field(block, "title") if include_title else None
            text = f"{title}. {body}" if title else body
            pieces = [s for s in split_sentences(text) if len(s.split()) >= min_words] if sentences else [" ".join(text.split())]
            for piece in pieces:
                texts.append(" ".join(piece.split()))
                labels.append(polarity or 0.0)
                if limit and len(texts) >= limit:
                    break
            if limit and len(texts) >= limit:
                break
        if limit and len(texts) >= limit:
            break
    return Pairs([""] * len(texts), texts, np.array(labels, np.float32) if with_labels else None, source=str(path))


def read_icecat_products(path: str | Path) -> list[dict]:
    """Products from the Icecat ``products-*.json.zip`` files (each one JSON array); ``path`` is a zip or a directory."""
    import zipfile

    path = Path(path)
    files = sorted(path.glob("products-*.json.zip")) if path.is_dir() else [path]
    products: list[dict] = []
    for f in files:
        with zipfile.ZipFile(f) as zf:
            for name in zf.namelist():
                try:
                    items = json.loads(zf.read(name))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{f}!{name}", exc.lineno, f"invalid JSON: {exc.msg}") from None
                if not isinstance(items, list):
                    raise DataError(f"{f}!{name}", None, "expected a JSON array of products")
                products.extend(items)
    return products


def write_pairs(pairs: Pairs, path: str | Path) -> None:
    """Write pairs atomically; the format follows the suffix (jsonl, csv, tsv, parquet)."""
    from distill.atomic import atomic_open, atomic_path

    path = Path(path)
    fmt = detect_format(path)
    if fmt == "jsonl":
        pairs.to_jsonl(path)
    elif fmt == "csv":
        with atomic_open(path, newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["query", "text"] + (["label"] if pairs.labels is not None else []))
            for i in range(len(pairs)):
                w.writerow([pairs.queries[i], pairs.texts[i]] + ([float(pairs.labels[i])] if pairs.labels is not None else []))
    elif fmt == "tsv":  # unquoted, like SST-2: fields must not contain tabs or newlines
        with atomic_open(path, newline="") as fh:
            fh.write("\t".join(["query", "text"] + (["label"] if pairs.labels is not None else [])) + "\n")
            for i in range(len(pairs)):
                fields = [pairs.queries[i], pairs.texts[i]]
                if any(c in f for f in fields for c in "\t\r\n"):
                    raise DataError(path, i + 2, "a tab or newline inside a field cannot be written as TSV; use .jsonl or .csv")
                fh.write("\t".join(fields + ([repr(float(pairs.labels[i]))] if pairs.labels is not None else [])) + "\n")
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols = {"query": pairs.queries, "text": pairs.texts}
        if pairs.labels is not None:
            cols["label"] = pairs.labels.tolist()
        with atomic_path(path) as tmp:
            pq.write_table(pa.table(cols), tmp)
    else:
        raise DataError(path, None, f"cannot write format {fmt}")
