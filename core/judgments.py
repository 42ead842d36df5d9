"""Load judged query sets into :class:`Judgments` (query text -> doc id -> grade).

Accepted formats (``fmt="auto"`` picks one from the file name and content):

* ``csv`` / ``tsv``: a header row naming the columns (case-insensitive):
  query (``query``, ``query_text``, ``querytext``, ``q``), document
  (``doc_id``, ``docid``, ``doc``, ``document_id``), grade (``grade``,
  ``rating``, ``relevance``, ``label``, ``judgment``) and optionally a query id
  (``query_id``, ``qid``, ``queryid``).  The Chorus / Icecat
  ``query,docid,rating`` file is this format.  The delimiter is a tab when
  the header line holds one (or the file ends in ``.tsv``), else a comma.
* ``jsonl``: one JSON object per line with the same field names, or one judged query per line
  ``{"query": ..., "ratings": [{"asin": ..., "rating": 3}, ...]}`` (the ESCI ``judgments-dev.jsonl``).
* ``json``: a JSON array of such objects, or an OpenSearch
  Search-Relevance-Workbench judgment file
  ``{"judgmentRatings": [{"query": ..., "ratings": [{"docId": ..., "rating": "100.000"}]}]}``
  (the ESCI judgments shipped by OpenSearch use this, ratings 100/10/1/0), including a whole
  ``PUT _plugins/_search_relevance/judgments`` ``IMPORT_JUDGMENT`` body (its ``name``/``type``/``description``
  are ignored), such as the ``judgments.json`` of ``distilrank ab export-srw`` (ratings 0-3: no grade map).

Grades are kept as the raw numbers in the file (they must be finite and
``>= 0``) unless ``grade_map`` maps them.  For ESCI, the raw 100/10/1/0 scale
with *linear* gain is exactly the ESCI task-1 nDCG gain (Exact 1.0,
Substitute 0.1, Complement 0.01, Irrelevant 0, up to a factor 100 that
cancels in the normalisation); for the exponential ``2^g - 1`` gain use
``grade_map="esci"`` (:data:`ESCI_GRADE_MAP`: E=3, S=2, C=1, I=0).

A query set (:func:`load_queryset`) fixes which queries are run and in what
order; its queries without any judgment are kept with an empty grade dict so
that they are reported, never silently dropped.

Files are read through :mod:`distilrank.formats` (decoded lines, JSON lines and documents, CSV
records), so lines are physical lines of the file, a UTF-8 byte-order mark is ignored and a CSV
record is at the line it starts on.  Bad rows raise :class:`distilrank.errors.DataError`
(``"<file>:<line>: <problem>"``): a byte that is not UTF-8, invalid JSON, a missing or empty
field, a non-numeric / negative / non-finite grade, a grade not in ``grade_map``, the same
(query, doc) judged twice with different grades (both lines named).  Repeating a pair with the
same grade is accepted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from distilrank.errors import DataError, DistilRankError
from distilrank.formats.delimited import records
from distilrank.formats.jsonl import json_document, json_kind, jsonl_values
from distilrank.formats.lines import read_lines

#: ESCI labels on the SRW 100/10/1/0 scale -> grades 3/2/1/0 (Exact/Substitute/Complement/Irrelevant).
ESCI_GRADE_MAP: dict[float, float] = {100.0: 3.0, 10.0: 2.0, 1.0: 1.0, 0.0: 0.0}
GRADE_MAPS: dict[str, dict[float, float]] = {"esci": ESCI_GRADE_MAP}

QUERY_FIELDS = ("query", "query_text", "querytext", "q")
DOC_FIELDS = ("doc_id", "docid", "doc", "document_id", "asin")
GRADE_FIELDS = ("grade", "rating", "relevance", "label", "judgment")
QID_FIELDS = ("query_id", "qid", "queryid")
FORMATS = ("auto", "csv", "tsv", "jsonl", "json")

HUMAN = "human"


def model_source(name: str) -> str:
    """The ``judgment_source`` label of judgments made by a teacher model: ``"model (teacher cross-encoder <name>)"``."""
    return f"model (teacher cross-encoder {name})"


@dataclass(frozen=True, eq=False)
class Judgments(Mapping[str, Mapping[str, float]]):
    """Graded judgments of a query set, as a read-only mapping ``query text -> {doc id: grade}``.

    * ``grades``: judged queries only; each inner dict is non-empty, grades are floats ``>= 0``.
    * ``queries``: the queries to run, in order.  Iterating / ``len`` / ``[]`` cover exactly
      these; a query in ``queries`` without judgments maps to ``{}``.
    * ``query_ids``: optional query id per query text (from a ``query_id`` column).
    * ``source``: ``"human"`` or :func:`model_source` for teacher-made judgments.
    * ``origin``: where they came from (file path or a description), for reports.
    """

    grades: dict[str, dict[str, float]]
    queries: tuple[str, ...]
    query_ids: dict[str, str] = field(default_factory=dict)
    source: str = HUMAN
    origin: str = ""

    def __getitem__(self, query: str) -> Mapping[str, float]:
        if query not in self._query_set:
            raise KeyError(query)
        return self.grades.get(query, {})

    def __iter__(self) -> Iterator[str]:
        return iter(self.queries)

    def __len__(self) -> int:
        return len(self.queries)

    def __contains__(self, query: object) -> bool:
        return query in self._query_set

    @property
    def _query_set(self) -> frozenset[str]:
        cached = self.__dict__.get("_qs")
        if cached is None:
            cached = frozenset(self.queries)
            object.__setattr__(self, "_qs", cached)
        return cached

    @property
    def n_judgments(self) -> int:
        """Number of judged (query, doc) pairs over :attr:`queries`."""
        return sum(len(self.grades.get(q, {})) for q in self.queries)

    def unjudged_queries(self) -> list[str]:
        """Queries of :attr:`queries` that have no judgment at all, in order."""
        return [q for q in self.queries if not self.grades.get(q)]

    def with_queries(self, queries: Iterable[str]) -> Judgments:
        """The same grades restricted / extended to ``queries`` (order kept, duplicates dropped)."""
        return replace(self, queries=tuple(dict.fromkeys(queries)))


def from_pairs(grades: Mapping[str, Mapping[str, float]], *, source: str = HUMAN, origin: str = "<memory>",
               queries: Sequence[str] | None = None) -> Judgments:
    """Build :class:`Judgments` from an in-memory ``{query: {doc_id: grade}}`` (grades validated like file rows).

    ``queries`` defaults to every key of ``grades`` in order, so a query given with ``{}`` is kept
    as a query without judgments."""
    clean: dict[str, dict[str, float]] = {}
    for q, docs in grades.items():
        for d, g in docs.items():
            clean.setdefault(str(q), {})[str(d)] = _parse_grade(g, origin, None, f"query {q!r} doc {d!r}")
    order = tuple(dict.fromkeys(str(q) for q in (queries if queries is not None else grades)))
    return Judgments(clean, order, source=source, origin=origin)


# --- public loaders ------------------------------------------------------------


def load_judgments(path: str | Path, *, fmt: str = "auto", grade_map: Mapping[float, float] | str | None = None,
                   queryset: str | Path | Sequence[str] | None = None, source: str = HUMAN) -> Judgments:
    """Read a judgment file (see the module docstring for formats) into :class:`Judgments`.

    ``grade_map``: raw grade -> grade (a mapping, or ``"esci"``); a raw grade missing from it is
    a :class:`DataError`.  ``queryset``: a query-set file (:func:`load_queryset`) or a list of
    query texts; when given, :attr:`Judgments.queries` is that list (judged queries outside it are
    kept in ``grades`` but not run), else the judged queries in first-seen order.
    """
    p = Path(path)
    if fmt not in FORMATS:
        raise DistilRankError(f"{p}: unknown judgment format {fmt!r} (expected one of {', '.join(FORMATS)})")
    lines, text = _read(p, "judgment file not found")
    if fmt == "auto":
        fmt = _detect_format(p, text)
    if fmt in ("csv", "tsv"):
        rows = _csv_rows(p, lines, "\t" if fmt == "tsv" else None)
    elif fmt == "jsonl":
        rows = _jsonl_rows(p, lines)
    else:
        rows = _json_rows(p, text)
    mapping = _resolve_grade_map(grade_map, p)
    grades, qids = _collect(p, rows, mapping)
    if queryset is None:
        queries = tuple(grades)
    elif isinstance(queryset, (str, Path)):
        queries = tuple(load_queryset(queryset))
    else:
        queries = tuple(dict.fromkeys(str(q) for q in queryset))
    return Judgments(grades, queries, qids, source=source, origin=str(p))


def load_queryset(path: str | Path) -> list[str]:
    """Query texts of a query-set file, in file order, duplicates dropped (first kept).

    Formats: SRW ``{"querySetQueries": [{"queryText": ...}, ...]}``; a JSON array of strings or of
    objects with ``queryText`` / ``query``; JSONL of such objects; otherwise plain text, one query
    per non-empty line.  An entry without query text is a :class:`DataError` naming its line.
    """
    p = Path(path)
    lines, text = _read(p, "query set file not found")
    if not text.lstrip().startswith(("{", "[")):
        return list(dict.fromkeys(ln.strip() for _, ln in lines if ln.strip()))
    located: list[tuple[Any, int | None]]
    if json_kind(p, text) == "json":
        doc, where = json_document(p, text)
        entries = doc.get("querySetQueries") if isinstance(doc, dict) else doc
        if not isinstance(entries, list):
            raise DataError(p, 1, "expected a JSON array of queries or an object with 'querySetQueries'")
        located = [(e, where.get(id(e))) for e in entries]
    else:
        located = [(rec, line) for line, rec in jsonl_values(p, lines=lines)]
    out: list[str] = []
    for entry, line in located:
        q = entry
        if isinstance(entry, dict):
            q = _field(entry, ("queryText", "query_text", "query"))
        if not isinstance(q, str) or not q.strip():
            raise DataError(p, line, "query set entry has no query text ('queryText' or 'query')")
        out.append(q.strip())
    return list(dict.fromkeys(out))


# --- format detection and row readers -----------------------------------------
# The files are read through distilrank.formats (decoded lines, JSON, CSV records), which name the file and line of
# an undecodable byte, invalid JSON or a malformed CSV record.  A "row" is (line number, {canonical field: raw value});
# canonical fields: query, doc, grade, qid.


def _read(p: Path, missing: str) -> tuple[list[tuple[int, str]], str]:
    """The decoded lines of ``p`` and their text; ``missing`` is the problem reported for a file that is not there."""
    try:
        lines = read_lines(p)
    except FileNotFoundError:
        raise DataError(p, None, missing) from None
    return lines, "".join(line for _, line in lines)


def _detect_format(p: Path, text: str) -> str:
    suffix = p.suffix.lower()
    if suffix in (".tsv", ".csv"):
        return suffix[1:]
    return json_kind(p, text) if text.lstrip().startswith(("{", "[")) else "csv"


def _csv_rows(p: Path, lines: list[tuple[int, str]], delimiter: str | None) -> Iterator[tuple[int, dict[str, Any]]]:
    first = lines[0][1] if lines else ""
    if not first.strip():
        raise DataError(p, 1, "empty file or empty header line (expected e.g. 'query,docid,rating')")
    delim = delimiter or ("\t" if "\t" in first else ",")
    reader = records(p, lines, delim)
    header = [h.strip().lower() for h in next(reader)[1]]
    cols = {}
    for canon, names in (("query", QUERY_FIELDS), ("doc", DOC_FIELDS), ("grade", GRADE_FIELDS), ("qid", QID_FIELDS)):
        idx = next((header.index(n) for n in names if n in header), None)
        if idx is None and canon != "qid":
            raise DataError(p, 1, f"header {header!r} has no {canon} column (one of {', '.join(names)})")
        cols[canon] = idx
    for line, fields in reader:  # line: the first physical line of the record
        if not any(f.strip() for f in fields):
            continue
        row = {}
        for canon, idx in cols.items():
            if idx is None:
                continue
            if idx >= len(fields):
                raise DataError(p, line, f"row has {len(fields)} fields, missing column {header[idx]!r}")
            row[canon] = fields[idx]
        yield line, row


def _jsonl_rows(p: Path, lines: list[tuple[int, str]]) -> Iterator[tuple[int, dict[str, Any]]]:
    for line, obj in jsonl_values(p, lines=lines):
        if isinstance(obj, dict) and isinstance(obj.get("ratings"), list):
            # one judged query per line: {"query": ..., "ratings": [{"asin"|"doc_id": ..., "rating": ...}, ...]}
            query, qid = _field(obj, QUERY_FIELDS + ("queryText",)), _field(obj, QID_FIELDS + ("queryId",))
            for r in obj["ratings"]:
                if not isinstance(r, dict):
                    raise DataError(p, line, "each rating must be an object with a doc id and a rating")
                yield line, {"query": query, "doc": _field(r, DOC_FIELDS + ("docId",)), "grade": _field(r, GRADE_FIELDS),
                             "qid": qid}
            continue
        yield line, _record(p, line, obj)


def _json_rows(p: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    doc, lines = json_document(p, text)
    if isinstance(doc, dict) and "judgmentRatings" in doc:
        groups = doc["judgmentRatings"]
        if not isinstance(groups, list):
            raise DataError(p, lines.get(id(doc)), "'judgmentRatings' must be an array")
        for group in groups:
            gline = lines.get(id(group))
            if not isinstance(group, dict):
                raise DataError(p, gline, "each judgmentRatings entry must be an object with 'query' and 'ratings'")
            query = group.get("query")
            ratings = group.get("ratings")
            if not isinstance(ratings, list):
                raise DataError(p, gline, "judgmentRatings entry has no 'ratings' array")
            for r in ratings:
                rline = lines.get(id(r), gline)
                if not isinstance(r, dict):
                    raise DataError(p, rline, "each rating must be an object with 'docId' and 'rating'")
                yield rline, {"query": query, "doc": _field(r, ("docId",) + DOC_FIELDS),
                              "grade": _field(r, GRADE_FIELDS), "qid": group.get("queryId")}
        return
    if not isinstance(doc, list):
        raise DataError(p, 1, "expected a JSON array of judgment objects or an object with 'judgmentRatings'")
    for obj in doc:
        line = lines.get(id(obj))
        yield line, _record(p, line, obj)


def _record(p: Path, line: int | None, obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DataError(p, line, f"expected a JSON object with query, doc_id and grade, got {type(obj).__name__}")
    return {"query": _field(obj, QUERY_FIELDS + ("queryText",)), "doc": _field(obj, DOC_FIELDS + ("docId",)),
            "grade": _field(obj, GRADE_FIELDS), "qid": _field(obj, QID_FIELDS + ("queryId",))}


def _field(obj: Mapping[str, Any], names: Sequence[str]) -> Any:
    lower = {str(k).lower(): v for k, v in obj.items()}
    for n in names:
        if n.lower() in lower:
            return lower[n.lower()]
    return None


# --- validation ---------------------------------------------------------------


def _resolve_grade_map(grade_map: Mapping[float, float] | str | None, p: Path) -> dict[float, float] | None:
    if grade_map is None:
        return None
    if isinstance(grade_map, str):
        if grade_map not in GRADE_MAPS:
            raise DistilRankError(f"{p}: unknown grade_map {grade_map!r} (known: {', '.join(GRADE_MAPS)})")
        return GRADE_MAPS[grade_map]
    out = {}
    for k, v in grade_map.items():
        out[float(k)] = _parse_grade(v, "grade_map", None, f"mapped grade for {k!r}")
    return out


def _parse_grade(raw: Any, path: str | Path, line: int | None, what: str = "grade") -> float:
    if isinstance(raw, bool) or raw is None:
        raise DataError(path, line, f"{what}: missing or non-numeric grade {raw!r}")
    try:
        g = float(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError):
        raise DataError(path, line, f"{what}: grade {raw!r} is not a number") from None
    if not math.isfinite(g) or g < 0:
        raise DataError(path, line, f"{what}: grade {raw!r} must be a finite number >= 0")
    return g


def _text(raw: Any, p: Path, line: int | None, name: str) -> str:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and name == "doc id":
        raw = str(raw)  # numeric ids in JSON
    if not isinstance(raw, str) or not raw.strip():
        raise DataError(p, line, f"missing or empty {name}")
    return raw.strip()


def _collect(p: Path, rows: Iterable[tuple[int | None, dict[str, Any]]],
             grade_map: dict[float, float] | None) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    grades: dict[str, dict[str, float]] = {}
    seen_line: dict[tuple[str, str], int | None] = {}
    qids: dict[str, str] = {}
    for line, row in rows:
        query = _text(row.get("query"), p, line, "query")
        doc = _text(row.get("doc"), p, line, "doc id")
        grade = _parse_grade(row.get("grade"), p, line)
        if grade_map is not None:
            if grade not in grade_map:
                raise DataError(p, line, f"grade {grade:g} not in grade_map (keys {sorted(grade_map)})")
            grade = grade_map[grade]
        qid = row.get("qid")
        if qid not in (None, ""):
            qid = str(qid).strip()
            if qids.setdefault(query, qid) != qid:
                raise DataError(p, line, f"query {query!r} has query id {qid!r} here but {qids[query]!r} earlier")
        docs = grades.setdefault(query, {})
        if doc in docs and docs[doc] != grade:
            first = seen_line[(query, doc)]
            raise DataError(p, line, f"query {query!r} doc {doc!r} judged {grade:g} here but {docs[doc]:g} "
                                     f"at line {first}: conflicting duplicate")
        docs[doc] = grade
        seen_line.setdefault((query, doc), line)
    return grades, qids
