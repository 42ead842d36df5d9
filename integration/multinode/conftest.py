"""Fixtures of the several-node suite (``make test-integration-multinode``): a three-node cluster from
``integration/cluster/multinode.py``, started here unless one is running (then left running), stopped at the end when
started here. ``DISTILRANK_MULTINODE_NODES`` changes the node count."""
from __future__ import annotations

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
