"""``deploy_model`` against a local HTTP server that answers ML Commons' REST calls in a scripted order (a real
socket and the real opensearch-py client).

The case scripted here cannot be produced on demand on a real node: ML Commons writing ``DEPLOY_FAILED`` over a
deploy that has just completed while a node holds the model (seen in CI right after a node restart, and once in this
project's integration run; ML Commons' sync-up job writes DEPLOYED again on its next run). The deploy
flows on a real node are in integration/ (test_plugin_roundtrip.py, test_staging_faults.py).
"""

from __future__ import annotations

import json

import pytest

from distilrank.plugin.deploy import DEPLOY_ATTEMPTS, deploy_model, transient_deploy_failures
from distilrank.plugin.transport import ClusterError
from tests.plugin.json_http import ScriptedHandler, scripted

MODEL = "/_plugins/_ml/models/m1"
PROFILE = "/_plugins/_ml/profile/models/m1"


class Scripted(ScriptedHandler):
    """ML Commons' answers, in order."""


@pytest.fixture()
def t():
    with scripted(Scripted) as t:
        yield t


def _deploy_task_completed(then_state: str) -> list[tuple[str, str, int, dict]]:
    return [("GET", MODEL, 200, {"model_state": "REGISTERED"}),
            ("POST", f"{MODEL}/_deploy", 200, {"task_id": "t1", "status": "CREATED"}),
            ("GET", "/_plugins/_ml/tasks/t1", 200, {"state": "COMPLETED", "task_type": "DEPLOY_MODEL"}),
            ("GET", MODEL, 200, {"model_state": then_state})]


def test_deploy_failed_written_over_a_loaded_model_is_waited_out(t):
    Scripted.script = [*_deploy_task_completed("DEPLOY_FAILED"),
                       ("GET", PROFILE, 200, {"nodes": {"n1": {"models": {"m1": {"model_state": "DEPLOYED"}}}}}),
                       ("GET", MODEL, 200, {"model_state": "DEPLOY_FAILED"}),
                       ("GET", PROFILE, 200, {"nodes": {"n1": {"models": {"m1": {"model_state": "DEPLOYED"}}}}}),
                       ("GET", MODEL, 200, {"model_state": "DEPLOYED", "planning_worker_nodes": ["n1"]})]
    dep = deploy_model(t, "m1", wait=30)
    assert (dep.state, dep.already_deployed, dep.task_id, dep.nodes) == ("DEPLOYED", False, "t1", ["n1"])


def test_deploy_failed_with_no_node_holding_the_model_is_an_error(t):
    Scripted.script = [*_deploy_task_completed("DEPLOY_FAILED"),
                       ("GET", PROFILE, 200, {"nodes": {"n1": {"models": {}}}}),
                       ("GET", "/_plugins/_ml/tasks/t1", 200, {"state": "FAILED", "error": '{"n1": "out of memory"}'})]
    with pytest.raises(ClusterError, match="model m1 ended DEPLOY_FAILED although its deploy task completed; "
                                           "the nodes report no copy of it; task t1: node n1: out of memory") as e:
        deploy_model(t, "m1", wait=30)
    assert "distilrank plugin deploy" in (e.value.fix or "")


def test_a_stale_deployed_document_is_redeployed_only_when_forced(t):
    Scripted.script = [("GET", MODEL, 200, {"model_state": "DEPLOYED", "planning_worker_nodes": ["n1"]})]
    assert deploy_model(t, "m1").already_deployed
    Scripted.script = [("GET", MODEL, 200, {"model_state": "DEPLOYED"}),
                       ("POST", f"{MODEL}/_deploy", 200, {"task_id": "t1", "status": "CREATED"}),
                       ("GET", "/_plugins/_ml/tasks/t1", 200, {"state": "COMPLETED"}),
                       ("GET", MODEL, 200, {"model_state": "DEPLOYED", "planning_worker_nodes": ["n1"]})]
    dep = deploy_model(t, "m1", force=True)
    assert not dep.already_deployed and dep.task_id == "t1"


