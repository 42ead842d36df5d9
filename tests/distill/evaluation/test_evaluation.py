"""Metrics against hand-worked values and brute force; evaluate_scores schema; reports on disk."""

import itertools
import json
import math

import numpy as np
import pytest

from distilrank.distill.evaluation import report as report_mod
from distilrank.distill.evaluation.evaluate import evaluate_scores
from distilrank.distill.evaluation.report import format_summary, json_clean, write_report
from distilrank.errors import DistilRankError
from distilrank.metrics import (
    accuracy,
    agreement,
    bootstrap_ci,
    calibration_bins,
    expected_calibration_error,
    grouped_ranking_metrics,
    log_loss,
    mrr_at_k,
    ndcg_at_k,
    pearson,
    positives,
    recovery_ratio,
    roc_auc,
    spearman,
)
from distilrank.pairs import Pairs

# --- independent reference implementations ----------------------------------------------------

def brute_auc(s, y):
    pos, neg = s[y == 1], s[y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def plain_ndcg(gains_in_order, all_gains, k):
    dcg = sum((2 ** g - 1) / math.log2(r + 2) for r, g in enumerate(gains_in_order[:k]))
    ideal = sum((2 ** g - 1) / math.log2(r + 2) for r, g in enumerate(sorted(all_gains, reverse=True)[:k]))
    return dcg / ideal


def plain_rr(rel_in_order, k):
    return next((1 / (r + 1) for r, x in enumerate(rel_in_order[:k]) if x), 0.0)


def tie_orders(scores):
    """Every ranking (index order) consistent with descending scores, ties permuted every way."""
    groups = [[i for i in range(len(scores)) if scores[i] == v] for v in sorted(set(scores), reverse=True)]
    for perm in itertools.product(*(itertools.permutations(g) for g in groups)):
        yield [i for g in perm for i in g]


# --- binary metrics ---------------------------------------------------------------------------

def test_accuracy_threshold_graded_labels_and_zero_logit():
    z = np.array([2.0, -1.0, 0.5, -3.0])
    assert accuracy(z, np.array([1, 0, 0, 0])) == 0.75
    assert accuracy(z, np.array([1, 0, 0, 0]), threshold=1.0) == 1.0
    # graded 0..3: positive means >= 1.5, so grades 3 and 2 are positive, 1 is not
    assert list(positives(np.array([3, 0, 2, 1]))) == [True, False, True, False]
    assert accuracy(z, np.array([3, 0, 2, 1])) == 1.0
    assert list(positives(np.array([0.2, 0.5, 0.9]))) == [False, True, True]  # [0, 1] labels cut at 0.5
    assert accuracy(np.array([0.0]), np.array([1.0])) == 0.0  # logit exactly 0 is a negative decision
    assert math.isnan(accuracy(np.array([]), np.array([])))


def test_auc_matches_brute_force_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(5):
        s = rng.integers(0, 5, 60).astype(float)  # many ties
        y = (rng.random(60) < 0.4).astype(float)
        assert roc_auc(s, y) == pytest.approx(brute_auc(s, y))
    s = rng.normal(size=80)
    y = (rng.random(80) < 0.5).astype(float)
    assert roc_auc(s, y) == pytest.approx(brute_auc(s, y))
    assert roc_auc(np.array([1.0, 2.0, 3.0]), np.array([0, 0, 1])) == 1.0
    assert roc_auc(np.array([3.0, 2.0, 1.0]), np.array([0, 0, 1])) == 0.0
    assert roc_auc(np.array([1.0, 1.0]), np.array([0, 1])) == 0.5
    assert math.isnan(roc_auc(np.array([1.0, 2.0]), np.array([1.0, 1.0])))
    # graded labels are binarised at half the top grade: grades 2, 3 positive against 0, 1
    assert roc_auc(np.array([0.1, 0.2, 0.9, 0.3]), np.array([0, 1, 3, 2])) == 1.0


def test_log_loss_ece_agreement_and_correlations_by_hand():
    # sigmoid(0) = 0.5 on a positive: ln 2; sigmoid(ln 3) = 0.75 on a negative: -ln 0.25 = 2 ln 2
    assert log_loss(np.array([0.0, math.log(3)]), np.array([1, 0])) == pytest.approx(1.5 * math.log(2))
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # huge logits are fine
        assert log_loss(np.array([1000.0, -1000.0]), np.array([1, 0])) == pytest.approx(0.0)
        assert log_loss(np.array([-1000.0]), np.array([1])) == pytest.approx(1000.0)
    # p = 0.5, 0.5 (bin 5) with both positive, p = 0.75 (bin 7) negative:
    # ECE = 2/3 * |1 - 0.5| + 1/3 * |0 - 0.75| = 1/3 + 1/4
    z, y = np.array([0.0, 0.0, math.log(3)]), np.array([1, 1, 0])
    assert expected_calibration_error(z, y) == pytest.approx(1 / 3 + 1 / 4)
    bins = calibration_bins(z, y)
    assert list(bins["count"]) == [0, 0, 0, 0, 0, 2, 0, 1, 0, 0] and bins["frac_pos"][5] == 1.0
    # decisions [+, -, +, -] (logit 0 is negative) vs [+, +, +, -]: same on 3 of 4
    assert agreement(np.array([2.0, -1.0, 0.5, 0.0]), np.array([1.0, 1.0, 1.0, -1.0])) == 0.75
    assert pearson(np.array([1.0, 2, 3]), np.array([2.0, 4, 6])) == pytest.approx(1.0)
    assert pearson(np.array([1.0, 2, 3]), np.array([1.0, 0, 1])) == pytest.approx(0.0)
    assert math.isnan(pearson(np.array([1.0, 1, 1]), np.array([1.0, 2, 3])))
    assert spearman(np.array([1, 2, 3, 4.0]), np.array([1, 4, 9, 16.0])) == pytest.approx(1.0)
    # ties: average ranks of [1, 1, 2] are [1.5, 1.5, 3]; of [3, 1, 2] are [3, 1, 2]
    assert spearman(np.array([1, 1, 2.0]), np.array([3, 1, 2.0])) == pytest.approx(np.corrcoef([1.5, 1.5, 3], [3, 1, 2])[0, 1])


def test_recovery_ratio():
    assert recovery_ratio(0.873, 0.9) == pytest.approx(0.97)
    assert recovery_ratio(0.95, 0.9) == pytest.approx(0.95 / 0.9)  # a student may beat its teacher
    assert math.isnan(recovery_ratio(0.5, 0.0))
    assert math.isnan(recovery_ratio(float("nan"), 0.9))


def test_bootstrap_ci_is_seeded_and_matches_plain_resampling():
    rng = np.random.default_rng(1)
    correct = (rng.random(400) < 0.8).astype(float)
    lo, hi = bootstrap_ci(correct, resamples=2000, seed=3)
    assert (lo, hi) == bootstrap_ci(correct, resamples=2000, seed=3)
    assert lo < correct.mean() < hi
    # the binomial shortcut agrees with resampling rows by hand
    means = correct[np.random.default_rng(9).integers(0, 400, size=(2000, 400))].mean(axis=1)
    assert lo == pytest.approx(np.quantile(means, 0.025), abs=0.01)
    assert hi == pytest.approx(np.quantile(means, 0.975), abs=0.01)
    # normal-approximation width 2 * 1.96 * sqrt(p(1-p)/n)
    p = correct.mean()
    assert hi - lo == pytest.approx(2 * 1.96 * math.sqrt(p * (1 - p) / 400), rel=0.15)
    values = rng.normal(size=300)
    vlo, vhi = bootstrap_ci(values)
    assert vlo < values.mean() < vhi
    assert vhi - vlo == pytest.approx(2 * 1.96 * values.std() / math.sqrt(300), rel=0.15)
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([])))


