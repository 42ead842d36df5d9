"""The serving path distilrank relies on, end to end on the real node.

* the BERT-style ``tokenizer.json`` (BertNormalizer + BertPreTokenizer, the shape of distilrank's student
  tokenizers) behaves the same inside ML Commons (DJL's HuggingFace tokenizers) as in Python;
* neural-search's ``rerank`` response processor, between ``oversample`` and ``truncate_hits``, really
  re-orders BM25 hits by the cross-encoder's scores, also as the index's default search pipeline.

The documents are chosen so that BM25 and the model disagree: BM25 prefers the short documents, the model
prefers the documents with "quality" words (see ``testkit.reference_score``).
"""
from __future__ import annotations

import zipfile

import numpy as np
import pytest
import testkit
from conftest import needs_on_node

from distilrank.plugin import ml_api

INDEX = "distilrank-it-rerank-docs"
QUERY = "apple"
DOCS = {
    "short": "apple",
    "awful": "apple awful",
    "bad": "apple bad bad",
    "twice": "apple apple great",
    "long-good": "apple banana cherry grape lemon mango great good",
    "nomatch": "banana bread great",
}


@pytest.fixture(scope="module")
def rerank_index(cluster):
    needs_on_node(cluster, "the rerank processor (org.opensearch.plugin:neural-search:<version>@zip) between oversample and "
                  "truncate_hits", plugins=("opensearch-neural-search",), modules=("search-pipeline-common",))
    c = cluster.client
    if c.indices.exists(index=INDEX):
        c.indices.delete(index=INDEX)
    c.indices.create(index=INDEX, body={"settings": {"number_of_shards": 1, "number_of_replicas": 0},
                                        "mappings": {"properties": {"text": {"type": "text"}}}})
    for doc_id, text in DOCS.items():
        c.index(index=INDEX, id=doc_id, body={"text": text})
    c.indices.refresh(index=INDEX)
    yield INDEX
    c.indices.delete(index=INDEX)


def _search(cluster, size: int, pipeline: str | None = None, rerank_query: str | None = QUERY) -> list[dict]:
    body: dict = {"size": size, "query": {"match": {"text": QUERY}}}
    if rerank_query is not None:
        body["ext"] = {"rerank": {"query_context": {"query_text": rerank_query}}}
    params = {"search_pipeline": pipeline} if pipeline else None
    return cluster.client.search(index=INDEX, body=body, params=params)["hits"]["hits"]


def _rerank_pipeline(model_id: str, sample_factor: int = 3) -> dict:
    return {
        "description": "distilrank integration test: BM25 -> oversample -> cross-encoder -> truncate",
        "request_processors": [{"oversample": {"sample_factor": sample_factor}}],
        "response_processors": [
            {"rerank": {"ml_opensearch": {"model_id": model_id}, "context": {"document_fields": ["text"]}}},
            {"truncate_hits": {}},
        ],
    }


def test_node_tokenizes_like_python(cluster, deployed_model, tiny_model_zip, tmp_path):
    """Accents, case, punctuation, CJK and control characters: node scores == onnxruntime == reference."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    _, model_id = deployed_model
    query = "Pêche, CRÈME apple!"
    docs = ["creme peche", "PÊCHE—crème… great!", "apple\u4e2d\u6587pie good", "apple\tpie\u00a0apple\x07 bad",
            "¿Apple? «pie» 'awful'", "banana"]
    scores = ml_api.predict_similarity(cluster.t, model_id, query, docs)
    with zipfile.ZipFile(tiny_model_zip.path) as zf:
        zf.extractall(tmp_path)
    sess = ort.InferenceSession(str(next(tmp_path.glob("*.onnx"))))
    tok = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for doc, got in zip(docs, scores, strict=True):
        enc = tok.encode(query, doc)
        feed = {k: np.array([v], dtype=np.int64) for k, v in
                (("input_ids", enc.ids), ("attention_mask", enc.attention_mask), ("token_type_ids", enc.type_ids))}
        assert got == pytest.approx(float(sess.run(None, feed)[0][0][0]), abs=1e-5), doc
        assert got == pytest.approx(testkit.reference_score(query, doc), abs=1e-5), doc


def test_long_input_is_truncated_not_rejected(cluster, deployed_model):
    """tokenizer.json's truncation block (128, longest-first) applies on the node too."""
    _, model_id = deployed_model
    long_doc = " ".join(["apple pie great"] * 200)  # 600 words, far over 128 tokens
    scores = ml_api.predict_similarity(cluster.t, model_id, "apple", [long_doc])
    # [CLS] apple [SEP] + 124 doc tokens + [SEP]: 124 = 41 x "apple pie great" + "apple"
    overlap, doc_tokens = 42, 124
    bonus = 41 * 2.0 / (doc_tokens + 1 + 1)
    assert scores[0] == pytest.approx(overlap + bonus, abs=1e-4)


