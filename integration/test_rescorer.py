"""The distilrank rescorer plugin (plugin/opensearch) on the real node, next to ML Commons.

Covers: the zip registered through ``distilrank plugin register`` is the rescorer's (same SHA-256), the rescored
order and scores equal local ONNX Runtime scoring of the same zip, the scores equal ML Commons ``_predict`` within
1e-4, the blend mode, stored fields vs ``_source``, an alias switch (promote / rollback) under the rescorer, a
multi-shard index (each shard rescores its own window), the inline (per-query) ML Commons rerank pipeline, and
bad requests answered with 4xx and a clear message while the node stays up.
"""
from __future__ import annotations

import json
import os

import icecat_student
import numpy as np
import pytest

from distilrank.plugin import api, ml_api, registry_store, rescore
from distilrank.plugin.local_scoring import LocalScorer
from distilrank.plugin.pipelines import rerank_search_body
from distilrank.plugin.transport import Transport

INDEX = "distilrank-it-rescore"
SHARDED = "distilrank-it-rescore-3shards"
GROUP = f"distilrank-it-rescorer-{os.getpid()}"
ALIAS = f"it{os.getpid()}-rescore"
QUERIES = ["notebook", "laptop bag", "hp toner cartridge", "usb cable", "wireless mouse", "dell monitor"]


@pytest.fixture(scope="module")
def t(cluster) -> Transport:
    if "distilrank" not in cluster.plugins:
        pytest.fail("the distilrank rescorer plugin is not installed on the dev node (integration/cluster/start builds and "
                    "installs it unless DISTILRANK_NO_RESCORER is set)", pytrace=False)
    return api.connect(url=cluster.url)


def _index(c, name: str, shards: int) -> None:
    if c.indices.exists(index=name):
        c.indices.delete(index=name)
    c.indices.create(index=name, body={
        "settings": {"number_of_shards": shards, "number_of_replicas": 0},
        "mappings": {"properties": {"title": {"type": "text"}, "title_stored": {"type": "text", "store": True},
                                    "supplier": {"type": "keyword"}}}})
    lines = []
    for p in icecat_student.products():
        lines.append(json.dumps({"index": {"_index": name, "_id": p["id"]}}))
        lines.append(json.dumps({"title": p["title"], "title_stored": p["title"], "supplier": p["supplier"]}))
    assert not c.bulk(body="\n".join(lines) + "\n", params={"refresh": "true"})["errors"]


@pytest.fixture(scope="module")
def indices(cluster):
    _index(cluster.client, INDEX, 1)
    _index(cluster.client, SHARDED, 3)
    yield
    for name in (INDEX, SHARDED):
        cluster.client.indices.delete(index=name)


@pytest.fixture(scope="module")
def models(t, tmp_path_factory):
    """Two real students, registered + deployed through ML Commons (and so uploaded to the rescorer); the first
    promoted to the alias."""
    work = tmp_path_factory.mktemp("rescorer-students")
    out = {}
    for seed in (0, 1):
        s = icecat_student.build_icecat_student(work, seed=seed, name=f"rescorer-student-s{seed}")
        reg = api.register(t, s.zip, group=GROUP, deploy=True, promote_alias=ALIAS if seed == 0 else None, progress=False)
        out[seed] = (reg, s)
    yield out
    registry_store.delete_alias(t, ALIAS)
    for reg, _ in out.values():
        for name in ml_api.pipelines_using(t, reg["model_id"]):
            ml_api.delete_search_pipeline(t, name)
        api.delete(t, reg["model_id"], force=True)


def _search(cluster, index: str, body: dict, **params) -> list[dict]:
    return cluster.client.search(index=index, body=body, params={"search_pipeline": "_none", **params})["hits"]["hits"]


def _error(cluster, index: str, body: dict):
    from opensearchpy.exceptions import TransportError

    with pytest.raises(TransportError) as info:
        cluster.client.search(index=index, body=body, params={"search_pipeline": "_none"})
    return info.value.status_code, json.dumps(info.value.info)


def _expected(scorer: LocalScorer, q: str, pool: list[dict], size: int) -> tuple[list[dict], list[float]]:
    local = [float(x) for x in scorer.score(q, [h["_source"]["title"] for h in pool])]
    order = sorted(range(len(pool)), key=lambda i: (-local[i], i))[:size]
    return [pool[i] for i in order], [local[i] for i in order]


def _assert_same_ranking(hits: list[dict], want: list[dict], want_scores: list[float], label: str) -> None:
    np.testing.assert_allclose([h["_score"] for h in hits], want_scores, atol=1e-4, err_msg=label)
    for h, w, s in zip(hits, want, want_scores):
        if sum(abs(x - s) < 1e-6 for x in want_scores) == 1:  # ids must agree wherever scores are not tied
            assert h["_id"] == w["_id"], (label, h["_id"], w["_id"])


