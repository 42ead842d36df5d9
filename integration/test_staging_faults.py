"""Faults on a node of its own (another port, its own run folder; the shared session node is never touched).

* Node restart (SIGTERM, start with the data kept) with a deployed, promoted student: how long until reranked
  searches work again, whether ML Commons' auto-redeploy does it, ``plugin list`` during and after, and
  ``plugin ensure ALIAS`` (idempotent) making the alias serve.
* SIGKILL in the middle of a chunked upload, and during deploy: after the restart, re-running the same
  ``register`` ends with exactly one model with that hash, deployed, and no leftover chunks or half-registered
  versions (checked through the ML Commons APIs).

Measured times go to the terminal summary (``REPORT["faults"]``).
"""
from __future__ import annotations

import os
import signal
import threading
import time

import icecat_student
import numpy as np
import oscluster
import pytest
from conftest import REPORT

from distilrank.plugin import api, ml_api
from distilrank.plugin.local_scoring import LocalScorer
from distilrank.plugin.pipelines import rerank_search_body
from distilrank.plugin.register import find_by_hash
from distilrank.plugin.transport import ClusterError

INDEX = "distilrank-it-faults"
GROUP = "distilrank-it-faults"
ALIAS = "faults-staging"
QUERY = "notebook battery"
FAULTS: dict[str, dict] = REPORT.setdefault("faults", {})


class PrivateNode:
    """A tier-2 dev node in ``run_root`` on ``port``; ``restart`` keeps its data, ``kill`` is SIGKILL."""

    def __init__(self, run_root, port: int):
        self.run_root, self.port, self.state = str(run_root), port, None

    def _env(self):
        old = os.environ.get("DISTILRANK_OPENSEARCH_RUN")
        os.environ["DISTILRANK_OPENSEARCH_RUN"] = self.run_root
        return old

    def _restore(self, old):
        if old is None:
            os.environ.pop("DISTILRANK_OPENSEARCH_RUN", None)
        else:
            os.environ["DISTILRANK_OPENSEARCH_RUN"] = old

    def start(self, keep_data: bool) -> float:
        old = self._env()
        try:
            t0 = time.monotonic()
            self.state = oscluster.start(tier=2, http_port=self.port, heap="768m", offline=True, keep_data=keep_data,
                                         timeout=240)
            return time.monotonic() - t0
        finally:
            self._restore(old)

    def stop(self) -> None:
        old = self._env()
        try:
            oscluster.stop(name="dev")
        finally:
            self._restore(old)

    def kill(self) -> None:
        pid = self.state["pid"]
        os.killpg(pid, signal.SIGKILL)
        deadline = time.time() + 30
        while oscluster.pid_alive(pid) and time.time() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.2)
        assert not oscluster.pid_alive(pid)
        while not (oscluster.port_free(self.port) and oscluster.port_free(self.port + 100)) and time.time() < deadline + 30:
            time.sleep(0.2)  # the JVM's sockets close a moment after the process is gone


@pytest.fixture(scope="module")
def node(cluster, tmp_path_factory):
    """Started only when the shared node runs from the local cache (so the offline start can work)."""
    if cluster.state.get("external"):
        pytest.skip("the shared node is external (OPENSEARCH_URL): no local cache to start a private node from")
    n = PrivateNode(tmp_path_factory.mktemp("faults-run"), oscluster.free_node_port())
    FAULTS["first_start_s"] = round(n.start(keep_data=False), 1)
    yield n
    n.stop()


@pytest.fixture(scope="module")
def nt(node):
    return api.connect(url=node.state["url"], retries=3, timeout=60)


@pytest.fixture(scope="module")
def students(tmp_path_factory):
    work = tmp_path_factory.mktemp("faults-students")
    return {s: icecat_student.build_icecat_student(work, seed=s, name=f"faults-s{s}") for s in (20, 21, 22)}


def _reranked_ok(t, zip_path) -> bool:
    """One rerank search through the alias's pipeline, equal to local scoring of BM25's top 30."""
    try:
        pool = t.request("POST", f"/{INDEX}/_search", {"size": 30, "query": {"match": {"title": QUERY}}},
                         params={"search_pipeline": "_none"})["hits"]["hits"]
        hits = t.request("POST", f"/{INDEX}/_search", rerank_search_body(QUERY, size=10, fields=["title"]),
                         params={"search_pipeline": f"distilrank-{ALIAS}"})["hits"]["hits"]
    except ClusterError as exc:
        FAULTS.setdefault("search_errors_while_recovering", set()).add(str(exc).splitlines()[0][:200])
        return False
    local = LocalScorer(zip_path).score(QUERY, [h["_source"]["title"] for h in pool])
    want = sorted(local.tolist(), reverse=True)[:10]
    return len(hits) == 10 and np.allclose([h["_score"] for h in hits], want, atol=1e-4)


def _states(t, sha256: str) -> list[tuple[str, str]]:
    return [(h["_id"], h["_source"].get("model_state")) for h in find_by_hash(t, sha256)]


def _chunks_of(t, model_ids: list[str]) -> int:
    resp = t.request("POST", "/_plugins/_ml/models/_search",
                     {"query": {"bool": {"must": [{"terms": {"model_id": model_ids}}, {"exists": {"field": "chunk_number"}}]}},
                      "size": 0, "track_total_hits": True}, ok_statuses=(404,))
    return ((resp.get("hits") or {}).get("total") or {}).get("value", 0)


