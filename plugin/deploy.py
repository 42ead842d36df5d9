"""Deploy a registered model, wait for its task with a bounded wait, and prove it scores like the zip.

:func:`deploy_model` is idempotent (a DEPLOYED model is left as it is) and reports the per-node errors of a
failed deploy task verbatim. :func:`smoke_test` sends sample pairs to ``_predict`` and compares them with the
same zip scored locally in ONNX Runtime (:mod:`distilrank.plugin.local_scoring`); on a mismatch beyond ``tolerance`` the
model is undeployed and :class:`SmokeTestError` is raised, so a broken model never reaches a search.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from distilrank.plugin import ml_api
from distilrank.plugin.register import wait_model_state
from distilrank.plugin.transport import ClusterError, Transport


class SmokeTestError(ClusterError):
    """The deployed model's scores differ from the zip's local scores."""


@dataclass
class Deployment:
    model_id: str
    state: str
    already_deployed: bool
    task_id: str | None = None
    nodes: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class SmokeResult:
    n_pairs: int
    max_abs_diff: float
    tolerance: float
    passed: bool
    worst: list[dict] = field(default_factory=list)


#: ML Commons' per-node error when a deploy of the model is already running on that node (e.g. its own redeploy of
#: the model onto a node that just restarted)
DUPLICATE_DEPLOY = "Duplicate deploy model task"

#: ML Commons' per-node error when the node read the model document after another writer (its own redeploy to a node
#: that rejoined, or the sync-up job) had replaced DEPLOYING with PARTIALLY_DEPLOYED: the node gives up before loading
#: anything (ML Commons 3.6, seen in the three-node SIGKILL test). Sending the deploy again succeeds.
DEPLOYING_STATE_RACE = "should only be called when model is in DEPLOYING state"

#: how many deploy requests :func:`deploy_model` sends when every failure is :data:`DEPLOYING_STATE_RACE`
DEPLOY_ATTEMPTS = 3


def remaining_wait(wait: float, t0: float) -> float:
    """Seconds left of a ``wait`` that began at ``time.monotonic() == t0``, at least 10 (a later step of a slow
    deploy still gets a short wait of its own)."""
    return max(10.0, wait - (time.monotonic() - t0))


def _per_node(task: dict) -> dict | str | None:
    err = task.get("error")
    if not err:
        return None
    try:
        return json.loads(err) if isinstance(err, str) else err
    except json.JSONDecodeError:
        return str(err)


def _node_errors(task: dict) -> str:
    per_node = _per_node(task)
    if per_node is None:
        return json.dumps(task)[:2000]
    if isinstance(per_node, dict):
        return "; ".join(f"node {node}: {msg}" for node, msg in per_node.items())
    return str(per_node)


def transient_deploy_failures(task: dict) -> tuple[list[str], list[str]]:
    """Split a failed deploy task's nodes into ``(duplicate, raced)``: those where a deploy of the model was already
    running (:data:`DUPLICATE_DEPLOY`) and those that lost ML Commons' document race (:data:`DEPLOYING_STATE_RACE`).
    Both are empty when any per-node error is something else (a real failure)."""
    per_node = _per_node(task)
    if not isinstance(per_node, dict) or not per_node:
        return [], []
    duplicate = sorted(n for n, m in per_node.items() if DUPLICATE_DEPLOY in str(m))
    raced = sorted(n for n, m in per_node.items() if DEPLOYING_STATE_RACE in str(m))
    if len(duplicate) + len(raced) != len(per_node):
        return [], []
    return duplicate, raced


def _wait_nodes_deployed(t: Transport, model_id: str, nodes: list[str], timeout: float, poll: float = 0.5) -> None:
    """Poll the nodes' own view (profile API) until each of ``nodes`` holds ``model_id`` DEPLOYED."""
    deadline = time.monotonic() + timeout
    while True:
        states = ml_api.model_states_on_nodes(t, model_id)
        if all(states.get(n) == "DEPLOYED" for n in nodes):
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"model {model_id}: the deploy already running on node(s) {nodes} did not finish within "
                               f"{timeout:g} s; the nodes report {states or 'no copy of it'}",
                               fix="raise --wait, or deploy it again once ML Commons' own deploy ended (distilrank plugin deploy)")
        time.sleep(poll)


def wait_task(t: Transport, task_id: str, timeout: float, poll: float = 0.5) -> dict:
    """Poll an ML task until it ends; raise :class:`ClusterError` with its per-node errors unless COMPLETED."""
    deadline = time.monotonic() + timeout
    while True:
        task = ml_api.get_task(t, task_id)
        state = task.get("state")
        if state in ml_api.TERMINAL_TASK_STATES:
            if state != "COMPLETED":
                raise ClusterError(f"ML task {task_id} ({task.get('task_type', 'task')}) ended {state}: {_node_errors(task)}",
                                   reason=task, fix=_deploy_fix(task))
            return task
        if time.monotonic() > deadline:
            raise ClusterError(f"ML task {task_id} still {state} after {timeout:g} s", reason=task,
                               fix="raise --wait; a first deploy on a busy node can take minutes")
        time.sleep(poll)


