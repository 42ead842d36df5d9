"""Router arms that are whole search bodies (a ``rescore.distilrank`` block, a pipeline, both): rendering, what the
assignment logs as UBI ``query_attributes``, validation, and pipeline-only arms still working."""

from __future__ import annotations

import pytest

from distilrank.errors import DistilRankError
from distilrank.plugin.abtest.router import PLACEHOLDER, Arm, Experiment, render_template
from distilrank.plugin.rescore import rescore_clause

BM25 = {"query": {"match": {"title": PLACEHOLDER}}}
RESCORER = {"query": {"match": {"title": PLACEHOLDER}},
            "rescore": rescore_clause(PLACEHOLDER, model="staging", fields=["title"], window_size=50)}


def experiment():
    return Experiment("live", "salt-1", [
        Arm("bm25", "_none", 50, template=BM25),
        Arm("student", None, 50, template=RESCORER, model_id="m-123", alias="staging")])


def test_rescorer_arm_renders_its_body_and_logs_model_and_alias():
    e = experiment()
    picks = {e.assign(f"user-{i}").arm: e.assign(f"user-{i}") for i in range(100)}
    student, bm25 = picks["student"], picks["bm25"]
    body = student.search_body('shoes "red" \\ size 9', size=7)
    assert body["size"] == 7 and body["query"] == {"match": {"title": 'shoes "red" \\ size 9'}}
    assert body["rescore"]["distilrank"]["query_text"] == 'shoes "red" \\ size 9'
    assert body["rescore"]["distilrank"]["model"] == "staging" and body["rescore"]["window_size"] == 50
    assert student.search_params() == {} and bm25.search_params() == {"search_pipeline": "_none"}
    assert student.query_attributes() == {"experiment": "live", "arm": "student", "model_id": "m-123", "alias": "staging"}
    assert bm25.query_attributes() == {"experiment": "live", "arm": "bm25", "model_id": None, "alias": None}
    assert "rescore" not in bm25.search_body("shoes") and "size" not in bm25.search_body("shoes")
    body["query"]["match"]["title"] = "changed"  # a new dict each call
    assert student.search_body("x")["query"]["match"]["title"] == "x"


def test_assignment_is_sticky_and_carries_the_arm():
    e, again = experiment(), experiment()
    for i in range(200):
        a = e.assign(f"u{i}")
        assert a == again.assign(f"u{i}")
        arm = next(x for x in e.arms if x.name == a.arm)
        assert (a.template, a.model_id, a.alias, a.search_pipeline) == (arm.template, arm.model_id, arm.alias,
                                                                         arm.search_pipeline)
    assert hash(e.arms[1]) == hash(experiment().arms[1])  # the dict template is left out of the hash


def test_pipeline_only_arms_unchanged():
    e = Experiment("e", "s", [Arm("control", None, 50), Arm("rerank", "distilrank-staging", 50)])
    a = next(e.assign(f"u{i}") for i in range(50) if e.assign(f"u{i}").arm == "rerank")
    assert a.template is None and a.search_params() == {"search_pipeline": "distilrank-staging"}
    assert a.query_attributes() == {"experiment": "e", "arm": "rerank", "model_id": None, "alias": None}
    with pytest.raises(DistilRankError, match="no search body template"):
        a.search_body("shoes")


@pytest.mark.parametrize("arm, words", [
    (Arm("a", None, 100, template={"query": {"match_all": {}}}), "must contain {{query}}"),
    (Arm("a", None, 100, template=["not", "a", "dict"]), "must be a search body"),
    (Arm("a", None, 100, template={"query": {"match": {"t": PLACEHOLDER}}, "x": {1, 2}}), "not JSON"),
    (Arm("a", None, 100, template=BM25, model_id=""), "model_id"),
    (Arm("a", None, 100, template=BM25, alias=5), "alias"),
])
def test_bad_arm_templates_are_refused_naming_the_arm(arm, words):
    with pytest.raises(DistilRankError) as err:
        Experiment("exp1", "salt", [arm])
    assert "exp1" in str(err.value) and "'a'" in str(err.value) and words in str(err.value)


def test_render_template_checks_text_and_size():
    assert render_template(BM25, "a", size=0)["size"] == 0
    for bad in ("", "  ", None):
        with pytest.raises(DistilRankError, match="query text"):
            render_template(BM25, bad)
    with pytest.raises(DistilRankError, match="size"):
        render_template(BM25, "a", size=-1)
