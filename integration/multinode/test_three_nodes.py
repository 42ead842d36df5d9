"""The rescorer and the client on a three-node cluster: every node has the plugin, an index with 3 primaries and a
replica is rescored identically whichever node coordinates, scores equal local ONNX Runtime scoring of the one model,
each shard rescores its own window, and a client that knows every node's URL survives a dead one."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import node_transport

from distilrank.plugin import rescore, rescorer_api
from distilrank.plugin.local_scoring import LocalScorer
from distilrank.plugin.transport import Transport

INDEX = f"distilrank-mn-{os.getpid()}"
MODEL = f"mn-{os.getpid()}"
QUERIES = ["notebook", "laptop bag", "hp toner cartridge", "usb cable", "wireless mouse"]


@pytest.fixture(scope="module")
def student(t3, tmp_path_factory):
    import icecat_student

    s = icecat_student.build_icecat_student(tmp_path_factory.mktemp("mn"), seed=2, name="mn-student")
    rescore.upload_model(t3, MODEL, s.zip)
    yield s
    rescore.delete_model(t3, MODEL)


@pytest.fixture(scope="module")
def index(t3, student):
    import icecat_student

    t3.request("PUT", f"/{INDEX}", {"settings": {"number_of_shards": 3, "number_of_replicas": 1},
                                    "mappings": {"properties": {"title": {"type": "text"}}}})
    lines = []
    for p in icecat_student.products():
        lines += [json.dumps({"index": {"_index": INDEX, "_id": p["id"]}}), json.dumps({"title": p["title"]})]
    assert not t3.request("POST", "/_bulk", "\n".join(lines) + "\n", params={"refresh": "true"})["errors"]
    t3.request("GET", "/_cluster/health", params={"index": INDEX, "wait_for_status": "green", "timeout": "60s"})
    yield INDEX
    t3.request("DELETE", f"/{INDEX}")


def _rescored(t: Transport, q: str, window: int = 15) -> list[tuple[str, float, str]]:
    body = rescore.rescore_search_body(q, model=MODEL, fields=["title"], window_size=window, size=10,
                                       query={"match": {"title": q}}, source=["title"])
    hits = t.request("POST", f"/{INDEX}/_search", body, params={"search_pipeline": "_none"})["hits"]["hits"]
    return [(h["_id"], h["_score"], h["_source"]["title"]) for h in hits]


def test_three_nodes_each_with_the_rescorer(cluster3, t3):
    nodes = t3.request("GET", "/_nodes/plugins")["nodes"]
    assert len(nodes) == cluster3["nodes"]
    for n in nodes.values():
        names = {p["name"] for p in n["plugins"]}
        assert {"distilrank", "opensearch-ml"} <= names and {"data", "ml", "cluster_manager"} <= set(n["roles"])
    assert rescore.rescorer_installed(t3)


def test_every_coordinator_serves_the_same_rescored_hits_scored_by_one_model(cluster3, index, student):
    scorer = LocalScorer(student.zip)
    shards = {s["node"] for s in node_transport(cluster3["urls"][0]).request("GET", f"/_cat/shards/{INDEX}",
                                                                              params={"format": "json", "h": "node"})}
    assert len(shards) == cluster3["nodes"], "primaries and replicas spread over every node"
    for q in QUERIES:
        answers = [_rescored(node_transport(url), q) for url in cluster3["urls"]]
        assert all(a == answers[0] for a in answers), q  # the same hits and scores whichever node coordinates
        local = scorer.score(q, [title for _, _, title in answers[0]])
        np.testing.assert_allclose([s for _, s, _ in answers[0]], local, atol=1e-4, err_msg=q)  # one model's logits


def test_warm_loads_the_model_on_the_node_that_answers(cluster3, student):
    for url in cluster3["urls"]:
        t = node_transport(url)
        res = rescorer_api.warm(t, MODEL, window_size=20)
        assert res["model_id"] == MODEL and res["warm_window_ms"] >= 0
        assert MODEL in {m["model_id"] for m in rescorer_api.stats(t)["models"]}, url


def test_a_client_that_knows_every_node_survives_a_dead_one(cluster3, index):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    from distilrank.plugin import api

    lines: list[str] = []
    t = api.connect(url=",".join([dead, *cluster3["urls"]]), log=lines.append)
    for q in QUERIES * 2:
        assert _rescored(t, q)
    assert any("retrying on another node" in line for line in lines)


ALIAS = f"mn{os.getpid()}"


@pytest.fixture(scope="module")
def two_models(t3, index, tmp_path_factory):
    """Two students registered (ML Commons deploys them on the ML nodes; the rescorer gets the zips); the alias points
    at the first. Removed at the end."""
    import icecat_student

    from distilrank.plugin import api, registry_store

    work = tmp_path_factory.mktemp("mn-two")
    students = [icecat_student.build_icecat_student(work, seed=s, name=f"mn-s{s}") for s in (20, 21)]
    regs = [api.register(t3, s.zip, group=f"mn-{os.getpid()}", deploy=True, progress=False) for s in students]
    api.promote(t3, ALIAS, regs[0]["model_id"], document_fields=["title"], depth=30, size=10)
    yield students, [r["model_id"] for r in regs]
    rec = registry_store.get_alias(t3, ALIAS)
    if rec:
        t3.request("DELETE", f"/_search/pipeline/{rec['pipeline']}", ok_statuses=(404,))
        t3.request("DELETE", f"/{registry_store.INDEX}/_doc/alias-{ALIAS}", ok_statuses=(404,))
    for r in regs:
        api.delete(t3, r["model_id"], force=True)


def test_promote_under_traffic_every_response_is_one_model(cluster3, t3, two_models):
    """4 clients (each coordinating through another node) rescore through the alias while it is promoted and rolled
    back 10 times: no failed search, and every response is exactly one model's scores (3 primaries + 1 replica, each
    shard scoring its own window)."""
    import threading

    from distilrank.plugin import api

    students, ids = two_models
    scorers = [LocalScorer(s.zip) for s in students]
    stop, results, errors = threading.Event(), [], []

    def client(i: int) -> None:
        t = node_transport(cluster3["urls"][i % len(cluster3["urls"])])
        k = 0
        while not stop.is_set():
            q = QUERIES[(i + k) % len(QUERIES)]
            k += 1
            body = rescore.rescore_search_body(q, model=ALIAS, fields=["title"], window_size=15, size=10,
                                               query={"match": {"title": q}}, source=["title"])
            try:
                resp = t.request("POST", f"/{INDEX}/_search", body, params={"search_pipeline": "_none"})
            except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                errors.append(repr(exc))
                continue
            if resp["_shards"]["failed"] or resp.get("timed_out"):
                errors.append(json.dumps(resp["_shards"]))
            results.append((q, [(h["_source"]["title"], h["_score"]) for h in resp["hits"]["hits"]]))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    try:
        for _ in range(5):
            api.promote(t3, ALIAS, ids[1])
            api.rollback(t3, ALIAS)
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert errors == [] and len(results) > 20
    seen = [0, 0]
    for q, hits in results:
        scores = np.array([s for _, s in hits])
        which = [m for m, sc in enumerate(scorers)
                 if np.allclose(scores, sc.score(q, [title for title, _ in hits]), atol=1e-4)]
        assert which, (q, hits)  # exactly one model's logits for every hit of the response
        seen[which[0]] += 1
    assert seen[0] > 0 and seen[1] > 0, seen
    print(f"promote under traffic on {cluster3['nodes']} nodes: {len(results)} searches, 0 failed, 0 mixed-model responses "
          f"(old model {seen[0]}, new model {seen[1]}), 10 alias moves")
