"""Run a search for an A/B assignment and log it in UBI's ``ubi_queries`` format.

Two ways, the same record:

* ``mode="plugin"``: the search carries ``ext.ubi`` (:func:`distilrank.plugin.ubi.indices.ubi_ext`) and the UBI plugin
  writes the ``ubi_queries`` document itself (always into ``ubi_queries``; ``query_attributes`` as strings);
* ``mode="frontend"``: the caller (a front end, the simulator) writes the document, with the 3.6 field names
  (:func:`ubi_query_doc`): ``query_id`` (a UUID), ``client_id``, ``user_query``, ``timestamp`` (UTC, milliseconds),
  ``query_response_id``, ``query_response_hit_ids`` (the returned ids, best first), ``application`` and
  ``query_attributes``. Clusters without the plugin need this: an unknown ``ext`` section is an error there.

``query_attributes`` hold the assignment (:meth:`distilrank.plugin.abtest.router.Assignment.query_attributes`:
experiment, arm, model id, alias; ``None`` values left out) and, for an interleaved list
(:func:`interleaving_attributes`), the arms and each shown hit's team. Values are strings in both modes, as the
plugin's ``ext.ubi`` parser requires: lists are JSON text (``"teams": "[\\"bm25\\",\\"shared\\"]"``).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from distilrank.errors import DistilRankError
from distilrank.plugin import index_api
from distilrank.plugin.abtest.router import Assignment
from distilrank.plugin.transport import Transport
from distilrank.plugin.ubi import schema
from distilrank.plugin.ubi.indices import attribute_strings, ubi_ext, ubi_plugin_installed

APPLICATION = "distilrank"
MODES = ("auto", "plugin", "frontend")


def new_query_id(rng: random.Random | None = None) -> str:
    """A random (version 4) UUID string; drawn from ``rng`` when given, so a seeded caller gets the same ids."""
    if rng is None:
        return str(uuid.uuid4())
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def hit_ids(response: Mapping[str, Any], object_id_field: str = "_id") -> list[str]:
    """The ids of a search response's hits, best first: ``_id``, or ``_source[object_id_field]`` as a string.

    Raises :class:`DistilRankError` naming the hit when its ``_source`` lacks the field (add the field to
    ``_source`` includes, or log ``_id``)."""
    out = []
    for h in (response.get("hits") or {}).get("hits") or []:
        if object_id_field == "_id":
            out.append(str(h["_id"]))
            continue
        value = (h.get("_source") or {}).get(object_id_field)
        if value is None or isinstance(value, (dict, list)):
            raise DistilRankError(f"hit {h.get('_id')!r} has no {object_id_field!r} in _source (got {value!r}): "
                                  "include the field in the search's _source, or log '_id'")
        out.append(str(value))
    return out


def ubi_query_doc(*, query_id: str, client_id: str, user_query: str, hits: Sequence[str], timestamp: datetime,
                  attributes: Mapping[str, Any] | None = None, application: str | None = APPLICATION,
                  query: str | None = None, query_response_id: str | None = None) -> dict:
    """One ``ubi_queries`` document as the 3.6 plugin writes it (field names from
    :mod:`distilrank.plugin.ubi.schema`); ``attributes`` become string-valued ``query_attributes``
    (:func:`distilrank.plugin.ubi.indices.attribute_strings`). ``query_response_id`` defaults to a UUID derived
    from ``query_id`` (stable: writing the same search twice gives the same document)."""
    for name, value in (("query_id", query_id), ("client_id", client_id), ("user_query", user_query)):
        if not isinstance(value, str) or not value:
            raise DistilRankError(f"ubi_queries {name} must be a non-empty string, got {value!r}")
    doc: dict[str, Any] = {
        schema.TIMESTAMP: schema.format_timestamp(timestamp),
        schema.QUERY_ID: query_id,
        schema.QUERY_RESPONSE_ID: query_response_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"ubi-response:{query_id}")),
        schema.HIT_IDS: [str(h) for h in hits],
        schema.CLIENT_ID: client_id,
        schema.USER_QUERY: user_query,
        schema.QUERY_ATTRIBUTES: attribute_strings(attributes or {}),
    }
    if application:
        doc[schema.APPLICATION] = application
    if query is not None:
        doc[schema.QUERY] = query
    return doc


def interleaving_attributes(experiment: str, arm_a: str, arm_b: str, teams: Sequence[str], *,
                            method: str = "team_draft") -> dict[str, Any]:
    """``query_attributes`` of an interleaved list: ``experiment``, ``interleaving`` (the method), ``arm_a``,
    ``arm_b`` and ``teams`` (per shown hit, best first: the arm name that contributed it, or ``"shared"`` for the
    common prefix credited to neither)."""
    return {"experiment": experiment, "interleaving": method, "arm_a": arm_a, "arm_b": arm_b, "teams": list(teams)}


@dataclass
class SearchLog:
    """What :func:`log_search` did: the ``query_id``, the ``hit_ids`` shown (best first), the ``mode`` used, the
    search ``response`` and, in front-end mode, the ``document`` written."""

    query_id: str
    hit_ids: list[str]
    mode: str
    response: dict
    document: dict | None = None


def _mode(t: Transport, mode: str, queries_index: str, installed: bool | None) -> tuple[str, bool | None]:
    if mode not in MODES:
        raise DistilRankError(f"UBI logging mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "auto":
        installed = ubi_plugin_installed(t) if installed is None else installed
        mode = "plugin" if installed else "frontend"
    if mode == "plugin" and queries_index != schema.QUERIES_INDEX:
        raise DistilRankError(f"the UBI plugin always writes {schema.QUERIES_INDEX!r}, not {queries_index!r}: "
                              "use mode='frontend' to log into another index")
    return mode, installed


def log_search(t: Transport, index: str, assignment: Assignment, query_text: str, *, client_id: str,
               object_id_field: str = "_id", size: int | None = 10, mode: str = "auto",
               queries_index: str = schema.QUERIES_INDEX, plugin_installed: bool | None = None,
               extra_attributes: Mapping[str, Any] | None = None, application: str | None = APPLICATION,
               query_id: str | None = None, timestamp: datetime | None = None, refresh: bool = False) -> SearchLog:
    """Search ``index`` with the assigned arm (its template and pipeline) and log the search in UBI format.

    ``mode``: ``"plugin"`` (``ext.ubi``; needs the UBI plugin on every node and ``object_id_field`` a ``_source``
    field), ``"frontend"`` (this function writes the ``ubi_queries`` document, ``_id`` = ``query_id``) or ``"auto"``
    (plugin when installed; ``plugin_installed`` skips asking). ``query_attributes`` = the assignment's plus
    ``extra_attributes``. ``timestamp`` (UTC) defaults to now; ``refresh`` makes the document searchable at once."""
    mode, plugin_installed = _mode(t, mode, queries_index, plugin_installed)
    query_id = query_id or new_query_id()
    attributes = {**assignment.query_attributes(), **(extra_attributes or {})}
    body = assignment.search_body(query_text, size=size)
    if mode == "plugin":
        body.setdefault("ext", {}).update(ubi_ext(t, query_id=query_id, client_id=client_id, user_query=query_text,
                                                  object_id_field=object_id_field, query_attributes=attributes,
                                                  application=application, installed=plugin_installed))
    response = index_api.search(t, index, body, params=assignment.search_params() or None)
    ids = hit_ids(response, object_id_field)
    if mode == "plugin":
        return SearchLog(query_id, ids, mode, response)
    doc = ubi_query_doc(query_id=query_id, client_id=client_id, user_query=query_text, hits=ids,
                        timestamp=timestamp or datetime.now(timezone.utc), attributes=attributes, application=application)
    index_api.put_doc(t, queries_index, query_id, doc, refresh="true" if refresh else None)
    return SearchLog(query_id, ids, mode, response, doc)


def ubi_event_doc(*, action: str, query_id: str, client_id: str, user_query: str, timestamp: datetime,
                  object_id: str | None = None, object_id_field: str | None = None, position: int | None = None,
                  attributes: Mapping[str, Any] | None = None, application: str | None = APPLICATION,
                  session_id: str | None = None) -> dict:
    """One ``ubi_events`` document in the 3.6 mapping's shape: ``action_name``, ``query_id``, ``client_id``,
    ``user_query``, ``timestamp`` (UTC, milliseconds), ``event_attributes.object.{object_id, object_id_field}`` and
    ``event_attributes.position.ordinal``. ``position`` is **1-based** and written as UBI's 0-based ordinal
    (``position - 1 + schema.ORDINAL_BASE``); ``attributes`` are further ``event_attributes`` keys."""
    if not isinstance(action, str) or not action:
        raise DistilRankError(f"ubi_events action_name must be a non-empty string, got {action!r}")
    event_attributes: dict[str, Any] = dict(attributes or {})
    if object_id is not None:
        obj = {schema.OBJECT_ID: str(object_id)}
        if object_id_field:
            obj[schema.OBJECT_ID_FIELD] = object_id_field
        event_attributes[schema.OBJECT] = obj
    if position is not None:
        if isinstance(position, bool) or not isinstance(position, int) or position < 1:
            raise DistilRankError(f"event position must be a 1-based int, got {position!r}")
        event_attributes[schema.POSITION] = {schema.ORDINAL: position - 1 + schema.ORDINAL_BASE}
    doc: dict[str, Any] = {schema.ACTION_NAME: action, schema.QUERY_ID: query_id, schema.CLIENT_ID: client_id,
                           schema.USER_QUERY: user_query, schema.TIMESTAMP: schema.format_timestamp(timestamp),
                           schema.EVENT_ATTRIBUTES: event_attributes}
    if application:
        doc[schema.APPLICATION] = application
    if session_id:
        doc[schema.SESSION_ID] = session_id
    return doc
