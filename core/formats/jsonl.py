"""JSON text: JSON lines (one value per line) and whole JSON documents with the line of each object.

Errors are :class:`~distilrank.errors.DataError` ``"<file>:<line>: invalid JSON: <msg> (column <c>)"``; lines are
physical lines of the file (:mod:`distilrank.formats.lines`), blank lines count but are skipped.
"""

from __future__ import annotations

import bisect
import json
import json.decoder
import json.scanner
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from distilrank.errors import DataError
from distilrank.formats.lines import decoded_lines


def jsonl_values(path: str | Path, encoding: str = "utf-8", *,
                 lines: Iterable[tuple[int, str]] | None = None) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of each non-blank line of a JSON-lines file; the value may be any JSON value.

    ``lines``: already decoded ``(line number, text)`` of ``path`` (default: read it with
    :func:`~distilrank.formats.lines.decoded_lines`); ``path`` then only names the file in errors.

    Raises:
        DataError: naming the line of invalid JSON (or of an undecodable byte).
    """
    source = decoded_lines(path, encoding) if lines is None else lines
    for lineno, line in source:
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        yield lineno, value


def jsonl_rows(path: str | Path, encoding: str = "utf-8") -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` of a JSON-lines file whose every non-blank line is a JSON object.

    Raises:
        DataError: naming the line for invalid JSON or a line that is not an object; naming only the file when it
            holds no JSON line at all.
    """
    seen_any = False
    for lineno, row in jsonl_values(path, encoding):
        seen_any = True
        if not isinstance(row, dict):
            raise DataError(path, lineno, f"expected a JSON object, got {type(row).__name__}")
        yield lineno, row
    if not seen_any:
        raise DataError(path, None, "empty file: no JSON lines")


def json_document(path: str | Path, text: str) -> tuple[Any, dict[int, int]]:
    """``json.loads(text)`` of the file ``path`` plus ``{id(obj): line of its '{'}`` for every JSON object in it.

    The line map lets a caller name the line of a bad entry deep inside the document; it holds the objects of the
    returned value only (look them up while the value is alive).

    Raises:
        DataError: ``"<file>:<line>: invalid JSON: ..."``.
    """
    newlines = [i for i, c in enumerate(text) if c == "\n"]
    located: dict[int, int] = {}
    decoder = json.JSONDecoder()

    def parse_object(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
        obj, end = json.decoder.JSONObject(s_and_end, *args)
        located[id(obj)] = bisect.bisect_left(newlines, s_and_end[1] - 1) + 1
        return obj, end

    decoder.parse_object = parse_object  # type: ignore[assignment]
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[assignment]
    try:
        return decoder.decode(text), located
    except json.JSONDecodeError as exc:
        raise DataError(path, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from None


def json_kind(path: str | Path, text: str) -> str:
    """``"json"`` (one document) or ``"jsonl"`` (one value per line) for JSON ``text`` read from ``path``.

    By suffix (``.jsonl``/``.ndjson``: JSON lines; ``.json``: a document), then by content: text starting with ``[``
    or parsing as one document is a document; otherwise it is JSON lines when its first non-blank line parses.
    Broken JSON stays ``"json"``, so the error of :func:`json_document` names the broken line.
    """
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json" or text.lstrip().startswith("["):
        return "json"
    try:
        json.loads(text)
        return "json"
    except json.JSONDecodeError:
        pass
    try:
        json.loads(next(ln for ln in text.splitlines() if ln.strip()))
        return "jsonl"
    except (json.JSONDecodeError, StopIteration):
        return "json"
