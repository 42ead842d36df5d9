"""Which nodes ML Commons deploys a local model to, and which of them do not hold it (the nodes' own view).

The model document's ``model_state`` is written by ML Commons' sync-up job and lags the nodes both ways around a
node restart (``DEPLOYED`` while a rejoined node has no copy; ``PARTIALLY_DEPLOYED`` after every node holds it
again). :func:`nodes_without_model` compares what each node reports in memory (``GET _plugins/_ml/profile/models``)
with the nodes a deploy to all nodes targets, which is what ``plugin ensure`` decides on.

Eligibility follows ML Commons 3.x for local (non-remote) models: nodes named in
``plugins.ml_commons.exclude_nodes._name`` never; with ``plugins.ml_commons.only_run_on_ml_node`` (default true)
the nodes with the ``ml`` role; otherwise nodes with a role in ``plugins.ml_commons.local_model.eligible_node_role``
(default ``data``, ``ml``), where ``data`` means a data node whose ``box_type`` attribute is absent or ``hot``.
"""

from __future__ import annotations

import time
from typing import Any

from distilrank.plugin import ml_api
from distilrank.plugin.transport import Transport

ONLY_ML = "plugins.ml_commons.only_run_on_ml_node"
EXCLUDED = "plugins.ml_commons.exclude_nodes._name"
LOCAL_ROLES = "plugins.ml_commons.local_model.eligible_node_role"


def setting(settings: dict, key: str, default: Any = None) -> Any:
    """A value of ``GET _cluster/settings?include_defaults&flat_settings`` (transient over persistent over defaults),
    as the cluster returned it (a string or a list), or ``default`` when unset."""
    for section in ("transient", "persistent", "defaults"):
        if key in settings.get(section, {}):
            return settings[section][key]
    return default


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).strip("[]").split(",") if v.strip()]


def eligible_nodes(settings: dict, nodes: dict) -> dict[str, str]:
    """``{node_id: node_name}`` of the nodes ML Commons deploys a local model to when no ``node_ids`` are given.

    ``settings``: :func:`ml_api.cluster_settings`; ``nodes``: node id -> node with ``name``, ``roles`` and
    ``attributes`` (``GET _nodes``, ``_nodes/plugins`` or ``_nodes/stats``)."""
    only_ml = str(setting(settings, ONLY_ML, "true")).lower() == "true"
    excluded = set(_as_list(setting(settings, EXCLUDED, "")))
    roles_allowed = set(_as_list(setting(settings, LOCAL_ROLES, ["data", "ml"])))
    out = {}
    for node_id, node in nodes.items():
        roles = set(node.get("roles", []))
        if node.get("name") in excluded:
            continue
        if only_ml:
            ok = "ml" in roles
        else:
            hot_data = "data" in roles and (node.get("attributes") or {}).get("box_type", "hot") == "hot"
            ok = ("data" in roles_allowed and hot_data) or bool((roles_allowed - {"data"}) & roles)
        if ok:
            out[node_id] = str(node.get("name", node_id))
    return out


def eligible_nodes_now(t: Transport) -> dict[str, str]:
    """:func:`eligible_nodes` of the cluster behind ``t`` (two read-only requests: cluster settings, the nodes)."""
    return eligible_nodes(ml_api.cluster_settings(t), ml_api.nodes_roles(t))


def nodes_without_model(t: Transport, model_id: str, eligible: dict[str, str] | None = None) -> dict[str, str]:
    """``{node_name: state}`` for every eligible node that does not report ``model_id`` DEPLOYED in its own memory
    (``state`` is what the node reports, e.g. ``DEPLOYING``, or ``"absent"``); empty when every eligible node holds it.
    ``eligible``: :func:`eligible_nodes_now` when not given."""
    eligible = eligible_nodes_now(t) if eligible is None else eligible
    held = ml_api.model_states_on_nodes(t, model_id)
    return {name: held.get(node_id, "absent") for node_id, name in sorted(eligible.items(), key=lambda kv: kv[1])
            if held.get(node_id) != "DEPLOYED"}


def wait_while_nodes_deploying(t: Transport, model_id: str, timeout: float, *, poll: float = 0.5,
                               eligible: dict[str, str] | None = None) -> tuple[dict[str, str], float]:
    """Poll :func:`nodes_without_model` while any eligible node reports the model ``DEPLOYING`` (ML Commons' own
    redeploy to a node that rejoined, or another client's deploy); returns ``(nodes without it, seconds waited)`` once
    none does, or after ``timeout`` s. A dry run returns at once."""
    eligible = eligible_nodes_now(t) if eligible is None else eligible
    t0 = time.monotonic()
    while True:
        missing = nodes_without_model(t, model_id, eligible)
        if ("DEPLOYING" not in missing.values() or time.monotonic() - t0 >= timeout
                or not t.live(f"wait for {model_id}'s deploy to finish on {sorted(missing)}")):
            return missing, time.monotonic() - t0
        time.sleep(poll)
