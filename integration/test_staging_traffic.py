"""Staging under traffic and several operators, on the shared dev node.

* Promote and roll back 10 times while 4 clients search through the alias's pipeline: no failed search, every
  response is exactly the reranking of either the old or the new student (scores checked against local ONNX
  Runtime scoring of both zips), and the alias history in ``distilrank-registry`` matches the operations.
* Two operator processes promoting the same alias at the same instant: one wins, the other gets the
  compare-and-set conflict error, and the history never interleaves.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import icecat_student
import numpy as np
import pytest
from conftest import REPORT

from distilrank.plugin import api, registry_store
from distilrank.plugin.local_scoring import LocalScorer
from distilrank.plugin.pipelines import rerank_search_body
from distilrank.plugin.transport import ClusterError

INDEX = "distilrank-it-traffic"
GROUP = f"distilrank-it-traffic-{os.getpid()}"
ALIAS = f"traffic{os.getpid()}"
DUEL = f"duel{os.getpid()}"
QUERIES = ["notebook", "laptop bag", "hp toner cartridge", "usb cable", "wireless mouse", "dell monitor"]
DEPTH, SIZE = 30, 10
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def two(cluster, t, tmp_path_factory):
    """Two students registered and deployed; the alias points at the first. Everything removed at the end."""
    icecat_student.index_products(cluster.client, INDEX)
    work = tmp_path_factory.mktemp("traffic-students")
    students = [icecat_student.build_icecat_student(work, seed=s, name=f"traffic-s{s}") for s in (10, 11)]
    regs = [api.register(t, s.zip, group=GROUP, deploy=True, progress=False, rescorer=False) for s in students]
    api.promote(t, ALIAS, regs[0]["model_id"], document_fields=["title"], depth=DEPTH, size=SIZE, index=INDEX)
    yield students, [r["model_id"] for r in regs]
    for alias in (ALIAS, DUEL):
        rec = registry_store.get_alias(t, alias)
        if rec:
            t.request("DELETE", f"/_search/pipeline/{rec['pipeline']}", ok_statuses=(404,))
            registry_store.delete_alias(t, alias)
    for r in regs:
        api.delete(t, r["model_id"], force=True)
    cluster.client.indices.delete(index=INDEX)


def _expected(cluster, students) -> dict[str, list[list[float]]]:
    """Per query, the top-``SIZE`` scores each student gives BM25's top ``DEPTH``."""
    out = {}
    scorers = [LocalScorer(s.zip) for s in students]
    for q in QUERIES:
        pool = cluster.client.search(index=INDEX, body={"size": DEPTH, "query": {"match": {"title": q}}},
                                     params={"search_pipeline": "_none"})["hits"]["hits"]
        titles = [h["_source"]["title"] for h in pool]
        out[q] = [sorted(sc.score(q, titles).tolist(), reverse=True)[:SIZE] for sc in scorers]
    return out


def _which(scores: list[float], expected: list[list[float]]) -> int | None:
    for i, want in enumerate(expected):
        if len(scores) == len(want) and np.allclose(scores, want, atol=1e-4):
            return i
    return None


