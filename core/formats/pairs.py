"""Pair tables: (query, text[, label]) rows in JSONL, CSV, TSV, Parquet or Blitzer Amazon reviews.

Column mapping
    ``query_field`` / ``text_field`` / ``label_field`` name the columns (the CLI
    exposes them as ``--query-field`` / ``--text-field`` / ``--label-field``).
    ``query_field=None`` (CLI: ``--query-field ""``) is single-text mode: every
    query is ``""``.  A configured query column that is missing is an error that
    lists the available columns.  ``label_field=None``, or a label column that is
    absent, reads unlabeled pairs; with ``require_labels`` an absent label column
    is an error.  Labels must be finite numbers >= 0 (binary 0/1 or graded).
    Query and text values are stripped of surrounding whitespace; an empty text is
    allowed, a missing or null one is not.

Errors
    Every problem raises :class:`~distilrank.errors.DataError`.  For line-based
    formats the message is ``"<file>:<line>: <problem>"`` with the 1-based
    physical line (CSV/TSV: the header is line 1 and a row is at the line it starts
    on; blank JSONL lines count but are skipped).  Parquet has no lines:
    ``"<file>: row <i>: <problem>"`` with the 0-based row index.

Encodings
    ``encoding`` must be ASCII-compatible (UTF-8, Latin-1, cp1252, ...): files are
    decoded line by line (:mod:`distilrank.formats.lines`) so an undecodable byte
    is reported with its line.  A UTF-8 byte-order mark is ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from distilrank.errors import DataError
from distilrank.formats.amazon_reviews import read_amazon_reviews
from distilrank.formats.delimited import DELIMITERS, DelimitedTable, write_delimited
from distilrank.formats.jsonl import jsonl_rows
from distilrank.formats.parquet import parquet_table, write_parquet
from distilrank.pairs import Pairs

FORMATS = ("jsonl", "csv", "tsv", "parquet", "amazon-reviews")
_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv",
             ".parquet": "parquet", ".review": "amazon-reviews"}


def detect_format(path: str | Path) -> str:
    """Format name for ``path``: a directory is ``amazon-reviews``, a file goes by its suffix.

    Raises :class:`DataError` for an unknown suffix.
    """
    path = Path(path)
    if path.is_dir():
        return "amazon-reviews"
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DataError(path, None, f"cannot tell the format from suffix {path.suffix!r}; pass format= one of {FORMATS}")
    return fmt


def _parse_label(value: Any) -> float | None:
    """``value`` as a finite float >= 0, or ``None`` when it is not one."""
    if isinstance(value, (bool, dict, list)) or value is None:
        return None
    try:
        label = float(value)
    except (TypeError, ValueError):
        return None
    return label if np.isfinite(label) and label >= 0 else None


_SINGLE_TEXT_HINT = "; pass query_field=None (--query-field '') for single-text data"


def _check_columns(columns: list[str], fail: Callable[[int | None, str], DataError], pos: int | None, query_field: str | None,
                   text_field: str, label_field: str | None, require_labels: bool) -> None:
    """Raise ``fail(pos, ...)`` when a header lacks a configured column."""
    if text_field not in columns:
        raise fail(pos, f"no column {text_field!r} (columns: {columns})")
    if query_field is not None and query_field not in columns:
        raise fail(pos, f"no column {query_field!r} (columns: {columns}){_SINGLE_TEXT_HINT}")
    if require_labels and (label_field is None or label_field not in columns):
        raise fail(pos, f"missing label column {label_field!r} (columns: {columns})")


def _collect_rows(rows: Iterable[tuple[int, dict]], fail: Callable[[int | None, str], DataError], query_field: str | None,
                  text_field: str, label_field: str | None, require_labels: bool, has_labels: bool | None,
                  limit: int) -> tuple[list[str], list[str], list[float], bool | None]:
    """Check and collect ``(query, text[, label])`` of each row (see the module doc for the rules);
    ``has_labels=None`` (JSONL) lets the first row decide whether the file is labeled."""
    queries: list[str] = []
    texts: list[str] = []
    labels: list[float] = []
    first_pos: int | None = None
    for pos, row in rows:
        if limit and len(texts) >= limit:
            break
        if text_field not in row:
            raise fail(pos, f"missing field {text_field!r} (fields: {sorted(row)})")
        if query_field is not None and query_field not in row:
            raise fail(pos, f"missing field {query_field!r} (fields: {sorted(row)}){_SINGLE_TEXT_HINT}")
        text = row[text_field]
        query = "" if query_field is None else row[query_field]
        for name, value in ((text_field, text), (query_field, query)):
            if value is None:
                raise fail(pos, f"field {name!r} is null")
            if not isinstance(value, str):
                raise fail(pos, f"field {name!r} must be a string, got {value!r}")
        if has_labels is None:  # JSONL: the first row decides whether the file is labeled
            has_labels = label_field is not None and label_field in row
            first_pos = pos
            if require_labels and not has_labels:
                raise fail(pos, f"missing label field {label_field!r} (fields: {sorted(row)})")
        if has_labels:
            if label_field not in row:
                raise fail(pos, f"missing field {label_field!r} (line {first_pos} has one: label every row or none)")
            label = _parse_label(row[label_field])
            if label is None:
                raise fail(pos, f"field {label_field!r}: label {row[label_field]!r} is not a finite number >= 0")
            labels.append(label)
        elif label_field is not None and first_pos is not None and label_field in row:
            raise fail(pos, f"field {label_field!r} present here but not on line {first_pos}: label every row or none")
        queries.append(query.strip())
        texts.append(text.strip())
    return queries, texts, labels, has_labels


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
    """Read a table of (query, text[, label]) rows.

    Args:
        path: a ``.jsonl``/``.json``/``.csv``/``.tsv``/``.parquet`` file (or, with
            ``format="amazon-reviews"`` or a directory, Blitzer review files).
        query_field: query column; ``None`` or ``""`` for single-text mode.
        text_field: text (title / sentence) column; must be present on every row.
        label_field: label column; ``None`` or ``""`` to ignore labels.
        format: ``"auto"`` (by suffix) or one of :data:`FORMATS`.
        require_labels: make an absent label column an error.
        limit: ``> 0`` keeps only the first ``limit`` rows.
        encoding: text encoding of line-based files.

    Returns:
        :class:`Pairs` with ``labels`` set iff the label column is present.

    Raises:
        DataError: naming the file and line (or Parquet row) of the first problem.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, "file not found")
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "amazon-reviews":
        return read_amazon_reviews(path, with_labels=require_labels, limit=limit)
    if fmt not in FORMATS:
        raise DataError(path, None, f"unknown format {fmt!r}; expected one of {FORMATS}")
    query_field = query_field or None
    label_field = label_field or None

    def fail(pos: int | None, problem: str) -> DataError:
        if fmt == "parquet":
            return DataError(path, None, problem if pos is None else f"row {pos}: {problem}")
        return DataError(path, pos, problem)

    columns: list[str] | None = None  # formats with a header check their columns once, up front
    if fmt == "jsonl":
        rows: Iterable[tuple[int, dict]] = jsonl_rows(path, encoding)
    elif fmt == "parquet":
        columns, parquet_rows = parquet_table(path, [query_field, text_field, label_field])
        rows = parquet_rows()
    else:
        table = DelimitedTable(path, DELIMITERS[fmt], encoding)
        columns, rows = table.columns, table
    has_labels: bool | None = None if columns is None else (label_field is not None and label_field in columns)
    try:
        if columns is not None:
            _check_columns(columns, fail, 1 if fmt in ("csv", "tsv") else None, query_field, text_field, label_field, require_labels)
        queries, texts, labels, has_labels = _collect_rows(rows, fail, query_field, text_field, label_field, require_labels,
                                                           has_labels, limit)
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()
    if not texts:
        raise fail(None, "no rows" if fmt != "csv" and fmt != "tsv" else "no data rows after the header")
    return Pairs(queries, texts, np.asarray(labels, dtype=np.float32) if has_labels else None, source=str(path))


