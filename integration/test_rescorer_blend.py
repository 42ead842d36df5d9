"""The distilrank rescorer's blend on the real node: per-window normalisation and blend settings stored with the model.

On a one-shard index (one window, so offline == served exactly): the served order and scores with
``score_mode: blend`` and ``normalization`` ``min_max`` / ``z_score`` equal local ONNX Runtime scoring of the same zip
(:class:`LocalScorer`) blended by ``plugin/blend.py`` (:func:`rescored_order`) over the BM25 hits; a zip whose model
card carries ``blend`` settings is served with them through its alias when the body sets nothing; a body value
overrides the stored one field by field (``score_mode: replace`` gives the logit order); hits past the window keep
their first-pass order below it; ``explain`` states the normalisation and the normalised values. On three shards
each shard normalises its own window (checked against each shard's own BM25 top k), and ``explain`` still finds the
window the query phase used.
"""
from __future__ import annotations

import json
import os

import icecat_student
import numpy as np
import pytest

from distilrank.plugin import api, ml_api, registry_store, rescore
from distilrank.plugin.blend import BlendSettings, blend_window, rescored_order
from distilrank.plugin.local_scoring import LocalScorer
from distilrank.plugin.transport import Transport

INDEX = "distilrank-it-blend"
SHARDED = "distilrank-it-blend-3shards"
GROUP = f"distilrank-it-blend-{os.getpid()}"
ALIAS = f"it{os.getpid()}-blend"
STORED = BlendSettings(0.4, 1.5, "z_score")
QUERIES = ["notebook", "laptop bag", "hp toner cartridge", "usb cable", "wireless mouse", "dell monitor"]
WINDOW = 30
ATOL = 1e-3  # node (batched ONNX Runtime) vs local (one pair per call) logits differ by ~1e-5, normalised a little more


@pytest.fixture(scope="module")
def t(cluster) -> Transport:
    if "distilrank" not in cluster.plugins:
        pytest.fail("the distilrank rescorer plugin is not installed on the dev node", pytrace=False)
    return api.connect(url=cluster.url)


@pytest.fixture(scope="module")
def index(cluster):
    icecat_student.index_products(cluster.client, INDEX)
    yield INDEX
    cluster.client.indices.delete(index=INDEX)


@pytest.fixture(scope="module")
def sharded(cluster):
    icecat_student.index_products(cluster.client, SHARDED, shards=3)
    yield SHARDED
    cluster.client.indices.delete(index=SHARDED)


@pytest.fixture(scope="module")
def student(t, tmp_path_factory):
    """A real student exported with ``STORED`` in its model card, registered (so uploaded to the rescorer with the
    settings), deployed and promoted to ``ALIAS``; and its local scorer."""
    work = tmp_path_factory.mktemp("blend-student")
    s = icecat_student.build_icecat_student(work, seed=3, name="blend-student", blend=STORED)
    reg = api.register(t, s.zip, group=GROUP, deploy=True, promote_alias=ALIAS, progress=False)
    yield reg, s, LocalScorer(s.zip)
    registry_store.delete_alias(t, ALIAS)
    for name in ml_api.pipelines_using(t, reg["model_id"]):
        ml_api.delete_search_pipeline(t, name)
    api.delete(t, reg["model_id"], force=True)


def _search(cluster, body: dict, index: str = INDEX, **params) -> list[dict]:
    return cluster.client.search(index=index, body=body, params={"search_pipeline": "_none", **params})["hits"]["hits"]


def _offline(cluster, scorer: LocalScorer, q: str, settings: BlendSettings, size: int = WINDOW, window: int = WINDOW):
    """(BM25 hits, rescored order, combined window scores) computed locally from the index's BM25 top ``size``."""
    pool = _search(cluster, {"size": size, "query": {"match": {"title": q}}})
    first = np.array([h["_score"] for h in pool], np.float32)  # the node's float32 scores, exactly
    w = min(window, len(pool))
    logits = scorer.score(q, [h["_source"]["title"] for h in pool[:w]])
    return pool, rescored_order(first, logits, window, settings), blend_window(first[:w], logits, settings)


def _assert_served(hits: list[dict], pool: list[dict], order: np.ndarray, combined: np.ndarray, label: str) -> None:
    w = len(combined)
    want = [float(combined[i]) for i in order[:w]]
    np.testing.assert_allclose([h["_score"] for h in hits[:w]], want, atol=ATOL, err_msg=label)
    for k, (h, i) in enumerate(zip(hits[:w], order[:w])):
        if sum(abs(x - want[k]) < 2 * ATOL for x in want) == 1:  # ids must agree wherever scores are not near-tied
            assert h["_id"] == pool[i]["_id"], (label, k, h["_id"], pool[i]["_id"])


def _body(q: str, **params) -> dict:
    return rescore.rescore_search_body(q, model=ALIAS, fields=["title"], window_size=WINDOW, size=WINDOW, **params)


