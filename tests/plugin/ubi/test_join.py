"""The pure join of raw ``ubi_queries`` / ``ubi_events`` documents (:func:`distilrank.plugin.ubi.join.join_ubi`):
both hit-id spellings, 0-based ordinals to 1-based positions, UTC timestamps, and every malformed case counted."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from distilrank.plugin.ubi import join, schema
from distilrank.plugin.ubi.join import join_ubi

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def query(qid, *, hits=("d1", "d2", "d3"), field=schema.HIT_IDS, ts="2026-03-01T12:00:00.000Z", client="c1",
          user_query="red shoes", attrs=None, drop=()):
    src = {"query_id": qid, "client_id": client, "user_query": user_query, "timestamp": ts, field: list(hits),
           "query_attributes": attrs if attrs is not None else {"experiment": "e", "arm": "bm25"}}
    for key in drop:
        src.pop(key, None)
    return {"_index": "ubi_queries", "_id": f"doc-{qid}", "_source": src}


def event(qid, action="click", obj="d2", ordinal=1, ts="2026-03-01T12:00:05.000Z", **extra):
    attrs = {"object": {"object_id": obj, "object_id_field": "asin"}} if obj is not None else {}
    if ordinal is not None:
        attrs["position"] = {"ordinal": ordinal}
    src = {"action_name": action, "query_id": qid, "client_id": "c1", "timestamp": ts, "event_attributes": attrs, **extra}
    if qid is None:
        src.pop("query_id")
    return {"_index": "ubi_events", "_id": f"ev-{qid}-{action}-{obj}-{ts}", "_source": src}


def test_join_both_hit_id_spellings_and_positions():
    queries = [query("q1"), query("q2", field="query_response_object_ids", hits=("x", "y"), ts="2026-03-01T12:01:00.000+0000"),
               query("q3", field="query_response_objects_ids", hits=("z",), ts=1772366520000)]
    events = [event("q1", "impression", "d1", 0, ts="2026-03-01T12:00:00.100Z"),
              event("q1", "click", "d2", 1, ts="2026-03-01T12:00:09.000Z"),
              event("q1", "add_to_cart", "d2", 1, ts="2026-03-01T12:00:10.000+01:00"),  # 11:00:10 UTC: sorts first
              event("q2", "click", "y", None),  # no ordinal: the hit's rank
              event("q2", "page_exit", None, None, ts="2026-03-01T12:02:00Z"),
              {"action_name": "click", "query_id": "q3", "timestamp": "2026-03-01T12:02:01Z",
               "event_attributes": {"object": {"object_id": "z"}, "position": {"ordinal": 0}}}]  # a bare source
    log = join_ubi(queries, events)
    assert not log.malformed, log.examples
    by_id = {s.query_id: s for s in log.searches}
    assert [s.query_id for s in log.searches] == ["q1", "q2", "q3"]
    q1 = by_id["q1"]
    assert q1.hit_ids == ["d1", "d2", "d3"] and q1.client_id == "c1" and q1.user_query == "red shoes" and q1.arm == "bm25"
    assert q1.timestamp == T0 and q1.timestamp.tzinfo == timezone.utc
    assert [(e.action, e.object_id, e.position) for e in q1.events] == [
        ("add_to_cart", "d2", 2), ("impression", "d1", 1), ("click", "d2", 2)]
    assert q1.events[0].timestamp == datetime(2026, 3, 1, 11, 0, 10, tzinfo=timezone.utc)
    assert q1.clicked_positions() == [2]
    assert by_id["q2"].hit_ids == ["x", "y"] and by_id["q2"].timestamp == T0 + timedelta(minutes=1)
    assert [(e.action, e.object_id, e.position) for e in by_id["q2"].events] == [("click", "y", 2), ("page_exit", None, None)]
    assert by_id["q3"].hit_ids == ["z"] and by_id["q3"].events[0].position == 1
    assert by_id["q3"].timestamp == datetime.fromtimestamp(1772366520, tz=timezone.utc)


def test_ordinal_base_one_for_front_ends_logging_1_based():
    log = join_ubi([query("q1")], [event("q1", "click", "d2", 2)], ordinal_base=1)
    assert log.searches[0].clicked_positions() == [2]
    log = join_ubi([query("q1")], [event("q1", "click", "d2", 0)], ordinal_base=1)
    assert log.malformed == {"event_bad_position": 1}


def test_teams_decoded_from_json_text_or_list():
    teams = '["bm25","shared","student"]'
    log = join_ubi([query("q1", attrs={"teams": teams}), query("q2", attrs={"teams": ["a", "b", "a"]})], [])
    assert [s.attributes["teams"] for s in log.searches] == [["bm25", "shared", "student"], ["a", "b", "a"]]


def test_every_malformed_case_is_counted_not_raised():
    queries = [
        query("good"),
        query("good", client="c9"),                                  # duplicate
        query(None),                                                 # missing query_id
        query("noclient", drop=("client_id",)),
        query("noquery", user_query=""),
        query("badts", ts="yesterday"),
        query("nohits", drop=(schema.HIT_IDS,)),
        query("badhits", hits=({"id": 1},)),
        query("badattrs", attrs="arm=bm25"),
        query("badteams", attrs={"teams": '["a"]'}),                  # 1 team for 3 hits
        query("badteams2", attrs={"teams": "[not json"}),
    ]
    events = [
        event("good", "impression", "d1", 0),
        event(None),                                                 # missing query_id
        event("ghost"),                                              # unknown query
        event("noclient"),                                           # of a malformed query
        event("good", ts="not a time"),                              # bad timestamp
        event("good", ts=None),
        event("good", action=""),                                    # missing action
        event("good", "click", "intruder", 1),                       # object not among the hits
        event("good", "click", "d2", -1),                            # negative ordinal
        event("good", "click", "d2", "second"),                      # non-integer ordinal
    ]
    log = join_ubi(queries, events)
    assert [s.query_id for s in log.searches] == ["good"]
    assert [(e.action, e.position) for e in log.searches[0].events] == [("impression", 1)]
    assert log.malformed == {
        "query_duplicate_query_id": 1, "query_missing_query_id": 1, "query_missing_client_id": 1,
        "query_missing_user_query": 1, "query_bad_timestamp": 1, "query_missing_hit_ids": 1, "query_bad_hit_ids": 1,
        "query_bad_attributes": 3, "event_missing_query_id": 1, "event_unknown_query_id": 1,
        "event_of_malformed_query": 1, "event_bad_timestamp": 2, "event_missing_action": 1, "event_unknown_object": 1,
        "event_bad_position": 2}
    assert log.examples["event_unknown_query_id"] == ["ubi_events/ev-ghost-click-d2-2026-03-01T12:00:05.000Z"]
    assert log.examples["query_missing_hit_ids"] == ["ubi_queries/doc-nohits"]
    assert set(log.malformed) <= {line.split("``")[1] for line in join.__doc__.splitlines() if line.startswith("``")}


def test_window_counts_only_orphans_inside_it():
    window = (T0, T0 + timedelta(hours=1))
    events = [event("ghost", ts="2026-03-01T12:30:00Z"),      # inside: counted
              event("ghost", ts="2026-03-01T13:30:00Z"),      # after the window: another window's event
              event("ghost", ts="garbage"),                   # unreadable time, unknown query: not attributable
              event("before", ts="2026-03-01T12:00:01Z"),     # its query ran before the window
              event(None, ts="2026-03-01T11:59:00Z")]         # no query id, outside the window
    log = join_ubi([query("q1")], events, window=window, outside_window={"before"})
    assert log.malformed == {"event_unknown_query_id": 1, "event_query_outside_window": 1}


@pytest.mark.parametrize("value, expected", [
    ("2024-05-22T20:04:58.072+0000", datetime(2024, 5, 22, 20, 4, 58, 72000, tzinfo=timezone.utc)),
    ("2024-05-22T22:04:58.072+02:00", datetime(2024, 5, 22, 20, 4, 58, 72000, tzinfo=timezone.utc)),
    ("2024-05-22T20:04:58Z", datetime(2024, 5, 22, 20, 4, 58, tzinfo=timezone.utc)),
    ("2024-05-22T20:04:58", datetime(2024, 5, 22, 20, 4, 58, tzinfo=timezone.utc)),
    (1716408298072, datetime(2024, 5, 22, 20, 4, 58, 72000, tzinfo=timezone.utc)),
    ("1716408298072", datetime(2024, 5, 22, 20, 4, 58, 72000, tzinfo=timezone.utc)),
    ("yesterday", None), ("", None), (None, None), (True, None), ({}, None)])
def test_parse_timestamp(value, expected):
    assert schema.parse_timestamp(value) == expected
