"""The rescorer and the client on a three-node cluster: every node has the plugin, an index with 3 primaries and a
replica is rescored identically whichever node coordinates, scores equal local ONNX Runtime scoring of the one model,
each shard rescores its own window, ``_warm`` loads a model on every data node and ``_stats`` reports every node, and a
client that knows every node's URL survives a dead one."""
from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import INDEX, QUERIES, node_transport, rescorer_search

from distilrank.plugin import rescore, rescorer_api
from distilrank.plugin.local_scoring import LocalScorer
from distilrank.plugin.transport import Transport

MODEL = f"mn-{os.getpid()}"


@pytest.fixture(scope="module")
def student(t3, tmp_path_factory):
    import icecat_student

    with icecat_student.uploaded_student(t3, tmp_path_factory.mktemp("mn"), MODEL, seed=2, name="mn-student") as s:
        yield s


def _rescored(t: Transport, q: str) -> list[tuple[str, float, str]]:
    body, params = rescorer_search(q, model=MODEL)
    hits = t.request("POST", f"/{INDEX}/_search", body, params=params)["hits"]["hits"]
    return [(h["_id"], h["_score"], h["_source"]["title"]) for h in hits]


def test_three_nodes_each_with_the_rescorer(cluster3, t3):
    nodes = t3.request("GET", "/_nodes/plugins")["nodes"]
    assert len(nodes) == cluster3["nodes"]
    for n in nodes.values():
        names = {p["name"] for p in n["plugins"]}
        assert {"distilrank", "opensearch-ml"} <= names and {"data", "ml", "cluster_manager"} <= set(n["roles"])
    assert rescore.rescorer_installed(t3)


def test_every_coordinator_serves_the_same_rescored_hits_scored_by_one_model(cluster3, mn_index, student):
    scorer = LocalScorer(student.zip)
    shards = {s["node"] for s in node_transport(cluster3["urls"][0]).request("GET", f"/_cat/shards/{INDEX}",
                                                                              params={"format": "json", "h": "node"})}
    assert len(shards) == cluster3["nodes"], "primaries and replicas spread over every node"
    for q in QUERIES:
        answers = [_rescored(node_transport(url), q) for url in cluster3["urls"]]
        assert all(a == answers[0] for a in answers), q  # the same hits and scores whichever node coordinates
        local = scorer.score(q, [title for _, _, title in answers[0]])
        np.testing.assert_allclose([s for _, s, _ in answers[0]], local, atol=1e-4, err_msg=q)  # one model's logits


def test_warm_loads_the_model_on_every_data_node_whichever_node_answers(cluster3, student):
    for url in cluster3["urls"]:
        t = node_transport(url)
        rescore.delete_model(t, MODEL)  # evicted everywhere; uploaded again below
        rescore.upload_model(t, MODEL, student.zip)
        res = rescorer_api.warm(t, MODEL, window_size=20)
        assert res["model_id"] == MODEL and res["_nodes"] == {"total": 3, "successful": 3, "failed": 0}, res
        assert all(not n["already_loaded"] and n["warm_window_ms"] >= 0 and n["load_steps_ms"] for n in res["nodes"].values())
        held = {m["node"] for m in rescorer_api.loaded_models(t) if m["model_id"] == MODEL}
        assert len(held) == cluster3["nodes"], (url, held)
        again = rescorer_api.warm(t, MODEL, window_size=20)
        assert all(n["already_loaded"] for n in again["nodes"].values())


def test_stats_report_every_node_and_a_node_filter(cluster3, t3):
    stats = rescorer_api.stats(t3)
    assert stats["_nodes"]["successful"] == cluster3["nodes"] and len(stats["nodes"]) == cluster3["nodes"]
    for n in stats["nodes"].values():
        assert n["name"].startswith("distilrank-multi-") and n["max_models"] == 4 and "models" in n and "protected" in n
    local = rescorer_api.stats(node_transport(cluster3["urls"][1]), nodes="_local")
    assert [n["name"] for n in local["nodes"].values()] == ["distilrank-multi-1"]


def test_a_client_that_knows_every_node_survives_a_dead_one(cluster3, mn_index):
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
