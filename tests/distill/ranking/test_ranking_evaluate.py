"""Ranking evaluation: hand-computed nDCG (ESCI linear and graded exponential gains), MRR, ties, rerank setting, comparison."""

import itertools
import math

import numpy as np
import pytest

from distilrank.distill.ranking.evaluate import compare, judged_setting, query_metrics, recovery, rerank_setting
from distilrank.grades import ESCI_GAINS, esci_gain

L3 = math.log2(3)  # discount of rank 2 is 1 / log2(3); rank 1: 1, rank 3: 1/2, rank 4: 1/log2(5)


def test_esci_gains():
    assert esci_gain(np.array([3, 2, 1, 0])).tolist() == [1.0, 0.1, 0.01, 0.0]
    assert ESCI_GAINS == {3.0: 1.0, 2.0: 0.1, 1.0: 0.01, 0.0: 0.0}


def test_query_metrics_by_hand():
    scores = np.array([4.0, 3.0, 2.0, 1.0])
    grades = np.array([2.0, 3.0, 0.0, 1.0])  # ranked: S, E, I, C
    m = query_metrics(scores, grades, k=3)
    # ESCI linear gains: ranked 0.1, 1.0, 0 ; ideal 1.0, 0.1, 0.01
    assert m["ndcg_esci"] == pytest.approx((0.1 + 1.0 / L3 + 0.0) / (1.0 + 0.1 / L3 + 0.01 / 2))
    # graded 2^g - 1: ranked 3, 7, 0 ; ideal 7, 3, 1
    assert m["ndcg_graded"] == pytest.approx((3 + 7 / L3 + 0) / (7 + 3 / L3 + 1 / 2))
    assert m["mrr"] == pytest.approx(0.5)  # first Exact at rank 2
    m1 = query_metrics(scores, grades, k=1)
    assert m1["ndcg_esci"] == pytest.approx(0.1) and m1["ndcg_graded"] == pytest.approx(3 / 7) and m1["mrr"] == 0.0
    m4 = query_metrics(scores, grades, k=4)
    assert m4["ndcg_esci"] == pytest.approx((0.1 + 1.0 / L3 + 0.01 / math.log2(5)) / (1.0 + 0.1 / L3 + 0.01 / 2))
    perfect = query_metrics(np.array([3.0, 4.0, 0.0, 1.0]), grades, k=3)
    assert perfect == {"ndcg_esci": pytest.approx(1.0), "ndcg_graded": pytest.approx(1.0), "mrr": pytest.approx(1.0)}


def test_no_exact_and_no_gain():
    m = query_metrics(np.array([3.0, 2.0, 1.0]), np.array([2.0, 1.0, 2.0]), k=10)
    assert m["mrr"] == 0.0  # only Exact counts as relevant
    assert m["ndcg_esci"] == pytest.approx((0.1 + 0.01 / L3 + 0.1 / 2) / (0.1 + 0.1 / L3 + 0.01 / 2))
    none = query_metrics(np.array([1.0, 2.0]), np.array([0.0, 0.0]), k=10)
    assert math.isnan(none["ndcg_esci"]) and math.isnan(none["ndcg_graded"]) and none["mrr"] == 0.0


def _mean_over_orders(grades, tied, fixed_scores, k):
    """Mean of query_metrics over every order of the docs in ``tied`` (distinct scores in each order)."""
    rows = []
    for perm in itertools.permutations(range(len(tied))):
        s = np.array(fixed_scores, dtype=np.float64)
        for rank, j in enumerate(perm):
            s[tied[j]] = s[tied[j]] - 1e-3 * rank  # break the tie in this order, staying inside its block
        rows.append(query_metrics(s, grades, k))
    return {m: float(np.mean([r[m] for r in rows])) for m in rows[0]}


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_all_equal_scores_give_the_mean_over_all_orders(k):
    grades = np.array([0.0, 3.0, 1.0, 2.0])
    got = query_metrics(np.zeros(4), grades, k)
    want = _mean_over_orders(grades, [0, 1, 2, 3], [0.0] * 4, k)
    assert got == {m: pytest.approx(v, abs=1e-12) for m, v in want.items()}
    assert got["mrr"] == pytest.approx(sum(1 / r for r in range(1, k + 1)) / 4)  # the single Exact at each rank w.p. 1/4