def test_restart_with_a_promoted_student(node, nt, students):
    t = nt
    s = students[20]
    icecat_student.index_products(t.client, INDEX)
    api.register(t, s.zip, group=GROUP, deploy=True, promote_alias=ALIAS, index=INDEX, document_fields=["title"], depth=30,
                 size=10, progress=False, rescorer=False)
    assert _reranked_ok(t, s.zip)
    node.stop()
    with pytest.raises(ClusterError, match="cannot reach the cluster"):  # plugin list while the node is down
        api.connect(url=node.state["url"], retries=0).request("GET", "/")
    t0 = time.monotonic()
    boot = node.start(keep_data=True)
    seen: list[str] = []
    auto = None
    while time.monotonic() - t0 < boot + 60:  # give ML Commons' auto-redeploy a minute
        listing = api.list_models(t, group=GROUP)
        seen.append(str([m["state"] for m in listing["models"]]))
        if _reranked_ok(t, s.zip):
            auto = time.monotonic() - t0
            break
        time.sleep(2)
    FAULTS["restart"] = {"boot_s": round(boot, 1), "auto_redeploy_s": None if auto is None else round(auto, 1),
                         "states_seen": sorted(set(seen))}
    if auto is None:  # the alias must still be recoverable with one idempotent command
        problems = api.list_models(t, group=GROUP)["problems"]
        assert any(ALIAS in p["problem"] or p["kind"] == "pipeline" for p in problems), problems
    res = api.ensure(t, ALIAS, zip_path=s.zip, index=INDEX)
    FAULTS["restart"]["ensure"] = {"actions": res["actions"], "seconds": res["seconds"]}
    FAULTS["restart"]["serving_again_s"] = round(time.monotonic() - t0, 1)
    assert res["smoke_test"]["passed"] and res["search_hits"] == 10
    assert _reranked_ok(t, s.zip)
    import contextlib
    import io
    import json

    from distilrank.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["--json", "plugin", "ensure", ALIAS, "--url", node.state["url"]]) == 0
    again = json.loads(buf.getvalue())
    assert again["actions"] == [] and again["model_id"] == res["model_id"]  # idempotent
    listing = api.list_models(t, group=GROUP)
    assert [m["state"] for m in listing["models"]] == ["DEPLOYED"] and listing["problems"] == []


def _kill_when(node, t, cond, what: str, timeout: float = 120) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                t_kill = time.monotonic()
                node.kill()
                return t_kill
        except ClusterError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"never reached {what}")


def test_sigkill_during_chunked_upload(node, nt, students):
    t = nt
    s = students[21]
    errors: list[BaseException] = []
    t_reg = api.connect(url=node.state["url"], retries=1, timeout=30)

    def run():
        try:
            api.register(t_reg, s.zip, group=GROUP, chunk_size=2_000, progress=False, rescorer=False, check=False)
        except BaseException as exc:  # noqa: BLE001 - the kill makes it fail; recorded below
            errors.append(exc)

    th = threading.Thread(target=run)
    th.start()
    total = s.zip.stat().st_size // 2_000 + 1
    uploaded = lambda: sum(1 for r in t_reg.requests if "/upload_chunk/" in r.path)  # noqa: E731
    _kill_when(node, t, lambda: uploaded() >= total // 3, "a third of the chunks uploaded")
    th.join(120)
    assert errors and isinstance(errors[0], ClusterError), errors
    t0 = time.monotonic()
    node.start(keep_data=True)
    before = _states(t, s.sha256)
    assert before and all(st in ("REGISTERING", "REGISTER_FAILED") for _, st in before), before
    notes: list[str] = []  # e.g. the model document lagging a completed deploy (plugin.deploy.wait_deployed_document)
    res = api.register(t, s.zip, group=GROUP, deploy=True, chunk_size=2_000, progress=False, rescorer=False, log=notes.append)
    FAULTS["kill_during_upload"] = {"chunks_sent_before_kill": uploaded(), "chunks": total, "left_behind": before,
                                    "cleaned_up": res["cleaned_up"], "recovery_s": round(time.monotonic() - t0, 1),
                                    "notes": notes}
    assert res["reused"] is False and set(res["cleaned_up"]) == {mid for mid, _ in before}
    assert _states(t, s.sha256) == [(res["model_id"], "DEPLOYED")]
    assert _chunks_of(t, [mid for mid, _ in before]) == 0
    assert res["smoke_test"]["passed"]


def test_sigkill_during_deploy(node, nt, students):
    t = nt
    s = students[22]
    reg = api.register(t, s.zip, group=GROUP, progress=False, rescorer=False, check=False)
    mid = reg["model_id"]
    ml_api.deploy(t, mid)
    seen: list[str] = []

    def deploying() -> bool:
        seen.append((ml_api.get_model(t, mid) or {}).get("model_state"))
        return seen[-1] in ("DEPLOYING", "DEPLOYED")

    _kill_when(node, t, deploying, "the model DEPLOYING")
    killed_in = seen[-1]
    t0 = time.monotonic()
    node.start(keep_data=True)
    before = _states(t, s.sha256)
    notes: list[str] = []
    res = api.register(t, s.zip, group=GROUP, deploy=True, progress=False, rescorer=False, log=notes.append)
    FAULTS["kill_during_deploy"] = {"state_at_kill": killed_in, "state_after_restart": before,
                                    "registered_again": res["model_id"] != mid, "recovery_s": round(time.monotonic() - t0, 1),
                                    "notes": notes}
    # either the same version redeployed, or (ML Commons' local copy cut short: "model content changed") that version
    # deleted and the zip registered again: in both cases exactly one model with the hash, deployed, no leftover chunks
    assert res["model_id"] == mid or res["cleaned_up"] == [mid]
    assert _states(t, s.sha256) == [(res["model_id"], "DEPLOYED")]
    if res["model_id"] != mid:
        assert ml_api.get_model(t, mid) is None and _chunks_of(t, [mid]) == 0
    assert res["smoke_test"]["passed"]
