"""Tier 1: a real OpenSearch node with ML Commons registers, deploys and runs an ONNX TEXT_SIMILARITY model."""
from __future__ import annotations

import math

import numpy as np
import oscluster
import pytest
import testkit
from conftest import REPORT

from distilrank.plugin import ml_api

DOCS = ["apple pie is great", "banana bread", "sweet apple, sweet pie!! awful", "zzz unknown words", "apple"]
QUERY = "sweet apple pie"


def test_version_and_plugins(cluster):
    versions = oscluster.read_env_file(oscluster.VERSIONS_FILE)
    info = cluster.client.info()
    if not cluster.state.get("external"):
        assert info["version"]["number"] == versions["OPENSEARCH_VERSION"]
    assert {"opensearch-job-scheduler", "opensearch-ml"} <= cluster.plugins
    cat = cluster.client.cat.plugins(format="json")
    assert {p["component"] for p in cat} >= {"opensearch-job-scheduler", "opensearch-ml"}
    if not cluster.state.get("external"):
        assert {p["version"] for p in cat} == {versions["OPENSEARCH_PLUGIN_VERSION"]}


def test_ml_settings_applied(cluster):
    wanted = oscluster.node_settings()
    nodes = cluster.client.nodes.info(metric="settings", flat_settings=True)["nodes"]
    for node in nodes.values():
        applied = node["settings"]
        missing = {k: v for k, v in wanted.items() if str(applied.get(k)).lower() != v.lower()}
        assert not missing, f"node settings not applied on {node['name']}: {missing} (got " \
                            f"{ {k: applied.get(k) for k in missing} })"
    # and ML Commons reads them: a model can run on this (data) node
    stats = cluster.t.request("GET", f"{ml_api.ML}/stats")
    assert "nodes" in stats


def test_model_group_created(cluster):
    name = "distilrank-it-group-check"
    group_id = ml_api.register_model_group(cluster.t, f"{name}-{id(cluster)}", "distilrank integration test")
    group = cluster.t.request("GET", f"{ml_api.ML}/model_groups/{group_id}")
    assert group["name"] == f"{name}-{id(cluster)}"
    found = cluster.t.request("POST", f"{ml_api.ML}/model_groups/_search", {"query": {"term": {"_id": group_id}}})
    assert found["hits"]["total"]["value"] == 1
    cluster.t.request("DELETE", f"{ml_api.ML}/model_groups/{group_id}")


def test_register_deploy_predict_round_trip(cluster, deployed_model, tiny_model_zip):
    group_id, model_id = deployed_model
    model = ml_api.get_model(cluster.t, model_id)
    assert model["model_state"] == "DEPLOYED"
    assert model["algorithm"] == "TEXT_SIMILARITY"
    assert model["model_format"] == "ONNX"
    assert model["model_group_id"] == group_id
    assert model["model_content_hash_value"] == tiny_model_zip.sha256

    scores = ml_api.predict_similarity(cluster.t, model_id, QUERY, DOCS)
    resp = cluster.t.request("POST", f"{ml_api.ML}/models/{model_id}/_predict", {"query_text": QUERY, "text_docs": DOCS})
    REPORT["predict"] = {"query_text": QUERY, "text_docs": DOCS, "scores": scores,
                         "first_result": resp["inference_results"][0]}
    expected = [testkit.reference_score(QUERY, d) for d in DOCS]
    assert len(scores) == len(DOCS)
    for got, want, doc in zip(scores, expected, DOCS, strict=True):
        assert math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-5), (doc, got, want)
    out = resp["inference_results"][0]["output"][0]
    assert out["name"] == "similarity" and out["data_type"] == "FLOAT32" and out["shape"] == [1]


def test_predict_matches_onnxruntime(cluster, deployed_model, tiny_model_zip, tmp_path):
    """The node's DJL/ONNX Runtime path gives the same logits as onnxruntime on the same zip."""
    import zipfile

    import onnxruntime as ort
    from tokenizers import Tokenizer

    _, model_id = deployed_model
    with zipfile.ZipFile(tiny_model_zip.path) as zf:
        zf.extractall(tmp_path)
    sess = ort.InferenceSession(str(next(tmp_path.glob("*.onnx"))))
    tok = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    docs = ["great apple", "the quick brown fox", "pear pear pear bad", "SWEET Apple PIE"]
    scores = ml_api.predict_similarity(cluster.t, model_id, "apple pear", docs)
    for doc, got in zip(docs, scores, strict=True):
        enc = tok.encode("apple pear", doc)
        feed = {k: np.array([v], dtype=np.int64) for k, v in
                (("input_ids", enc.ids), ("attention_mask", enc.attention_mask), ("token_type_ids", enc.type_ids))}
        want = float(sess.run(None, feed)[0][0][0])
        assert got == pytest.approx(want, abs=1e-5), doc
