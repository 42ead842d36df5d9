"""Metric names as the Search Relevance Workbench writes them (``NDCG@10``, ``MRR``, ``Precision@10``,
``Recall@10``) in results and reports; the lower-case spellings of older reports and configs keep working."""

from __future__ import annotations

import pytest

from distilrank.errors import ConfigError, DistilRankError
from distilrank.judgments import from_pairs
from distilrank.plugin.abtest import srw_schema as srw
from distilrank.plugin.abtest.config import load_ab_config
from distilrank.plugin.abtest.metrics import METRICS, canonical_metric_name, find_metric, metric_name, parse_metric_name
from distilrank.plugin.abtest.offline import run_comparison
from distilrank.plugin.abtest.runner import choose_winner
from tests.plugin.abtest.test_config import AB_OK


def test_report_names_are_srws():
    assert [metric_name(m, 10) for m in METRICS] == ["NDCG@10", "MRR", "Precision@10", "Recall@10"]
    assert all(srw.srw_metric_name(metric_name(m, 7)) for m in METRICS)
    with pytest.raises(DistilRankError, match="unknown metric 'map'"):
        metric_name("map", 10)


@pytest.mark.parametrize("spelling, parsed, canonical", [
    ("NDCG@10", ("ndcg", 10), "NDCG@10"), ("ndcg@10", ("ndcg", 10), "NDCG@10"), ("nDCG@10", ("ndcg", 10), "NDCG@10"),
    ("MRR", ("mrr", None), "MRR"), ("mrr@10", ("mrr", 10), "MRR"), ("MRR@10", ("mrr", 10), "MRR"),
    ("precision@10", ("precision", 10), "Precision@10"), ("P@10", ("precision", 10), "Precision@10"),
    ("recall@10", ("recall", 10), "Recall@10"), ("Recall@10", ("recall", 10), "Recall@10"),
])
def test_every_spelling_is_read(spelling, parsed, canonical):
    assert parse_metric_name(spelling) == parsed
    assert canonical_metric_name(spelling, 10) == canonical
    assert canonical_metric_name(spelling) == canonical  # the name's own k (MRR needs none)


def test_other_names_pass_through_and_bad_cut_offs_are_refused():
    assert parse_metric_name("ndcg_esci@10") is None and canonical_metric_name("ndcg_esci@10", 10) == "ndcg_esci@10"
    assert parse_metric_name("ndcg@ten") is None
    assert canonical_metric_name("ndcg", 5) == "NDCG@5"
    with pytest.raises(DistilRankError, match="cut at 5, but the report's k is 10"):
        canonical_metric_name("ndcg@5", 10)
    with pytest.raises(DistilRankError, match="needs a cut-off"):
        canonical_metric_name("recall")
    assert find_metric("NDCG@10", ["ndcg@10", "mrr@10"], 10) == "ndcg@10"
    assert find_metric("mrr@10", ["NDCG@10", "MRR"], 10) == "MRR"
    with pytest.raises(DistilRankError, match=r"metric 'Recall@10' is not in the report \(its metrics: NDCG@10, MRR\)"):
        find_metric("Recall@10", ["NDCG@10", "MRR"], 10)


def _results(primary: str | None = None, n: int = 16):
    grades = {f"q{i}": {f"q{i}-good": 3.0, f"q{i}-ok": 1.0, f"q{i}-bad": 0.0} for i in range(n)}

    def search_fn(arm, query, k):
        docs = [f"{query}-bad", f"{query}-ok", f"{query}-good"]
        return (docs[::-1] if arm == "student" else docs), 1.0

    return run_comparison(from_pairs(grades), ["bm25", "student"], search_fn, k=3, n_permutations=2000,
                          bootstrap_resamples=200, primary_metric=primary)


def test_results_and_primary_metric_in_either_spelling():
    res = _results()
    assert res["metrics"] == ["NDCG@3", "MRR", "Precision@3", "Recall@3"] and res["primary_metric"] == "NDCG@3"
    assert {c["metric"] for c in res["comparisons"]} == set(res["metrics"])
    assert _results("mrr@3")["primary_metric"] == "MRR" and _results("RECALL@3")["primary_metric"] == "Recall@3"
    with pytest.raises(DistilRankError, match="cut at 10, but the report's k is 3"):
        _results("ndcg@10")


def test_promote_reads_a_report_with_the_old_names():
    """A schema-1 report spelled its metrics in lower case: ``ab promote`` still finds the winner."""
    old = _results()
    old["schema"] = "distilrank.abtest/1"
    for c in old["comparisons"]:
        c["metric"] = {"MRR": "mrr@3"}.get(c["metric"], c["metric"].lower())
    old["primary_metric"] = "ndcg@3"
    arm, reason = choose_winner(old)
    assert arm == "student" and reason.startswith("ndcg@3 ")
    old["primary_metric"] = "NDCG@3"  # a reader naming it the new way finds the old comparisons too
    assert choose_winner(old)[0] == "student"


def test_config_primary_metric_takes_both_spellings(tmp_path):
    p = tmp_path / "ab.toml"
    for written, stored in (("ndcg@10", "NDCG@10"), ("NDCG@10", "NDCG@10"), ("mrr", "MRR"), ("precision@10", "Precision@10")):
        p.write_text(AB_OK.replace('judgments = "j.csv"', f'judgments = "j.csv"\nprimary_metric = "{written}"'))
        assert load_ab_config(p).primary_metric == stored
    p.write_text(AB_OK)
    assert load_ab_config(p).primary_metric is None
    for bad, why in (("auc", "is not one of the metrics ndcg, mrr, precision, recall"), ("ndcg@5", "cut at 5, but the report's k is 10")):
        p.write_text(AB_OK.replace('judgments = "j.csv"', f'judgments = "j.csv"\nprimary_metric = "{bad}"'))
        with pytest.raises(ConfigError, match=f"field 'experiment.primary_metric': .*{why}"):
            load_ab_config(p)
