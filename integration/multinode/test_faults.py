"""Faults on three nodes under searching clients (index with 3 primaries + 1 replica; each client knows all three
URLs and starts at a different node). A failed search is an error after the client's retries, ``_shards.failed > 0``
or ``timed_out`` (:mod:`traffic`). Every answered response is checked to be exactly one model's scores.

* promote / rollback 10 times: 0 failed searches, every response one model, on the rescorer path and the ML Commons
  pipeline path at once (on the rescorer path each model has its own stored blend weight, so a response is also
  checked to use one set of weights: the one stored with its model);
* one data node SIGKILLed: failed searches only among those in flight when it died (at most the number of clients),
  0 once the cluster is yellow again; when it returns, ``plugin ensure`` leaves the alias serving (idempotent on a
  second call) and the returned node's rescorer holds the model again;
* a rolling restart of all three nodes by the standard procedure (replica allocation off, flush, restart one node,
  wait for it, allocation on, wait for green): 0 failed searches.

Each test prints its row of the fault table (``pytest -s``) and records it in ``runs/integration/multinode-faults.json``.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import multinode
import pytest
from conftest import ALIAS, INDEX, QUERIES, RESCORER_WEIGHTS, pipeline_search, rescorer_search
from traffic import Traffic, which_models

from distilrank.plugin import api, index_api, rescorer_api
from distilrank.plugin.local_scoring import LocalScorer

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 4
TABLE: dict[str, dict] = {}


def _record(fault: str, row: dict) -> None:
    TABLE[fault] = row
    out = ROOT / "runs" / "integration" / "multinode-faults.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(TABLE, indent=2) + "\n")
    print(f"\n[fault] {fault}: " + ", ".join(f"{k} {v}" for k, v in row.items()), file=sys.stderr)


def _search(path: str):
    make = rescorer_search if path == "rescorer" else pipeline_search

    def search(t, q):
        body, params = make(q)
        return t.request("POST", f"/{INDEX}/_search", body, params=params)

    return search


def _one_model(traffic: Traffic, students, path: str = "rescorer") -> tuple[list[int], int]:
    """Responses per model and the number no single model (with its stored weights on the rescorer path) explains."""
    scales = RESCORER_WEIGHTS if path == "rescorer" else None
    counts, mixed = which_models(traffic.answered(), [LocalScorer(s.zip) for s in students], scales)
    return counts, len(mixed)


def test_promote_and_rollback_10_times_on_both_paths(cluster3, t3, two_models):
    students, ids = two_models
    with Traffic(cluster3["urls"], QUERIES, _search("rescorer"), clients=CLIENTS // 2) as rescorer, \
            Traffic(cluster3["urls"], QUERIES, _search("pipeline"), clients=CLIENTS // 2) as pipeline:
        time.sleep(1.0)
        for _ in range(10):
            api.promote(t3, ALIAS, ids[1])
            api.rollback(t3, ALIAS)
        time.sleep(1.0)
    row = {}
    for name, traffic in (("rescorer", rescorer), ("pipeline", pipeline)):
        counts, mixed = _one_model(traffic, students, name)
        row[name] = {"searches": len(traffic.outcomes), "failed": len(traffic.failed()), "mixed_model": mixed,
                     "old_model": counts[0], "new_model": counts[1]}
        assert traffic.failed() == [], [o.error for o in traffic.failed()][:5]
        assert mixed == 0 and counts[0] > 0 and counts[1] > 0, (name, counts, mixed)
    _record("promote/rollback x10 (3 nodes)", row)


def test_sigkill_one_data_node_under_traffic(cluster3, t3, two_models):
    students, ids = two_models
    victim = 2
    with Traffic(cluster3["urls"], QUERIES, _search("rescorer"), clients=CLIENTS) as traffic:
        time.sleep(2.0)
        killed_at = time.monotonic()
        multinode.kill_node(cluster3, victim)
        yellow_s = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the cluster sees the node gone and serves every shard from the others
            health = t3.request("GET", "/_cluster/health")
            if health["number_of_nodes"] == cluster3["nodes"] - 1 and health["status"] in ("yellow", "green"):
                yellow_s = time.monotonic() - killed_at
                break
            time.sleep(0.2)
        yellow_at = time.monotonic()
        time.sleep(5.0)  # searching on two nodes
        back_s = multinode.restart_node(cluster3, victim)
        ensure = api.ensure(t3, ALIAS)
        again = api.ensure(t3, ALIAS)
        green_s = index_api.wait_for_status(t3, "green")[0]
        time.sleep(2.0)
    in_flight = traffic.failed(until=yellow_at)
    after = traffic.failed(since=yellow_at)
    counts, mixed = _one_model(traffic, students)
    victim_name = f"distilrank-multi-{victim}"
    held = {n["name"]: [m["model_id"] for m in n["models"]] for n in rescorer_api.stats(t3)["nodes"].values()}
    _record("SIGKILL one of 3 nodes", {
        "searches": len(traffic.outcomes), "failed_while_node_died": len(in_flight), "failed_after_yellow": len(after),
        "mixed_model": mixed, "yellow_after_s": round(yellow_s or -1, 1), "node_back_s": round(back_s, 1),
        "green_after_return_s": round(green_s, 1), "ensure_actions": ensure["actions"],
        "ensure_found_without_model": ensure["nodes_without_model"], "ensure_waited_s": ensure["waited_for_deploying_s"],
        "second_ensure_actions": again["actions"],
        "errors": [o.error for o in in_flight + after][:10]})
    assert yellow_s is not None, "the cluster did not drop the killed node within 120 s"
    assert len(in_flight) <= CLIENTS and after == [], [o.error for o in in_flight + after][:5]
    assert mixed == 0
    assert again["actions"] == [], again  # idempotent once the node is back
    assert ids[0] in held[victim_name], held  # ensure warmed the returned node's rescorer


def test_rolling_restart_of_all_three_nodes_under_traffic(cluster3, t3, two_models):
    students, _ = two_models
    steps = []
    with Traffic(cluster3["urls"], QUERIES, _search("rescorer"), clients=CLIENTS) as traffic:
        time.sleep(2.0)
        for i in range(cluster3["nodes"]):
            t0 = time.monotonic()
            t3.request("PUT", "/_cluster/settings", {"persistent": {"cluster.routing.allocation.enable": "primaries"}})
            t3.request("POST", "/_flush")
            multinode.stop_node(cluster3, i)
            back = multinode.restart_node(cluster3, i)
            t3.request("PUT", "/_cluster/settings", {"persistent": {"cluster.routing.allocation.enable": None}})
            green = index_api.wait_for_status(t3, "green")[0]
            steps.append({"node": i, "rejoined_s": round(back, 1), "green_s": round(green, 1), "total_s": round(time.monotonic() - t0, 1)})
        time.sleep(2.0)
    counts, mixed = _one_model(traffic, students)
    _record("rolling restart of 3 nodes", {"searches": len(traffic.outcomes), "failed": len(traffic.failed()), "mixed_model": mixed,
                                           "steps": steps, "errors": [o.error for o in traffic.failed()][:10]})
    assert traffic.failed() == [], [o.error for o in traffic.failed()][:5]
    assert mixed == 0 and len(traffic.answered()) > 20


@pytest.fixture(autouse=True, scope="module")
def _allocation_back_on(t3):
    yield
    t3.request("PUT", "/_cluster/settings", {"persistent": {"cluster.routing.allocation.enable": None}})