def test_partial_ties_average_only_within_the_tie():
    grades = np.array([1.0, 3.0, 0.0, 3.0, 2.0])
    scores = [5.0, 2.0, 2.0, 2.0, 1.0]  # docs 1, 2, 3 tied in ranks 2-4
    got = query_metrics(np.array(scores), grades, k=3)
    want = _mean_over_orders(grades, [1, 2, 3], scores, 3)
    assert got == {m: pytest.approx(v, abs=1e-12) for m, v in want.items()}
    # input order does not matter with ties
    perm = [4, 3, 2, 1, 0]
    assert query_metrics(np.array(scores)[perm], grades[perm], 3) == pytest.approx(got)


def test_judged_setting_groups_rows_by_query():
    rq = ["a", "b", "a", "b", "a"]
    grades = np.array([3.0, 0.0, 0.0, 2.0, 2.0])
    scores = np.array([0.1, 0.9, 0.5, 0.2, 0.3])
    out = judged_setting(["a", "b"], rq, grades, scores, k=10)
    assert out["a"] == query_metrics(np.array([0.1, 0.5, 0.3]), np.array([3.0, 0.0, 2.0]), 10)
    assert out["b"] == query_metrics(np.array([0.9, 0.2]), np.array([0.0, 2.0]), 10)
    assert out["a"]["mrr"] == pytest.approx(1 / 3)


# --- rerank -----------------------------------------------------------------------------

POOL = {"q": ["d1", "d2", "d3", "d4", "d5"]}
JUDGED = {"q": {"d1": 0.0, "d2": 3.0, "d3": 2.0, "d9": 3.0}}  # d9 judged but not in the pool; d4, d5 unjudged
IDEAL_ESCI_3 = 1.0 + 1.0 / L3 + 0.1 / 2  # over all judged: 3, 3, 2 (d9 included)
IDEAL_GRADED_3 = 7 + 7 / L3 + 3 / 2


def test_rerank_bm25_order_when_scores_none():
    m = rerank_setting(POOL, None, JUDGED, k=3)["q"]  # top 3: d1 (I), d2 (E), d3 (S)
    assert m["ndcg_esci"] == pytest.approx((0 + 1.0 / L3 + 0.1 / 2) / IDEAL_ESCI_3)
    assert m["ndcg_graded"] == pytest.approx((0 + 7 / L3 + 3 / 2) / IDEAL_GRADED_3)
    assert m["mrr"] == pytest.approx(0.5) and m["unjudged"] == 0.0


def test_rerank_reorders_by_scores_ties_keep_bm25_order():
    scores = {"q": np.array([0.1, 0.5, 0.2, 0.9, 0.5])}  # d4, then d2 and d5 tied (d2 first in BM25), d3, d1
    m = rerank_setting(POOL, scores, JUDGED, k=3)["q"]
    assert m["ndcg_esci"] == pytest.approx((0 + 1.0 / L3 + 0) / IDEAL_ESCI_3)
    assert m["ndcg_graded"] == pytest.approx((7 / L3) / IDEAL_GRADED_3)
    assert m["mrr"] == pytest.approx(0.5)
    assert m["unjudged"] == pytest.approx(2 / 3)  # d4 and d5
    # all-equal scores keep the BM25 order exactly
    assert rerank_setting(POOL, {"q": np.zeros(5)}, JUDGED, 3) == rerank_setting(POOL, None, JUDGED, 3)
    # the best order of the pool still misses d9: below 1
    best = rerank_setting(POOL, {"q": np.array([0, 5, 4, 0, 0.0])}, JUDGED, 3)["q"]
    assert best["mrr"] == 1.0
    assert best["ndcg_esci"] == pytest.approx((1.0 + 0.1 / L3) / IDEAL_ESCI_3) and best["ndcg_esci"] < 1.0


