"""Bad input at serving time, through a real rerank pipeline on the dev node: each ends in a clear error (or a
documented, checked answer) and leaves nothing half-changed.

What the user sees for each case goes to the terminal summary (``REPORT["serving_bad_input"]``).
"""
from __future__ import annotations

import os

import icecat_student
import pytest
from conftest import REPORT

from distilrank.errors import DistilRankError
from distilrank.plugin import api, ml_api
from distilrank.plugin.local_scoring import LocalScorer
from distilrank.plugin.pipelines import check_search_body, rerank_search_body
from distilrank.plugin.transport import ClusterError

INDEX = "distilrank-it-serving-input"
GROUP = f"distilrank-it-serving-{os.getpid()}"
PIPE = f"distilrank-it-serving-{os.getpid()}"
SEEN: dict[str, str] = REPORT.setdefault("serving_bad_input", {})
EXTRA = [{"id": "array", "title": ["usb cable black", "usb cable white"]}, {"id": "number", "title": 42}]


@pytest.fixture(scope="module")
def served(cluster, t, tmp_path_factory):
    icecat_student.index_products(cluster.client, INDEX, extra=EXTRA)
    s = icecat_student.build_icecat_student(tmp_path_factory.mktemp("serving-student"), seed=30, name="serving-s30")
    reg = api.register(t, s.zip, group=GROUP, deploy=True, progress=False, rescorer=False)
    api.pipeline(t, PIPE, reg["model_id"], document_fields=["title"], depth=30, size=10, index=INDEX)
    yield s, reg["model_id"]
    ml_api.delete_search_pipeline(t, PIPE)
    if ml_api.get_model(t, reg["model_id"]):
        api.delete(t, reg["model_id"], force=True)
    cluster.client.indices.delete(index=INDEX)


def _search(t, body: dict) -> list[dict]:
    return t.request("POST", f"/{INDEX}/_search", body, params={"search_pipeline": PIPE})["hits"]["hits"]


def test_missing_ext_rerank(t, served):
    body = {"size": 10, "query": {"match": {"title": "usb cable"}}}
    with pytest.raises(ClusterError) as e:  # what the node does with it
        _search(t, body)
    assert e.value.status == 500 and "null_pointer_exception" in str(e.value)
    with pytest.raises(DistilRankError, match=r"ext.rerank.query_context.query_text .* is required") as h:
        check_search_body(body)
    SEEN["no ext.rerank"] = f"node: HTTP 500 null_pointer_exception; helper: {h.value}"


def test_query_of_10000_characters(t, served):
    text = " ".join(f"w{i}" for i in range(3000))[:10_000]
    with pytest.raises(DistilRankError, match=r"10,000 characters has .* terms.*max_clause_count") as h:
        rerank_search_body(text, size=10, fields=["title"])
    body = {"size": 10, "query": {"match": {"title": text}}, "ext": {"rerank": {"query_context": {"query_text": text}}}}
    with pytest.raises(ClusterError) as e:
        _search(t, body)
    msg = str(e.value)
    assert e.value.status == 400 and "maxClauseCount is set to 1024" in msg and "max_clause_count" in msg, msg
    # a long text within the clause limit (1,000 terms, 5,000 characters) is served (the model reads its first max_length tokens)
    ok = "usb cable " * 500
    assert len(_search(t, rerank_search_body(ok, size=10, fields=["title"]))) == 10
    SEEN["10,000-character query"] = f"helper: {str(h.value)[:160]}...; node: {msg.splitlines()[0][:200]}"


def test_emoji_only_query(t, served):
    assert _search(t, rerank_search_body("😀🎉🔥", size=10, fields=["title"])) == []
    SEEN["emoji-only query"] = "no error: 0 hits (BM25 matches nothing, rerank has nothing to score)"


def test_array_and_number_fields(t, served):
    s, _ = served
    q = "usb cable black"
    hits = {h["_id"]: h["_score"] for h in _search(t, rerank_search_body(q, size=10, query={"ids": {"values": ["array", "number"]}}))}
    local = LocalScorer(s.zip).score(q, ["[usb cable black, usb cable white]", "42"]).tolist()
    assert hits["array"] == pytest.approx(local[0], abs=1e-4), "the array is scored as Java's list text"
    assert hits["number"] == pytest.approx(local[1], abs=1e-4)
    SEEN["array / number field"] = "no error: an array is scored as the text '[a, b]', a number as its digits (checked locally)"


def test_deleted_model_still_referenced(t, served, capsys):
    from distilrank.cli import main

    _, model_id = served
    api.delete(t, model_id, force=True)
    with pytest.raises(ClusterError) as e:
        _search(t, rerank_search_body("usb cable", size=10, fields=["title"]))
    assert e.value.status == 404 and "Failed to find model" in str(e.value) and "distilrank plugin list" in str(e.value)
    problems = [p for p in api.list_models(t)["problems"] if p["name"] == PIPE]
    assert problems == [{"kind": "pipeline", "name": PIPE, "model_id": model_id,
                         "problem": f"search pipeline {PIPE} calls model {model_id}, which was deleted: its searches fail"}]
    assert main(["plugin", "list", "--url", t.settings.url]) == 0
    assert f"PROBLEM: search pipeline {PIPE} calls model {model_id}, which was deleted" in capsys.readouterr().out
    SEEN["deleted model in a pipeline"] = f"node: HTTP 404 Failed to find model; plugin list: {problems[0]['problem']}"
