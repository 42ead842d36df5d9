"""Preflight checks computed from cluster responses (the shapes OpenSearch returns), one test per failure branch."""

import copy

import pytest

from distilrank.plugin.preflight import PreflightFacts, evaluate, failed_checks, format_checks, preflight_passed

GIB = 2**30


def _node(name, roles=("data", "ingest", "cluster_manager", "ml"), plugins=("opensearch-ml", "opensearch-neural-search")):
    return {"name": name, "roles": list(roles), "plugins": [{"name": p, "version": "3.6.0.0"} for p in plugins],
            "modules": [{"name": "search-pipeline-common"}, {"name": "lang-painless"}]}


def _stats(name, roles=("data", "ml"), heap=40, osmem=60, free=50 * GIB, tripped=0):
    return {"name": name, "roles": list(roles), "jvm": {"mem": {"heap_used_percent": heap}}, "os": {"mem": {"used_percent": osmem}},
            "fs": {"total": {"available_in_bytes": free}}, "breakers": {"parent": {"tripped": tripped}}}


@pytest.fixture()
def healthy() -> PreflightFacts:
    return PreflightFacts(
        info={"cluster_name": "staging", "version": {"number": "3.6.0"}},
        nodes_plugins={"n1": _node("node-1"), "n2": _node("node-2")},
        settings={"persistent": {"plugins.ml_commons.allow_registering_model_via_local_file": "true"}, "transient": {},
                  "defaults": {"plugins.ml_commons.only_run_on_ml_node": "true",
                               "plugins.ml_commons.jvm_heap_memory_threshold": "85",
                               "plugins.ml_commons.native_memory_threshold": "90",
                               "plugins.ml_commons.disk_free_space_threshold": str(5 * GIB)}},
        nodes_stats={"n1": _stats("node-1"), "n2": _stats("node-2")},
    )


def _by_name(checks):
    return {c.name: c for c in checks}


def test_a_healthy_cluster_passes_every_check(healthy):
    checks = evaluate(healthy)
    assert [c.name for c in checks] == ["cluster", "ml-commons", "neural-search", "search-pipeline-common",
                                        "local-file-registration", "ml-nodes", "memory-breakers", "disk"]
    assert all(c.status == "ok" and c.fix is None for c in checks), format_checks(checks)
    assert preflight_passed(checks)


@pytest.mark.parametrize("version, status", [("2.19.1", "warn"), ("2.11.0", "fail"), ("3.0.0-alpha1", "ok")])
def test_cluster_version(healthy, version, status):
    healthy.info["version"]["number"] = version
    c = _by_name(evaluate(healthy))["cluster"]
    assert c.status == status and version in c.detail and (c.fix is None) == (status == "ok")


def test_missing_plugins_name_the_nodes_and_the_fix(healthy):
    healthy.nodes_plugins["n2"] = _node("node-2", plugins=("opensearch-neural-search",))
    healthy.nodes_plugins["n1"]["modules"] = []
    checks = _by_name(evaluate(healthy))
    assert checks["ml-commons"].status == "fail" and "missing on node-2" in checks["ml-commons"].detail
    assert "opensearch-plugin install opensearch-ml" in checks["ml-commons"].fix
    assert checks["search-pipeline-common"].status == "fail" and "node-1" in checks["search-pipeline-common"].detail
    assert checks["neural-search"].status == "ok"


def test_rerank_checks_can_be_ignored_when_only_registering(healthy):
    for n in healthy.nodes_plugins.values():
        n["plugins"] = [p for p in n["plugins"] if p["name"] != "opensearch-neural-search"]
    checks = evaluate(healthy)
    assert not preflight_passed(checks) and preflight_passed(checks, need_rerank=False)
    assert [c.name for c in failed_checks(checks)] == ["neural-search"]


def test_local_file_registration_off(healthy):
    healthy.settings["persistent"] = {}
    c = _by_name(evaluate(healthy))["local-file-registration"]
    assert c.status == "fail" and c.detail.endswith("= false") and "allow_registering_model_via_local_file" in c.fix


def test_no_ml_node_while_only_run_on_ml_node(healthy):
    healthy.nodes_stats = {"n1": _stats("node-1", roles=("data",))}
    checks = _by_name(evaluate(healthy))
    assert checks["ml-nodes"].status == "fail" and "node.roles: [ml]" in checks["ml-nodes"].fix
    healthy.settings["transient"]["plugins.ml_commons.only_run_on_ml_node"] = "false"  # transient wins over defaults
    assert _by_name(evaluate(healthy))["ml-nodes"].status == "ok"


def test_memory_over_ml_commons_thresholds(healthy):
    healthy.nodes_stats["n1"] = _stats("node-1", heap=91)
    healthy.nodes_stats["n2"] = _stats("node-2", osmem=95, tripped=3)
    c = _by_name(evaluate(healthy))["memory-breakers"]
    assert c.status == "fail"
    assert "node-1 heap 91% >= jvm_heap_memory_threshold 85" in c.detail and "node-2 OS memory 95% >= native_memory_threshold 90" in c.detail
    # a raised threshold clears it; the tripped breaker is then reported, not failed
    healthy.settings["persistent"].update({"plugins.ml_commons.jvm_heap_memory_threshold": "95",
                                           "plugins.ml_commons.native_memory_threshold": "99"})
    c = _by_name(evaluate(healthy))["memory-breakers"]
    assert c.status == "ok" and "breakers tripped so far {'parent': 3}" in c.detail


def test_memory_of_non_ml_nodes_is_ignored_when_models_run_on_ml_nodes_only(healthy):
    healthy.nodes_stats["n3"] = _stats("coordinator", roles=("data",), heap=99)
    assert _by_name(evaluate(healthy))["memory-breakers"].status == "ok"


def test_low_disk(healthy):
    healthy.nodes_stats["n2"] = _stats("node-2", free=2 * GIB)
    c = _by_name(evaluate(healthy))["disk"]
    assert c.status == "fail" and "node-2 has 2.0 GiB free < disk_free_space_threshold 5.0 GiB" in c.detail


def test_format_marks_failures_with_their_fix(healthy):
    broken = copy.deepcopy(healthy)
    broken.settings["persistent"] = {}
    text = format_checks(evaluate(broken))
    assert "[FAIL] local-file-registration" in text and "fix: PUT _cluster/settings" in text and "[ok  ] cluster" in text