def test_promote_and_rollback_under_traffic(cluster, t, two):
    students, ids = two
    expected = _expected(cluster, students)
    assert all(_which(e[0], e) == 0 and _which(e[1], e) == 1 for e in expected.values())
    assert any(not np.allclose(e[0], e[1], atol=1e-4) for e in expected.values()), "the students must differ"
    stop = threading.Event()
    results: list[tuple[str, int | None]] = []
    failures: list[str] = []

    def client(n: int):
        c = api.connect(url=cluster.url, retries=0)  # no retries: every failure counts
        i = n
        while not stop.is_set():
            q = QUERIES[i % len(QUERIES)]
            i += 1
            try:
                hits = c.request("POST", f"/{INDEX}/_search", rerank_search_body(q, size=SIZE, fields=["title"]),
                                 params={"search_pipeline": f"distilrank-{ALIAS}"})["hits"]["hits"]
                results.append((q, _which([h["_score"] for h in hits], expected[q])))
            except ClusterError as exc:
                failures.append(str(exc).splitlines()[0])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    ops: list[tuple[str, str]] = []
    t0 = time.monotonic()
    try:
        time.sleep(1.0)
        for _ in range(10):
            api.promote(t, ALIAS, ids[1])
            ops.append(("promote", ids[1]))
            rec = registry_store.get_alias(t, ALIAS)
            assert rec["model_id"] == ids[1] and [h["model_id"] for h in rec["history"]] == [ids[0]]
            time.sleep(0.3)
            api.rollback(t, ALIAS)
            ops.append(("rollback", ids[0]))
            rec = registry_store.get_alias(t, ALIAS)
            assert rec["model_id"] == ids[0] and rec["history"] == [] and rec["rolled_back_from"] == ids[1]
            time.sleep(0.3)
    finally:
        stop.set()
        for th in threads:
            th.join(60)
    seconds = time.monotonic() - t0
    by_model = [sum(1 for _, w in results if w == i) for i in (0, 1)]
    REPORT["promote_under_traffic"] = {"operations": len(ops), "searches": len(results), "failed": len(failures),
                                       "old_model": by_model[0], "new_model": by_model[1],
                                       "neither": sum(1 for _, w in results if w is None), "seconds": round(seconds, 1)}
    assert failures == []
    assert len(ops) == 20 and results
    assert [q for q, w in results if w is None] == [], "a response matched neither student's reranking"
    assert by_model[0] > 0 and by_model[1] > 0
    assert api.pipeline_spec(t, f"distilrank-{ALIAS}")["model_id"] == ids[0]


def test_compare_and_set_refuses_a_stale_write(t, two):
    _, ids = two
    first = registry_store.read_alias(t, ALIAS)
    registry_store.write_alias(t, first, {**first.source, "updated_at": registry_store.now()})
    with pytest.raises(registry_store.ConcurrentChangeError, match=r"changed by another operator.*compare-and-set"):
        registry_store.write_alias(t, first, {**first.source, "model_id": "someone-else"})
    assert registry_store.get_alias(t, ALIAS)["model_id"] == ids[0]


DUEL_SCRIPT = """
import json, sys, time
from distilrank.plugin import api
from distilrank.plugin.registry_store import ConcurrentChangeError
url, alias, model_id, at = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
t = api.connect(url=url)
api.pipeline_spec(t, "none")  # connection warm before the start line
time.sleep(max(0.0, at - time.time()))
try:
    api.promote(t, alias, model_id)
    print(json.dumps({"ok": True, "model_id": model_id}))
except ConcurrentChangeError as exc:
    print(json.dumps({"ok": False, "model_id": model_id, "error": str(exc)}))
"""


def _duel(cluster, ids: list[str]) -> list[dict]:
    at = time.time() + 4.0
    procs = [subprocess.Popen([sys.executable, "-c", DUEL_SCRIPT, cluster.url, DUEL, mid, str(at)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for mid in ids]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return outs


def test_two_operators_promote_at_once(cluster, t, two):
    _, ids = two
    api.promote(t, DUEL, ids[0], document_fields=["title"], depth=DEPTH, size=SIZE)
    rounds = []
    for n in range(3):
        before = registry_store.get_alias(t, DUEL)
        outs = _duel(cluster, [ids[0], ids[1]] if n % 2 else [ids[1], ids[0]])
        winners = [o for o in outs if o["ok"]]
        losers = [o for o in outs if not o["ok"]]
        rounds.append({"winner": [w["model_id"] for w in winners], "loser_error": [lo["error"][:160] for lo in losers]})
        after = registry_store.get_alias(t, DUEL)
        assert len(winners) == 1 and len(losers) == 1, outs
        assert "another operator" in losers[0]["error"] and "Nothing of this change was kept" in losers[0]["error"] \
            or "nothing was changed" in losers[0]["error"], losers
        # the winner's change only: model, pipeline and history agree, one entry more at most, never interleaved
        assert after["model_id"] == winners[0]["model_id"] and "pending" not in after
        assert api.pipeline_spec(t, after["pipeline"])["model_id"] == winners[0]["model_id"]
        grew = after["history"][:len(before["history"])] == before["history"]
        assert grew and len(after["history"]) - len(before["history"]) == (before["model_id"] != after["model_id"])
    REPORT["two_operators"] = rounds