def test_register_uploads_the_same_zip_to_the_rescorer(t, models):
    for reg, student in models.values():
        assert reg["rescorer"]["sha256"] == student.sha256
        record = rescore.model_record(t, reg["model_id"])
        assert record["complete"] is True and record["sha256"] == student.sha256
        assert ml_api.get_model(t, reg["model_id"])["model_content_hash_value"] == record["sha256"]
    again = api.register(t, models[0][1].zip, group=GROUP, progress=False)
    assert again["reused"] and again["rescorer"]["reused"], "re-registering uploads nothing, to ML Commons or the rescorer"


def test_rescored_order_equals_local_scoring(cluster, t, indices, models):
    scorer = LocalScorer(models[0][1].zip)
    changed = 0
    for q in QUERIES:
        pool = _search(cluster, INDEX, {"size": 40, "query": {"match": {"title": q}}})
        body = rescore.rescore_search_body(q, model=ALIAS, fields=["title"], window_size=40, size=10)
        hits = _search(cluster, INDEX, body)
        want, scores = _expected(scorer, q, pool, 10)
        _assert_same_ranking(hits, want, scores, q)
        changed += [h["_id"] for h in hits] != [h["_id"] for h in pool[:10]]
    assert changed >= 3, "the student should reorder BM25's hits for most queries"
    loaded = {m["model_id"]: m for m in rescore.loaded_models(t)}
    assert loaded[models[0][0]["model_id"]]["sha256"] == models[0][1].sha256


def test_rescorer_scores_equal_ml_commons_predict(cluster, t, indices, models):
    model_id = models[0][0]["model_id"]
    worst = 0.0
    for q in QUERIES[:3]:
        hits = _search(cluster, INDEX, rescore.rescore_search_body(q, model=model_id, fields=["title"], window_size=20, size=20))
        predicted = ml_api.predict_similarity(t, model_id, q, [h["_source"]["title"] for h in hits])
        worst = max(worst, float(np.max(np.abs(np.array([h["_score"] for h in hits]) - np.array(predicted)))))
    assert worst <= 1e-4, f"max |rescorer - ML Commons _predict| = {worst}"


def test_blend_mode_and_stored_fields(cluster, indices, models):
    q = "usb cable"
    pool = _search(cluster, INDEX, {"size": 30, "query": {"match": {"title": q}}})
    bm25 = {h["_id"]: h["_score"] for h in pool}
    local = dict(zip([h["_id"] for h in pool],
                     LocalScorer(models[0][1].zip).score(q, [h["_source"]["title"] for h in pool]).tolist()))
    body = rescore.rescore_search_body(q, model=ALIAS, fields=["title"], window_size=30, size=30, score_mode="blend",
                                       query_weight=0.5, model_weight=3.0)
    hits = _search(cluster, INDEX, body)
    for h in hits:
        assert h["_score"] == pytest.approx(0.5 * bm25[h["_id"]] + 3.0 * local[h["_id"]], abs=1e-3), h["_id"]
    assert [h["_score"] for h in hits] == sorted((h["_score"] for h in hits), reverse=True)
    from_source = _search(cluster, INDEX, rescore.rescore_search_body(q, model=ALIAS, fields=["title_stored"], window_size=30,
                                                                      size=30, text_source="_source", query={"match": {"title": q}}))
    stored = _search(cluster, INDEX, rescore.rescore_search_body(q, model=ALIAS, fields=["title_stored"], window_size=30,
                                                                 size=30, text_source="stored", query={"match": {"title": q}}))
    assert [(h["_id"], h["_score"]) for h in stored] == [(h["_id"], h["_score"]) for h in from_source]
    np.testing.assert_allclose([h["_score"] for h in stored], [local[h["_id"]] for h in stored], atol=1e-4)


def test_alias_switch_under_the_rescorer(cluster, t, indices, models):
    (_, s0), (reg1, s1) = models[0], models[1]
    q = "wireless mouse"
    body = rescore.rescore_search_body(q, model=ALIAS, fields=["title"], window_size=30, size=10)
    pool = _search(cluster, INDEX, {"size": 30, "query": {"match": {"title": q}}})
    try:
        change = api.promote(t, ALIAS, reg1["model_id"])
        # warmed before the alias moved: loaded on the node and one window of the alias's depth scored
        assert change["warmed"]["model_id"] == reg1["model_id"] and change["warmed"]["window_size"] == change["spec"]["depth"]
        assert reg1["model_id"] in {m["model_id"] for m in rescore.loaded_models(t)}
        want, scores = _expected(LocalScorer(s1.zip), q, pool, 10)
        _assert_same_ranking(_search(cluster, INDEX, body), want, scores, "after promote")
    finally:
        api.rollback(t, ALIAS)
    want, scores = _expected(LocalScorer(s0.zip), q, pool, 10)
    _assert_same_ranking(_search(cluster, INDEX, body), want, scores, "after rollback")


