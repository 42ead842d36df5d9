"""CSV and TSV: records with the physical line they start on, header tables, and writing.

A record's position is the 1-based physical line it starts on (a quoted CSV field may span lines); the header is
line 1.  CSV fields may be quoted; TSV, as read by :class:`DelimitedTable` and written by :func:`write_delimited`,
is unquoted (``csv.QUOTE_NONE``: SST-2 sentences hold bare quotes), so a tab or newline cannot appear in a field.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from distilrank.atomic import atomic_open
from distilrank.errors import DataError
from distilrank.formats.lines import decoded_lines

#: format name -> delimiter
DELIMITERS = {"csv": ",", "tsv": "\t"}

try:  # SST-2 and product catalogues can have long fields; the csv default limit is 128 KiB.
    csv.field_size_limit(sys.maxsize)
except OverflowError:  # pragma: no cover - platforms where C long is 32 bits
    csv.field_size_limit(2**31 - 1)


def records(path: str | Path, lines: Iterable[tuple[int, str]], delimiter: str, *,
            quoted: bool = True) -> Iterator[tuple[int, list[str]]]:
    """``(first physical line, fields)`` of each record of ``lines`` (decoded lines of ``path``, numbered from 1).

    A blank line is a record with no fields.  ``quoted=False`` reads quote characters literally.

    Raises:
        DataError: ``"<file>:<line>: malformed header: ..."`` / ``"malformed row: ..."`` where the csv module fails.
    """
    quoting = csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE
    reader = csv.reader((line for _, line in lines), delimiter=delimiter, quoting=quoting)
    previous = 0
    while True:
        try:
            fields = next(reader, None)
        except csv.Error as exc:
            what = "header" if previous == 0 else "row"
            raise DataError(path, reader.line_num, f"malformed {what}: {exc}") from None
        if fields is None:
            return
        start, previous = previous + 1, reader.line_num
        yield start, fields


class DelimitedTable:
    """A CSV/TSV file with a header: :attr:`columns` are read on construction, ``(line, {column: value})`` rows on
    iteration (the file is closed when iteration ends or :meth:`close` is called).

    Column names are stripped and must be unique.  Blank lines are tolerated only at the end of the file; a blank or
    all-empty row elsewhere is an error, as is a row with the wrong number of fields.  TSV is read unquoted.

    Raises:
        DataError: naming the file and line: an undecodable byte, an empty file or header, duplicate column names,
            a malformed, blank or short/long row.
    """

    def __init__(self, path: str | Path, delimiter: str, encoding: str = "utf-8"):
        self.path = Path(path)
        self._lines = decoded_lines(self.path, encoding)
        self._records = records(self.path, self._lines, delimiter, quoted=delimiter != "\t")
        try:
            _, header = next(self._records, (1, None))
        except DataError:
            self.close()
            raise
        if header is None or not any(h.strip() for h in header):
            self.close()
            raise DataError(path, 1, "empty file (expected a header line)")
        self.columns = [h.strip() for h in header]
        dupes = sorted({c for c in self.columns if self.columns.count(c) > 1})
        if dupes:
            self.close()
            raise DataError(path, 1, f"duplicate column names {dupes}")

    def close(self) -> None:
        """Close the underlying file."""
        self._records.close()
        self._lines.close()

    def __iter__(self) -> Iterator[tuple[int, dict[str, str]]]:
        try:
            yield from self._rows()
        finally:
            self.close()

    def _rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        blank: int | None = None  # first blank line not yet known to be trailing
        n = len(self.columns)
        for lineno, row in self._records:
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


def write_delimited(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[str]], delimiter: str) -> None:
    """Atomically write a header line and ``rows``: CSV quoted as needed, TSV (``delimiter="\\t"``) unquoted.

    Raises:
        DataError: a TSV field holding a tab or newline, naming the line it would be on; ``path`` is then left as it
            was.
    """
    path = Path(path)
    with atomic_open(path, newline="") as fh:
        if delimiter != "\t":
            writer = csv.writer(fh, delimiter=delimiter)
            writer.writerow(header)
            writer.writerows(rows)
            return
        fh.write("\t".join(header) + "\n")
        for lineno, fields in enumerate(rows, 2):
            if any(c in f for f in fields for c in "\t\r\n"):
                raise DataError(path, lineno, "a tab or newline inside a field cannot be written as TSV; use .jsonl or .csv")
            fh.write("\t".join(fields) + "\n")
