"""The UBI (User Behavior Insights) index formats distilrank reads and writes, pinned to the plugin's 3.6 sources.

Pinned from ``opensearch-project/user-behavior-insights`` at tag ``3.6.0.0`` (commit ``e1a1f586``; the 3.6.0 release
notes say "no changes" against 3.5):

* ``src/main/resources/queries-mapping.json`` and ``events-mapping.json``: :data:`QUERIES_MAPPING`,
  :data:`EVENTS_MAPPING` (verbatim as dicts);
* ``src/main/java/org/opensearch/ubi/UbiRestHandler.java``: ``POST /_plugins/ubi/initialize`` creates both indices
  with 1 shard, ``auto_expand_replicas`` ``0-2`` and the highest index priority (:data:`INDEX_SETTINGS`);
* ``src/main/java/org/opensearch/ubi/UbiActionFilter.java``: the ``ubi_queries`` document the plugin writes for a
  search carrying ``ext.ubi``: ``timestamp``, ``query_id``, ``query_response_id``, ``query_response_hit_ids`` (the
  hits' ``object_id_field`` values from ``_source``, or Lucene doc numbers when no field is given), ``client_id``,
  ``application``, ``user_query``, ``query_attributes``, ``query`` (the request source as a string);
* ``src/main/java/org/opensearch/ubi/QueryRequest.java``: the plugin's timestamps are
  ``yyyy-MM-dd'T'HH:mm:ss.SSSZ`` (e.g. ``2024-05-22T20:04:58.072+0000``); the mapping's ``strict_date_time``
  accepts that, ``...Z`` and ``...+00:00`` alike (checked on a 3.6.0 node);
* ``src/main/java/org/opensearch/ubi/ext/UbiParameters.java``: ``ext.ubi`` takes ``query_id``, ``user_query``,
  ``client_id``, ``application``, ``object_id_field`` and ``query_attributes`` (a map of *strings*:
  ``parser.mapStrings()``).

The hit-id field was renamed over time: the plugin writes :data:`HIT_IDS` (``query_response_hit_ids``) since 2.x and
in 3.6; the plugin's README still shows ``query_response_object_ids`` (older releases wrote it) and the documentation
site ``query_response_objects_ids``. :data:`HIT_IDS_SPELLINGS` lists all three; readers accept any, writers use
:data:`HIT_IDS`. With ``"dynamic": false`` a stale name is silently unindexed, so searching on it matches nothing.

Positions: UBI's ``event_attributes.position.ordinal`` is **0-based** (:data:`ORDINAL_BASE`): the Search Relevance
Workbench's UBI sample (``opensearch-project/search-relevance`` ``src/test/data-esci/ubi_queries_events.ndjson``)
gives the first hit ordinal 0, and its COEC click model (``judgments/clickmodel/coec/CoecClickModel.java``) loops
over ranks ``0 .. max_rank - 1``. distilrank's records use 1-based positions; the reader adds 1, writers subtract it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

#: default index names (``UbiPlugin.UBI_QUERIES_INDEX`` / ``UBI_EVENTS_INDEX``)
QUERIES_INDEX = "ubi_queries"
EVENTS_INDEX = "ubi_events"
#: the plugin's component name in ``_cat/plugins`` (``build.gradle``: ``name 'opensearch-ubi'``)
PLUGIN_COMPONENT = "opensearch-ubi"
#: the search ``ext`` section the plugin registers (``UbiParametersExtBuilder.UBI_PARAMETER_NAME``)
EXT_NAME = "ubi"

# --- ubi_queries fields ---------------------------------------------------------------------------------------------
TIMESTAMP = "timestamp"
QUERY_ID = "query_id"
QUERY = "query"
QUERY_RESPONSE_ID = "query_response_id"
#: the hit-id list as the 3.6 plugin writes it
HIT_IDS = "query_response_hit_ids"
#: every spelling of the hit-id list seen in UBI's code and docs, the 3.6 one first
HIT_IDS_SPELLINGS = (HIT_IDS, "query_response_object_ids", "query_response_objects_ids")
USER_QUERY = "user_query"
QUERY_ATTRIBUTES = "query_attributes"
CLIENT_ID = "client_id"
APPLICATION = "application"

# --- ubi_events fields ----------------------------------------------------------------------------------------------
ACTION_NAME = "action_name"
EVENT_ATTRIBUTES = "event_attributes"
MESSAGE = "message"
MESSAGE_TYPE = "message_type"
SESSION_ID = "session_id"  # not in the mapping (it is dynamic); written by UBI's JavaScript client
#: ``event_attributes.object.*`` and ``event_attributes.position.*`` keys
OBJECT, OBJECT_ID, OBJECT_ID_FIELD = "object", "object_id", "object_id_field"
POSITION, ORDINAL = "position", "ordinal"
#: dotted paths, for queries
OBJECT_ID_PATH = f"{EVENT_ATTRIBUTES}.{OBJECT}.{OBJECT_ID}"
ORDINAL_PATH = f"{EVENT_ATTRIBUTES}.{POSITION}.{ORDINAL}"
#: UBI ordinals count from 0 (see the module docstring)
ORDINAL_BASE = 0

#: ``queries-mapping.json`` at 3.6.0.0
QUERIES_MAPPING: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "timestamp": {"type": "date", "format": "strict_date_time"},
        "query_id": {"type": "keyword", "ignore_above": 100},
        "query": {"type": "text"},
        "query_response_id": {"type": "keyword", "ignore_above": 100},
        "query_response_hit_ids": {"type": "keyword"},
        "user_query": {"type": "keyword"},
        "query_attributes": {"type": "flat_object"},
        "client_id": {"type": "keyword", "ignore_above": 100},
        "application": {"type": "keyword", "ignore_above": 100},
    },
}

_KEYWORD_256 = {"type": "keyword", "ignore_above": 256}

#: ``events-mapping.json`` at 3.6.0.0
EVENTS_MAPPING: dict[str, Any] = {
    "properties": {
        "application": {"type": "keyword", "ignore_above": 256},
        "action_name": {"type": "keyword", "ignore_above": 100},
        "client_id": {"type": "keyword", "ignore_above": 100},
        "query_id": {"type": "keyword", "ignore_above": 100},
        "message": {"type": "keyword", "ignore_above": 1024},
        "message_type": {"type": "keyword", "ignore_above": 100},
        "user_query": {"type": "keyword"},
        "timestamp": {"type": "date", "format": "strict_date_time", "ignore_malformed": True, "doc_values": True},
        "event_attributes": {
            "dynamic": True,
            "properties": {
                "position": {"properties": {
                    "ordinal": {"type": "integer"}, "x": {"type": "integer"}, "y": {"type": "integer"},
                    "page_depth": {"type": "integer"}, "scroll_depth": {"type": "integer"},
                    "trail": {"type": "text", "fields": {"keyword": dict(_KEYWORD_256)}},
                }},
                "object": {"properties": {
                    "internal_id": {"type": "keyword"},
                    "object_id": dict(_KEYWORD_256),
                    "object_id_field": {"type": "keyword", "ignore_above": 100},
                    "name": dict(_KEYWORD_256),
                    "description": {"type": "text", "fields": {"keyword": dict(_KEYWORD_256)}},
                    "object_detail": {"type": "object"},
                }},
            },
        },
    },
}

#: the settings ``POST /_plugins/ubi/initialize`` creates both indices with
INDEX_SETTINGS: dict[str, Any] = {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-2", "priority": 2147483647}}


def format_timestamp(ts: datetime) -> str:
    """``ts`` as UBI stores it, in UTC with milliseconds: ``2024-05-16T12:34:56.789Z`` (``strict_date_time``).

    A naive ``ts`` is taken to be UTC; an aware one is converted to UTC."""
    ts = ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def parse_timestamp(value: Any) -> datetime | None:
    """A UBI timestamp as a timezone-aware UTC datetime, or ``None`` when it cannot be read.

    Accepts ISO-8601 strings with ``Z``, ``+HH:MM`` or ``+HHMM`` offsets (the plugin writes ``+0000``) or without
    one (taken as UTC, as OpenSearch does), and numbers as epoch **milliseconds** (older UBI clients). Booleans,
    empty strings and anything else give ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(float(value) / 1000.0, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return parse_timestamp(int(text))
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def hit_ids_of(source: dict) -> tuple[str | None, Any]:
    """``(field name, value)`` of the hit-id list in a ``ubi_queries`` source, under whichever spelling of
    :data:`HIT_IDS_SPELLINGS` it has (the 3.6 one wins when several are present); ``(None, None)`` when none."""
    for name in HIT_IDS_SPELLINGS:
        if name in source:
            return name, source[name]
    return None, None
