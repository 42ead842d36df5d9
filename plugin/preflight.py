"""Check a cluster can register, deploy and rerank with a distilrank model before touching it.

Each :class:`Check` has a status (``ok``, ``warn``, ``fail``), what was found, and for anything not ``ok`` the fix.
Only read-only requests are sent. Checks:

* ``cluster``: reachable, OpenSearch version (3.x recommended; 2.12+ works for TEXT_SIMILARITY ONNX);
* ``ml-commons``: the ``opensearch-ml`` plugin and its version on every node;
* ``neural-search``: the ``opensearch-neural-search`` plugin (the ``rerank`` response processor);
* ``search-pipeline-common``: the module with ``oversample`` and ``truncate_hits``;
* ``local-file-registration``: ``plugins.ml_commons.allow_registering_model_via_local_file`` (``upload_chunk``);
* ``ml-nodes``: with ``only_run_on_ml_node=true`` at least one node must have the ``ml`` role;
* ``memory-breakers``: JVM heap and OS memory use vs ML Commons' ``jvm_heap_memory_threshold`` and
  ``native_memory_threshold`` (above them every deploy/predict is refused), and tripped OpenSearch breakers;
* ``disk``: ``disk_free_space_threshold`` vs free disk on the nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from distilrank.plugin import ml_api, model_nodes
from distilrank.plugin.transport import Transport


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str | None = None


def _setting(settings: dict, key: str, default: str | None = None) -> str | None:
    value = model_nodes.setting(settings, key, default)
    return None if value is None else str(value)


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("-")[0].split(".")[:3] if x.isdigit())


@dataclass
class PreflightFacts:
    """The read-only responses every check is computed from (``GET /``, ``/_nodes/plugins``, ``/_cluster/settings``
    with defaults and flat settings, ``/_nodes/stats/jvm,os,fs,breaker``), as the cluster returned them."""

    info: dict
    nodes_plugins: dict
    settings: dict
    nodes_stats: dict


def gather_facts(t: Transport) -> PreflightFacts:
    """Send the four read-only requests; an unreachable cluster or bad credentials raise :class:`ClusterError`."""
    return PreflightFacts(info=ml_api.cluster_info(t), nodes_plugins=ml_api.nodes_plugins(t), settings=ml_api.cluster_settings(t),
                          nodes_stats=ml_api.nodes_stats(t))


def _cluster_check(info: dict) -> Check:
    version = info["version"]["number"]
    vt = _version_tuple(version)
    if vt >= (3, 0):
        return Check("cluster", "ok", f"{info.get('cluster_name')}: OpenSearch {version}")
    if vt >= (2, 12):
        return Check("cluster", "warn", f"OpenSearch {version}",
                     "3.x is recommended; 2.12+ supports TEXT_SIMILARITY ONNX models and the rerank processor")
    return Check("cluster", "fail", f"OpenSearch {version}", "upgrade to 2.12 or later (rerank with ml_opensearch and ONNX cross-encoders)")


def _plugin_checks(nodes: dict) -> list[Check]:
    per_node_plugins = {n["name"]: {p["name"]: p["version"] for p in n.get("plugins", [])} for n in nodes.values()}
    per_node_modules = {n["name"]: {m["name"] for m in n.get("modules", [])} for n in nodes.values()}
    checks = []
    for check, plugin, fix in (
            ("ml-commons", "opensearch-ml", "install the ML Commons plugin: bin/opensearch-plugin install opensearch-ml"),
            ("neural-search", "opensearch-neural-search",
             "install neural-search (bin/opensearch-plugin install opensearch-neural-search); the rerank processor lives there")):
        missing = [n for n, ps in per_node_plugins.items() if plugin not in ps]
        if missing:
            checks.append(Check(check, "fail", f"{plugin} missing on {', '.join(missing)}", fix))
        else:
            versions = sorted({ps[plugin] for ps in per_node_plugins.values()})
            checks.append(Check(check, "ok", f"{plugin} {', '.join(versions)} on {len(per_node_plugins)} node(s)"))
    missing_mod = [n for n, ms in per_node_modules.items()
                   if "search-pipeline-common" not in ms and "search-pipeline-common" not in per_node_plugins[n]]
    checks.append(Check("search-pipeline-common", "fail" if missing_mod else "ok",
                        f"missing on {', '.join(missing_mod)}" if missing_mod else "oversample and truncate_hits available",
                        "use a distribution that ships the search-pipeline-common module" if missing_mod else None))
    return checks


def _ml_node_checks(settings: dict, nodes: dict) -> tuple[list[Check], list[dict]]:
    """The local-file and ML-node checks, and the nodes models may run on."""
    local_file = _setting(settings, "plugins.ml_commons.allow_registering_model_via_local_file", "false")
    checks = [Check("local-file-registration", "ok" if local_file == "true" else "fail",
                    f"plugins.ml_commons.allow_registering_model_via_local_file = {local_file}",
                    None if local_file == "true" else
                    'PUT _cluster/settings {"persistent": {"plugins.ml_commons.allow_registering_model_via_local_file": true}}')]
    only_ml = str(model_nodes.setting(settings, model_nodes.ONLY_ML, "true")).lower() == "true"
    eligible = model_nodes.eligible_nodes(settings, nodes)
    names = ", ".join(sorted(eligible.values()))
    if not eligible:
        why = ("only_run_on_ml_node=true but no node has the ml role" if only_ml
               else f"no node has a role in {model_nodes.LOCAL_ROLES} (or all are in {model_nodes.EXCLUDED})")
        checks.append(Check("ml-nodes", "fail", why,
                            "add a node with node.roles: [ml], or set plugins.ml_commons.only_run_on_ml_node=false "
                            "(small clusters)"))
    else:
        where = f"ML nodes: {names}" if only_ml else f"models may run on {names} (only_run_on_ml_node=false)"
        checks.append(Check("ml-nodes", "ok", where))
    return checks, [nodes[i] for i in eligible]


def _memory_check(settings: dict, eligible: list[dict]) -> Check:
    heap_limit = float(_setting(settings, "plugins.ml_commons.jvm_heap_memory_threshold", "85") or 85)
    native_limit = float(_setting(settings, "plugins.ml_commons.native_memory_threshold", "90") or 90)
    problems, lines = [], []
    for n in eligible:
        heap = n["jvm"]["mem"]["heap_used_percent"]
        osmem = n["os"]["mem"]["used_percent"]
        tripped = {k: v["tripped"] for k, v in n.get("breakers", {}).items() if v.get("tripped")}
        lines.append(f"{n['name']}: heap {heap}% (ML limit {heap_limit:g}%), OS memory {osmem}% (ML limit {native_limit:g}%)")
        if heap >= heap_limit:
            problems.append(f"{n['name']} heap {heap}% >= jvm_heap_memory_threshold {heap_limit:g}")
        if osmem >= native_limit:
            problems.append(f"{n['name']} OS memory {osmem}% >= native_memory_threshold {native_limit:g}")
        if tripped:
            lines.append(f"{n['name']}: breakers tripped so far {tripped}")
    return Check("memory-breakers", "fail" if problems else "ok", "; ".join(problems or lines),
                 "free memory on the ML nodes or raise plugins.ml_commons.jvm_heap_memory_threshold / "
                 "native_memory_threshold (0-100)" if problems else None)


def _disk_check(settings: dict, eligible: list[dict]) -> Check:
    disk_limit = float(_setting(settings, "plugins.ml_commons.disk_free_space_threshold", "5368709120") or 0)
    low = []
    for n in eligible:
        free = (n.get("fs", {}).get("total") or {}).get("available_in_bytes")
        if free is not None and disk_limit >= 0 and free < disk_limit:
            low.append(f"{n['name']} has {free / 2**30:.1f} GiB free < disk_free_space_threshold {disk_limit / 2**30:.1f} GiB")
    return Check("disk", "fail" if low else "ok", "; ".join(low) or f"disk_free_space_threshold {disk_limit:g} bytes met",
                 "free disk or lower plugins.ml_commons.disk_free_space_threshold" if low else None)


def evaluate(facts: PreflightFacts) -> list[Check]:
    """Every check, computed from ``facts`` alone (no requests; unit-testable on each failure branch)."""
    ml_checks, eligible = _ml_node_checks(facts.settings, facts.nodes_stats)
    return [_cluster_check(facts.info), *_plugin_checks(facts.nodes_plugins), *ml_checks,
            _memory_check(facts.settings, eligible), _disk_check(facts.settings, eligible)]


def run_preflight(t: Transport) -> list[Check]:
    """Run every check against the cluster behind ``t``: :func:`evaluate` of :func:`gather_facts`."""
    return evaluate(gather_facts(t))


RERANK_ONLY = ("neural-search", "search-pipeline-common")


def failed_checks(checks: list[Check], *, need_rerank: bool = True) -> list[Check]:
    """The failed checks (the rerank checks are ignored with ``need_rerank=False``)."""
    return [c for c in checks if c.status == "fail" and (need_rerank or c.name not in RERANK_ONLY)]


def preflight_passed(checks: list[Check], *, need_rerank: bool = True) -> bool:
    """True when no check failed (the rerank checks are ignored with ``need_rerank=False``)."""
    return not failed_checks(checks, need_rerank=need_rerank)


def format_checks(checks: list[Check]) -> str:
    mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    out = []
    for c in checks:
        out.append(f"[{mark[c.status]}] {c.name}: {c.detail}")
        if c.fix:
            out.append(f"       fix: {c.fix}")
    return "\n".join(out)

