"""Click-derived judgments: COEC by hand, the impression rules, grades, Kendall tau-b, agreement with the grades the
clicks were simulated from, and the SRW / CSV writers read back by load_judgments."""

import json
from datetime import datetime, timezone

import numpy as np
import pytest

from distilrank.errors import DistilRankError
from distilrank.judgments import load_judgments
from distilrank.plugin.abtest import coec
from distilrank.plugin.ubi.records import CLICK, IMPRESSION, LoggedSearch, UbiEvent
from tests.plugin.abtest.ubi_gen import ab_log, make_grades

T0 = datetime(2025, 6, 1, tzinfo=timezone.utc)


def _s(query, hits, clicks, impressions=True, extra=()):
    events = [UbiEvent(IMPRESSION, d, i + 1, T0) for i, d in enumerate(hits)] if impressions else []
    events += [UbiEvent(CLICK, d, p, T0) for d, p in clicks] + list(extra)
    return LoggedSearch(f"{query}{len(clicks)}{len(hits)}", "u", query, T0, list(hits), {}, events)


def test_coec_by_hand():
    # position CTR: pos 1 shown 3x clicked 2x (2/3); pos 2 shown 3x clicked 1x (1/3)
    log = [_s("q", ["a", "b"], [("a", 1)]), _s("q", ["b", "a"], [("b", 1), ("a", 2)]), _s("r", ["c", "a"], [])]
    res = coec.coec_stats(log, max_rank=2)
    assert res.position_ctr == pytest.approx([2 / 3, 1 / 3]) and res.position_impressions == [3, 3]
    by = {(p.query, p.doc): p for p in res.pairs}
    qa = by[("q", "a")]  # shown at 1 and 2, clicked twice: expected 2/3 + 1/3 = 1
    assert (qa.impressions, qa.clicks, qa.best_position) == (2, 2, 1)
    assert qa.expected_clicks == pytest.approx(1.0) and qa.coec == pytest.approx(2.0) and qa.ctr == 1.0
    assert by[("q", "b")].coec == pytest.approx(1.0)
    assert by[("r", "c")].coec == 0.0 and by[("r", "a")].expected_clicks == pytest.approx(1 / 3)


def test_impression_rules():
    # no impression events: the top max_rank hits count as shown
    res = coec.coec_stats([_s("q", ["a", "b", "c"], [("b", 2)], impressions=False)], max_rank=2)
    assert res.searches_without_impressions == 1
    assert {p.doc: (p.impressions, p.clicks) for p in res.pairs} == {"a": (1, 0), "b": (1, 1)}
    # repeated impression and click events count once per search; a click implies an impression; past max_rank is ignored
    extra = [UbiEvent(IMPRESSION, "a", 1, T0), UbiEvent(CLICK, "a", 1, T0), UbiEvent(CLICK, "z", 2, T0), UbiEvent(CLICK, "y", 9, T0)]
    res = coec.coec_stats([_s("q", ["a"], [("a", 1)], extra=extra)], max_rank=3)
    assert {p.doc: (p.impressions, p.clicks, p.best_position) for p in res.pairs} == {"a": (1, 1, 1), "z": (1, 1, 2)}
    # a click without an id names the hit at its position
    res = coec.coec_stats([_s("q", ["a", "b"], [(None, 2)])], max_rank=2)
    assert {p.doc: p.clicks for p in res.pairs} == {"a": 0, "b": 1}


def test_grades_thresholds_and_min_impressions():
    assert [coec.grade(x) for x in (0.0, 0.49, 0.5, 0.99, 1.0, 1.99, 2.0, 7.0)] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert coec.grade(1.2, (0.2, 0.4, 0.8)) == 3
    with pytest.raises(DistilRankError, match="three increasing"):
        coec.grade(1.0, (1.0, 0.5, 2.0))
    res = coec.CoecResult([0.5], [30], [coec.PairStats("q", "a", 20, 20, 10.0, 1), coec.PairStats("q", "b", 19, 0, 9.5, 1),
                                        coec.PairStats("q", "c", 25, 5, 12.5, 1)], 30, 0)
    assert coec.judgments(res) == {"q": {"a": 3.0, "c": 0.0}}
    assert coec.judgments(res, min_impressions=5) == {"q": {"a": 3.0, "b": 0.0, "c": 0.0}}


def test_kendall_tau_b():
    assert coec.kendall_tau_b([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert coec.kendall_tau_b([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert coec.kendall_tau_b([1, 1, 1], [1, 2, 3]) is None and coec.kendall_tau_b([1], [1]) is None
    # with ties: (C - D) / sqrt((n0 - tx)(n0 - ty)): x=[1,2,2,3], y=[1,1,2,3] -> C=4, D=0, tx=1, ty=1, n0=6
    assert coec.kendall_tau_b([1, 2, 2, 3], [1, 1, 2, 3]) == pytest.approx(4 / 5)
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = rng.integers(0, 4, 12), rng.random(12).round(1)
        assert coec.kendall_tau_b(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)


def test_coec_orders_documents_like_the_grades():
    grades = make_grades(60, 15, seed=6)
    # positions unrelated to grades (one random order per query) and strong position bias
    log = ab_log(grades, {"a": "fixed"}, users_per_arm=400, searches_per_user=10, seed=2, eta=1.5)
    res = coec.coec_stats(log.searches)
    ag = coec.agreement(res, grades, min_impressions=20)
    print(f"mean Kendall tau-b vs grades ({ag['queries']} queries, {ag['docs']} docs): COEC {ag['coec']['mean_tau']:.3f}, "
          f"raw CTR {ag['ctr']['mean_tau']:.3f}")
    assert ag["queries"] >= 50 and ag["coec"]["mean_tau"] > 0.5
    assert ag["coec"]["mean_tau"] > ag["ctr"]["mean_tau"] + 0.05
    judged = coec.judgments(res)
    mean_by_grade = {g: np.mean([judged[q][d] for q in judged for d in judged[q] if grades[q].get(d) == g]) for g in (0.0, 3.0)}
    assert mean_by_grade[3.0] > mean_by_grade[0.0] + 1.5


GRADES = {'a "quoted", query': {"d1": 3.0, "d,2": 0.0}, "ümlaut query": {"x": 2.0}, "empty": {}}


def test_srw_body_fields_and_round_trip(tmp_path):
    body = coec.srw_import_body(GRADES, name="esci COEC", description="from clicks")
    assert body["type"] == "IMPORT_JUDGMENT" and body["name"] == "esci COEC" and body["description"] == "from clicks"
    assert body["judgmentRatings"][0] == {"query": 'a "quoted", query', "ratings": [{"docId": "d1", "rating": "3.0"},
                                                                                  {"docId": "d,2", "rating": "0.0"}]}
    assert len(body["judgmentRatings"]) == 2  # a query without ratings is left out
    path = coec.write_srw(tmp_path / "j.json", GRADES, name="esci COEC")
    assert json.loads(path.read_text())["judgmentRatings"][1]["ratings"] == [{"docId": "x", "rating": "2.0"}]
    back = load_judgments(path)
    assert back.grades == {q: d for q, d in GRADES.items() if d}
    for bad in ("", 'with "quote"', "x" * 2001, "<b>"):
        with pytest.raises(DistilRankError, match="SRW judgment name"):
            coec.srw_import_body(GRADES, name=bad)


def test_csv_round_trip(tmp_path):
    path = coec.write_csv(tmp_path / "j.csv", GRADES)
    assert path.read_text(encoding="utf-8").splitlines()[0] == "query,docid,rating"
    back = load_judgments(path)
    assert back.grades == {q: d for q, d in GRADES.items() if d}
