"""distilrank plugin, end to end on the real node: a real Icecat student from zip to reranked search results.

Covers: preflight, register (chunked, idempotent by sha256), deploy + smoke test, predict parity with local
ONNX Runtime, the rerank pipeline ordering hits exactly as local scoring predicts, promote / rollback of aliases,
safe undeploy / delete, and dry runs.
"""
from __future__ import annotations

import json
import os

import icecat_student
import numpy as np
import pytest

from distilrank.cli import main
from distilrank.plugin import api, ml_api, registry_store
from distilrank.plugin.local_scoring import LocalScorer
from distilrank.plugin.pipelines import rerank_search_body
from distilrank.plugin.register import find_by_hash

INDEX = "distilrank-it-icecat"
GROUP = f"distilrank-it-plugin-{os.getpid()}"
STAGING, PROD = f"it{os.getpid()}-staging", f"it{os.getpid()}-prod"
QUERIES = ["notebook", "laptop bag", "hp toner cartridge", "usb cable", "wireless mouse", "dell monitor"]


@pytest.fixture(scope="module", autouse=True)
def _cleanup(t):
    """Leave nothing deployed: every model of this run's groups, its pipelines and alias records."""
    yield
    for group in (GROUP, GROUP + "-dry"):
        for found in ml_api.search_model_groups(t, group):
            for hit in ml_api.search_models(t, {"term": {"model_group_id": found["_id"]}}):
                for name in ml_api.pipelines_using(t, hit["_id"]):
                    ml_api.delete_search_pipeline(t, name)
                api.delete(t, hit["_id"], force=True)
    for alias in (STAGING, PROD):
        registry_store.delete_alias(t, alias)


@pytest.fixture(scope="module")
def icecat_index(cluster):
    c = cluster.client
    if c.indices.exists(index=INDEX):
        c.indices.delete(index=INDEX)
    c.indices.create(index=INDEX, body={
        "settings": {"number_of_shards": 1, "number_of_replicas": 0},
        "mappings": {"properties": {"title": {"type": "text"}, "supplier": {"type": "keyword"},
                                    "short_description": {"type": "text"}}}})
    lines = []
    for p in icecat_student.products():
        lines.append(json.dumps({"index": {"_index": INDEX, "_id": p["id"]}}))
        lines.append(json.dumps({k: p[k] for k in ("title", "supplier", "short_description")}))
    resp = c.bulk(body="\n".join(lines) + "\n", params={"refresh": "true"})
    assert not resp["errors"]
    yield INDEX
    c.indices.delete(index=INDEX)


@pytest.fixture(scope="module")
def students(tmp_path_factory):
    work = tmp_path_factory.mktemp("icecat-students")
    return {seed: icecat_student.build_icecat_student(work, seed=seed, name=f"icecat-student-s{seed}") for seed in (0, 1)}


