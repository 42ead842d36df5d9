"""Rerank search pipelines and their search bodies, without a cluster."""

from __future__ import annotations

import pytest

from distilrank.errors import DistilRankError
from distilrank.plugin.pipelines import RerankSpec, check_search_body, read_pipeline_spec, rerank_pipeline_body, rerank_search_body


def test_pipeline_body_and_spec_round_trip():
    spec = RerankSpec("m1", ["title", "brand"], depth=50, size=10, alias="staging")
    body = rerank_pipeline_body(spec)
    assert body["request_processors"] == [{"oversample": {"sample_factor": 5.0}}]
    assert body["response_processors"][0] == {"rerank": {"ml_opensearch": {"model_id": "m1"}, "context": {"document_fields": ["title", "brand"]}}}
    assert body["response_processors"][1] == {"truncate_hits": {}}
    assert read_pipeline_spec(body) == spec
    assert read_pipeline_spec({"description": "someone else's"}) is None
    with pytest.raises(DistilRankError, match="depth 5 is smaller than the page size 10"):
        rerank_pipeline_body(RerankSpec("m1", depth=5, size=10))


def test_search_body_guards():
    body = rerank_search_body('say "hi"', size=3, fields=["title"])
    assert body == {"size": 3, "query": {"match": {"title": 'say "hi"'}}, "ext": {"rerank": {"query_context": {"query_text": 'say "hi"'}}}}
    assert rerank_search_body("x", fields=["a", "b"])["query"] == {"multi_match": {"query": "x", "fields": ["a", "b"]}}
    with pytest.raises(DistilRankError, match="size must be >= 1"):
        rerank_search_body("x", size=0, fields=["title"])
    with pytest.raises(DistilRankError, match="track_total_hits: false"):
        rerank_search_body("x", fields=["title"], track_total_hits=False)
    with pytest.raises(DistilRankError, match="ext.rerank.query_context"):
        check_search_body({"size": 10, "query": {"match_all": {}}})
    check_search_body({"size": 10, "ext": {"rerank": {"query_context": {"query_text_path": "query.match.title"}}}})
    # more match-query clauses than max_clause_count (HTTP 400 too_many_clauses on the node): refused, 1,000 terms are fine
    with pytest.raises(DistilRankError, match=r"10,000 characters has 2,000 terms.*max_clause_count \(1024"):
        rerank_search_body("usb cable " * 1000, fields=["title"])
    assert rerank_search_body("usb cable " * 512, fields=["title"])["size"] == 10