def _deploy_fix(task: dict) -> str | None:
    text = json.dumps(task).lower()
    if "memory" in text and ("breaker" in text or "circuit" in text or "threshold" in text):
        return "an ML memory breaker is open: see 'distilrank plugin preflight' (native/jvm memory thresholds)"
    if "hash" in text or "content changed" in text:
        return "the uploaded bytes do not match model_content_hash_value: register the zip again (distilrank plugin register)"
    if "input" in text and "mismatch" in text:
        return "the ONNX inputs are not input_ids/attention_mask/token_type_ids: re-export with distilrank export"
    if "eligible" in text or "no ml node" in text:
        return "no node can run models: add a node with the ml role or set plugins.ml_commons.only_run_on_ml_node=false"
    return None


def deploy_model(t: Transport, model_id: str, *, wait: float = 300.0, force: bool = False,
                 log: Callable[[str], None] = lambda m: None) -> Deployment:
    """Deploy ``model_id`` on every eligible node and wait (at most ``wait`` s) until it is DEPLOYED.

    A model whose document says DEPLOYED is left as it is unless ``force`` (a state that may be stale, e.g. right
    after a node restart: :mod:`distilrank.plugin.ensure`). When the task fails only with "Duplicate deploy model
    task" on some nodes (ML Commons' own redeploy to a node that just rejoined is running there), the wait goes on
    until those nodes hold the model DEPLOYED; when nodes fail only because they lost ML Commons' race on the model
    document (:data:`DEPLOYING_STATE_RACE`), the deploy is sent again, at most :data:`DEPLOY_ATTEMPTS` times in all."""
    t0 = time.monotonic()
    model = ml_api.get_model(t, model_id)
    if model is None:
        raise ClusterError(f"model {model_id} does not exist", status=404, fix="list the models with 'distilrank plugin list'")
    if model.get("model_state") == "DEPLOYED" and not force:
        return Deployment(model_id, "DEPLOYED", True, nodes=model.get("planning_worker_nodes", []))
    task_id = _send_deploy(t, model_id, wait, t0, log)
    if not t.live(f"wait for {model_id} to be DEPLOYED"):
        return Deployment(model_id, "not deployed (dry run)", False, task_id)
    model = wait_deployed_document(t, model_id, remaining_wait(wait, t0), task_id=task_id, log=log)
    return Deployment(model_id, "DEPLOYED", False, task_id, model.get("planning_worker_nodes", []), time.monotonic() - t0)


def _send_deploy(t: Transport, model_id: str, wait: float, t0: float, log: Callable[[str], None]) -> str | None:
    """Send the deploy and wait for its task; returns the last task id. Nodes that failed with
    :data:`DUPLICATE_DEPLOY` are waited for until they hold the model; nodes that failed with
    :data:`DEPLOYING_STATE_RACE` get the deploy again (at most :data:`DEPLOY_ATTEMPTS` requests in all)."""
    for attempt in range(1, DEPLOY_ATTEMPTS + 1):
        resp = ml_api.deploy(t, model_id)
        task_id = resp.get("task_id")
        if not task_id or resp.get("status") == "COMPLETED":
            return task_id
        log(f"deploying {model_id} (task {task_id}) ...")
        try:
            wait_task(t, task_id, remaining_wait(wait, t0))
            return task_id
        except ClusterError as exc:
            duplicate, raced = transient_deploy_failures(exc.reason) if isinstance(exc.reason, dict) else ([], [])
            if not duplicate and not raced:
                raise
            if duplicate:
                log(f"model {model_id}: a deploy of it was already running on node(s) {duplicate} (ML Commons' own "
                    "redeploy after a node restart); waiting for it")
                _wait_nodes_deployed(t, model_id, duplicate, remaining_wait(wait, t0))
            if not raced:
                return task_id
            if attempt == DEPLOY_ATTEMPTS:
                raise
            log(f"model {model_id}: node(s) {raced} read its document while another writer had set it "
                f"PARTIALLY_DEPLOYED (an ML Commons race); deploying again ({attempt + 1}/{DEPLOY_ATTEMPTS})")
            time.sleep(1.0)
    return None


