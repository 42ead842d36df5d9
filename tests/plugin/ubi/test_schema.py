"""UBI's pinned 3.6 formats (:mod:`distilrank.plugin.ubi.schema`), ``ext.ubi`` and the documents distilrank writes."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import pytest

from distilrank.errors import DistilRankError
from distilrank.plugin.ubi import schema
from distilrank.plugin.ubi.indices import attribute_strings, ubi_ext
from distilrank.plugin.ubi.join import join_ubi
from distilrank.plugin.ubi.search_log import hit_ids, interleaving_attributes, new_query_id, ubi_event_doc, ubi_query_doc


def test_pinned_field_names_and_mappings():
    assert (schema.QUERIES_INDEX, schema.EVENTS_INDEX) == ("ubi_queries", "ubi_events")
    assert schema.HIT_IDS == "query_response_hit_ids"
    assert schema.HIT_IDS_SPELLINGS == ("query_response_hit_ids", "query_response_object_ids", "query_response_objects_ids")
    q = schema.QUERIES_MAPPING
    assert q["dynamic"] is False and q["properties"]["query_attributes"] == {"type": "flat_object"}
    assert set(q["properties"]) == {"timestamp", "query_id", "query", "query_response_id", "query_response_hit_ids",
                                    "user_query", "query_attributes", "client_id", "application"}
    e = schema.EVENTS_MAPPING["properties"]
    assert e["timestamp"]["ignore_malformed"] is True and e["timestamp"]["format"] == "strict_date_time"
    assert e["event_attributes"]["properties"]["position"]["properties"]["ordinal"] == {"type": "integer"}
    assert e["event_attributes"]["properties"]["object"]["properties"]["object_id"]["type"] == "keyword"
    assert (schema.OBJECT_ID_PATH, schema.ORDINAL_PATH) == ("event_attributes.object.object_id",
                                                            "event_attributes.position.ordinal")
    assert schema.ORDINAL_BASE == 0 and schema.PLUGIN_COMPONENT == "opensearch-ubi"
    assert schema.INDEX_SETTINGS["index"]["number_of_shards"] == 1


def test_hit_ids_of_prefers_the_36_spelling():
    assert schema.hit_ids_of({"query_response_object_ids": ["a"], "query_response_hit_ids": ["b"]}) == \
        ("query_response_hit_ids", ["b"])
    assert schema.hit_ids_of({"query_response_objects_ids": ["c"]}) == ("query_response_objects_ids", ["c"])
    assert schema.hit_ids_of({}) == (None, None)


def test_format_timestamp_is_utc_with_millis():
    ts = datetime(2026, 3, 1, 13, 4, 5, 678901, tzinfo=timezone(timedelta(hours=1)))
    assert schema.format_timestamp(ts) == "2026-03-01T12:04:05.678Z"
    assert schema.format_timestamp(datetime(2026, 3, 1)) == "2026-03-01T00:00:00.000Z"  # naive = UTC
    assert schema.parse_timestamp(schema.format_timestamp(ts)) == ts.replace(microsecond=678000)


def test_attribute_strings_match_ubi_ext_map_of_strings():
    assert attribute_strings({"arm": "bm25", "model_id": None, "simulated": True, "k": 10, "teams": ["a", "shared"]}) == \
        {"arm": "bm25", "simulated": "true", "k": "10", "teams": '["a","shared"]'}
    with pytest.raises(DistilRankError, match="key"):
        attribute_strings({"": "x"})


def test_ubi_ext_without_the_plugin_says_what_to_do():
    with pytest.raises(DistilRankError) as err:
        ubi_ext(None, query_id="q", client_id="c", user_query="shoes", object_id_field="doc_id", installed=False)
    msg = str(err.value)
    assert "no UBI plugin" in msg and "unknown ext" in msg and "front end" in msg and "mode='frontend'" in msg


def test_ubi_ext_with_the_plugin():
    ext = ubi_ext(None, query_id="q1", client_id="c1", user_query="red shoes", object_id_field="doc_id",
                  query_attributes={"experiment": "e", "arm": "student", "model_id": "m1", "alias": None},
                  application="shop", installed=True)
    assert ext == {"ubi": {"query_id": "q1", "client_id": "c1", "user_query": "red shoes", "object_id_field": "doc_id",
                           "application": "shop",
                           "query_attributes": {"experiment": "e", "arm": "student", "model_id": "m1"}}}
    for field, words in (("", "object_id_field"), ("_id", "null")):
        with pytest.raises(DistilRankError, match=words):
            ubi_ext(None, query_id="q", client_id="c", user_query="x", object_id_field=field, installed=True)
    with pytest.raises(DistilRankError, match="client_id"):
        ubi_ext(None, query_id="q", client_id="", user_query="x", object_id_field="doc_id", installed=True)


def test_written_documents_join_back_to_the_same_search():
    ts = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=timezone.utc)
    qid = new_query_id(random.Random(1))
    assert qid == new_query_id(random.Random(1)) and len(qid) == 36 and qid[14] == "4"
    teams = ["bm25", "student", "bm25"]
    doc = ubi_query_doc(query_id=qid, client_id="c1", user_query='say "hi"', hits=["d1", "d2", "d3"], timestamp=ts,
                        attributes={**interleaving_attributes("e", "bm25", "student", teams), "simulated": True})
    assert doc["query_response_hit_ids"] == ["d1", "d2", "d3"] and doc["timestamp"] == "2026-03-01T12:00:00.250Z"
    assert doc["query_attributes"]["teams"] == json.dumps(teams, separators=(",", ":"))
    assert doc["query_attributes"]["simulated"] == "true" and doc["application"] == "distilrank"
    assert doc == ubi_query_doc(query_id=qid, client_id="c1", user_query='say "hi"', hits=["d1", "d2", "d3"], timestamp=ts,
                                attributes={**interleaving_attributes("e", "bm25", "student", teams), "simulated": True})
    ev = ubi_event_doc(action="click", query_id=qid, client_id="c1", user_query='say "hi"', timestamp=ts, object_id="d3",
                       object_id_field="asin", position=3, attributes={"simulated": True})
    assert ev["event_attributes"] == {"simulated": True, "object": {"object_id": "d3", "object_id_field": "asin"},
                                      "position": {"ordinal": 2}}
    log = join_ubi([doc], [ev])
    assert not log.malformed
    s = log.searches[0]
    assert s.attributes["teams"] == teams and s.clicked_positions() == [3] and s.events[0].attributes["simulated"] is True
    with pytest.raises(DistilRankError, match="1-based"):
        ubi_event_doc(action="click", query_id=qid, client_id="c", user_query="x", timestamp=ts, position=0)


def test_hit_ids_from_id_or_source_field():
    resp = {"hits": {"hits": [{"_id": "1", "_source": {"asin": "A1"}}, {"_id": "2", "_source": {"asin": 7}}]}}
    assert hit_ids(resp) == ["1", "2"] and hit_ids(resp, "asin") == ["A1", "7"]
    with pytest.raises(DistilRankError, match="hit '1' has no 'sku'"):
        hit_ids(resp, "sku")