def test_multi_shard_index_rescores_each_shards_window(cluster, indices, models):
    scorer = LocalScorer(models[0][1].zip)
    window = 15
    for q in QUERIES[:4]:
        pool = []
        for shard in range(3):  # what each shard's first pass hands its rescorer
            pool += _search(cluster, SHARDED, {"size": window, "query": {"match": {"title": q}}}, preference=f"_shards:{shard}")
        body = rescore.rescore_search_body(q, model=ALIAS, fields=["title"], window_size=window, size=10)
        hits = _search(cluster, SHARDED, body)
        want, scores = _expected(scorer, q, pool, 10)
        _assert_same_ranking(hits, want, scores, q)
        assert len(pool) > window, "the query should match on several shards"


def test_inline_rerank_pipeline_in_the_body(cluster, indices, models):
    """The ML Commons path configured per query (no stored pipeline): same hits as the rescorer over one shard."""
    q = "laptop bag"
    model_id = models[0][0]["model_id"]
    body = rerank_search_body(q, size=10, fields=["title"], inline=True, model_id=model_id, depth=30)
    reranked = cluster.client.search(index=INDEX, body=body)["hits"]["hits"]
    rescored = _search(cluster, INDEX, rescore.rescore_search_body(q, model=model_id, fields=["title"], window_size=30, size=10))
    np.testing.assert_allclose([h["_score"] for h in reranked], [h["_score"] for h in rescored], atol=1e-4)


@pytest.mark.parametrize("params,status,message", [
    ({"model": "no-such-alias-or-model"}, 400, "unknown model or alias [no-such-alias-or-model]"),
    ({"fields": ["no_such_field"]}, 400, "field [no_such_field] is not mapped"),
    ({"query_text": None}, 400, "query_text is required"),
    ({"score_mode": "max"}, 400, "score_mode must be replace or blend"),
    ({"text_source": "stored"}, 400, "text_source stored needs every field"),
    ({"window_size": -1}, 400, "window_size"),
])
def test_bad_requests_are_4xx_with_a_clear_message(cluster, indices, models, params, status, message):
    clause = {"window_size": 20, "distilrank": {"model": ALIAS, "query_text": "usb cable", "fields": ["title"]}}
    for k, v in params.items():
        if k == "window_size":
            clause[k] = v
        elif v is None:
            clause["distilrank"].pop(k)
        else:
            clause["distilrank"][k] = v
    got_status, info = _error(cluster, INDEX, {"size": 10, "query": {"match": {"title": "usb cable"}}, "rescore": clause})
    assert got_status == status and message in info, info
    assert cluster.client.cluster.health()["status"] in ("green", "yellow")


def test_a_model_not_uploaded_to_the_rescorer_is_a_clear_400(cluster, t, indices, models, tmp_path):
    s = icecat_student.build_icecat_student(tmp_path, seed=5, name="rescorer-student-s5")
    reg = api.register(t, s.zip, group=GROUP, deploy=True, progress=False, rescorer=False)
    try:
        assert api.promote(t, ALIAS, reg["model_id"])["warmed"] is None  # nothing uploaded to the rescorer to warm
        status, info = _error(cluster, INDEX, rescore.rescore_search_body("usb cable", model=ALIAS, fields=["title"]))
        assert status == 400 and "has not been uploaded to the distilrank rescorer" in info, info
    finally:
        api.rollback(t, ALIAS)
        api.delete(t, reg["model_id"], force=True)
    assert len(_search(cluster, INDEX, rescore.rescore_search_body("usb cable", model=ALIAS, fields=["title"]))) == 10


def test_rescorer_first_then_ml_commons_on_a_fresh_node(tmp_path, monkeypatch, models):
    """On a node where neither has run yet, the rescorer loads ONNX Runtime first and ML Commons deploys after it:
    both share ML Commons' ONNX Runtime (the plugin extends opensearch-ml), so the JVM survives (a bundled second
    copy made it exit with a symbol lookup error) and DJL still gets its environment (deploy works)."""
    import socket

    import oscluster

    monkeypatch.setenv("DISTILRANK_OPENSEARCH_RUN", str(tmp_path / "run"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    while not (oscluster.port_free(port) and oscluster.port_free(port + 100)):
        port += 1
    state = oscluster.start(tier=1, http_port=port, heap="768m")
    try:
        fresh = api.connect(url=state["url"])
        zip_path = models[0][1].zip
        reg = api.register(fresh, zip_path, group=GROUP + "-fresh", progress=False)
        fresh.client.index(index="fresh", id="1", body={"title": "usb c cable 2 m"}, params={"refresh": "true"})
        hit = fresh.client.search(index="fresh", body=rescore.rescore_search_body("usb cable", model=reg["model_id"],
                                                                                  fields=["title"], size=1, window_size=1))
        api.deploy(fresh, reg["model_id"], zip_path=zip_path)  # ML Commons' first ONNX Runtime use, after the rescorer's
        predicted = ml_api.predict_similarity(fresh, reg["model_id"], "usb cable", ["usb c cable 2 m"])
        assert hit["hits"]["hits"][0]["_score"] == pytest.approx(predicted[0], abs=1e-4)
        assert fresh.client.cluster.health()["status"] in ("green", "yellow")
    finally:
        oscluster.stop(name="dev")
