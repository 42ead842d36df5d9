"""Read a time range of a UBI log from a cluster: ``ubi_queries`` + ``ubi_events``, joined on ``query_id``.

Every document is read, however many: each index is paged through a point in time (``POST <index>/_search/
point_in_time``) with ``search_after`` on ``_shard_doc`` (no ``from + size`` cap at 10,000, no scroll), ``page_size``
hits a page, and the point in time is closed afterwards, also on errors.

Which documents:

* queries with ``start <= timestamp < end`` (UTC; the query's time is when the search ran);
* events with ``start - margin <= timestamp < end + margin`` (a click comes after its search, clocks drift), plus
  events whose ``timestamp`` is missing or malformed (``ubi_events`` maps it with ``ignore_malformed``, so such
  events have no indexed timestamp and a range would silently drop them; they count as ``event_bad_timestamp`` when
  their query is in the range and are ignored otherwise).

The join (:func:`distilrank.plugin.ubi.join.join_ubi`) counts what it cannot use instead of failing; events inside
``[start, end)`` whose query is not among the queries read are looked up in ``ubi_queries`` by id, so a query just
before ``start`` (``event_query_outside_window``) is told apart from one that does not exist
(``event_unknown_query_id``). Positions come out 1-based: UBI's ordinals are 0-based
(:data:`distilrank.plugin.ubi.schema.ORDINAL_BASE`; pass ``ordinal_base=1`` for a front end that logs 1-based).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone

from distilrank.errors import DistilRankError
from distilrank.plugin import index_api
from distilrank.plugin.transport import Transport
from distilrank.plugin.ubi import schema
from distilrank.plugin.ubi.join import join_ubi
from distilrank.plugin.ubi.records import UbiLog

__all__ = ["join_ubi", "read_ubi_log", "scan_index"]

KEEP_ALIVE = "2m"
#: ``_source`` fields the join reads (``query``, the request body string, is left on the cluster)
QUERY_SOURCE = [schema.TIMESTAMP, schema.QUERY_ID, schema.CLIENT_ID, schema.USER_QUERY, schema.QUERY_ATTRIBUTES,
                schema.APPLICATION, *schema.HIT_IDS_SPELLINGS]
EVENT_SOURCE = [schema.TIMESTAMP, schema.QUERY_ID, schema.CLIENT_ID, schema.ACTION_NAME, schema.EVENT_ATTRIBUTES]


def _utc(ts: datetime, name: str) -> datetime:
    if not isinstance(ts, datetime):
        raise DistilRankError(f"{name} must be a datetime, got {ts!r}")
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def _range(start: datetime, end: datetime) -> dict:
    return {"range": {schema.TIMESTAMP: {"gte": schema.format_timestamp(start), "lt": schema.format_timestamp(end),
                                         "format": "strict_date_time"}}}


def scan_index(t: Transport, index: str, query: dict, *, source: Sequence[str] | bool = True,
               page_size: int = 5000) -> Iterator[dict]:
    """Every hit of ``query`` in ``index``: a point in time paged with ``search_after`` (sort ``_shard_doc``),
    ``page_size`` hits a page; the point in time is deleted when the iteration ends or fails.

    Raises :class:`DistilRankError` when the index does not exist (naming it, with the fix) or on a dry run (the
    point-in-time request would only be recorded)."""
    if page_size < 1:
        raise DistilRankError(f"page_size must be >= 1, got {page_size}")
    if not t.live("read a UBI log through a point in time"):
        raise DistilRankError("reading a UBI log needs a live connection: a dry run does not open a point in time")
    opened = index_api.pit_open(t, index, keep_alive=KEEP_ALIVE)
    if opened is None:
        raise DistilRankError(f"index {index!r} does not exist: create the UBI indices with 'distilrank plugin ubi-init' "
                              "(or POST /_plugins/ubi/initialize), or pass the index names your front end logs into")
    pit = opened["pit_id"]
    try:
        after = None
        while True:
            body: dict = {"size": page_size, "query": query, "_source": source if isinstance(source, bool) else list(source),
                          "pit": {"id": pit, "keep_alive": KEEP_ALIVE}, "sort": [{"_shard_doc": "asc"}],
                          "track_total_hits": False}
            if after is not None:
                body["search_after"] = after
            resp = index_api.pit_search(t, body)
            pit = resp.get("pit_id", pit)
            hits = resp["hits"]["hits"]
            yield from hits
            if len(hits) < page_size:
                return
            after = hits[-1]["sort"]
    finally:
        index_api.pit_close(t, pit)


def _existing_query_ids(t: Transport, index: str, ids: Sequence[str], chunk: int = 1000) -> set[str]:
    """Which of ``ids`` are the ``query_id`` of some document in ``index`` (any time)."""
    found: set[str] = set()
    for i in range(0, len(ids), chunk):
        part = list(ids[i:i + chunk])
        resp = index_api.search(t, index, {
            "size": 0, "query": {"terms": {schema.QUERY_ID: part}}, "track_total_hits": False,
            "aggs": {"ids": {"terms": {"field": schema.QUERY_ID, "size": len(part)}}}})  # distinct ids, duplicates or not
        found.update(str(b["key"]) for b in resp["aggregations"]["ids"]["buckets"])
    return found


def read_ubi_log(t: Transport, *, start: datetime, end: datetime, queries_index: str = schema.QUERIES_INDEX,
                 events_index: str = schema.EVENTS_INDEX, page_size: int = 5000,
                 margin: timedelta = timedelta(hours=1), ordinal_base: int = schema.ORDINAL_BASE) -> UbiLog:
    """The searches logged in ``[start, end)`` with their events, 1-based positions, UTC timestamps, and what was
    skipped (see the module docstring). Naive ``start`` / ``end`` are taken as UTC; ``margin``: how far before
    ``start`` and after ``end`` events of the range's searches are looked for."""
    start, end = _utc(start, "start"), _utc(end, "end")
    if not start < end:
        raise DistilRankError(f"the time range is empty: start {start.isoformat()} is not before end {end.isoformat()}")
    queries = list(scan_index(t, queries_index, _range(start, end), source=QUERY_SOURCE, page_size=page_size))
    events_query = {"bool": {"should": [_range(start - margin, end + margin),
                                        {"bool": {"must_not": {"exists": {"field": schema.TIMESTAMP}}}}],
                             "minimum_should_match": 1}}
    events = list(scan_index(t, events_index, events_query, source=EVENT_SOURCE, page_size=page_size))
    known = {str(q["_source"].get(schema.QUERY_ID)) for q in queries}
    orphans = sorted({str(e["_source"][schema.QUERY_ID]) for e in events
                      if e["_source"].get(schema.QUERY_ID) not in (None, "") and str(e["_source"][schema.QUERY_ID]) not in known
                      and _in_range(e["_source"].get(schema.TIMESTAMP), start, end)})
    outside = _existing_query_ids(t, queries_index, orphans) if orphans else set()
    return join_ubi(queries, events, ordinal_base=ordinal_base, window=(start, end), outside_window=outside)


def _in_range(value: object, start: datetime, end: datetime) -> bool:
    ts = schema.parse_timestamp(value)
    return ts is not None and start <= ts < end
