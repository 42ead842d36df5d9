"""``ab export-srw``: the Search Relevance Workbench bodies of an ``ab run`` report match SRW's pinned field lists
(:mod:`distilrank.plugin.abtest.srw_schema`), carry its placeholder and the 0-3 grades, and the exported judgments,
read back by ``ab run``'s loader, reproduce every per-query metric."""

from __future__ import annotations

import json

import pytest

from distilrank.errors import DistilRankError
from distilrank.judgments import load_judgments
from distilrank.plugin.abtest import srw_schema as srw
from distilrank.plugin.abtest.offline import evaluate_runs
from distilrank.plugin.abtest.report import write_report
from distilrank.plugin.abtest.runner import arm_search_body
from distilrank.plugin.abtest.srw_export import (
    RESCORER_NOTE,
    build_export,
    export_srw,
    rating_text,
    runs_from_report,
    srw_name,
)
from tests.plugin.abtest.srw_report import ARMS, INFO, QUOTED, UNJUDGED, K, make_report


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(report as read back from report.json, export folder, manifest)."""
    work = tmp_path_factory.mktemp("srw")
    paths = write_report(make_report(), work / "report", title="A/B")
    manifest = export_srw(paths["json"], work / "srw")
    return json.loads(paths["json"].read_text()), work / "srw", manifest


def _load(out, name):
    return json.loads((out / name).read_text())


def test_every_body_matches_the_pinned_fields_and_the_manifest_orders_the_requests(exported):
    report, out, manifest = exported
    kinds = [(r["kind"], r["arm"]) for r in manifest["requests"]]
    assert kinds == [("query_set", None), *[("search_configuration", a) for a in ARMS], ("judgment", None),
                     *[("experiment", a) for a in ARMS]]
    for r in manifest["requests"]:
        ep = srw.ENDPOINTS[r["kind"]]
        assert (r["method"], r["path"], r["id_field"]) == (ep.method, ep.full_path, ep.id_field)
        assert srw.body_problems(r["kind"], _load(out, r["file"])) == [], r["file"]
    assert [(r["method"], r["path"]) for r in manifest["requests"][:1]] == [("PUT", "_plugins/_search_relevance/query_sets")]
    assert {(r["method"], r["path"]) for r in manifest["requests"] if r["kind"] == "experiment"} == {
        ("POST", "_plugins/_search_relevance/experiments")}
    assert _load(out, "manifest.json") == manifest and manifest["round_trip"]["identical"]


def test_the_pinned_check_finds_what_srw_would_refuse():
    ok = {"name": "n", "index": "i", "query": "{}"}
    assert srw.body_problems("search_configuration", ok) == []
    problems = srw.body_problems("search_configuration", {**ok, "query": {"match_all": {}}, "search_pipeline": "p",
                                                          "name": "x" * 51})
    assert any("query: expected str" in p for p in problems) and any("unknown field 'search_pipeline'" in p for p in problems)
    assert any("longer than 50" in p for p in problems)
    bad = {"name": "j", "type": "LLM_JUDGMENT", "judgmentRatings": [{"query": "q", "ratings": [{"docId": "d", "rating": 3}]}]}
    problems = srw.body_problems("judgment", bad)
    assert any("expected 'IMPORT_JUDGMENT'" in p for p in problems)
    assert any("judgmentRatings[0].ratings[0].rating: expected str" in p for p in problems)
    assert srw.body_problems("query_set_query", {"queryText": 'a "b"'})[0].startswith("query_set_query.queryText: holds '\"'")


def test_query_set_holds_the_queries_srw_accepts_and_lists_the_rest(exported):
    report, out, manifest = exported
    qs = _load(out, "query_set.json")
    texts = [e["queryText"] for e in qs["querySetQueries"]]
    assert texts == [q for q in report["arms"]["bm25"]["queries"] if q != QUOTED] and UNJUDGED in texts
    assert qs["sampling"] == "manual" and qs["name"] == "icecat bm25 vs student"
    assert list(manifest["skipped_queries"]) == [QUOTED] and "quotes" in manifest["skipped_queries"][QUOTED]


def test_search_configurations_are_the_bodies_each_arm_sent_with_the_placeholder(exported):
    report, out, manifest = exported
    files = {r["arm"]: r["file"] for r in manifest["requests"] if r["kind"] == "search_configuration"}
    for arm, file in files.items():
        cfg = _load(out, file)
        assert srw.PLACEHOLDER in cfg["query"] and cfg["index"] == "products"
        for q in ("laptop bag", "q3"):  # SRW replaces the placeholder textually: the body the arm sent for q
            assert json.loads(cfg["query"].replace(srw.PLACEHOLDER, q)) == arm_search_body(ARMS[arm], INFO[arm], q, K)
    bm25, pipe, resc = (_load(out, files[a]) for a in ARMS)
    assert "searchPipeline" not in bm25 and "searchPipeline" not in resc
    assert pipe["searchPipeline"] == "distilrank-staging"
    assert json.loads(pipe["query"])["ext"] == {"rerank": {"query_context": {"query_text": srw.PLACEHOLDER}}}
    block = json.loads(resc["query"])["rescore"]
    assert block["window_size"] == 50 and block["distilrank"]["query_text"] == srw.PLACEHOLDER
    assert block["distilrank"]["model"] == "staging" and block["distilrank"]["score_mode"] == "blend"
    assert "rescorer plugin is installed" in resc["description"] and "rescorer" not in bm25["description"]
    assert RESCORER_NOTE in manifest["notes"] and files["student pipeline"] == "search_configurations/student_pipeline.json"


def test_judgments_are_import_judgment_on_the_0_to_3_scale(exported):
    report, out, _ = exported
    body = _load(out, "judgments.json")
    assert body["type"] == "IMPORT_JUDGMENT" and body["description"].startswith("human judgments")
    got = {e["query"]: {r["docId"]: r["rating"] for r in e["ratings"]} for e in body["judgmentRatings"]}
    want = {q: g for q, g in report["judgments"]["grades"].items() if q != QUOTED}
    assert got == {q: {d: f"{g:.3f}" for d, g in docs.items()} for q, docs in want.items()}
    assert {float(r) for docs in got.values() for r in docs.values()} <= {0.0, 1.0, 2.0, 3.0}
    assert UNJUDGED not in got


def test_experiment_imports_hold_each_querys_ids_and_metrics_under_srw_names(exported):
    report, out, manifest = exported
    for r in (r for r in manifest["requests"] if r["kind"] == "experiment"):
        body = _load(out, r["file"])
        assert body["type"] == "POINTWISE_EVALUATION" and body["size"] == K
        assert body["querySetId"] == "${query_set_id}" and body["judgmentList"] == ["${judgment_id}"]
        assert body["searchConfigurationList"] == [f"${{search_configuration_id:{r['arm']}}}"]
        per_query = report["arms"][r["arm"]]["queries"]
        assert [e["searchText"] for e in body["evaluationResultList"]] == [q for q in per_query if q != QUOTED]
        for e in body["evaluationResultList"]:
            pq = per_query[e["searchText"]]
            assert e["documentIds"] == pq["doc_ids"]
            assert {m["metric"]: m["value"] for m in e["metrics"]} == {m: v for m, v in pq["metrics"].items() if v is not None}
            assert all(srw.srw_metric_name(m["metric"]) for m in e["metrics"])
        unjudged = next(e for e in body["evaluationResultList"] if e["searchText"] == UNJUDGED)
        assert unjudged["metrics"] == [] and (r["arm"] != "bm25" or unjudged["documentIds"] == [f"{UNJUDGED}-unjudged"])
        assert {m["metric"] for m in body["evaluationResultList"][1]["metrics"]} == {"NDCG@5", "MRR", "Precision@5", "Recall@5"}


def test_round_trip_exported_judgments_reproduce_every_metric(exported):
    """``ab run``'s loader reads judgments.json without a grade map; re-evaluating the report's runs with it gives
    every per-query value of the report, for every arm and metric."""
    report, out, _ = exported
    queries = [e["queryText"] for e in _load(out, "query_set.json")["querySetQueries"]]
    judged = load_judgments(out / "judgments.json", queryset=queries)
    assert judged.grades == {q: g for q, g in report["judgments"]["grades"].items() if q != QUOTED}
    again = evaluate_runs(runs_from_report(report, queries), judged, k=K, baseline="bm25", gain=report["gain"],
                          threshold=report["relevance_threshold"], n_permutations=200, bootstrap_resamples=100, click_model=None)
    n = 0
    for arm in ARMS:
        for q in queries:
            assert again["arms"][arm]["queries"][q]["metrics"] == report["arms"][arm]["queries"][q]["metrics"], (arm, q)
            n += len(report["arms"][arm]["queries"][q]["metrics"])
    assert n == len(ARMS) * len(queries) * 4


def test_grades_off_the_0_to_3_scale_are_refused(tmp_path):
    report = make_report(top=100.0)  # ESCI's raw 100/10/1/0 style scale
    with pytest.raises(DistilRankError, match=r"grades go up to 100.*2\^100.*grade_map = \"esci\""):
        build_export(report)


def test_an_old_report_gets_a_clear_error_and_its_metric_names_are_read(tmp_path):
    old = make_report()
    old["schema"] = "distilrank.abtest/1"
    for arm in old["arms"].values():  # schema 1 spelled the metrics in lower case, MRR with its k
        for pq in arm["queries"].values():
            pq["metrics"] = {m.lower() if m != "MRR" else f"mrr@{K}": v for m, v in pq["metrics"].items()}
    export = build_export(old)
    metrics = {m["metric"] for e in export.experiments["bm25"]["evaluationResultList"] for m in e["metrics"]}
    assert metrics == {"NDCG@5", "MRR", "Precision@5", "Recall@5"}
    del old["judgments"]["grades"]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(old))
    with pytest.raises(DistilRankError, match=r"no 'judgments.grades'.*older 'distilrank ab run'.*run 'distilrank ab run CONFIG' again"):
        export_srw(path, tmp_path / "out")
    old["judgments"]["grades"] = {}
    del old["arms_config"]["bm25"]["search_body"]
    path.write_text(json.dumps(old))
    with pytest.raises(DistilRankError, match=r"no 'arms_config.bm25.search_body'"):
        export_srw(path, tmp_path / "out")
    path.write_text(json.dumps({"schema": "something/else"}))
    with pytest.raises(DistilRankError, match="is not an A/B report"):
        export_srw(path, tmp_path / "out")


def test_names_fit_srw_and_ratings_keep_their_value():
    name = srw_name('a "very" long <experiment> name that goes on and on and on', "student-rescorer")
    assert len(name) <= srw.NAME_MAX and name.endswith(" student-rescorer") and srw.text_problem(name, limit=50) is None
    export = build_export(make_report(), name='my "A/B"')
    assert export.query_set["name"] == "my _A/B_" and export.judgments["name"] == "my _A/B_ judgments"
    assert rating_text(3) == "3.000" and rating_text(2.5) == "2.500" and float(rating_text(1 / 3)) == 1 / 3
