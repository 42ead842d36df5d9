"""Join raw ``ubi_queries`` and ``ubi_events`` documents into :class:`~distilrank.plugin.ubi.records.UbiLog` records.

Pure (no cluster): :func:`join_ubi` takes the documents as search hits (``{"_id", "_source"}``) or bare sources, so
a log read from a cluster (:mod:`distilrank.plugin.ubi.reader`) and one built in a test go through the same code.

What is skipped and counted (``UbiLog.malformed[reason]``, with examples), never raised:

======================================  ===============================================================================
reason                                  meaning
======================================  ===============================================================================
``query_missing_query_id``              a query without a non-empty string ``query_id``
``query_duplicate_query_id``            a second query with the same ``query_id`` (the first is kept)
``query_missing_client_id``             a query without a non-empty string ``client_id`` (arms are per client)
``query_missing_user_query``            a query without a non-empty string ``user_query``
``query_bad_timestamp``                 a query whose ``timestamp`` is missing or unreadable
``query_missing_hit_ids``               a query with no hit-id list under any spelling (``query_response_hit_ids``,
                                        ``query_response_object_ids``, ``query_response_objects_ids``)
``query_bad_hit_ids``                   a hit-id list that is not a list of strings / numbers
``query_bad_attributes``                ``query_attributes`` that is not an object, or a ``teams`` list that is not
                                        JSON text / a list of one team per hit
``event_missing_query_id``              an event without a ``query_id``
``event_unknown_query_id``              an event whose ``query_id`` names no query in the index
``event_query_outside_window``          an event inside the window whose query is outside it (the reader looks it up)
``event_of_malformed_query``            an event of a query skipped above
``event_bad_timestamp``                 an event whose ``timestamp`` is missing or unreadable
``event_missing_action``                an event without a non-empty string ``action_name``
``event_unknown_object``                an event on an object id that is not among its query's hit ids
``event_bad_position``                  an ``event_attributes.position.ordinal`` that is not an integer >= the base
======================================  ===============================================================================

Positions: ``ordinal_base`` is what the log's first hit is numbered (UBI: 0, :data:`schema.ORDINAL_BASE`); records get
``ordinal - ordinal_base + 1`` (1-based). An event naming a hit but no ordinal gets the hit's 1-based rank in the
query's hit list. Timestamps become UTC (:func:`schema.parse_timestamp`).

Window: with ``window=(start, end)`` (the time range a reader asked for; events are read with a margin around it),
an event that matches no query is counted only when its own timestamp is inside ``[start, end)``; outside it, or with
no readable timestamp, it belongs to another window and is ignored silently. Without a window every event counts.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from distilrank.plugin.ubi import schema
from distilrank.plugin.ubi.records import LoggedSearch, UbiEvent, UbiLog


def _source(doc: Mapping[str, Any]) -> tuple[dict, str]:
    """``(source, label)`` of a search hit or a bare source; the label names the document in examples."""
    if "_source" in doc and isinstance(doc.get("_source"), Mapping):
        return dict(doc["_source"]), f"{doc.get('_index', '?')}/{doc.get('_id', '?')}"
    src = dict(doc)
    return src, f"query_id={src.get(schema.QUERY_ID)!r}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _hit_list(value: Any) -> list[str] | None:
    """A hit-id list as strings, or ``None`` when it is not one (a single id is a list of one)."""
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        return None
    return [str(v) for v in value]


def _attributes(value: Any, n_hits: int) -> dict | None:
    """``query_attributes`` as a dict with ``teams`` decoded to a list (``None`` when malformed)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        return None
    attrs = dict(value)
    teams = attrs.get("teams")
    if teams is not None:
        if isinstance(teams, str):
            try:
                teams = json.loads(teams)
            except ValueError:
                return None
        if not isinstance(teams, list) or len(teams) != n_hits or not all(isinstance(x, str) for x in teams):
            return None
        attrs["teams"] = teams
    return attrs


