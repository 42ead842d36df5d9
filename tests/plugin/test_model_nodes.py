"""Which nodes must hold a model (ML Commons' eligibility rules) and which do not (the profile API), against a local
HTTP server answering ML Commons' REST calls in a scripted order (a real socket and the real opensearch-py client).

The race these guard cannot be produced on demand on a real node: right after a node rejoins, the model document still
says DEPLOYED (or already PARTIALLY_DEPLOYED, or DEPLOYING) while the rejoined node has no copy or is loading one.
``plugin ensure`` decides on the nodes' own view; the three-node SIGKILL test (integration/multinode) runs it for real.
"""

from __future__ import annotations

import pytest

from distilrank.plugin import model_nodes
from tests.plugin.json_http import ScriptedHandler, scripted

PROFILE = "/_plugins/_ml/profile/models/m1"
NODES = {"a1": {"name": "n1", "roles": ["data", "ml", "cluster_manager"]},
         "b2": {"name": "n2", "roles": ["data", "ingest"]},
         "c3": {"name": "n3", "roles": ["ml"]},
         "d4": {"name": "n4", "roles": ["cluster_manager"]},
         "e5": {"name": "n5", "roles": ["data"], "attributes": {"box_type": "warm"}}}


def _settings(**persistent) -> dict:
    return {"persistent": persistent, "transient": {},
            "defaults": {model_nodes.ONLY_ML: "true", model_nodes.LOCAL_ROLES: ["data", "ml"], model_nodes.EXCLUDED: ""}}


@pytest.mark.parametrize(("persistent", "expected"), [
    ({}, {"a1": "n1", "c3": "n3"}),  # only_run_on_ml_node defaults to true: the ml role
    ({model_nodes.ONLY_ML: "false"}, {"a1": "n1", "b2": "n2", "c3": "n3"}),  # hot data nodes and ml nodes
    ({model_nodes.ONLY_ML: "false", model_nodes.LOCAL_ROLES: ["ml"]}, {"a1": "n1", "c3": "n3"}),
    ({model_nodes.ONLY_ML: "false", model_nodes.LOCAL_ROLES: "data"}, {"a1": "n1", "b2": "n2"}),
    ({model_nodes.ONLY_ML: "false", model_nodes.EXCLUDED: "n2, n3"}, {"a1": "n1"}),
])
def test_eligible_nodes_follow_ml_commons_settings(persistent, expected):
    assert model_nodes.eligible_nodes(_settings(**persistent), NODES) == expected


def test_transient_setting_wins_over_persistent():
    settings = _settings(**{model_nodes.ONLY_ML: "false"})
    settings["transient"] = {model_nodes.ONLY_ML: "true"}
    assert model_nodes.eligible_nodes(settings, NODES) == {"a1": "n1", "c3": "n3"}


class Scripted(ScriptedHandler):
    """ML Commons' answers, in order."""


@pytest.fixture()
def t():
    with scripted(Scripted) as t:
        yield t


def _profile(**states: str) -> dict:
    return {"nodes": {node: {"models": {"m1": {"model_state": s}} if s else {}} for node, s in states.items()}}


ELIGIBLE = {"a1": "n1", "b2": "n2", "c3": "n3"}


def test_a_rejoined_node_without_the_model_is_found_whatever_the_document_says(t):
    Scripted.script = [("GET", "/_cluster/settings", 200, _settings(**{model_nodes.ONLY_ML: "false"})),
                       ("GET", "/_nodes", 200, {"nodes": NODES}),
                       ("GET", PROFILE, 200, _profile(a1="DEPLOYED", b2="", c3="DEPLOYED"))]
    assert model_nodes.nodes_without_model(t, "m1") == {"n2": "absent"}


def test_every_eligible_node_holding_it_means_nothing_to_do(t):
    Scripted.script = [("GET", PROFILE, 200, _profile(a1="DEPLOYED", b2="DEPLOYED", c3="DEPLOYED", d4=""))]
    assert model_nodes.nodes_without_model(t, "m1", ELIGIBLE) == {}


def test_a_node_still_deploying_is_waited_for(t):
    Scripted.script = [("GET", PROFILE, 200, _profile(a1="DEPLOYED", b2="DEPLOYING", c3="DEPLOYED")),
                       ("GET", PROFILE, 200, _profile(a1="DEPLOYED", b2="DEPLOYING", c3="DEPLOYED")),
                       ("GET", PROFILE, 200, _profile(a1="DEPLOYED", b2="DEPLOYED", c3="DEPLOYED"))]
    missing, waited = model_nodes.wait_while_nodes_deploying(t, "m1", 30, poll=0.01, eligible=ELIGIBLE)
    assert missing == {} and 0 < waited < 5


def test_a_node_that_stays_deploying_is_returned_after_the_timeout(t):
    Scripted.script = [("GET", PROFILE, 200, _profile(a1="DEPLOYED", b2="DEPLOYING"))] * 3
    missing, waited = model_nodes.wait_while_nodes_deploying(t, "m1", 0.05, poll=0.03, eligible=ELIGIBLE)
    assert missing == {"n2": "DEPLOYING", "n3": "absent"} and waited >= 0.05
    Scripted.script = []


def test_a_node_that_fails_its_deploy_ends_the_wait(t):
    Scripted.script = [("GET", PROFILE, 200, _profile(a1="DEPLOYED", b2="DEPLOYING", c3="DEPLOYED")),
                       ("GET", PROFILE, 200, _profile(a1="DEPLOYED", b2="", c3="DEPLOYED"))]
    missing, _ = model_nodes.wait_while_nodes_deploying(t, "m1", 30, poll=0.01, eligible=ELIGIBLE)
    assert missing == {"n2": "absent"}