def test_the_settings_are_stored_with_the_model(t, student):
    reg, s, _ = student
    assert reg["rescorer"]["blend"] == STORED.to_dict()
    assert json.loads((s.out_dir / "model-card.json").read_text())["blend"] == STORED.to_dict()
    assert BlendSettings.from_dict(rescore.model_record(t, reg["model_id"])["blend"]) == STORED
    again = api.register(t, s.zip, group=GROUP, progress=False)
    assert again["rescorer"]["reused"], "same zip and same settings: nothing uploaded again"


@pytest.mark.parametrize("normalization", ["min_max", "z_score"])
def test_blend_with_normalization_equals_offline(cluster, index, student, normalization):
    _, _, scorer = student
    settings = BlendSettings(0.7, 1.3, normalization)
    differs = 0
    for q in QUERIES:
        pool, order, combined = _offline(cluster, scorer, q, settings)
        hits = _search(cluster, _body(q, score_mode="blend", query_weight=0.7, model_weight=1.3, normalization=normalization))
        _assert_served(hits, pool, order, combined, f"{q} {normalization}")
        logit_order = rescored_order(np.array([h["_score"] for h in pool], np.float32),
                                     scorer.score(q, [h["_source"]["title"] for h in pool]), WINDOW, BlendSettings(0, 1))
        differs += order.tolist() != logit_order.tolist() and order.tolist() != list(range(len(pool)))
    assert differs >= 2, "the blend should differ from both BM25's and the logit's order for some queries"


def test_stored_settings_apply_through_the_alias(cluster, index, student):
    _, _, scorer = student
    for q in QUERIES:
        pool, order, combined = _offline(cluster, scorer, q, STORED)
        _assert_served(_search(cluster, _body(q)), pool, order, combined, f"{q} stored")


@pytest.mark.parametrize("params,settings", [
    ({"normalization": "min_max"}, BlendSettings(0.4, 1.5, "min_max")),
    ({"query_weight": 0.0}, BlendSettings(0.0, 1.5, "z_score")),
    ({"model_weight": 0.25, "normalization": "none"}, BlendSettings(0.4, 0.25, "none")),
    ({"score_mode": "replace"}, BlendSettings(0.0, 1.0, "none")),
])
def test_the_body_overrides_the_stored_settings_field_by_field(cluster, index, student, params, settings):
    _, _, scorer = student
    for q in QUERIES[:3]:
        pool, order, combined = _offline(cluster, scorer, q, settings)
        _assert_served(_search(cluster, _body(q, **params)), pool, order, combined, f"{q} {params}")


def test_hits_past_the_window_keep_first_pass_order_below_it(cluster, index, student):
    _, _, scorer = student
    window, size = 10, 25
    for q in QUERIES[:3]:
        pool, order, combined = _offline(cluster, scorer, q, STORED, size=size, window=window)
        assert len(pool) == size
        body = {"size": size, "query": {"match": {"title": q}},  # from + size > window_size: built by hand
                "rescore": {"window_size": window, "distilrank": {"model": ALIAS, "query_text": q, "fields": ["title"]}}}
        hits = _search(cluster, body)
        _assert_served(hits, pool, order, combined, f"{q} past window")
        assert [h["_id"] for h in hits[window:]] == [h["_id"] for h in pool[window:]]
        scores = [h["_score"] for h in hits]
        assert max(scores[window:]) < min(scores[:window])
        assert all(a > b for a, b in zip(scores[window:], scores[window + 1:])), "strictly decreasing, first-pass order"


def test_explain_states_the_normalization(cluster, index, student):
    hits = cluster.client.search(index=INDEX, body={**_body("usb cable"), "size": 5, "explain": True},
                                 params={"search_pipeline": "_none"})["hits"]["hits"]
    for h in hits:
        e = h["_explanation"]
        assert e["value"] == pytest.approx(h["_score"], abs=1e-6)
        assert "normalization [z_score]" in e["description"] and "0.4 * z_score(first pass)" in e["description"], e["description"]
        first, logit = e["details"]
        assert first["description"].startswith("z_score(first pass) = (x - mean) / std"), first["description"]
        assert logit["description"].startswith("z_score(logit) = (x - mean) / std"), logit["description"]
        assert e["value"] == pytest.approx(0.4 * first["value"] + 1.5 * logit["value"], abs=1e-5)
        model = logit["details"][0]["description"]
        assert f"model [{student[0]['model_id']}] (alias [{ALIAS}])" in model, model  # the id and the alias it was resolved from


