"""Read and write pair tables: JSONL, CSV, TSV, Parquet, Blitzer Amazon reviews, Icecat products.

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
    physical line (CSV/TSV: the header is line 1; blank JSONL lines count but are
    skipped).  Parquet has no lines: ``"<file>: row <i>: <problem>"`` with the
    0-based row index.

Encodings
    ``encoding`` must be ASCII-compatible (UTF-8, Latin-1, cp1252, ...): files are
    decoded line by line so an undecodable byte is reported with its line.  A
    UTF-8 byte-order mark is ignored.
"""

from __future__ import annotations

import csv
import html
import json
import re
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from distilrank.atomic import atomic_open, atomic_path
from distilrank.errors import DataError
from distilrank.pairs import Pairs

FORMATS = ("jsonl", "csv", "tsv", "parquet", "amazon-reviews")
_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv",
             ".parquet": "parquet", ".review": "amazon-reviews"}

try:  # SST-2 and product catalogues can have long fields; the csv default limit is 128 KiB.
    csv.field_size_limit(sys.maxsize)
except OverflowError:  # pragma: no cover - platforms where C long is 32 bits
    csv.field_size_limit(2**31 - 1)


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


# ---------------------------------------------------------------------------
# row sources: each yields (position, row dict); position is a line or a row index


def _decoded_lines(path: Path, encoding: str) -> Iterator[tuple[int, str]]:
    """Physical lines of ``path`` (terminators kept) with 1-based numbers, decoded one by one."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DataError(path, lineno, f"not {encoding} text: {exc.reason} at byte {exc.start} of the line") from None
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]
            yield lineno, line


def jsonl_rows(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` of a JSON-lines file; blank lines are skipped; :class:`DataError` naming the line
    for invalid JSON or a line that is not an object, and for a file with no JSON lines."""
    seen_any = False
    for lineno, line in _decoded_lines(path, encoding):
        if not line.strip():
            continue
        seen_any = True
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(row, dict):
            raise DataError(path, lineno, f"expected a JSON object, got {type(row).__name__}")
        yield lineno, row
    if not seen_any:
        raise DataError(path, None, "empty file: no JSON lines")


class _Delimited:
    """A CSV/TSV file: the header (line 1) is read on construction, rows on iteration.

    TSV uses ``csv.QUOTE_NONE`` (SST-2 sentences contain bare quotes).  Blank lines
    are tolerated only at the end of the file; a blank or all-empty row elsewhere is
    an error, as is a row with the wrong number of fields.
    """

    def __init__(self, path: Path, encoding: str, delimiter: str):
        self.path = path
        self._lines = _decoded_lines(path, encoding)
        quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
        self._reader = csv.reader((line for _, line in self._lines), delimiter=delimiter, quoting=quoting)
        try:
            header = next(self._reader, None)
        except csv.Error as exc:
            self.close()
            raise DataError(path, 1, f"malformed header: {exc}") from None
        if header is None or not any(h.strip() for h in header):
            self.close()
            raise DataError(path, 1, "empty file (expected a header line)")
        self.columns = [h.strip() for h in header]
        dupes = sorted({c for c in self.columns if self.columns.count(c) > 1})
        if dupes:
            self.close()
            raise DataError(path, 1, f"duplicate column names {dupes}")

    def close(self) -> None:
        """Close the underlying file (also done when iteration ends)."""
        self._lines.close()

    def __iter__(self) -> Iterator[tuple[int, dict]]:
        try:
            yield from self._rows()
        finally:
            self.close()

    def _rows(self) -> Iterator[tuple[int, dict]]:
        blank: int | None = None  # first blank line not yet known to be trailing
        n = len(self.columns)
        while True:
            try:
                row = next(self._reader, None)
            except csv.Error as exc:
                raise DataError(self.path, self._reader.line_num, f"malformed row: {exc}") from None
            if row is None:
                return
            lineno = self._reader.line_num
            if not row:
                blank = lineno if blank is None else blank
                continue
            if blank is not None:
                raise DataError(self.path, blank, "empty row")
            if len(row) != n:
                raise DataError(self.path, lineno, f"expected {n} fields {self.columns}, got {len(row)}")
            if not any(v.strip() for v in row):
                raise DataError(self.path, lineno, "empty row")
            yield lineno, dict(zip(self.columns, row))