def _cli_json(capsys, *argv) -> dict:
    assert main(["--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def staged(cluster, icecat_index, students, t):
    """Student 0 registered, deployed, smoke-tested and promoted to ``staging`` by the one CLI command."""
    import contextlib
    import io

    # capsys is function-scoped: capture this module-scoped CLI run by hand

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["--json", "plugin", "register", str(students[0].zip), "--url", cluster.url, "--group", GROUP,
                   "--deploy", "--promote", STAGING, "--index", INDEX, "--fields", "title", "--depth", "30", "--size", "10"])
    assert rc == 0
    return json.loads(buf.getvalue())


def _bm25(cluster, query: str, size: int) -> list[dict]:
    return cluster.client.search(index=INDEX, body={"size": size, "query": {"match": {"title": query}}},
                                 params={"search_pipeline": "_none"})["hits"]["hits"]


def _check_rerank_matches_local(cluster, t, pipeline: str, zip_path, depth: int = 30, size: int = 10) -> int:
    """Every query: pipeline hits == the top ``size`` of BM25's top ``depth`` by local ONNX Runtime scores.
    Returns how many queries the rerank changed the BM25 order for."""
    scorer = LocalScorer(zip_path)
    changed = 0
    for q in QUERIES:
        pool = _bm25(cluster, q, depth)
        assert pool, q
        local = scorer.score(q, [h["_source"]["title"] for h in pool])
        order = sorted(range(len(pool)), key=lambda i: -float(local[i]))[:size]
        body = rerank_search_body(q, size=size, fields=["title"])
        hits = cluster.client.search(index=INDEX, body=body, params={"search_pipeline": pipeline})["hits"]["hits"]
        assert len(hits) == min(size, len(pool))
        got_scores = [h["_score"] for h in hits]
        want_scores = [float(local[i]) for i in order]
        np.testing.assert_allclose(got_scores, want_scores, atol=1e-4, err_msg=q)
        # ids must agree wherever the local scores are not tied
        for h, i, s in zip(hits, order, want_scores):
            if sum(abs(float(x) - s) < 1e-6 for x in local) == 1:
                assert h["_id"] == pool[i]["_id"], (q, h["_id"], pool[i]["_id"])
        if [h["_id"] for h in hits] != [h["_id"] for h in pool[:size]]:
            changed += 1
    return changed


def test_preflight_passes_on_test_node(t):
    res = api.preflight(t)
    names = {c["name"]: c["status"] for c in res["checks"]}
    assert res["passed"], res
    assert set(names) >= {"cluster", "ml-commons", "neural-search", "search-pipeline-common", "local-file-registration",
                          "ml-nodes", "memory-breakers", "disk"}


def test_one_command_from_zip_to_live_pipeline(staged, students, t):
    assert staged["reused"] is False and staged["chunks"] >= 1
    assert staged["bytes_uploaded"] == staged["bytes"] == students[0].zip.stat().st_size
    assert staged["sha256"] == students[0].sha256
    assert staged["deployment"]["state"] == "DEPLOYED"
    assert staged["smoke_test"]["passed"] and staged["smoke_test"]["max_abs_diff"] <= 1e-4
    assert staged["promoted"]["alias"] == STAGING and staged["promoted"]["pipeline"] == f"distilrank-{STAGING}"
    model = ml_api.get_model(t, staged["model_id"])
    assert model["model_state"] == "DEPLOYED" and model["algorithm"] == "TEXT_SIMILARITY"
    assert model["model_content_hash_value"] == students[0].sha256
    # the model card travelled with the zip
    record = registry_store.get_model_record(t, staged["model_id"])
    assert record["card"]["zip"]["sha256"] == students[0].sha256


def test_predict_parity_with_local_onnxruntime(staged, students, t, capsys):
    titles = [p["title"] for p in icecat_student.products()[:60]]
    res = api.predict(t, staged["model_id"], "notebook battery", titles, zip_path=students[0].zip)
    assert len(res["results"]) == 60
    assert res["max_abs_diff"] <= 1e-4
    assert len({round(r["score"], 4) for r in res["results"]}) > 10  # a real model, not a constant
    out = _cli_json(capsys, "plugin", "predict", "--url", t.settings.url, "--model-id", staged["model_id"],
                    "--query", "usb cable", "--doc", titles[0], "--doc", titles[1], "--zip", str(students[0].zip))
    assert out["max_abs_diff"] <= 1e-4 and len(out["results"]) == 2


def test_rerank_pipeline_orders_hits_as_local_scoring_predicts(cluster, staged, students, t):
    changed = _check_rerank_matches_local(cluster, t, f"distilrank-{STAGING}", students[0].zip)
    assert changed >= len(QUERIES) // 2, "the student should reorder BM25's results for most queries"


def test_register_again_reuses_the_model(staged, students, cluster):
    t2 = api.connect(url=cluster.url)
    res = api.register(t2, students[0].zip, group=GROUP, progress=False)
    assert res["reused"] is True and res["model_id"] == staged["model_id"] and res["bytes_uploaded"] == 0
    assert not [r for r in t2.requests if "upload_chunk" in r.path or "_register_meta" in r.path]
    assert [h["_id"] for h in find_by_hash(t2, students[0].sha256)] == [staged["model_id"]]


def test_promote_and_rollback(cluster, staged, students, t, capsys):
    b = _cli_json(capsys, "plugin", "register", str(students[1].zip), "--url", cluster.url, "--group", GROUP, "--deploy")
    assert b["model_id"] != staged["model_id"] and b["smoke_test"]["passed"]
    out = _cli_json(capsys, "plugin", "promote", STAGING, "--url", cluster.url, "--model-id", b["model_id"])
    assert out["previous_model_id"] == staged["model_id"] and out["spec"]["depth"] == 30  # depth kept
    assert api.pipeline_spec(t, f"distilrank-{STAGING}")["model_id"] == b["model_id"]
    _check_rerank_matches_local(cluster, t, f"distilrank-{STAGING}", students[1].zip)
    # prod is independent
    _cli_json(capsys, "plugin", "promote", PROD, "--url", cluster.url, "--model-id", staged["model_id"], "--depth", "20",
              "--index", INDEX)
    listing = _cli_json(capsys, "plugin", "list", "--url", cluster.url, "--group", GROUP)
    by_id = {m["model_id"]: m for m in listing["models"]}
    assert by_id[b["model_id"]]["aliases"] == [STAGING] and by_id[staged["model_id"]]["aliases"] == [PROD]
    assert by_id[b["model_id"]]["card"]["precision"] == "fp32"
    assert {a["alias"]: a["in_sync"] for a in listing["aliases"] if a["alias"] in (PROD, STAGING)} == {PROD: True, STAGING: True}
    # roll staging back to student 0
    back = _cli_json(capsys, "plugin", "rollback", STAGING, "--url", cluster.url)
    assert back["model_id"] == staged["model_id"] and back["previous_model_id"] == b["model_id"]
    assert api.pipeline_spec(t, f"distilrank-{STAGING}")["model_id"] == staged["model_id"]
    _check_rerank_matches_local(cluster, t, f"distilrank-{STAGING}", students[0].zip)
    assert main(["plugin", "rollback", STAGING, "--url", cluster.url]) == 2  # nothing earlier left
    assert "no earlier model" in capsys.readouterr().err


def test_undeploy_and_delete_are_safe(cluster, staged, students, t, capsys, tmp_path):
    # staging and prod point at student 0: refused
    assert main(["plugin", "undeploy", "--url", cluster.url, "--model-id", staged["model_id"]]) == 2
    err = capsys.readouterr().err
    assert "refusing to undeploy" in err and f"distilrank-{STAGING}" in err
    assert ml_api.get_model(t, staged["model_id"])["model_state"] == "DEPLOYED"
    # a third, unreferenced version can be deleted (undeployed first)
    c = icecat_student.build_icecat_student(tmp_path, seed=2, name="icecat-student-s2")
    reg = api.register(t, c.zip, group=GROUP, deploy=True, progress=False)
    out = _cli_json(capsys, "plugin", "delete", "--url", cluster.url, "--model-id", reg["model_id"])
    assert out["deleted"] is True
    assert ml_api.get_model(t, reg["model_id"]) is None
    assert registry_store.get_model_record(t, reg["model_id"]) is None


def test_dry_run_sends_no_writes(cluster, tmp_path, capsys, t):
    c = icecat_student.build_icecat_student(tmp_path, seed=3, name="icecat-student-s3")
    out = _cli_json(capsys, "plugin", "register", str(c.zip), "--url", cluster.url, "--group", GROUP + "-dry", "--deploy",
                    "--dry-run")
    paths = [r["path"] for r in out["planned_requests"]]
    assert out["dry_run"] is True
    assert "/_plugins/_ml/model_groups/_register" in paths and "/_plugins/_ml/models/_register_meta" in paths
    assert any("/upload_chunk/0" in p for p in paths) and any(p.endswith("/_deploy") for p in paths)
    assert find_by_hash(t, c.sha256) == []
    assert ml_api.search_model_groups(t, GROUP + "-dry") == []


def test_pipeline_command_with_depth(cluster, staged, students, t, capsys):
    out = _cli_json(capsys, "plugin", "pipeline", "--url", cluster.url, "--name", "distilrank-it-depth", "--model-id",
                    staged["model_id"], "--fields", "title", "--depth", "50", "--size", "5", "--index", INDEX)
    assert out["body"]["request_processors"] == [{"oversample": {"sample_factor": 10.0}}]
    hits = cluster.client.search(index=INDEX, body=rerank_search_body("notebook", size=5, fields=["title"]),
                                 params={"search_pipeline": "distilrank-it-depth"})["hits"]["hits"]
    pool = _bm25(cluster, "notebook", 50)
    assert len(pool) == 50 and len(hits) == 5
    local = LocalScorer(students[0].zip).score("notebook", [h["_source"]["title"] for h in pool])
    np.testing.assert_allclose([h["_score"] for h in hits], sorted(local.tolist(), reverse=True)[:5], atol=1e-4)
    # the 5 returned come from BM25's top 50, not only its top 5
    assert {h["_id"] for h in hits} <= {h["_id"] for h in pool}