# --- ranking metrics -------------------------------------------------------------------------

def test_ndcg_and_mrr_hand_worked():
    # ranking by score puts gains [0, 2, 1]: DCG = 0 + 3/log2(3) + 1/log2(4); ideal [2, 1, 0] = 3 + 1/log2(3)
    scores, gains = np.array([3.0, 2.0, 1.0]), np.array([0.0, 2.0, 1.0])
    expected = (3 / math.log2(3) + 1 / 2) / (3 + 1 / math.log2(3))
    assert ndcg_at_k(scores, gains, k=10) == pytest.approx(expected)
    assert ndcg_at_k(scores, gains, k=2) == pytest.approx((3 / math.log2(3)) / (3 + 1 / math.log2(3)))
    assert ndcg_at_k(scores, gains, k=1) == 0.0
    assert ndcg_at_k(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0])) == pytest.approx(1.0)
    assert math.isnan(ndcg_at_k(scores, np.zeros(3)))
    assert mrr_at_k(scores, gains > 0) == 0.5
    assert mrr_at_k(np.array([3.0, 2.0, 1.0]), np.array([0, 0, 1]), k=2) == 0.0
    assert mrr_at_k(np.array([3.0, 2.0, 1.0]), np.array([0, 0, 1]), k=3) == pytest.approx(1 / 3)
    assert mrr_at_k(scores, np.zeros(3, bool)) == 0.0
    with pytest.raises(ValueError):
        ndcg_at_k(scores, np.array([0.0, -1.0, 1.0]))