def _parquet_table(path: Path, wanted: Sequence[str | None]) -> tuple[list[str], Callable[[], Iterator[tuple[int, dict]]]]:
    """Column names of a Parquet file and a row iterator over the wanted columns that exist."""
    import pyarrow.parquet as pq

    try:
        columns = list(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DataError(path, None, f"cannot read Parquet: {exc}") from None

    def rows() -> Iterator[tuple[int, dict]]:
        names = [c for c in dict.fromkeys(wanted) if c is not None and c in columns]
        try:
            table = pq.read_table(path, columns=names)
        except Exception as exc:
            raise DataError(path, None, f"cannot read Parquet: {exc}") from None
        data = {name: table.column(name).to_pylist() for name in names}
        for i in range(table.num_rows):
            yield i, {name: data[name][i] for name in names}

    return columns, rows


# ---------------------------------------------------------------------------
# read_pairs


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
        columns, parquet_rows = _parquet_table(path, [query_field, text_field, label_field])
        rows = parquet_rows()
    else:
        table = _Delimited(path, encoding, "," if fmt == "csv" else "\t")
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


# ---------------------------------------------------------------------------
# write_pairs


def write_pairs(pairs: Pairs, path: str | Path) -> None:
    """Atomically write ``pairs`` with columns ``query, text[, label]``; the suffix picks the format.

    ``.jsonl``/``.json`` (one object per line), ``.csv`` (quoted as needed),
    ``.tsv`` (unquoted, like SST-2: a tab or newline inside a field is a
    :class:`DataError`) or ``.parquet``.  On any error ``path`` is left untouched.
    """
    path = Path(path)
    fmt = _SUFFIXES.get(path.suffix.lower())
    labeled = pairs.labels is not None
    header = ["query", "text"] + (["label"] if labeled else [])
    if fmt == "jsonl":
        pairs.to_jsonl(path)
    elif fmt == "csv":
        with atomic_open(path, newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            for i in range(len(pairs)):
                w.writerow([pairs.queries[i], pairs.texts[i]] + ([repr(float(pairs.labels[i]))] if labeled else []))
    elif fmt == "tsv":
        with atomic_open(path, newline="") as fh:
            fh.write("\t".join(header) + "\n")
            for i in range(len(pairs)):
                fields = [pairs.queries[i], pairs.texts[i]]
                if any(c in f for f in fields for c in "\t\r\n"):
                    raise DataError(path, i + 2, "a tab or newline inside a field cannot be written as TSV; use .jsonl or .csv")
                fh.write("\t".join(fields + ([repr(float(pairs.labels[i]))] if labeled else [])) + "\n")
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols: dict[str, Any] = {"query": pa.array(pairs.queries, pa.string()), "text": pa.array(pairs.texts, pa.string())}
        if labeled:
            cols["label"] = pa.array(pairs.labels, pa.float32())
        with atomic_path(path) as tmp:
            pq.write_table(pa.table(cols), tmp)
    else:
        raise DataError(path, None, f"cannot write {path.suffix!r}; use .jsonl, .csv, .tsv or .parquet")


# ---------------------------------------------------------------------------
# sentences


_SENTENCE_BREAK = re.compile(
    r"""(?:(?<=[.!?])|(?<=[.!?]["')\]]))\s+(?=["'(\[]?[A-Z0-9])   # end punctuation, space, capital or digit
      | \s*\n[ \t]*\n\s*                                          # blank line (paragraph)
      | [ \t]*\n[ \t]*(?=["'(\[]?[A-Z0-9*•-])                      # line break before a capital / list item
    """,
    re.X,
)
_ABBREVIATIONS = {"mr.", "mrs.", "ms.", "dr.", "st.", "vs.", "jr.", "sr.", "no.", "e.g.", "i.e.", "prof.", "mt."}


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences with a simple regex; whitespace inside each sentence is normalised.

    A boundary is ``.``/``!``/``?`` (optionally followed by a closing quote or
    bracket) then whitespace then a capital letter or digit; a blank line; or a
    line break before a capital, digit or list bullet.  A break after a common
    abbreviation (``Mr.``, ``e.g.``) or a single initial (``C.``) is undone.
    Empty pieces are dropped.
    """
    pieces = [" ".join(p.split()) for p in _SENTENCE_BREAK.split(text)]
    out: list[str] = []
    for piece in pieces:
        if not piece:
            continue
        if out:
            last = out[-1].rsplit(" ", 1)[-1].lower()
            if last in _ABBREVIATIONS or (len(last) == 2 and last[0].isalpha() and last[1] == "."):
                out[-1] = f"{out[-1]} {piece}"
                continue
        out.append(piece)
    return out


# ---------------------------------------------------------------------------
# Blitzer et al. 2007 Amazon reviews


_REVIEW_TAG = re.compile(r"<(/?)review>")


@lru_cache(maxsize=32)
def _element(name: str) -> re.Pattern[str]:
    return re.compile(rf"<{re.escape(name)}>(.*?)</{re.escape(name)}>", re.S)


def _review_files(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """Expand files and directories (their ``*.review`` files, in name order)."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(p.glob("*.review"))
            if not found:
                raise DataError(p, None, "no *.review files in this directory")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise DataError(p, None, "file not found")
    if not files:
        raise DataError("<amazon-reviews>", None, "no review files given")
    return files


def _decode_review_file(path: Path, encoding: str) -> str:
    data = path.read_bytes()
    if encoding != "auto":
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise DataError(path, data.count(b"\n", 0, exc.start) + 1, f"not {encoding} text: {exc.reason}") from None
    try:  # the files circulate both as the original Latin-1 and re-encoded as UTF-8
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _review_blocks(path: Path, text: str) -> Iterator[tuple[int, str]]:
    """``(line, body)`` of each ``<review>...</review>`` element; unbalanced tags are errors."""
    counted_to, line = 0, 1  # running line count, so the whole file is scanned once

    def line_at(pos: int) -> int:
        nonlocal counted_to, line
        line += text.count("\n", counted_to, pos)
        counted_to = pos
        return line

    start: int | None = None
    start_line = 0
    count = 0
    for m in _REVIEW_TAG.finditer(text):
        if m.group(1) != "/":
            if start is not None:
                raise DataError(path, start_line, "<review> not closed before the next <review>")
            start, start_line = m.end(), line_at(m.start())
        else:
            if start is None:
                raise DataError(path, line_at(m.start()), "</review> without an opening <review>")
            count += 1
            yield start_line, text[start : m.start()]
            start = None
    if start is not None:
        raise DataError(path, start_line, "<review> not closed at end of file")
    if count == 0:
        raise DataError(path, None, "no <review> elements found (is this a Blitzer .review file?)")


def _element_text(block: str, name: str) -> str | None:
    m = _element(name).search(block)
    return html.unescape(m.group(1)).strip() if m else None


def read_amazon_reviews(
    paths: str | Path | Sequence[str | Path],
    *,
    field: str = "review_text",
    include_title: bool = False,
    sentences: bool = False,
    min_words: int = 3,
    with_labels: bool = False,
    limit: int = 0,
    encoding: str = "auto",
) -> Pairs:
    """Read Blitzer et al. (2007) ``*.review`` pseudo-XML files as single-text pairs.

    Args:
        paths: a file, a directory (its ``*.review`` files in name order), or a list of either.
        field: the element holding the text (``review_text``, ``title``, ...); every
            review must have it.
        include_title: prefix the text with ``"<title>. "`` when the review has a title.
        sentences: emit one row per sentence (:func:`split_sentences`) with at
            least ``min_words`` words, since SST-2 is sentence-level; otherwise
            one row per review.  Reviews with no text yield no rows.
        with_labels: attach 1 for ``*.positive.review`` and 0 for
            ``*.negative.review`` (other names are then an error).
        limit: ``> 0`` stops after that many rows.
        encoding: ``"auto"`` tries UTF-8 and falls back to Latin-1 per file.

    Returns:
        :class:`Pairs` with empty queries; HTML entities decoded, whitespace normalised.

    Raises:
        DataError: missing file, unbalanced ``<review>`` tags, or a review without ``field``.
    """
    files = _review_files(paths)
    texts: list[str] = []
    labels: list[float] = []
    for f in files:
        polarity = 1.0 if ".positive." in f.name else 0.0 if ".negative." in f.name else None
        if with_labels and polarity is None:
            raise DataError(f, None, "cannot tell polarity from the file name (*.positive.review / *.negative.review)")
        for line, block in _review_blocks(f, _decode_review_file(f, encoding)):
            body = _element_text(block, field)
            if body is None:
                raise DataError(f, line, f"review without <{field}>")
            title = _element_text(block, "title") if include_title and field != "title" else None
            text = f"{title}. {body}" if title else body
            if sentences:
                pieces = [s for s in split_sentences(text) if len(s.split()) >= min_words]
            else:
                pieces = [" ".join(text.split())] if text.strip() else []
            for piece in pieces:
                if limit and len(texts) >= limit:
                    break
                texts.append(piece)
                labels.append(polarity or 0.0)
        if limit and len(texts) >= limit:
            break
    source = str(paths) if isinstance(paths, (str, Path)) else ",".join(str(p) for p in paths)
    return Pairs([""] * len(texts), texts, np.asarray(labels, np.float32) if with_labels else None, source=source)


# ---------------------------------------------------------------------------
# Icecat products


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def read_icecat_products(path: str | Path) -> list[dict]:
    """Products from Open Icecat ``products-*.json.zip`` files, in file then array order.

    ``path`` is one zip or a directory of ``products-*.json.zip`` (numeric order).
    Each zip member is a JSON array of product objects; every product must have an
    ``id`` (returned as a string).  The dicts are otherwise as stored (``title``,
    ``name``, ``short_description``, ``supplier``, ``price``, ``attr_*``, ...).

    Raises:
        DataError: naming ``zip!member`` (and the product index) of the first problem.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("products-*.json.zip"), key=_natural_key)
        if not files:
            raise DataError(path, None, "no products-*.json.zip files in this directory")
    elif path.exists():
        files = [path]
    else:
        raise DataError(path, None, "file not found")
    products: list[dict] = []
    for f in files:
        try:
            with zipfile.ZipFile(f) as zf:
                members = [(name, zf.read(name)) for name in zf.namelist() if not name.endswith("/")]
        except zipfile.BadZipFile as exc:
            raise DataError(f, None, f"not a zip file: {exc}") from None
        for name, raw in members:
            where = f"{f}!{name}"
            try:
                items = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataError(where, exc.lineno, f"invalid JSON: {exc.msg}") from None
            except UnicodeDecodeError as exc:
                raise DataError(where, None, f"not UTF-8 text: {exc.reason}") from None
            if not isinstance(items, list):
                raise DataError(where, None, f"expected a JSON array of products, got {type(items).__name__}")
            for i, item in enumerate(items):
                if not isinstance(item, dict) or item.get("id") in (None, ""):
                    raise DataError(where, None, f"product {i}: expected an object with an 'id', got {str(item)[:80]!r}")
                item["id"] = str(item["id"])
                products.append(item)
    return products