def test_a_deploy_already_running_on_a_rejoined_node_is_waited_for(t):
    """ML Commons redeploys a model to a node that rejoined; a deploy sent meanwhile fails there with "Duplicate deploy
    model task" (seen in the three-node SIGKILL test): the wait goes on until that node holds it."""
    dup = '{"n2": "Duplicate deploy model task"}'
    Scripted.script = [("GET", MODEL, 200, {"model_state": "DEPLOYED"}),
                       ("POST", f"{MODEL}/_deploy", 200, {"task_id": "t1", "status": "CREATED"}),
                       ("GET", "/_plugins/_ml/tasks/t1", 200, {"state": "COMPLETED_WITH_ERROR", "task_type": "DEPLOY_MODEL", "error": dup}),
                       ("GET", PROFILE, 200, {"nodes": {"n1": {"models": {"m1": {"model_state": "DEPLOYED"}}},
                                                        "n2": {"models": {"m1": {"model_state": "DEPLOYING"}}}}}),
                       ("GET", PROFILE, 200, {"nodes": {"n1": {"models": {"m1": {"model_state": "DEPLOYED"}}},
                                                        "n2": {"models": {"m1": {"model_state": "DEPLOYED"}}}}}),
                       ("GET", MODEL, 200, {"model_state": "DEPLOYED", "planning_worker_nodes": ["n1", "n2"]})]
    lines: list[str] = []
    dep = deploy_model(t, "m1", wait=30, force=True, log=lines.append)
    assert dep.state == "DEPLOYED" and dep.nodes == ["n1", "n2"]
    assert any("already running on node(s) ['n2']" in line for line in lines)


def test_other_deploy_errors_beside_a_duplicate_still_fail(t):
    err = '{"n1": "Duplicate deploy model task", "n2": "out of memory"}'
    Scripted.script = [("GET", MODEL, 200, {"model_state": "REGISTERED"}),
                       ("POST", f"{MODEL}/_deploy", 200, {"task_id": "t1", "status": "CREATED"}),
                       ("GET", "/_plugins/_ml/tasks/t1", 200, {"state": "COMPLETED_WITH_ERROR", "task_type": "DEPLOY_MODEL", "error": err})]
    with pytest.raises(ClusterError, match="out of memory"):
        deploy_model(t, "m1", wait=30)


RACE = ("This method should only be called when model is in DEPLOYING state, but the model is in state: "
        "PARTIALLY_DEPLOYED")


def _raced_task(task: str, node: str) -> tuple[str, str, int, dict]:
    return ("GET", f"/_plugins/_ml/tasks/{task}", 200,
            {"state": "COMPLETED_WITH_ERROR", "task_type": "DEPLOY_MODEL", "error": json.dumps({node: RACE})})


def test_a_node_that_lost_the_document_race_gets_the_deploy_again(t):
    """A node reads the model document after ML Commons' own redeploy to a rejoined node set it PARTIALLY_DEPLOYED
    and gives up before loading (seen in CI's three-node SIGKILL test): the second deploy completes."""
    Scripted.script = [("GET", MODEL, 200, {"model_state": "PARTIALLY_DEPLOYED"}),
                       ("POST", f"{MODEL}/_deploy", 200, {"task_id": "t1", "status": "CREATED"}),
                       _raced_task("t1", "n3"),
                       ("POST", f"{MODEL}/_deploy", 200, {"task_id": "t2", "status": "CREATED"}),
                       ("GET", "/_plugins/_ml/tasks/t2", 200, {"state": "COMPLETED", "task_type": "DEPLOY_MODEL"}),
                       ("GET", MODEL, 200, {"model_state": "DEPLOYED", "planning_worker_nodes": ["n1", "n2", "n3"]})]
    lines: list[str] = []
    dep = deploy_model(t, "m1", wait=30, force=True, log=lines.append)
    assert (dep.state, dep.task_id, dep.nodes) == ("DEPLOYED", "t2", ["n1", "n2", "n3"])
    assert any("node(s) ['n3'] read its document" in line and "(2/3)" in line for line in lines), lines
    assert Scripted.script == []


def test_a_race_lost_on_every_attempt_is_an_error(t):
    Scripted.script = [("GET", MODEL, 200, {"model_state": "PARTIALLY_DEPLOYED"})]
    for i in range(1, DEPLOY_ATTEMPTS + 1):
        Scripted.script += [("POST", f"{MODEL}/_deploy", 200, {"task_id": f"t{i}", "status": "CREATED"}),
                            _raced_task(f"t{i}", "n3")]
    with pytest.raises(ClusterError, match=f"ML task t{DEPLOY_ATTEMPTS} .* node n3: This method should only be called"):
        deploy_model(t, "m1", wait=30, force=True)
    assert Scripted.script == []


def test_transient_failures_are_split_by_kind_and_anything_else_is_real():
    dup, race = "Duplicate deploy model task", RACE
    assert transient_deploy_failures({"error": json.dumps({"b": dup, "a": race, "c": race})}) == (["b"], ["a", "c"])
    assert transient_deploy_failures({"error": json.dumps({"a": race, "b": "out of memory"})}) == ([], [])
    assert transient_deploy_failures({"error": "plain text"}) == ([], [])
    assert transient_deploy_failures({}) == ([], [])
