"""Metrics against hand-worked values and brute force; reports."""

import itertools
import json
import math

import numpy as np
import pytest

from distill.data.pairs import Pairs
from distill.evaluation.evaluate import evaluate_scores, format_summary
from distill.evaluation.metrics import accuracy, agreement, grouped_ranking_metrics, mrr_at_k, ndcg_at_k, recovery_ratio, roc_auc, spearman
from distill.evaluation.report import write_report


def brute_auc(s, y):
    pos, neg = s[y == 1], s[y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_matches_brute_force_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(5):
        s = rng.integers(0, 5, 60).astype(float)  # many ties
        y = (rng.random(60) < 0.4).astype(float)
        assert roc_auc(s, y) == pytest.approx(brute_auc(s, y))
    assert math.isnan(roc_auc(np.array([1.0, 2.0]), np.array([1.0, 1.0])))


def test_accuracy_agreement_graded_labels_and_recovery():
    z = np.array([2.0, -1.0, 0.5, -3.0])
    assert accuracy(z, np.array([1, 0, 0, 0])) == 0.75
    assert accuracy(z, np.array([3, 0, 2, 1])) == 1.0  # graded: >= max/2 is positive
    assert agreement(z, np.array([1.0, 1.0, 1.0, -1.0])) == 0.75
    assert recovery_ratio(0.873, 0.9) == pytest.approx(0.97)
    assert spearman(np.array([1, 2, 3.0]), np.array([10, 20, 30.0])) == pytest.approx(1.0)


def test_ndcg_and_mrr_hand_worked():
    # ranking by score: docs with gains [0, 2, 1]; DCG = 0 + 3/log2(3) + 1/2; ideal = 3 + 1/log2(3)
    scores, gains = np.array([3.0, 2.0, 1.0]), np.array([0.0, 2.0, 1.0])
    expected = (3 / math.log2(3) + 1 / 2) / (3 + 1 / math.log2(3))
    assert ndcg_at_k(scores, gains, k=10) == pytest.approx(expected)
    assert ndcg_at_k(scores, gains, k=1) == 0.0
    assert math.isnan(ndcg_at_k(scores, np.zeros(3)))
    assert mrr_at_k(scores, gains > 0) == 0.5
    assert mrr_at_k(scores, np.array([0, 0, 1]), k=2) == 0.0
    grouped = grouped_ranking_metrics(["a", "a", "a", "b", "b"], np.array([3, 2, 1, 1, 2.0]), np.array([0, 2, 1, 0, 0]))
    assert grouped["n_queries"] == 1 and grouped["n_skipped"] == 1
    assert grouped["ndcg@10"] == pytest.approx(expected)


def test_evaluate_scores_schema_with_teacher_and_queries():
    pairs = Pairs(["q1", "q1", "q2", "q2"], ["a", "b", "c", "d"], np.array([1, 0, 0, 1.0]))
    student, teacher = np.array([1.0, -1.0, 0.5, 0.7]), np.array([2.0, -2.0, -1.0, 1.0])
    r = evaluate_scores(pairs, student, teacher)
    assert r["student"]["accuracy"] == 0.75 and r["teacher"]["accuracy"] == 1.0
    assert r["recovery"]["accuracy"] == pytest.approx(0.75)
    assert r["agreement"] == 0.75
    assert r["ranking"]["student"]["mrr@10"] == pytest.approx(1.0)
    lo, hi = r["student"]["accuracy_ci95"]
    assert 0.0 <= lo <= 0.75 <= hi <= 1.0
    assert "recovery 75.0%" in format_summary(r)
    no_teacher = evaluate_scores(pairs.without_labels(), student)
    assert no_teacher["student"] == {} and no_teacher["teacher"] is None


def test_write_report_files_and_atomicity(tmp_path, monkeypatch):
    pairs = Pairs([""] * 50, [str(i) for i in range(50)], (np.arange(50) % 2).astype(float))
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=50) + 2 * (pairs.labels - 0.5)
    student = teacher + rng.normal(scale=0.3, size=50)
    result = evaluate_scores(pairs, student, teacher)
    paths = write_report(result, tmp_path, title="t", student_logits=student, teacher_logits=teacher, labels=pairs.labels,
                         extra_tables={"Temperature": [{"T": 1.0, "acc": 0.9}]})
    assert json.loads(paths["json"].read_text())["result"]["n"] == 50
    page = paths["html"].read_text()
    assert page.count("data:image/png;base64,") == 3
    assert f"{result['student']['accuracy']:.4f}" in page and "Temperature" in page
    assert "![scatter.png](scatter.png)" in paths["markdown"].read_text()
    # a crash while writing eval.json leaves the previous eval.json untouched and no temp files
    before = paths["json"].read_text()
    import distill.atomic as atomic

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(atomic.json, "dump", boom)
    with pytest.raises(RuntimeError):
        write_report({**result, "n": 999}, tmp_path, title="t")
    assert paths["json"].read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