def wait_deployed_document(t: Transport, model_id: str, timeout: float, *, task_id: str | None = None, poll: float = 0.5,
                           log: Callable[[str], None] = lambda m: None) -> dict:
    """After a COMPLETED deploy task, poll the model document until it says ``DEPLOYED`` (at most ``timeout`` s).

    The document lags the nodes and can be overwritten after the task completed: the task can complete a moment
    before the document says DEPLOYED (measured on ML Commons 3.6 under load), and in CI, right after a node restart,
    the document said ``DEPLOY_FAILED`` 0.13 s after the deploy had written DEPLOYED with one worker node (a late
    failure of the deploy's node request, or ML Commons' sync-up job racing the deploy; its next run, every 10 s by
    default, writes DEPLOYED again for a model a node holds). So ``DEPLOY_FAILED`` or ``UNDEPLOYED`` is a failure only
    when no node holds the model in memory (the profile API); while one does, the wait goes on. Raises
    :class:`ClusterError` (with the task's errors when ``task_id`` is given) on a real failure or after ``timeout`` s;
    a dry run returns at once.
    """
    deadline = time.monotonic() + timeout
    told = False
    while True:
        model = wait_model_state(t, model_id, ("DEPLOYED", "DEPLOY_FAILED", "UNDEPLOYED"),
                                 max(0.0, deadline - time.monotonic()), poll=poll,
                                 fix="the deploy task completed but the model is not DEPLOYED yet: raise --wait")
        state = model.get("model_state")
        if state == "DEPLOYED" or not t.live(f"wait for {model_id} to be DEPLOYED"):
            return model
        on_nodes = ml_api.model_states_on_nodes(t, model_id)
        if "DEPLOYED" not in on_nodes.values():
            task = _node_errors(ml_api.get_task(t, task_id)) if task_id else "no task"
            raise ClusterError(f"model {model_id} ended {state} although its deploy task completed; the nodes report "
                               f"{on_nodes or 'no copy of it'}; task {task_id}: {task}; model: {json.dumps(model)[:1000]}",
                               fix="deploy it again (distilrank plugin deploy), and check the ML Commons logs if it fails again")
        if time.monotonic() > deadline:
            raise ClusterError(f"model {model_id} is loaded on {sorted(on_nodes)} but its document still says {state} "
                               f"after {timeout:g} s", fix="ML Commons' sync-up job corrects it; check that "
                               "plugins.ml_commons.sync_up_job_interval_in_seconds is not 0, or raise --wait")
        if not told:
            log(f"model {model_id}: its document says {state} but node(s) {sorted(on_nodes)} hold it; waiting for "
                "ML Commons' sync-up job to correct the document")
            told = True
        time.sleep(poll)


def default_smoke_pairs(n: int = 24) -> list[tuple[str, list[str]]]:
    """Sample (query, [docs]) groups: Icecat (query, title) pairs and edge cases from the bundled parity sample."""
    rows = []
    with resources.as_file(resources.files("distilrank.plugin") / "parity_sample.jsonl") as path:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            rows.append(json.loads(line))
    icecat = [r for r in rows if r.get("source", "").startswith("icecat")][: n - 4]
    edge = [r for r in rows if r.get("source", "").startswith("edge")][:4]
    groups: dict[str, list[str]] = {}
    for r in icecat + edge:
        groups.setdefault(r.get("query", ""), []).append(r["text"])
    return list(groups.items())


def smoke_test(t: Transport, model_id: str, zip_path: str | Path, *, groups: list[tuple[str, list[str]]] | None = None,
               tolerance: float = 1e-4, undeploy_on_failure: bool = True) -> SmokeResult:
    """``_predict`` on sample pairs vs local ONNX Runtime on ``zip_path``; undeploy and raise on mismatch."""
    from distilrank.plugin.local_scoring import LocalScorer

    groups = groups or default_smoke_pairs()
    scorer = LocalScorer(zip_path)
    worst: list[dict] = []
    max_diff, n = 0.0, 0
    for query, docs in groups:
        remote = ml_api.predict_similarity(t, model_id, query, docs)
        local = scorer.score(query, docs)
        for doc, r, l in zip(docs, remote, local, strict=True):
            d = abs(r - float(l))
            n += 1
            max_diff = max(max_diff, d)
            worst.append({"query": query, "doc": doc[:100], "node": r, "local": float(l), "abs_diff": d})
    worst = sorted(worst, key=lambda w: -w["abs_diff"])[:5]
    result = SmokeResult(n, max_diff, tolerance, max_diff <= tolerance, worst)
    if not result.passed:
        if undeploy_on_failure:
            ml_api.undeploy(t, model_id)
        raise SmokeTestError(
            f"model {model_id} scores differ from {Path(zip_path).name} scored locally: max |node - local| = "
            f"{max_diff:.3g} > {tolerance:g} over {n} pairs" + (" (model undeployed)" if undeploy_on_failure else "")
            + f"; worst: {json.dumps(worst[:2], ensure_ascii=False)}",
            fix="the node runs a different zip or tokenizer than the one given: check the sha256 with 'distilrank plugin list'")
    return result
