"""The ranking pipeline against the real node, on a tiny vendored ESCI sample.

(a) candidate pools from a real index: ``index_catalogue`` (reused when it holds the same catalogue, refused
    when it holds another unless ``recreate``), ``bm25_top_k`` and ``bm25_scores``;
(b) a tiny end-to-end ``run_ranking`` with ``[serve]`` on: each fold's distilled student and 1-layer
    cross-encoder teacher are exported, registered, deployed, smoke-tested and promoted behind aliases, the
    fold's test queries run through bm25 / student / teacher on the node, and the A/B report is written; the
    node's reranked lists must equal the pipeline's offline rerank evaluation of the same models.

Data: ``tests/data/esci-sample`` (38 ESCI products, 3 judged queries) and
``integration/data/esci-sample/queries-unlabeled.tsv`` (200 real unlabeled ESCI queries); see their READMEs.
Everything this module creates (indices, models of its model group, pipelines, alias records) is removed at the end.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from distilrank.catalogue import DocumentText, read_catalogue
from distilrank.errors import DistilRankError
from distilrank.plugin import api, ml_api, registry_store
from distilrank.plugin.catalogue_index import bm25_scores, bm25_top_k, index_catalogue

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "esci-sample"
UNLABELED = ROOT / "integration" / "data" / "esci-sample" / "queries-unlabeled.tsv"
PID = os.getpid()
POOL_INDEX = f"distilrank-it-esci-pools-{PID}"
E2E_INDEX = f"distilrank-it-esci-e2e-{PID}"
GROUP = f"distilrank-it-serve-{PID}"
PREFIX = f"it{PID}-esci"
FIELDS = ["title^2", "brand", "color", "bullet_points", "description"]
DOC = DocumentText(fields=["title", "brand", "color"], index_field="distilrank_text")


@pytest.fixture(scope="module", autouse=True)
def _cleanup(t):
    yield
    for found in ml_api.search_model_groups(t, GROUP):
        for hit in ml_api.search_models(t, {"term": {"model_group_id": found["_id"]}}):
            for name in ml_api.pipelines_using(t, hit["_id"]):
                ml_api.delete_search_pipeline(t, name)
            api.delete(t, hit["_id"], force=True)
        ml_api.delete_model_group(t, found["_id"])
    for role in ("student", "teacher"):
        alias = f"{PREFIX}-fold-0-{role}"
        t.request("DELETE", f"/_search/pipeline/distilrank-{alias}", ok_statuses=(404,))
        registry_store.delete_alias(t, alias)
    for index in (POOL_INDEX, E2E_INDEX):
        t.request("DELETE", f"/{index}", ok_statuses=(404,))


@pytest.fixture(scope="module")
def catalogue():
    return read_catalogue(SAMPLE / "products.jsonl", id_field="asin")


@pytest.fixture(scope="module")
def judged_queries() -> list[str]:
    return [json.loads(line)["query"] for line in (SAMPLE / "judgments.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def pool_index(t, catalogue):
    t.request("DELETE", f"/{POOL_INDEX}", ok_statuses=(404,))
    info = index_catalogue(t, POOL_INDEX, catalogue, DOC)
    assert info == {"index": POOL_INDEX, "docs": len(catalogue), "reused": False}
    return POOL_INDEX


# --- (a) pools from a real index ----------------------------------------------------------------

def test_index_holds_the_catalogue_and_the_model_text(t, pool_index, catalogue):
    assert t.request("GET", f"/{pool_index}/_count")["count"] == len(catalogue) == 38
    mapping = t.request("GET", f"/{pool_index}/_mapping")[pool_index]["mappings"]
    assert mapping["properties"]["doc_id"]["type"] == "keyword" and mapping["properties"][DOC.index_field]["type"] == "keyword"
    assert mapping["_meta"]["distilrank"]["docs"] == 38
    first = catalogue.ids[0]
    src = t.request("GET", f"/{pool_index}/_doc/{first}")["_source"]
    assert src[DOC.index_field] == catalogue.texts(DOC)[0] and src["doc_id"] == first


def test_bm25_top_k_real_ids_descending_scores(t, pool_index, catalogue, judged_queries):
    hits = bm25_top_k(t, pool_index, judged_queries + ["zzqx nonexistent gadget"], 10, fields=FIELDS)
    assert set(hits) == set(judged_queries) | {"zzqx nonexistent gadget"}
    assert hits["zzqx nonexistent gadget"] == []
    ids = set(catalogue.ids)
    for q in judged_queries:
        assert 1 <= len(hits[q]) <= 10
        assert all(d in ids for d, _ in hits[q])
        scores = [s for _, s in hits[q]]
        assert all(s > 0 for s in scores) and scores == sorted(scores, reverse=True)
    # small batches give the same answer (the _msearch batching is invisible)
    assert bm25_top_k(t, pool_index, judged_queries, 10, fields=FIELDS, batch=1) == {q: hits[q] for q in judged_queries}


def test_bm25_scores_match_top_k_and_zero_for_non_matching(t, pool_index, catalogue, judged_queries):
    everything = bm25_top_k(t, pool_index, judged_queries, len(catalogue), fields=FIELDS)
    for q in judged_queries:
        matching = dict(everything[q])
        outside = [d for d in catalogue.ids if d not in matching]
        assert outside, f"every product matches {q!r}: no non-matching product to test"
        top_doc, top_score = everything[q][0]
        last_doc, last_score = everything[q][-1]
        got = bm25_scores(t, pool_index, {q: [top_doc, outside[0], last_doc, top_doc]}, fields=FIELDS)[q]
        assert set(got) == {top_doc, outside[0], last_doc}
        assert got[top_doc] == pytest.approx(top_score, rel=1e-6) and got[last_doc] == pytest.approx(last_score, rel=1e-6)
        assert got[outside[0]] == 0.0


def test_reindexing_is_reused_and_another_catalogue_is_refused_unless_recreate(t, pool_index, catalogue):
    again = index_catalogue(t, pool_index, catalogue, DOC)
    assert again == {"index": pool_index, "docs": len(catalogue), "reused": True}
    smaller = read_catalogue(SAMPLE / "products.jsonl", id_field="asin", limit=20)
    with pytest.raises(DistilRankError, match="exists with other contents"):
        index_catalogue(t, pool_index, smaller, DOC)
    assert t.request("GET", f"/{pool_index}/_count")["count"] == 38  # untouched by the refusal
    other_doc = DocumentText(fields=["title"], index_field=DOC.index_field)
    with pytest.raises(DistilRankError, match="exists with other contents"):
        index_catalogue(t, pool_index, catalogue, other_doc)
    rebuilt = index_catalogue(t, pool_index, smaller, DOC, recreate=True)
    assert rebuilt == {"index": pool_index, "docs": 20, "reused": False}
    assert t.request("GET", f"/{pool_index}/_count")["count"] == 20
    assert index_catalogue(t, pool_index, smaller, DOC)["reused"] is True


# --- (b) end to end: run_ranking with [serve] ---------------------------------------------------

E2E_TOML = """
task = "ranking"
out_dir = "out"
seed = 0

