"""Search bodies for the distilrank rescorer plugin and the inline (per-query) ML Commons rerank pipeline."""
from __future__ import annotations

import pytest

from distilrank.errors import DistilRankError
from distilrank.plugin.pipelines import check_search_body, rerank_search_body
from distilrank.plugin.rescore import check_rescore_body, check_rescore_clause, rescore_clause, rescore_search_body


def test_rescore_body_is_the_documented_request():
    body = rescore_search_body("wireless mouse", model="prod", fields=["title"], window_size=100, size=10)
    assert body == {"size": 10, "query": {"match": {"title": "wireless mouse"}},  # score_mode etc. left to the model's settings
                    "rescore": {"window_size": 100, "distilrank": {"model": "prod", "query_text": "wireless mouse",
                                                                   "fields": ["title"]}}}
    blend = rescore_search_body("x", model="m1", fields=["title", "brand"], score_mode="blend", query_weight=0.5, model_weight=2,
                                text_source="stored", query={"match_all": {}})
    assert blend["query"] == {"match_all": {}}
    assert blend["rescore"]["distilrank"] == {"model": "m1", "query_text": "x", "fields": ["title", "brand"], "score_mode": "blend",
                                              "query_weight": 0.5, "model_weight": 2.0, "text_source": "stored"}
    assert rescore_search_body("x", model="m", fields=["a", "b"])["query"] == {"multi_match": {"query": "x", "fields": ["a", "b"]}}


def test_normalization_in_the_clause():
    clause = rescore_clause("q", model="prod", fields=["title"], score_mode="blend", normalization="z_score", query_weight=0.3)
    assert clause["distilrank"] == {"model": "prod", "query_text": "q", "fields": ["title"], "score_mode": "blend",
                                    "query_weight": 0.3, "normalization": "z_score"}
    only = rescore_search_body("q", model="prod", fields=["title"], normalization="min_max")["rescore"]["distilrank"]
    assert only == {"model": "prod", "query_text": "q", "fields": ["title"], "normalization": "min_max"}
    assert "score_mode" in rescore_clause("q", model="prod", fields=["title"], score_mode="replace")["distilrank"]
    for bad in ("minmax", "L2", ""):
        with pytest.raises(DistilRankError, match="normalization must be one of \\('none', 'min_max', 'z_score'\\)"):
            rescore_clause("q", model="prod", fields=["title"], normalization=bad)
    with pytest.raises(DistilRankError, match="query_weight must be a finite number"):
        rescore_clause("q", model="prod", fields=["title"], query_weight=float("inf"))
    with pytest.raises(DistilRankError, match="model_weight must be a finite number"):
        check_rescore_clause({"window_size": 10, "distilrank": {"model": "m", "query_text": "q", "fields": ["t"], "model_weight": "2"}})


@pytest.mark.parametrize("kwargs,message", [
    ({"model": ""}, "model is required"),
    ({"fields": []}, "give either query= or fields="),
    ({"score_mode": "max"}, "score_mode must be one of"),
    ({"text_source": "docvalues"}, "text_source must be one of"),
    ({"window_size": 0}, "window_size must be an integer >= 1"),
    ({"window_size": 5, "size": 10}, "from \\+ size = 10 is larger than window_size 5"),
])
def test_rescore_body_refuses_what_the_plugin_would(kwargs, message):
    args = {"model": "prod", "fields": ["title"], **kwargs}
    with pytest.raises(DistilRankError, match=message):
        rescore_search_body("usb cable", **args)


def test_check_rescore_body():
    ok = rescore_search_body("q", model="prod", fields=["title"], window_size=20, size=10)
    check_rescore_body(ok)
    with pytest.raises(DistilRankError, match="cannot be combined with sort"):
        check_rescore_body({**ok, "sort": [{"price": "asc"}]})
    with pytest.raises(DistilRankError, match="no 'distilrank' rescore clause"):
        check_rescore_body({"size": 10, "query": {"match_all": {}}})
    with pytest.raises(DistilRankError, match="unknown distilrank parameter"):
        check_rescore_body({**ok, "rescore": [{"window_size": 20, "distilrank": {**ok["rescore"]["distilrank"], "depth": 3}}]})
    with pytest.raises(DistilRankError, match="larger than window_size"):
        check_rescore_body({**ok, "from": 15})


def test_inline_rerank_pipeline_in_the_body():
    body = rerank_search_body("usb cable", size=10, fields=["title"], inline=True, model_id="abc", depth=50)
    assert body["search_pipeline"] == {
        "request_processors": [{"oversample": {"sample_factor": 5.0}}],
        "response_processors": [{"rerank": {"ml_opensearch": {"model_id": "abc"}, "context": {"document_fields": ["title"]}}},
                                {"truncate_hits": {}}]}
    assert body["ext"]["rerank"]["query_context"]["query_text"] == "usb cable"
    check_search_body(body)
    with pytest.raises(DistilRankError, match="inline=True needs model_id"):
        rerank_search_body("x", fields=["title"], inline=True)
    with pytest.raises(DistilRankError, match="smaller than the page size"):
        rerank_search_body("x", size=10, fields=["title"], inline=True, model_id="abc", depth=5)


AB = """
[experiment]
name = "x"
index = "products"
judgments = "j.csv"

[[arm]]
name = "bm25"
query = { match = { title = "{{query}}" } }

[[arm]]
name = "student-rescorer"
query = { match = { title = "{{query}}" } }
rescore = RESCORE
"""


def test_ab_arm_with_the_rescorer(tmp_path):
    from distilrank.errors import ConfigError
    from distilrank.plugin.abtest.config import load_ab_config

    p = tmp_path / "ab.toml"
    p.write_text(AB.replace("RESCORE", '{ model = "staging", fields = ["title"], window_size = 50, score_mode = "blend" }'))
    arm = load_ab_config(p).arms[1]
    assert arm.body("usb cable", 10) == {
        "size": 10, "query": {"match": {"title": "usb cable"}},
        "rescore": {"window_size": 50, "distilrank": {"model": "staging", "query_text": "usb cable", "fields": ["title"],
                                                      "score_mode": "blend"}}}
    for broken, field in (('{ model = "staging" }', "arm[1].rescore.fields"), ('{ model = "s", fields = ["t"], depth = 3 }', "arm[1].rescore.depth"),
                          ('{ model = "s", fields = ["t"], score_mode = "max" }', "arm[1].rescore")):
        p.write_text(AB.replace("RESCORE", broken))
        with pytest.raises(ConfigError, match=f"field '{field}'".replace("[", r"\[").replace("]", r"\]")):
            load_ab_config(p)