def test_ties_give_the_expectation_over_tie_orders():
    rng = np.random.default_rng(4)
    for _ in range(6):
        scores = rng.integers(0, 3, 6).astype(float)
        gains = rng.integers(0, 3, 6).astype(float)
        if gains.max() == 0:
            gains[0] = 1.0
        for k in (1, 2, 3, 10):
            orders = list(tie_orders(list(scores)))
            want_ndcg = np.mean([plain_ndcg([gains[i] for i in o], list(gains), k) for o in orders])
            want_rr = np.mean([plain_rr([gains[i] > 0 for i in o], k) for o in orders])
            assert ndcg_at_k(scores, gains, k) == pytest.approx(want_ndcg)
            assert mrr_at_k(scores, gains > 0, k) == pytest.approx(want_rr)
    # a constant scorer is not rewarded for the input order: one relevant of 4 -> mean RR (1 + 1/2 + 1/3 + 1/4) / 4
    assert mrr_at_k(np.zeros(4), np.array([1, 0, 0, 0])) == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)
    assert ndcg_at_k(np.zeros(4), np.array([1.0, 0, 0, 0])) < 1.0


def test_grouped_ranking_metrics_skips_queries_without_relevant_documents():
    q = ["a", "b", "a", "b", "a", "c", "c"]
    s = np.array([3.0, 1.0, 2.0, 2.0, 1.0, 5.0, 4.0])
    y = np.array([0, 0, 2, 0, 1, 1, 0.0])
    g = grouped_ranking_metrics(q, s, y, k=10)
    ndcg_a = (3 / math.log2(3) + 1 / 2) / (3 + 1 / math.log2(3))  # query a ranks gains [0, 2, 1]
    # query c ranks gains [1, 0]: NDCG 1; "relevant" = label >= 1 (half the top grade 2): a has RR 1/2, c has 1
    assert g["n_queries"] == 2 and g["n_skipped"] == 1  # b has only zero gains
    assert g["ndcg@10"] == pytest.approx((ndcg_a + 1.0) / 2)
    assert g["mrr@10"] == pytest.approx((0.5 + 1.0) / 2)
    assert grouped_ranking_metrics(q, s, y, k=1)["ndcg@1"] == pytest.approx((0.0 + 1.0) / 2)
    none = grouped_ranking_metrics(["x"], np.array([1.0]), np.array([0.0]))
    assert none["n_queries"] == 0 and none["n_skipped"] == 1 and math.isnan(none["ndcg@10"])


# --- evaluate_scores --------------------------------------------------------------------------

