"""The per-fold alias A/B against a fake cluster: registering behind the fold's aliases, searching the arms, caching
the runs by the zips' sha256 (a resumed comparison registers and searches nothing), undeploying, and the merged
report (``NDCG@k`` with exponential gain plus ``ndcg_esci@k`` with the given gains)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from distilrank.errors import DistilRankError
from distilrank.grades import esci_gain
from distilrank.judgments import from_pairs
from distilrank.plugin import api
from distilrank.plugin.abtest import fold_aliases, runner
from distilrank.plugin.abtest.fold_aliases import (
    FoldAliasSetup,
    FoldModels,
    ab_arms,
    alias_names,
    compare_fold_aliases,
    gain_judgments,
)

QUERIES = [f"q{i}" for i in range(8)]
JUDGMENTS = from_pairs({q: {f"d{(i * 3 + j) % 30}": float((i + j) % 4) for j in range(6)} for i, q in enumerate(QUERIES)},
                       origin="j.csv")


class FakeCluster:
    """api.register / api.undeploy / runner.resolve_arms / runner.make_search_fn, recording the calls."""

    def __init__(self, monkeypatch, rerank_model=None):
        self.calls: list[tuple] = []
        self.rerank_model = rerank_model
        monkeypatch.setattr(api, "register", self.register)
        monkeypatch.setattr(api, "undeploy", self.undeploy)
        monkeypatch.setattr(runner, "resolve_arms", self.resolve_arms)
        monkeypatch.setattr(runner, "make_search_fn", self.make_search_fn)

    def register(self, t, zip_path, **kw):
        self.calls.append(("register", zip_path, kw["group"], kw["promote_alias"], kw["document_fields"], kw["depth"], kw["size"]))
        return {"model_id": "m-" + kw["promote_alias"], "reused": False, "sha256": kw["expected_sha256"],
                "promoted": {"pipeline": "p-" + kw["promote_alias"]}, "smoke_test": {"max_abs_diff": 1e-6}}

    def undeploy(self, t, model_id, force=False):
        self.calls.append(("undeploy", model_id, force))
        return {}

    def resolve_arms(self, t, abcfg):
        self.calls.append(("resolve", abcfg.name, [(a.name, a.alias) for a in abcfg.arms]))
        return {a.name: {"pipeline": a.alias and "p-" + a.alias, "rerank": bool(a.alias),
                         "model_id": a.alias and (self.rerank_model or "m-" + a.alias), "spec": None} for a in abcfg.arms}

    def make_search_fn(self, t, abcfg, arms):
        def search(arm, query, k):
            i = int(query[1:])
            ids = [f"d{(i * 3 + j) % 30}" for j in range(8)]
            ids = {"bm25": ids, "student": ids[::-1], "teacher": ids[1:] + ids[:1]}[arm]
            return ids[:k], 10.0 + i + {"bm25": 0, "student": 3, "teacher": 7}[arm]
        return search

    def of(self, kind: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == kind]


def _setup(tmp_path: Path, **kw) -> FoldAliasSetup:
    return FoldAliasSetup(index="products", bm25_fields=("title^2", "brand"), field="text", depth=20, k=5, group="g",
                          alias_prefix="esci", out=tmp_path / "ab", config="run.toml", judgments_file="j.csv", **kw)


def _folds(sha: str = "a") -> list[FoldModels]:
    return [FoldModels(f, QUERIES[f * 4:(f + 1) * 4],
                       {r: {"zip": f"/x/{r}-{f}.zip", "sha256": f"{sha}-{r}-{f}", "name": f"esci-fold-{f}-{r}"} for r in ("student", "teacher")})
            for f in range(2)]


def test_aliases_and_arms_of_a_fold():
    assert alias_names("esci", 3) == {"student": "esci-fold-3-student", "teacher": "esci-fold-3-teacher"}
    arms = ab_arms(["title^2", "brand"], "esci", 3)
    assert [(a.name, a.alias) for a in arms] == [("bm25", None), ("student", "esci-fold-3-student"), ("teacher", "esci-fold-3-teacher")]
    assert arms[0].query == arms[1].query == arms[2].query and "title^2" in json.dumps(arms[0].query)


def test_gain_judgments_replace_grades_by_their_gains():
    g = gain_judgments(JUDGMENTS, esci_gain)
    q = QUERIES[0]
    assert {d: g[q][d] for d in JUDGMENTS[q]} == {d: float(esci_gain(np.array([v]))[0]) for d, v in JUDGMENTS[q].items()}
    assert g.queries == JUDGMENTS.queries and g.origin == "j.csv (ESCI gains)"


def test_serves_each_fold_behind_its_aliases_writes_one_report_and_resumes(tmp_path, monkeypatch):
    cluster = FakeCluster(monkeypatch)
    setup, lines = _setup(tmp_path), []
    summary = compare_fold_aliases(object(), setup, iter(_folds()), JUDGMENTS, log=lines.append)
    assert cluster.of("register") == [("register", f"/x/{r}-{f}.zip", "g", f"esci-fold-{f}-{r}", ["text"], 20, 5)
                                      for f in range(2) for r in ("student", "teacher")]
    assert cluster.of("undeploy") == [("undeploy", f"m-esci-fold-{f}-{r}", True) for f in range(2) for r in ("student", "teacher")]
    assert summary["arms"] == ["bm25", "student", "teacher"] and summary["folds"] == 2 and summary["queries"] == 8
    assert summary["depth"] == 20 and summary["k"] == 5 and summary["reranked_share"]["bm25"] == 0.0
    assert summary["reranked_share"]["student"] == 1.0
    lat = summary["latency_ms"]
    assert lat["student"]["p50_added"] == pytest.approx(lat["student"]["p50"] - lat["bm25"]["p50"]) and lat["teacher"]["p50_added"] > 0
    report = json.loads((setup.out / "report.json").read_text())
    assert report["metrics"][-1] == "ndcg_esci@5" and "NDCG@5" in report["metrics"] and report["relevance_threshold"] == 3.0
    assert report["experiment"]["config"] == "run.toml" and report["experiment"]["judgments_file"] == "j.csv"
    assert [f["fold"] for f in report["folds"]] == [0, 1] and set(report["arms"]["bm25"]["queries"]) == set(QUERIES)
    assert summary["ndcg_esci"]["bm25"] == report["arms"]["bm25"]["summary"]["ndcg_esci@5"]["mean"]
    assert (setup.out / "report.html").is_file() and sum("test queries; nDCG@5" in line for line in lines) == 2
    cached = json.loads((setup.out / "runs" / "fold-1.json").read_text())
    assert cached["key"]["sha256"] == {"student": "a-student-1", "teacher": "a-teacher-1"} and cached["key"]["queries"] == QUERIES[4:]

    cluster.calls.clear()
    lines.clear()
    again = compare_fold_aliases(object(), setup, _folds(), JUDGMENTS, log=lines.append)
    assert cluster.calls == [] and sum("reusing the searches" in line for line in lines) == 2
    assert again["ndcg"] == summary["ndcg"] and again["ndcg_esci"] == summary["ndcg_esci"]

    compare_fold_aliases(object(), setup, _folds(sha="b"), JUDGMENTS, log=lines.append)
    assert len(cluster.of("register")) == 4  # new zips: the searches are not reused


def test_a_pipeline_reranking_with_another_model_is_refused_and_the_models_undeployed(tmp_path, monkeypatch):
    cluster = FakeCluster(monkeypatch, rerank_model="someone-else")
    with pytest.raises(DistilRankError, match="does not rerank with m-esci-fold-0-student"):
        compare_fold_aliases(object(), _setup(tmp_path), _folds(), JUDGMENTS, log=lambda m: None)
    assert cluster.of("undeploy") == [("undeploy", "m-esci-fold-0-student", True), ("undeploy", "m-esci-fold-0-teacher", True)]
    assert not (tmp_path / "ab" / "runs" / "fold-0.json").exists()


def test_folds_must_not_share_test_queries_and_must_exist(tmp_path, monkeypatch):
    FakeCluster(monkeypatch)
    a, b = _folds()
    with pytest.raises(AssertionError, match="queries in the test sets of two folds"):
        compare_fold_aliases(object(), _setup(tmp_path), [a, FoldModels(1, a.queries[:1], b.exports)], JUDGMENTS,
                             log=lambda m: None)
    with pytest.raises(DistilRankError, match="no folds to serve"):
        compare_fold_aliases(object(), _setup(tmp_path), [], JUDGMENTS, log=lambda m: None)


def test_a_query_bm25_finds_nothing_returns_no_hits_in_the_rerank_arms(monkeypatch):
    def make_search_fn(t, abcfg, arms):
        def search(arm, query, k):
            if arm != "bm25" and query == "nothing":
                raise DistilRankError("HTTP 400: No text documents were provided")
            return ([] if query == "nothing" else ["d1"]), 5.0
        return search

    monkeypatch.setattr(runner, "make_search_fn", make_search_fn)
    search = fold_aliases._search_fn(object(), None, {})
    with pytest.raises(DistilRankError):  # before BM25 answered for the query, the error stands
        search("student", "nothing", 5)
    assert search("bm25", "nothing", 5) == ([], 5.0)
    assert search("student", "nothing", 5) == ([], 0.0)
    assert search("teacher", "something", 5) == (["d1"], 5.0)
