"""The UBI indices on a cluster: create them (``distilrank plugin ubi-init``), detect the UBI plugin, build ``ext.ubi``.

``ubi_init`` does what the plugin's ``POST /_plugins/ubi/initialize`` does (same mappings and settings, pinned in
:mod:`distilrank.plugin.ubi.schema`) without needing the plugin: the indices are plain indices, and front ends that
log their own queries (see :mod:`distilrank.plugin.ubi.search_log`) need them on clusters without it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from distilrank.errors import DistilRankError
from distilrank.plugin import index_api, ml_api
from distilrank.plugin.transport import Transport
from distilrank.plugin.ubi import schema


def ubi_init(t: Transport, *, queries_index: str = schema.QUERIES_INDEX, events_index: str = schema.EVENTS_INDEX) -> dict:
    """Create ``queries_index`` / ``events_index`` with UBI's 3.6 mappings and settings where they are missing.

    An existing index is left alone (data and mapping untouched) and reported, with a ``warning`` when its mapping
    lacks a field UBI needs (e.g. created by hand, or the hit-id list under an old name). Returns
    ``{"created": [...], "existing": [...], "warnings": [...], "indices": {"queries": name, "events": name}}``."""
    created, existing, warnings = [], [], []
    for name, mapping in ((queries_index, schema.QUERIES_MAPPING), (events_index, schema.EVENTS_MAPPING)):
        current = index_api.get_mapping(t, name)
        if current is not None:
            existing.append(name)
            warnings += _mapping_warnings(name, current, mapping)
            continue
        resp = index_api.create_index(t, name, {"settings": schema.INDEX_SETTINGS, "mappings": mapping}, ok_statuses=(400,))
        if resp.get("status") == 400:  # created by someone else between our check and our PUT
            if "resource_already_exists" not in json.dumps(resp.get("error")):
                raise DistilRankError(f"creating UBI index {name!r} failed: {resp.get('error')}")
            existing.append(name)
        else:
            created.append(name)
    return {"created": created, "existing": existing, "warnings": warnings,
            "indices": {"queries": queries_index, "events": events_index}}


def _mapping_warnings(name: str, current: dict, wanted: dict) -> list[str]:
    """What an existing index's mapping lacks of UBI's top-level fields (one message per index)."""
    props: dict = {}
    for entry in current.values():  # one entry per concrete index (an alias may name several)
        props.update((entry.get("mappings") or {}).get("properties") or {})
    missing = sorted(set(wanted["properties"]) - set(props))
    if not missing:
        return []
    return [f"index {name!r} exists without UBI field(s) {', '.join(missing)}: left as is; searches on those fields "
            "match nothing (recreate it with 'distilrank plugin ubi-init' after deleting it, or reindex)"]


def ubi_plugin_installed(t: Transport) -> bool:
    """Whether every node runs the UBI plugin (plugin :data:`schema.PLUGIN_COMPONENT` in ``GET _nodes/plugins``, the
    same name ``_cat/plugins`` shows as the component).

    Every node must have it: ``ext.ubi`` is parsed by the node that coordinates a search and by the data nodes."""
    nodes = (ml_api.nodes_plugins(t) or {}).values()
    return bool(nodes) and all(any(p.get("name") == schema.PLUGIN_COMPONENT for p in n.get("plugins") or []) for n in nodes)


def attribute_strings(attributes: Mapping[str, Any]) -> dict[str, str]:
    """``query_attributes`` as UBI's ``ext.ubi`` takes them: a map of strings (``UbiParameters`` parses it with
    ``mapStrings``). ``None`` values are dropped, booleans become ``"true"``/``"false"``, numbers ``str()``, lists and
    maps compact JSON; keys must be non-empty strings."""
    out: dict[str, str] = {}
    for key, value in attributes.items():
        if not isinstance(key, str) or not key:
            raise DistilRankError(f"query_attributes key {key!r} must be a non-empty string")
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (list, tuple, dict)):
            out[key] = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        else:
            out[key] = str(value)
    return out


def ubi_ext(t: Transport | None, *, query_id: str, client_id: str, user_query: str, object_id_field: str,
            query_attributes: Mapping[str, Any] | None = None, application: str | None = None,
            installed: bool | None = None) -> dict:
    """The search body's ``ext`` section asking the UBI plugin to log this search: ``{"ubi": {...}}``.

    ``object_id_field`` is required: without it the plugin logs Lucene doc numbers instead of ids. It must name a
    string field in the hits' ``_source`` (the plugin reads ``_source[object_id_field]``; ``_id`` is not in
    ``_source``). ``installed``: whether the node has the plugin (``None``: ask it with :func:`ubi_plugin_installed`).
    Raises :class:`DistilRankError` when the plugin is absent, because a search with an unknown ``ext`` section fails
    (HTTP 400 ``named_object_not_found_exception``: ``unknown field [ubi]`` on 3.6): log from the front end instead."""
    if installed is None:
        if t is None:
            raise DistilRankError("ubi_ext: give a transport or installed=True/False")
        installed = ubi_plugin_installed(t)
    if not installed:
        raise DistilRankError(
            "the cluster has no UBI plugin (opensearch-ubi is not in _cat/plugins), and a search with an unknown ext "
            "section is refused (HTTP 400 named_object_not_found_exception: unknown field [ubi]): log searches from "
            "the front end instead "
            "(distilrank.plugin.ubi.search_log.log_search with mode='frontend' writes the ubi_queries document), or "
            "install the plugin (bin/opensearch-plugin install opensearch-ubi) on every node")
    if not isinstance(object_id_field, str) or not object_id_field.strip():
        raise DistilRankError("ext.ubi needs object_id_field (a _source field holding each hit's id); without it UBI "
                              "logs Lucene doc numbers, which change with merges and match no judgment")
    if object_id_field == "_id":
        raise DistilRankError("ext.ubi object_id_field '_id' would be logged as null: UBI reads the field from _source; "
                              "name a _source field holding the id (e.g. doc_id in distilrank's catalogue index)")
    for name, value in (("query_id", query_id), ("client_id", client_id), ("user_query", user_query)):
        if not isinstance(value, str) or not value:
            raise DistilRankError(f"ext.ubi {name} must be a non-empty string, got {value!r}")
    ubi: dict[str, Any] = {"query_id": query_id, "client_id": client_id, "user_query": user_query,
                           "object_id_field": object_id_field}
    if application:
        ubi["application"] = application
    if query_attributes:
        ubi["query_attributes"] = attribute_strings(query_attributes)
    return {schema.EXT_NAME: ubi}