def test_rerank_reorders_bm25_hits(cluster, rerank_index, deployed_model):
    _, model_id = deployed_model
    cluster.client.transport.perform_request("PUT", "/_search/pipeline/distilrank-it-rerank2",
                                             body=_rerank_pipeline(model_id))
    bm25 = _search(cluster, 100, rerank_query=None)
    matching = [h["_id"] for h in bm25]
    assert "nomatch" not in matching and len(matching) == 5
    size = 3
    hits = _search(cluster, size, "distilrank-it-rerank2")
    assert len(hits) == size
    pool = bm25[: size * 3]  # oversample x3 = every match here
    expected = sorted(pool, key=lambda h: -testkit.reference_score(QUERY, h["_source"]["text"]))[:size]
    assert [h["_id"] for h in hits] == [h["_id"] for h in expected]
    assert [h["_id"] for h in hits] == ["twice", "long-good", "short"]
    for h in hits:
        assert h["_score"] == pytest.approx(testkit.reference_score(QUERY, h["_source"]["text"]), abs=1e-5)
    # the data set is built so that BM25 alone orders them differently (short documents first)
    assert [h["_id"] for h in bm25[:size]] != [h["_id"] for h in hits], [h["_id"] for h in bm25]


def test_rerank_as_index_default_pipeline(cluster, rerank_index, deployed_model):
    """How a deployment would wire it: index.search.default_pipeline, no search_pipeline parameter."""
    _, model_id = deployed_model
    c = cluster.client
    c.transport.perform_request("PUT", "/_search/pipeline/distilrank-it-rerank-default",
                                body=_rerank_pipeline(model_id, sample_factor=3))
    c.indices.put_settings(index=INDEX, body={"index.search.default_pipeline": "distilrank-it-rerank-default"})
    try:
        bm25 = c.search(index=INDEX, body={"size": 100, "query": {"match": {"text": QUERY}}},
                        params={"search_pipeline": "_none"})["hits"]["hits"]
        hits = _search(cluster, 2)
        # the model's best 2 among the 2 x 3 best BM25 hits (all 5 matches)
        pool = bm25[:6]
        expected = sorted(pool, key=lambda h: -testkit.reference_score(QUERY, h["_source"]["text"]))[:2]
        assert [h["_id"] for h in hits] == [h["_id"] for h in expected] == ["twice", "long-good"]
        assert [h["_id"] for h in bm25[:2]] != ["twice", "long-good"], [h["_id"] for h in bm25]
    finally:
        c.indices.put_settings(index=INDEX, body={"index.search.default_pipeline": "_none"})


def test_djl_ran_offline_with_local_pytorch(cluster, deployed_model):
    """Deploying the ONNX model loaded PyTorch from PYTORCH_LIBRARY_PATH (the cache) and downloaded nothing."""
    run_dir = cluster.state.get("run_dir")
    if not run_dir:
        pytest.skip("external node: its log is not readable from here")
    import gzip
    from pathlib import Path

    # the node's log and its rolled-over days (log4j rolls at midnight: a node started the day before has its
    # start-up lines in a .log.gz)
    logs = sorted(Path(run_dir, "logs").glob("*.log")) + sorted(Path(run_dir, "logs").glob("*.log.gz"))
    read = lambda p: gzip.decompress(p.read_bytes()).decode(errors="replace") if p.suffix == ".gz" else p.read_text(errors="replace")  # noqa: E731
    text = "\n".join(read(p) for p in logs if "gc" not in p.name and "deprecation" not in p.name and "slowlog" not in p.name)
    assert "-Dai.djl.offline=true" in text
    assert "PtEngine" in text, "DJL never initialised its PyTorch engine (no model deployed?)"
    lowered = text.lower()
    for bad in ("downloading libtorch", "downloading jni", "download.pytorch.org", "publish.djl.ai"):
        assert bad not in lowered, bad
