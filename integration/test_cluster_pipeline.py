"""Tier 2: search pipelines on the real node (search-pipeline-common, ML Commons, neural-search)."""
from __future__ import annotations

import pytest
import testkit
from conftest import needs_on_node, skip_or_fail

DOCS = ["banana bread", "apple", "sweet apple pie is great", "apple pie", "plum cake awful", "cherry",
        "sweet apple, sweet pie!! awful", "apple pie bad", "apple tree", "red apple juice", "apple pie great good great"]
QUERY = "sweet apple pie"
INDEX = "distilrank-it-docs"


@pytest.fixture(scope="module")
def docs_index(cluster):
    needs_on_node(cluster, "oversample and truncate_hits", modules=("search-pipeline-common",))
    c = cluster.client
    if c.indices.exists(index=INDEX):
        c.indices.delete(index=INDEX)
    c.indices.create(index=INDEX, body={"settings": {"number_of_shards": 1, "number_of_replicas": 0},
                                        "mappings": {"properties": {"text": {"type": "text"}}}})
    for i, d in enumerate(DOCS):
        c.index(index=INDEX, id=str(i), body={"text": d})
    c.indices.refresh(index=INDEX)
    yield INDEX
    c.indices.delete(index=INDEX)


def put_pipeline(cluster, name: str, body: dict) -> None:
    cluster.client.transport.perform_request("PUT", f"/_search/pipeline/{name}", body=body)


def search(cluster, pipeline: str | None, size: int, ext: dict | None = None) -> list[dict]:
    body = {"size": size, "query": {"match": {"text": {"query": QUERY}}}}
    if ext:
        body["ext"] = ext
    params = {"search_pipeline": pipeline} if pipeline else None
    return cluster.client.search(index=INDEX, body=body, params=params)["hits"]["hits"]


def test_tier2_plugins_loaded(cluster):
    if cluster.state.get("tier", 2) < 2:
        skip_or_fail("node started with --tier 1, which has none of the tier-2 plugins")
    assert {"lang-painless", "search-pipeline-common"} <= cluster.modules
    assert "opensearch-knn" in cluster.plugins


def test_oversample_and_truncate_hits(cluster, docs_index):
    n_match = len(search(cluster, None, 100))
    assert n_match >= 6
    put_pipeline(cluster, "distilrank-it-oversample", {"request_processors": [{"oversample": {"sample_factor": 3}}]})
    put_pipeline(cluster, "distilrank-it-oversample-truncate", {
        "request_processors": [{"oversample": {"sample_factor": 3}}],
        "response_processors": [{"truncate_hits": {}}]})
    plain = search(cluster, None, 2)
    over = search(cluster, "distilrank-it-oversample", 2)
    both = search(cluster, "distilrank-it-oversample-truncate", 2)
    assert len(plain) == 2
    assert len(over) == min(6, n_match)          # oversample really asked the shards for 3x
    assert [h["_id"] for h in both] == [h["_id"] for h in plain]  # truncate_hits cut back to the size


def test_ml_inference_scores_every_hit(cluster, docs_index, deployed_model):
    """ML Commons' own ml_inference response processor runs the tiny cross-encoder on each hit."""
    _, model_id = deployed_model
    put_pipeline(cluster, "distilrank-it-ml-inference", {
        "request_processors": [{"oversample": {"sample_factor": 2}}],
        "response_processors": [
            {"ml_inference": {
                "model_id": model_id, "function_name": "TEXT_SIMILARITY", "one_to_one": True,
                "model_input": '{ "text_docs": ["${input_map.text_docs}"], "query_text": "${input_map.query_text}" }',
                "input_map": [{"text_docs": "text", "query_text": "$._request.query.match.text.query"}],
                "output_map": [{"model_score": "$.inference_results[0].output[0].data[0]"}],
            }},
            {"truncate_hits": {}}]})
    hits = search(cluster, "distilrank-it-ml-inference", 4)
    assert len(hits) == 4
    for h in hits:
        got = h["_source"]["model_score"]
        got = got[0] if isinstance(got, list) else got
        assert got == pytest.approx(testkit.reference_score(QUERY, h["_source"]["text"]), abs=1e-5), h


def test_rerank_pipeline_reorders_hits(cluster, docs_index, deployed_model):
    """neural-search's rerank processor (ml_opensearch) between oversample and truncate_hits."""
    needs_on_node(cluster, "the rerank processor", plugins=("opensearch-neural-search",))
    _, model_id = deployed_model
    put_pipeline(cluster, "distilrank-it-rerank", {
        "request_processors": [{"oversample": {"sample_factor": 3}}],
        "response_processors": [
            {"rerank": {"ml_opensearch": {"model_id": model_id}, "context": {"document_fields": ["text"]}}},
            {"truncate_hits": {}}]})
    size = 3
    bm25 = search(cluster, None, 100)
    hits = search(cluster, "distilrank-it-rerank", size, ext={"rerank": {"query_context": {"query_text": QUERY}}})
    assert len(hits) == size
    # the model's top `size` among the oversampled BM25 candidates, best first
    pool = bm25[: size * 3]
    expected = sorted(pool, key=lambda h: -testkit.reference_score(QUERY, h["_source"]["text"]))[:size]
    assert [h["_source"]["text"] for h in hits] == [h["_source"]["text"] for h in expected]
    for h in hits:
        assert h["_score"] == pytest.approx(testkit.reference_score(QUERY, h["_source"]["text"]), abs=1e-5)
    assert [h["_id"] for h in hits] != [h["_id"] for h in bm25[:size]], "the model should change the order"