[catalogue]
path = "{sample}/products.jsonl"
id_field = "asin"

[document]
fields = ["title", "brand", "color"]
index_field = "distilrank_text"

[judgments]
path = "{sample}/judgments.jsonl"
eval_fraction = 0.3             # 3 judged queries: 1 held out, 1 for the cross-encoder, 1 for the stacker
stack_fraction = 0.25

[index]
name = "{index}"
recreate = true

[transfer]
queries = "{unlabeled}"
max_queries = 120
bm25_k = 10
random_per_query = 2

[[teachers]]
name = "ce"
kind = "cross-encoder"
num_layers = 1
epochs = 1
batch_size = 16
max_length = 32
bm25_negatives = 5
random_negatives = 3
score_batch_size = 64

[[teachers]]
name = "bm25"
kind = "bm25"

[distill]
gold_student = false
temperature = 1.0

[student]
vocab_size = 5000
bigram_buckets = 1009
embedding_dim = 16
hidden = [64, 32]
epochs = 2
batch_size = 128

[eval]
k = 10
rerank_depth = 20

[serve]
enabled = true
depth = 20
group = "{group}"
alias_prefix = "{prefix}"
"""


@pytest.fixture(scope="module")
def e2e(t, tmp_path_factory):
    import torch

    from distilrank.distill.ranking.config import load_ranking_config
    from distilrank.distill.ranking.pipeline import run_ranking

    work = tmp_path_factory.mktemp("ranking-serve")
    toml = work / "esci-serve.toml"
    toml.write_text(E2E_TOML.format(sample=SAMPLE, unlabeled=UNLABELED, index=E2E_INDEX, group=GROUP, prefix=PREFIX), encoding="utf-8")
    cfg = load_ranking_config(toml)
    lines: list[str] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    try:
        summary = run_ranking(cfg, t, progress=False, log=lines.append)
    finally:
        torch.set_num_threads(threads)
    return {"cfg": cfg, "summary": summary, "log": lines, "seconds": time.perf_counter() - t0, "toml": toml}


def test_run_ranking_serves_each_fold_and_writes_the_ab_report(e2e, t):
    cfg, summary = e2e["cfg"], e2e["summary"]
    out = Path(cfg.out_dir)
    serve = summary["serve"]
    assert serve["arms"] == ["bm25", "student", "teacher"] and serve["folds"] == 1 and serve["depth"] == 20
    test_queries = json.loads((out / "folds" / "fold-0" / "split.json").read_text())["test"]
    assert serve["queries"] == len(test_queries) == 1
    report = json.loads((out / "ab" / "report.json").read_text())
    assert Path(serve["report"]["html"]) == out / "ab" / "report.html" and (out / "ab" / "report.html").stat().st_size > 1000
    assert report["arm_names"] == ["bm25", "student", "teacher"] and report["baseline"] == "bm25"
    assert "NDCG@10" in report["metrics"] and "ndcg_esci@10" in report["metrics"]
    assert report["gain"] == "exponential" and report["relevance_threshold"] == 3.0
    assert set(report["arms"]["bm25"]["queries"]) == set(test_queries)  # test queries only
    for arm in ("student", "teacher"):
        assert serve["reranked_share"][arm] == 1.0  # the rerank pipelines really reordered BM25's list
        lat = report["latency_vs_baseline"][arm]
        assert lat["p50_ms"] > 0 and lat["p50_added_ms"] == pytest.approx(lat["p50_ms"] - report["latency_vs_baseline"]["bm25"]["p50_ms"])
        assert serve["latency_ms"][arm]["p99"] >= serve["latency_ms"][arm]["p50"] > 0
    # one log line per fold with the A/B numbers, and the ranking report links the A/B report
    assert sum(line.startswith("serve fold 0:") and "test queries; nDCG@10" in line for line in e2e["log"]) == 1
    md = (out / "report" / "report.md").read_text()
    assert "In the cluster (A/B on the real node)" in md and "Full A/B report: ../ab/report.html" in md
    assert json.loads((out / "run.json").read_text())["serve"]["ndcg"] == serve["ndcg"]


def test_node_rankings_equal_the_offline_rerank_evaluation(e2e):
    """BM25 through the node and the models reranking on the node give exactly the nDCG of the pipeline's offline
    rerank setting (same pool, same models scored in PyTorch)."""
    summary, serve = e2e["summary"], e2e["summary"]["serve"]
    offline = {r["system"]: r for r in summary["tables"]["rerank"]}
    assert serve["ndcg_esci"]["bm25"] == pytest.approx(offline["BM25"]["ndcg_esci"], abs=1e-9)
    assert serve["ndcg"]["bm25"] == pytest.approx(offline["BM25"]["ndcg_graded"], abs=1e-9)
    assert serve["ndcg_esci"]["student"] == pytest.approx(offline["student"]["ndcg_esci"], abs=1e-6)
    assert serve["ndcg_esci"]["teacher"] == pytest.approx(offline["teacher ce"]["ndcg_esci"], abs=1e-6)


def test_serve_leaves_models_undeployed_behind_their_aliases_and_resumes(e2e, t):
    from distilrank.distill.ranking.serve import serve_and_compare

    cfg, out = e2e["cfg"], Path(e2e["cfg"].out_dir)
    runs = json.loads((out / "ab" / "runs" / "fold-0.json").read_text())
    ids = {role: runs["served"][role]["model_id"] for role in ("student", "teacher")}
    for role, mid in ids.items():
        assert ml_api.get_model(t, mid)["model_state"] in api.NOT_SERVING_STATES
        assert ml_api.model_states_on_nodes(t, mid) == {}  # no node holds it in memory
        pipe = ml_api.get_search_pipeline(t, f"distilrank-{PREFIX}-fold-0-{role}")
        assert mid in ml_api.rerank_model_ids(pipe)
    # resumed: exports and searches are reused, nothing is registered or deployed again
    lines: list[str] = []
    again = serve_and_compare(cfg, t, out, lines.append)
    assert any("reusing the searches" in line for line in lines)
    assert not any("exported" in line or "deployed" in line for line in lines)
    assert again["ndcg"] == e2e["summary"]["serve"]["ndcg"]
    exported = json.loads((out / "ab" / "exports" / "fold-0" / "teacher" / "export.json").read_text())
    assert exported["max_abs_diff"] <= 1e-4 and Path(exported["zip"]).is_file()