def test_evaluate_scores_with_teacher_and_queries():
    pairs = Pairs(["q1", "q1", "q2", "q2"], ["a", "b", "c", "d"], np.array([1, 0, 0, 1.0]))
    student, teacher = np.array([1.0, -1.0, 0.5, 0.7]), np.array([2.0, -2.0, -1.0, 1.0])
    r = evaluate_scores(pairs, student, teacher)
    assert set(r) == {"n", "k", "labels", "student", "teacher", "recovery", "agreement", "pearson", "spearman", "ranking"}
    assert r["n"] == 4 and r["k"] == 10 and r["labels"] == "binary"
    assert r["student"]["accuracy"] == 0.75 and r["teacher"]["accuracy"] == 1.0
    # positives a (1.0), d (0.7) score above negatives c (0.5), b (-1.0); c is the one wrong decision
    assert r["student"]["auc"] == 1.0 and r["teacher"]["auc"] == 1.0
    assert r["student"]["positive_rate"] == 0.75
    assert r["recovery"] == {"accuracy": pytest.approx(0.75), "auc": 1.0, "ndcg@10": 1.0, "mrr@10": 1.0}
    assert r["agreement"] == 0.75
    assert r["pearson"] == pytest.approx(np.corrcoef(student, teacher)[0, 1])
    assert r["ranking"]["student"] == {"ndcg@10": 1.0, "mrr@10": 1.0, "n_queries": 2, "n_skipped": 0}
    lo, hi = r["student"]["accuracy_ci95"]
    assert 0.0 <= lo <= 0.75 <= hi <= 1.0
    assert json.loads(json.dumps(r)) == r  # plain Python types only


def test_evaluate_scores_without_teacher_labels_or_queries():
    pairs = Pairs([""] * 4, ["a", "b", "c", "d"], np.array([1, 0, 0, 1.0]))
    student = np.array([1.0, -1.0, 0.5, 0.7])
    r = evaluate_scores(pairs, student)
    assert r["teacher"] is None and r["recovery"] is None and r["agreement"] is None and r["ranking"] is None
    assert r["student"]["accuracy"] == 0.75 and r["student"]["log_loss"] == pytest.approx(log_loss(student, pairs.labels))
    unlabeled = evaluate_scores(pairs.without_labels(), student, -student)
    assert unlabeled["labels"] is None and unlabeled["recovery"] is None and unlabeled["ranking"] is None
    assert unlabeled["student"] == {"positive_rate": 0.75} and unlabeled["teacher"] == {"positive_rate": 0.25}
    assert unlabeled["agreement"] == 0.0 and unlabeled["pearson"] == pytest.approx(-1.0)
    graded = Pairs(["q"] * 3, ["a", "b", "c"], np.array([0, 3, 1.0]))
    g = evaluate_scores(graded, np.array([1.0, 2.0, -1.0]), k=2)
    assert g["labels"] == "graded" and g["student"]["accuracy"] == pytest.approx(2 / 3)
    assert g["ranking"]["student"]["ndcg@2"] == pytest.approx((7 + 0) / (7 + 1 / math.log2(3)))


def test_evaluate_scores_rejects_bad_logits():
    pairs = Pairs(["q"] * 3, ["a", "b", "c"], np.array([0, 1, 1.0]), source="dev.tsv")
    with pytest.raises(DistilRankError, match="dev.tsv: 1 of 3 student logits are NaN"):
        evaluate_scores(pairs, np.array([0.0, np.nan, 1.0]))
    with pytest.raises(DistilRankError, match="teacher logits have shape"):
        evaluate_scores(pairs, np.zeros(3), np.zeros(2))


# --- reports -----------------------------------------------------------------------------------

def _table(n=60, seed=0):
    rng = np.random.default_rng(seed)
    pairs = Pairs([""] * n, [str(i) for i in range(n)], (np.arange(n) % 2).astype(float))
    teacher = rng.normal(size=n) + 3 * (pairs.labels - 0.5)
    student = teacher + rng.normal(scale=0.5, size=n)
    return pairs, student, teacher