def test_rerank_short_and_empty_pools():
    judged = {"short": {"a": 3.0, "b": 2.0}, "empty": {"a": 3.0}, "nothing": {"x": 0.0}}
    pool = {"short": ["b"], "empty": [], "nothing": ["x", "y"]}
    out = rerank_setting(pool, None, judged, k=3)
    assert out["short"]["ndcg_esci"] == pytest.approx(0.1 / (1.0 + 0.1 / L3))
    assert out["short"]["ndcg_graded"] == pytest.approx(3 / (7 + 3 / L3))
    assert out["short"]["mrr"] == 0.0 and out["short"]["unjudged"] == 0.0
    assert out["empty"] == {"ndcg_esci": 0.0, "ndcg_graded": 0.0, "mrr": 0.0, "unjudged": 0.0}
    assert math.isnan(out["nothing"]["ndcg_esci"]) and out["nothing"]["unjudged"] == pytest.approx(0.5)


# --- comparison --------------------------------------------------------------------------


def _per_query(values):
    return {f"q{i}": {"ndcg_esci": v, "ndcg_graded": v / 2, "mrr": 1.0} for i, v in enumerate(values)}


def test_compare_strictly_better_system():
    base = [0.3 + 0.01 * i for i in range(10)]
    better = [b + 0.1 + 0.005 * i for i, b in enumerate(base)]
    rows = compare({"bm25": _per_query(base), "model": _per_query(better), "same": _per_query(base)}, "bm25", seed=0)
    assert [r["system"] for r in rows] == ["bm25", "model", "same"]
    b, m, s = rows
    assert b["queries"] == 10 and b["ndcg_esci"] == pytest.approx(np.mean(base)) and b["mrr"] == 1.0
    assert not any(key.startswith("delta") or key in ("p_value", "ci_low", "wins") for key in b)
    deltas = np.array(better) - np.array(base)
    assert m["delta_ndcg_esci"] == pytest.approx(deltas.mean())
    assert m["wins"] == 10 and m["losses"] == 0 and m["ties"] == 0
    assert m["p_value"] == pytest.approx(2 / 2**10)  # exact sign-flip test: only all-+ and all-- are as extreme
    assert deltas.min() <= m["ci_low"] < deltas.mean() < m["ci_high"] <= deltas.max()
    assert m["ndcg_graded"] == pytest.approx(np.mean(better) / 2)
    assert s["delta_ndcg_esci"] == 0.0 and s["p_value"] == 1.0 and s["ties"] == 10 and s["wins"] == 0
    assert compare({"bm25": _per_query(base), "model": _per_query(better)}, "bm25", seed=0)[1] == m  # deterministic


def test_compare_other_metric_and_undefined_queries():
    base = _per_query([0.5, 0.4, 0.6, 0.2])
    model = _per_query([0.6, 0.3, 0.9, float("nan")])
    rows = compare({"bm25": base, "model": model}, "bm25", metric="ndcg_graded")
    m = rows[1]
    assert m["queries"] == 3  # q3 undefined for the model
    assert m["ndcg_esci"] == pytest.approx(np.mean([0.6, 0.3, 0.9]))  # means over its defined queries
    assert m["delta_ndcg_graded"] == pytest.approx(np.mean([0.05, -0.05, 0.15]))
    assert (m["wins"], m["losses"], m["ties"]) == (2, 1, 0)
    assert 0 < m["p_value"] <= 1


def test_recovery():
    r = recovery(0.45, 0.5, 0.3)
    assert r["recovery"] == pytest.approx(0.9) and r["gain_kept"] == pytest.approx(0.75)
    assert recovery(0.2, 0.5, 0.3)["gain_kept"] == pytest.approx(-0.5)  # worse than the baseline
    assert math.isnan(recovery(0.4, 0.3, 0.35)["gain_kept"])  # the teacher does not beat the baseline: no gain to keep
    assert math.isnan(recovery(0.4, 0.0, 0.3)["recovery"])
    assert math.isnan(recovery(0.4, 0.3, 0.3)["gain_kept"])
