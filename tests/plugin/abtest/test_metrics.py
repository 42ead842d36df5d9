"""List-based ranking metrics against hand-worked values (written from the formulas) and the score-based NDCG."""

import math

import numpy as np
import pytest

from distilrank import metrics as score_metrics
from distilrank.errors import DistilRankError
from distilrank.plugin.abtest.metrics import (
    NO_GAIN,
    NO_JUDGMENTS,
    NO_RELEVANT,
    dcg,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    query_metrics,
    recall_at_k,
)

JUDGED = {"a": 3.0, "b": 2.0, "c": 0.0, "d": 1.0}
RANKED = ["c", "a", "x", "b"]  # x is unjudged


def test_ndcg_hand_computed_exponential_and_linear():
    # DCG@3 = (2^0-1)/log2(2) + (2^3-1)/log2(3) + 0/log2(4);  IDCG@3 from all judged grades 3,2,1 (d is not returned)
    want_exp = (7 / math.log2(3)) / (7 + 3 / math.log2(3) + 1 / 2)
    assert ndcg_at_k(RANKED, JUDGED, 3) == pytest.approx(want_exp, abs=1e-12)
    want_lin = (3 / math.log2(3)) / (3 + 2 / math.log2(3) + 1 / 2)
    assert ndcg_at_k(RANKED, JUDGED, 3, gain="linear") == pytest.approx(want_lin, abs=1e-12)
    # k=4 adds b at rank 4: (2^2-1)/log2(5); ideal adds grade 0 at rank 4
    want4 = (7 / math.log2(3) + 3 / math.log2(5)) / (7 + 3 / math.log2(3) + 1 / 2)
    assert ndcg_at_k(RANKED, JUDGED, 4) == pytest.approx(want4, abs=1e-12)
    assert ndcg_at_k(["a", "b", "d", "c"], JUDGED, 4) == pytest.approx(1.0)
    assert dcg([3, 2], 10) == pytest.approx(7 + 3 / math.log2(3))


def test_mrr_precision_recall_hand_computed():
    assert mrr_at_k(RANKED, JUDGED, 3) == 0.5  # a at rank 2
    assert mrr_at_k(RANKED, JUDGED, 1) == 0.0
    assert mrr_at_k(RANKED, JUDGED, 4, threshold=3) == 0.5
    assert mrr_at_k(["x", "c", "d"], JUDGED, 3) == pytest.approx(1 / 3)
    assert precision_at_k(RANKED, JUDGED, 3) == pytest.approx(1 / 3)
    assert precision_at_k(RANKED, JUDGED, 4) == pytest.approx(2 / 4)
    assert precision_at_k(["a"], {"a": 1.0}, 5) == pytest.approx(1 / 5)  # short list: missing slots count
    assert recall_at_k(RANKED, JUDGED, 3) == pytest.approx(1 / 3)  # relevant (>=1): a, b, d
    assert recall_at_k(RANKED, JUDGED, 4) == pytest.approx(2 / 3)
    assert recall_at_k(RANKED, JUDGED, 3, threshold=2) == pytest.approx(1 / 2)  # relevant (>=2): a, b
    assert recall_at_k(RANKED, JUDGED, 4, threshold=2) == pytest.approx(1.0)


def test_duplicates_credited_once():
    judged = {"a": 3.0, "b": 2.0}
    assert ndcg_at_k(["a", "a", "b"], judged, 3) == pytest.approx((7 + 3 / 2) / (7 + 3 / math.log2(3)))
    assert precision_at_k(["a", "a", "b"], judged, 3) == pytest.approx(2 / 3)
    assert recall_at_k(["a", "a"], judged, 2) == pytest.approx(1 / 2)


def test_query_metrics_reports_unjudged_and_reasons():
    qm = query_metrics(RANKED, JUDGED, 3)
    assert list(qm.values) == ["NDCG@3", "MRR", "Precision@3", "Recall@3"]
    assert qm.n_unjudged_at_k == 1 and qm.n_returned == 4 and qm.n_judged == 4 and qm.n_relevant == 3
    assert qm.reasons == {}
    assert query_metrics(RANKED, JUDGED, 2).n_unjudged_at_k == 0

    none = query_metrics(["x", "y"], {}, 10)
    assert all(v is None for v in none.values.values())
    assert set(none.reasons.values()) == {NO_JUDGMENTS} and len(none.reasons) == 4
    assert none.n_unjudged_at_k == 2

    zeros = query_metrics(["a", "b"], {"a": 0.0, "b": 0.0}, 10, metrics=("ndcg", "recall", "mrr", "precision"))
    assert zeros.values == {"NDCG@10": None, "Recall@10": None, "MRR": 0.0, "Precision@10": 0.0}
    assert zeros.reasons == {"NDCG@10": NO_GAIN, "Recall@10": NO_RELEVANT}


def test_matches_score_based_ndcg_when_every_judged_doc_is_ranked():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(1, 12))
        grades = rng.integers(0, 4, size=n).astype(float)
        if grades.max() == 0:
            grades[0] = 1
        docs = [f"d{i}" for i in range(n)]
        order = list(rng.permutation(n))
        ranked = [docs[i] for i in order]
        scores = np.empty(n)
        scores[order] = -np.arange(n)  # rank r -> score -r, no ties
        k = int(rng.integers(1, n + 2))
        want = score_metrics.ndcg_at_k(scores, grades, k)
        assert ndcg_at_k(ranked, dict(zip(docs, grades)), k) == pytest.approx(want, abs=1e-12)


def test_bad_arguments():
    with pytest.raises(DistilRankError, match="k must be"):
        ndcg_at_k(RANKED, JUDGED, 0)
    with pytest.raises(DistilRankError, match="gain"):
        ndcg_at_k(RANKED, JUDGED, 3, gain="log")
    with pytest.raises(DistilRankError, match="threshold"):
        recall_at_k(RANKED, JUDGED, 3, threshold=0)
    with pytest.raises(DistilRankError, match="unknown metric"):
        query_metrics(RANKED, JUDGED, 3, metrics=("map",))
