"""The hand-written IR metrics against trec_eval (through ``ir-measures`` / pytrec_eval) on random queries.

Where the conventions agree the numbers must match to 1e-9; where they differ (README "Metric conventions")
the difference itself is asserted, so a change on either side shows up here.
"""

import math

import ir_measures
import numpy as np
import pytest
from ir_measures import RR, P, Qrel, R, ScoredDoc, nDCG

from distilrank import metrics as score_metrics
from distilrank.plugin.abtest.metrics import mrr_at_k, ndcg_at_k, precision_at_k, recall_at_k

EXP_GAINS = {g: 2 ** g - 1 for g in range(4)}  # trec_eval's nDCG gain is the grade itself unless mapped


def _random_queries(n_queries: int = 40, seed: int = 7):
    """``(qid, judged {doc: grade 0..3}, ranked doc ids without repeats, some of them unjudged)``."""
    rng = np.random.default_rng(seed)
    out = []
    for q in range(n_queries):
        n_judged = int(rng.integers(1, 15))
        judged = {f"d{i}": float(rng.integers(0, 4)) for i in range(n_judged)}
        pool = list(judged) + [f"u{i}" for i in range(int(rng.integers(0, 6)))]
        ranked = [pool[i] for i in rng.permutation(len(pool))[: int(rng.integers(1, len(pool) + 1))]]
        out.append((f"q{q}", judged, ranked))
    return out


def _trec(measure, qid: str, judged: dict, ranked: list[str]) -> float:
    qrels = [Qrel(qid, d, int(g)) for d, g in judged.items()]
    run = [ScoredDoc(qid, d, float(len(ranked) - r)) for r, d in enumerate(ranked)]  # distinct scores: no tie-breaking
    got = [m.value for m in ir_measures.iter_calc([measure], qrels, run)]
    return got[0] if got else 0.0


@pytest.mark.parametrize("k", [1, 3, 5, 10])
def test_list_metrics_match_trec_eval(k):
    for qid, judged, ranked in _random_queries(seed=k):
        has_relevant = any(g >= 1 for g in judged.values())
        lin, exp_ = ndcg_at_k(ranked, judged, k, gain="linear"), ndcg_at_k(ranked, judged, k)
        if has_relevant:
            assert lin == pytest.approx(_trec(nDCG @ k, qid, judged, ranked), abs=1e-9)
            assert exp_ == pytest.approx(_trec(nDCG(gains=EXP_GAINS) @ k, qid, judged, ranked), abs=1e-9)
            assert recall_at_k(ranked, judged, k) == pytest.approx(_trec(R @ k, qid, judged, ranked), abs=1e-9)
        else:  # convention difference: trec_eval reports 0, we report undefined (left out of means)
            assert math.isnan(lin) and math.isnan(exp_) and math.isnan(recall_at_k(ranked, judged, k))
            assert _trec(nDCG @ k, qid, judged, ranked) == 0.0
        for t in (1, 2, 3):
            assert mrr_at_k(ranked, judged, k, threshold=t) == pytest.approx(_trec(RR(rel=t) @ k, qid, judged, ranked), abs=1e-9)
            assert precision_at_k(ranked, judged, k, threshold=t) == pytest.approx(_trec(P(rel=t) @ k, qid, judged, ranked), abs=1e-9)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_score_metrics_match_trec_eval_without_ties(k):
    rng = np.random.default_rng(100 + k)
    for q in range(40):
        n = int(rng.integers(1, 14))
        grades = rng.integers(0, 4, size=n).astype(float)
        scores = rng.permutation(n).astype(float)  # distinct
        docs = [f"d{i}" for i in range(n)]
        qrels = [Qrel("q", d, int(g)) for d, g in zip(docs, grades)]
        run = [ScoredDoc("q", d, s) for d, s in zip(docs, scores)]
        # one measure per call: ir-measures 0.4 can mix up the results of two nDCG variants computed together
        trec = {str(m): next(iter(ir_measures.iter_calc([m], qrels, run))).value for m in (nDCG @ k, nDCG(gains=EXP_GAINS) @ k, RR @ k)}
        rr = score_metrics.mrr_at_k(scores, grades >= 1, k)
        assert rr == pytest.approx(trec[str(RR @ k)], abs=1e-9)
        if grades.max() > 0:
            assert score_metrics.ndcg_at_k(scores, grades, k, gain="linear") == pytest.approx(trec[str(nDCG @ k)], abs=1e-9)
            assert score_metrics.ndcg_at_k(scores, grades, k) == pytest.approx(trec[str(nDCG(gains=EXP_GAINS) @ k)], abs=1e-9)


def test_ties_differ_by_convention():
    """trec_eval breaks score ties by doc id (descending); the score-based metrics average over the tie's orders."""
    docs, grades, scores = ["a", "b"], np.array([1.0, 0.0]), np.array([1.0, 1.0])
    qrels = [Qrel("q", d, int(g)) for d, g in zip(docs, grades)]
    run = [ScoredDoc("q", d, s) for d, s in zip(docs, scores)]
    trec = next(iter(ir_measures.iter_calc([nDCG @ 2], qrels, run))).value
    assert trec == pytest.approx(1 / math.log2(3))  # "b" sorts first, "a" lands at rank 2
    assert score_metrics.ndcg_at_k(scores, grades, 2, gain="linear") == pytest.approx((1 + 1 / math.log2(3)) / 2)
