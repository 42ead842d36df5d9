"""Decoded physical lines of a text file, numbered from 1: the position every text format reports errors at.

``encoding`` must be ASCII-compatible (UTF-8, Latin-1, cp1252, ...): lines are split on ``b"\\n"`` before decoding, so
an undecodable byte is reported with its line.  A UTF-8 byte-order mark at the start of the file is dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from distilrank.errors import DataError


def decoded_lines(path: str | Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each physical line of ``path``, terminators kept, decoded one line at a time.

    The file is opened on the first ``next()`` and closed when iteration ends or the generator is closed.

    Raises:
        DataError: ``"<file>:<line>: not <encoding> text: ..."`` for the first line that does not decode.
        OSError: the file cannot be opened (callers that want their own "not found" message check first).
    """
    path = Path(path)
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DataError(path, lineno, f"not {encoding} text: {exc.reason} at byte {exc.start} of the line") from None
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]
            yield lineno, line


def read_lines(path: str | Path, encoding: str = "utf-8") -> list[tuple[int, str]]:
    """Every ``(line number, text)`` of :func:`decoded_lines`, for formats that look at the whole file first."""
    return list(decoded_lines(path, encoding))
