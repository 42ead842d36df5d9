"""Fixtures of the several-node suite (``make test-integration-multinode``): a three-node cluster from
``integration/cluster/multinode.py``, started here unless one is running (then left running), stopped at the end when
started here. ``DISTILRANK_MULTINODE_NODES`` changes the node count."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))

import multinode  # noqa: E402


@pytest.fixture(scope="session")
def cluster3():
    """The running cluster's state: ``urls`` (one per node), ``url`` (comma-separated), ``nodes``."""
    nodes = int(os.environ.get("DISTILRANK_MULTINODE_NODES", "3"))
    running = multinode.status()
    started_here = not (running and running["nodes"] == nodes and multinode.cluster_health(running, nodes)[0])
    state = multinode.start(nodes=nodes, offline=True) if started_here else running
    yield state
    if started_here:
        multinode.stop()


@pytest.fixture(scope="session")
def t3(cluster3):
    """distilrank's transport with every node's URL (reads fail over between them)."""
    from distilrank.plugin import api

    return api.connect(url=cluster3["url"])


def node_transport(url: str):
    """A transport to one node only (that node coordinates every request)."""
    from distilrank.plugin import api

    return api.connect(url=url, retries=0)


INDEX = f"distilrank-mn-{os.getpid()}"
ALIAS = f"mn{os.getpid()}"
QUERIES = ["notebook", "laptop bag", "hp toner cartridge", "usb cable", "wireless mouse"]
#: the rescorer scores of model i are RESCORER_WEIGHTS[i] x its logit (stored blend: query_weight 0, no normalisation),
#: so a response scored with one model's weights and the other model's logits is caught
RESCORER_WEIGHTS = (1.0, 2.0)


@pytest.fixture(scope="session")
def mn_index(t3):
    """The Icecat titles in an index with 3 primaries and 1 replica (every node holds shards), green; a delayed
    allocation timeout of 5 minutes so replicas stay put while a node restarts. Deleted at the end."""
    import icecat_student

    from distilrank.plugin import index_api

    t3.request("PUT", f"/{INDEX}", {"settings": {"number_of_shards": 3, "number_of_replicas": 1,
                                                 "index.unassigned.node_left.delayed_timeout": "5m"},
                                    "mappings": {"properties": {"title": {"type": "text"}}}})
    lines = []
    for p in icecat_student.products():
        lines += [json.dumps({"index": {"_index": INDEX, "_id": p["id"]}}), json.dumps({"title": p["title"]})]
    assert not t3.request("POST", "/_bulk", "\n".join(lines) + "\n", params={"refresh": "true"})["errors"]
    index_api.wait_for_status(t3, "green", index=INDEX, timeout=60)
    yield INDEX
    t3.request("DELETE", f"/{INDEX}", ok_statuses=(404,))


@pytest.fixture(scope="session")
def two_models(t3, mn_index, tmp_path_factory):
    """Two students registered (ML Commons deploys them on the ML nodes; the rescorer gets the zips, each with its own
    stored blend: ``RESCORER_WEIGHTS[i]`` x the logit); the alias points at the first (pipeline ``distilrank-<alias>``,
    depth 30). Removed at the end. Yields ``(students, model_ids)``."""
    import icecat_student

    from distilrank.plugin import api, registry_store, rescore
    from distilrank.plugin.blend import BlendSettings

    work = tmp_path_factory.mktemp("mn-two")
    students = [icecat_student.build_icecat_student(work, seed=s, name=f"mn-s{s}") for s in (20, 21)]
    regs = [api.register(t3, s.zip, group=f"mn-{os.getpid()}", deploy=True, progress=False) for s in students]
    for s, r, w in zip(students, regs, RESCORER_WEIGHTS):  # blend settings stored with each model: they move with it
        rescore.upload_model(t3, r["model_id"], s.zip, blend=BlendSettings(query_weight=0.0, model_weight=w, normalization="none"))
    api.promote(t3, ALIAS, regs[0]["model_id"], document_fields=["title"], depth=30, size=10)
    yield students, [r["model_id"] for r in regs]
    rec = registry_store.get_alias(t3, ALIAS)
    if rec:
        t3.request("DELETE", f"/_search/pipeline/{rec['pipeline']}", ok_statuses=(404,))
        registry_store.delete_alias(t3, ALIAS)
    for r in regs:
        api.delete(t3, r["model_id"], force=True)


def rescorer_search(q: str, model: str = ALIAS, window: int = 15) -> tuple[dict, dict]:
    """A rescored search through the distilrank rescorer naming ``model`` (alias or id): ``(body, params)``."""
    from distilrank.plugin import rescore

    return (rescore.rescore_search_body(q, model=model, fields=["title"], window_size=window, size=10,
                                        query={"match": {"title": q}}, source=["title"]), {"search_pipeline": "_none"})


def pipeline_search(q: str, alias: str = ALIAS) -> tuple[dict, dict]:
    """A search through the alias's ML Commons rerank pipeline: ``(body, params)``."""
    from distilrank.plugin.pipelines import rerank_search_body

    return rerank_search_body(q, size=10, fields=["title"], source=["title"]), {"search_pipeline": f"distilrank-{alias}"}