def write_pairs(pairs: Pairs, path: str | Path) -> None:
    """Atomically write ``pairs`` with columns ``query, text[, label]``; the suffix picks the format.

    ``.jsonl``/``.json``/``.ndjson`` (one object per line), ``.csv`` (quoted as needed),
    ``.tsv`` (unquoted, like SST-2: a tab or newline inside a field is a
    :class:`DataError`) or ``.parquet``.  On any error ``path`` is left untouched.
    """
    path = Path(path)
    fmt = _SUFFIXES.get(path.suffix.lower())
    labeled = pairs.labels is not None
    if fmt == "jsonl":
        pairs.to_jsonl(path)
    elif fmt in DELIMITERS:
        header = ["query", "text"] + (["label"] if labeled else [])
        rows = ([pairs.queries[i], pairs.texts[i]] + ([repr(float(pairs.labels[i]))] if labeled else [])
                for i in range(len(pairs)))
        write_delimited(path, header, rows, DELIMITERS[fmt])
    elif fmt == "parquet":
        columns: dict[str, tuple[Any, str]] = {"query": (pairs.queries, "string"), "text": (pairs.texts, "string")}
        if labeled:
            columns["label"] = (pairs.labels, "float32")
        write_parquet(path, columns)
    else:
        raise DataError(path, None, f"cannot write {path.suffix!r}; use .jsonl, .csv, .tsv or .parquet")