def test_cli_explain_prints_one_hit_with_its_model_and_alias(cluster, index, student, capsys):
    from distilrank.cli import main

    hits = _search(cluster, _body("usb cable"))
    doc = hits[3]["_id"]
    argv = ["plugin", "explain", "--index", INDEX, "--query-text", "usb cable", "--doc", doc, "--model", ALIAS, "--fields", "title",
            "--window-size", str(WINDOW), "--url", cluster.url]
    assert main(["--json", *argv]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["rank"] == 4 and res["score"] == pytest.approx(hits[3]["_score"], abs=1e-6)
    assert res["explanation"]["value"] == pytest.approx(res["score"], abs=1e-4)
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{doc}: rank 4 of ") and f"(alias [{ALIAS}])" in text and "z_score(logit) = (x - mean) / std" in text, text
    assert main([*argv[:7], "no-such-doc", *argv[8:]]) == 2
    assert "is not among the" in capsys.readouterr().err


def test_several_shards_each_normalise_their_own_window(cluster, sharded, student):
    _, _, scorer = student
    window, size = 12, 10
    for q in QUERIES[:4]:
        merged = []  # (combined score, hit) of every shard's window, normalised within that shard
        for shard in range(3):
            pool = _search(cluster, {"size": window, "query": {"match": {"title": q}}}, SHARDED, preference=f"_shards:{shard}")
            if pool:
                first = np.array([h["_score"] for h in pool], np.float32)
                combined = blend_window(first, scorer.score(q, [h["_source"]["title"] for h in pool]), STORED)
                merged += zip(combined.tolist(), pool)
        merged.sort(key=lambda x: -x[0])
        body = rescore.rescore_search_body(q, model=ALIAS, fields=["title"], window_size=window, size=size)
        hits = _search(cluster, {**body, "explain": True}, SHARDED)
        want = [c for c, _ in merged[:size]]
        np.testing.assert_allclose([h["_score"] for h in hits], want, atol=ATOL, err_msg=q)
        for h, (c, w) in zip(hits, merged):
            if sum(abs(x - c) < 2 * ATOL for x in want) == 1:
                assert h["_id"] == w["_id"], (q, h["_id"], w["_id"])
        for h in hits:  # the fetch phase of a several-shard search explains with the window its query phase kept
            assert h["_explanation"]["details"][1]["description"].startswith("z_score(logit) = (x - mean) / std"), h["_explanation"]
            assert h["_explanation"]["value"] == pytest.approx(h["_score"], abs=1e-4)


def test_stats_break_down_where_the_rescore_time_goes(t, cluster, index, student):
    """``_stats`` reports, per loaded model, its windows, documents and the time of each stage of a rescore."""
    from distilrank.plugin import rescorer_api

    reg = student[0]

    def stages() -> dict:
        return next(m["stages"] for m in rescorer_api.loaded_models(t) if m["model_id"] == reg["model_id"])

    before = stages()
    for q in QUERIES:
        _search(cluster, _body(q))
    after = stages()
    assert after["windows"] - before["windows"] == len(QUERIES)
    assert 0 < after["documents"] - before["documents"] <= len(QUERIES) * WINDOW
    for stage in ("read_texts", "tokenize", "tensors", "onnx_run", "blend_sort"):
        assert after[f"{stage}_ms"] >= before[f"{stage}_ms"] >= 0, stage
        assert after[f"{stage}_ms_per_window"] >= 0, stage
    assert after["onnx_run_ms"] > before["onnx_run_ms"] and after["read_texts_ms"] > before["read_texts_ms"]


def test_the_model_text_read_from_doc_values_rescores_exactly_as_from_source(t, cluster, student):
    """The catalogue indexer's model text is a keyword with doc values; ``text_source`` ``auto`` reads it from there,
    and the rescored hits and scores equal those read from ``_source``."""
    from distilrank.catalogue import Catalogue, DocumentText
    from distilrank.plugin.catalogue_index import MODEL_TEXT_MAPPING, index_catalogue

    items = icecat_student.products()
    catalogue = Catalogue([p["id"] for p in items], [{k: v for k, v in p.items() if k != "id"} for p in items], source="icecat-sample")
    doc = DocumentText(fields=["title"], max_chars=0, index_field="distilrank_text")
    name = f"{INDEX}-docvalues"
    index_catalogue(t, name, catalogue, doc, recreate=True)
    try:
        mapping = cluster.client.indices.get_mapping(index=name)[name]["mappings"]["properties"]["distilrank_text"]
        assert mapping["type"] == MODEL_TEXT_MAPPING["type"] and mapping["index"] is False, mapping
        for q in QUERIES:
            runs = {}
            for source in ("_source", "doc_values", "auto"):
                body = rescore.rescore_search_body(q, model=ALIAS, fields=["distilrank_text"], window_size=WINDOW, size=WINDOW,
                                                   query={"match": {"title": q}}, text_source=source)
                runs[source] = [(h["_id"], h["_score"]) for h in _search(cluster, body, name)]
            assert runs["doc_values"] == runs["_source"] == runs["auto"], q
            assert runs["_source"], q
    finally:
        cluster.client.indices.delete(index=name)