def test_write_report_files_content_and_json_round_trip(tmp_path):
    pairs, student, teacher = _table()
    result = evaluate_scores(pairs, student, teacher)
    sweep = [{"T": 1.0, "dev_accuracy": 0.9123456, "rows": 67349}, {"T": 2.0, "dev_accuracy": 0.93, "note": "a|b"}]
    paths = write_report(result, tmp_path / "rep", title="SST-2 <dev>", student_logits=student, teacher_logits=teacher,
                         labels=pairs.labels, extra_tables={"Temperature sweep": sweep})
    assert set(paths) == {"json", "markdown", "html", "scatter.png", "reliability.png", "histogram.png"}
    for p in paths.values():
        assert p.exists() and p.stat().st_size > 0
    assert all(paths[n].read_bytes().startswith(b"\x89PNG") for n in ("scatter.png", "reliability.png", "histogram.png"))
    saved = json.loads(paths["json"].read_text())
    assert saved == {"title": "SST-2 <dev>", "result": json_clean(result), "tables": {"Temperature sweep": sweep}}
    assert saved["result"]["student"]["accuracy"] == result["student"]["accuracy"]

    md = paths["markdown"].read_text()
    assert "| metric | teacher | student | recovery |" in md
    acc = f"{result['student']['accuracy']:.4f}"
    assert acc in md and f"{100 * result['recovery']['accuracy']:.1f}%" in md
    assert "accuracy 95% CI" in md and "## Temperature sweep" in md and "a\\|b" in md and "67349" in md
    for name in ("scatter.png", "reliability.png", "histogram.png"):
        assert f"![{name}]({name})" in md

    page = paths["html"].read_text()
    assert page.count('src="data:image/png;base64,') == 3
    assert 'src="http' not in page and "<link" not in page  # self-contained
    assert acc in page and f"{result['teacher']['accuracy']:.4f}" in page and "Temperature sweep" in page
    assert "SST-2 &lt;dev&gt;" in page and "0.9123" in page

    summary = format_summary(result)
    assert f"student  accuracy {acc}" in summary and "recovery" in summary and "agreement with teacher" in summary


def test_write_report_nan_is_null_and_partial_inputs(tmp_path):
    pairs = Pairs([""] * 3, ["a", "b", "c"], np.ones(3))  # one class: AUC undefined
    result = evaluate_scores(pairs, np.array([1.0, -1.0, 2.0]))
    assert math.isnan(result["student"]["auc"])
    paths = write_report(result, tmp_path, title="t", student_logits=np.array([1.0, -1.0, 2.0]))
    text = paths["json"].read_text()
    saved = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert saved["result"]["student"]["auc"] is None
    assert set(paths) == {"json", "markdown", "html", "histogram.png"}  # no teacher, no labels given: histogram only
    assert "n/a" in paths["markdown"].read_text()
    with pytest.raises(ValueError, match="teacher_logits has 2 values"):
        write_report(result, tmp_path, title="t", student_logits=np.zeros(3), teacher_logits=np.zeros(2))
    bare = write_report(evaluate_scores(pairs.without_labels(), np.zeros(3)), tmp_path / "bare", title="t")
    assert set(bare) == {"json", "markdown", "html"} and "no gold labels" in format_summary(json.loads(bare["json"].read_text())["result"])


def test_write_report_failure_leaves_no_half_written_files(tmp_path, monkeypatch):
    pairs, student, teacher = _table()
    result = evaluate_scores(pairs, student, teacher)
    paths = write_report(result, tmp_path, title="t", student_logits=student, teacher_logits=teacher, labels=pairs.labels)
    before = paths["json"].read_bytes()
    import distilrank.atomic as atomic

    def half_dump(obj, fh, **kwargs):  # writes part of the JSON, then the disk "fills up"
        fh.write('{"title": "t", "result": {"n": 99')
        raise OSError("disk full")

    monkeypatch.setattr(atomic.json, "dump", half_dump)
    with pytest.raises(OSError, match="disk full"):
        write_report({**result, "n": 999}, tmp_path, title="t")
    assert paths["json"].read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()

    # a crash in the middle (while building the HTML) of a first report: no eval.json at all, no temp files
    def broken_table(rows):
        raise RuntimeError("boom")

    monkeypatch.setattr(report_mod, "table_html", broken_table)
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError, match="boom"):
        write_report(result, fresh, title="t", student_logits=student, teacher_logits=teacher, labels=pairs.labels)
    assert not (fresh / "eval.json").exists() and not (fresh / "report.html").exists()
    assert not [p for p in fresh.iterdir() if p.name.endswith(".tmp")]