def _query(doc: Mapping[str, Any], log: UbiLog, seen: dict[str, LoggedSearch], bad: set[str]) -> None:
    src, label = _source(doc)
    qid = _text(src.get(schema.QUERY_ID))
    if qid is None:
        log.skip("query_missing_query_id", label)
        return
    if qid in seen or qid in bad:
        log.skip("query_duplicate_query_id", label)
        return
    client, user_query = _text(src.get(schema.CLIENT_ID)), _text(src.get(schema.USER_QUERY))
    ts = schema.parse_timestamp(src.get(schema.TIMESTAMP))
    name, raw_hits = schema.hit_ids_of(src)
    hits = _hit_list(raw_hits) if name else None
    attrs = _attributes(src.get(schema.QUERY_ATTRIBUTES), len(hits or []))
    reason = ("query_missing_client_id" if client is None else "query_missing_user_query" if user_query is None else
              "query_bad_timestamp" if ts is None else "query_missing_hit_ids" if name is None else
              "query_bad_hit_ids" if hits is None else "query_bad_attributes" if attrs is None else None)
    if reason:
        log.skip(reason, label)
        bad.add(qid)
        return
    assert client and user_query and ts and hits is not None and attrs is not None
    seen[qid] = LoggedSearch(qid, client, user_query, ts, hits, attrs)


def _position(attrs: Mapping[str, Any], object_id: str | None, hits: list[str], base: int) -> tuple[bool, int | None]:
    """``(ok, 1-based position)`` of an event: from its ordinal, else from the object's rank in the hit list."""
    pos = attrs.get(schema.POSITION)
    ordinal = pos.get(schema.ORDINAL) if isinstance(pos, Mapping) else None
    if ordinal is None:
        if object_id is not None and object_id in hits:
            return True, hits.index(object_id) + 1
        return True, None
    if isinstance(ordinal, float) and ordinal.is_integer():
        ordinal = int(ordinal)
    if isinstance(ordinal, str) and ordinal.strip().lstrip("-").isdigit():
        ordinal = int(ordinal)
    if isinstance(ordinal, bool) or not isinstance(ordinal, int) or ordinal < base:
        return False, None
    return True, ordinal - base + 1


def _in_window(ts: datetime | None, window: tuple[datetime, datetime] | None) -> bool:
    if window is None:
        return True
    return ts is not None and window[0] <= ts < window[1]


def _event(doc: Mapping[str, Any], log: UbiLog, searches: dict[str, LoggedSearch], bad: set[str],
           outside: Collection[str], window: tuple[datetime, datetime] | None, base: int) -> None:
    src, label = _source(doc)
    ts = schema.parse_timestamp(src.get(schema.TIMESTAMP))
    qid = src.get(schema.QUERY_ID)
    qid = str(qid) if isinstance(qid, (str, int)) and not isinstance(qid, bool) and str(qid).strip() else None
    search = searches.get(qid) if qid else None
    if search is None:
        if qid is not None and qid in bad:
            log.skip("event_of_malformed_query", label)
        elif _in_window(ts, window):
            reason = ("event_missing_query_id" if qid is None else
                      "event_query_outside_window" if qid in outside else "event_unknown_query_id")
            log.skip(reason, label)
        return
    attrs = src.get(schema.EVENT_ATTRIBUTES)
    attrs = dict(attrs) if isinstance(attrs, Mapping) else {}
    obj = attrs.get(schema.OBJECT)
    raw_id = obj.get(schema.OBJECT_ID) if isinstance(obj, Mapping) else None
    object_id = str(raw_id) if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else None
    ok, position = _position(attrs, object_id, search.hit_ids, base)
    action = _text(src.get(schema.ACTION_NAME))
    reason = ("event_bad_timestamp" if ts is None else "event_missing_action" if action is None else
              "event_unknown_object" if object_id is not None and object_id not in search.hit_ids else
              "event_bad_position" if not ok else None)
    if reason:
        log.skip(reason, label)
        return
    assert ts is not None and action is not None
    search.events.append(UbiEvent(action, object_id, position, ts, attrs))


def join_ubi(query_docs: Iterable[Mapping[str, Any]], event_docs: Iterable[Mapping[str, Any]], *,
             ordinal_base: int = schema.ORDINAL_BASE, window: tuple[datetime, datetime] | None = None,
             outside_window: Collection[str] = ()) -> UbiLog:
    """Join queries and events on ``query_id`` (see the module docstring for what is counted and skipped).

    ``outside_window``: query ids known to exist outside the window (their events count as
    ``event_query_outside_window``, not ``event_unknown_query_id``). Searches come out in timestamp order (then
    ``query_id``), each one's events in timestamp order (ties keep the input order)."""
    log = UbiLog([])
    searches: dict[str, LoggedSearch] = {}
    bad: set[str] = set()
    for doc in query_docs:
        _query(doc, log, searches, bad)
    outside = set(outside_window)
    for doc in event_docs:
        _event(doc, log, searches, bad, outside, window, ordinal_base)
    for s in searches.values():
        s.events.sort(key=lambda e: e.timestamp)
    log.searches = sorted(searches.values(), key=lambda s: (s.timestamp, s.query_id))
    return log
