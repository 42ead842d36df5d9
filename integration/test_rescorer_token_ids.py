"""Index-time token ids on the real node: ``distilrank plugin tokenize-index`` writes them, the rescorer reads them
instead of texts (``token_ids_field``) with rankings and scores identical to reading texts, falls back to the text of
documents whose ids are missing or come from another tokenizer and counts each case in ``_stats``, and refuses a
field that is not a binary doc-values field."""
from __future__ import annotations

import base64
import json
import os

import icecat_student
import pytest

from distilrank.cli import main
from distilrank.plugin import api, rescore, rescorer_api
from distilrank.plugin.token_ids import DocumentTokenizer, encode_ids
from distilrank.plugin.transport import Transport

INDEX = f"distilrank-it-tokids-{os.getpid()}"
MODEL = f"it-tokids-{os.getpid()}"
FIELD = "distilrank_token_ids"
QUERIES = ["notebook", "laptop bag", "hp toner cartridge", "usb cable", "wireless mouse", "dell monitor", "printer"]


@pytest.fixture(scope="module")
def t(cluster) -> Transport:
    if "distilrank" not in cluster.plugins:
        pytest.fail("the distilrank rescorer plugin is not installed on the node", pytrace=False)
    return api.connect(url=cluster.url)


@pytest.fixture(scope="module")
def student(t, tmp_path_factory):
    with icecat_student.uploaded_student(t, tmp_path_factory.mktemp("tokids"), MODEL, seed=4, name="tokids-student") as s:
        yield s


@pytest.fixture(scope="module")
def index(cluster, t, student):
    c = cluster.client
    icecat_student.index_products(c, INDEX, shards=2)
    assert main(["plugin", "tokenize-index", "--index", INDEX, "--zip", str(student.zip), "--fields", "title,supplier",
                 "--batch", "200", "--url", cluster.url]) == 0
    yield INDEX
    c.indices.delete(index=INDEX)


def _hits(cluster, q: str, **extra) -> list[tuple[str, float]]:
    body = rescore.rescore_search_body(q, model=MODEL, fields=["title", "supplier"], window_size=50, size=20,
                                       query={"match": {"title": q}}, **extra)
    hits = cluster.client.search(index=INDEX, body=body, params={"search_pipeline": "_none"})["hits"]["hits"]
    return [(h["_id"], h["_score"]) for h in hits]


def _counters(t: Transport) -> dict:
    for m in rescorer_api.loaded_models(t):
        if m["model_id"] == MODEL:
            return m["stages"]
    raise AssertionError(f"model {MODEL} not in _stats: {rescorer_api.stats(t)}")


def test_tokenize_index_writes_the_python_tokenizer_ids(cluster, index, student):
    doc = DocumentTokenizer.from_zip(student.zip)
    sample = cluster.client.search(index=INDEX, body={"size": 50, "query": {"match_all": {}}})["hits"]["hits"]
    texts = [f"{h['_source']['title']} {h['_source']['supplier']}" for h in sample]
    assert [h["_source"][FIELD] for h in sample] == doc.encoded(texts)


def test_rankings_with_and_without_token_ids_are_identical(cluster, t, index):
    _hits(cluster, QUERIES[0])  # loads the model on the node
    for q in QUERIES:
        from_text = _hits(cluster, q)
        before = _counters(t)
        from_ids = _hits(cluster, q, token_ids_field=FIELD)
        after = _counters(t)
        assert from_ids == from_text, q  # same ids, same float scores: the model sees the same inputs
        rescored = after["documents"] - before["documents"]  # every shard's window
        assert rescored >= len(from_ids) and after["token_ids_used"] - before["token_ids_used"] == rescored, q
        assert after["read_texts_ms"] == before["read_texts_ms"], "no text is read when every document has ids"


def test_other_tokenizer_or_missing_ids_fall_back_to_text_and_are_counted(cluster, t, index, student):
    c = cluster.client
    q = "notebook"
    window = [h["_id"] for h in c.search(index=INDEX, body={"size": 50, "query": {"match": {"title": q}}})["hits"]["hits"]]
    assert len(window) >= 6
    stale, missing = window[:3], window[3:6]
    lines = []
    for i in stale:  # ids written by another tokenizer (another fingerprint)
        lines += [json.dumps({"update": {"_index": INDEX, "_id": i}}),
                  json.dumps({"doc": {FIELD: base64.b64encode(encode_ids([1, 2, 3], b"\x00" * 8)).decode()}})]
    for i in missing:  # no ids at all
        lines += [json.dumps({"update": {"_index": INDEX, "_id": i}}), json.dumps({"doc": {FIELD: None}})]
    assert not c.bulk(body="\n".join(lines) + "\n", params={"refresh": "true"})["errors"]
    _hits(cluster, q)  # load + warm
    from_text = _hits(cluster, q)
    before = _counters(t)
    assert _hits(cluster, q, token_ids_field=FIELD) == from_text
    after = _counters(t)
    rescored = after["documents"] - before["documents"]
    assert after["token_ids_fallback_tokenizer_mismatch"] - before["token_ids_fallback_tokenizer_mismatch"] == len(stale)
    assert after["token_ids_fallback_missing"] - before["token_ids_fallback_missing"] == len(missing)
    assert after["token_ids_used"] - before["token_ids_used"] == rescored - len(stale) - len(missing)
    # writing the ids again restores them
    assert main(["plugin", "tokenize-index", "--index", INDEX, "--zip", str(student.zip), "--fields", "title,supplier",
                 "--url", cluster.url]) == 0
    before = _counters(t)
    _hits(cluster, q, token_ids_field=FIELD)
    after = _counters(t)
    assert after["token_ids_used"] - before["token_ids_used"] == after["documents"] - before["documents"]


def test_a_field_that_is_not_binary_doc_values_is_refused(cluster, index):
    from opensearchpy.exceptions import TransportError

    body = rescore.rescore_search_body("notebook", model=MODEL, fields=["title"], token_ids_field="supplier")
    with pytest.raises(TransportError) as info:
        cluster.client.search(index=INDEX, body=body, params={"search_pipeline": "_none"})
    assert info.value.status_code == 400
    assert "token_ids_field [supplier] must be mapped" in json.dumps(info.value.info)


def test_explain_with_token_ids_equals_the_score(cluster, index):
    body = rescore.rescore_search_body("usb cable", model=MODEL, fields=["title", "supplier"], window_size=30, size=5,
                                       query={"match": {"title": "usb cable"}}, token_ids_field=FIELD)
    body["explain"] = True
    hits = cluster.client.search(index=INDEX, body=body, params={"search_pipeline": "_none"})["hits"]["hits"]
    assert hits
    for h in hits:
        assert abs(h["_explanation"]["value"] - h["_score"]) <= 1e-4
