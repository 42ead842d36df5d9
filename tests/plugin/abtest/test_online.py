"""Per-arm online metrics: definitions on hand-built searches, user-level bootstrap and permutation, a better arm wins,
and the whole ab online analysis of a 20,000-search log."""

import itertools
import time
from datetime import datetime, timezone

import numpy as np
import pytest

from distilrank.errors import DistilRankError
from distilrank.plugin.abtest.online import bootstrap_draws, build_table, compare_arms, permutation_p, ratio, search_outcome
from distilrank.plugin.ubi.records import ADD_TO_CART, CLICK, IMPRESSION, LoggedSearch, UbiEvent
from tests.plugin.abtest.ubi_gen import Gen, ab_log, make_grades

T0 = datetime(2025, 6, 1, tzinfo=timezone.utc)


def _s(qid, client, arm, events, hits=("a", "b", "c", "d")):
    return LoggedSearch(qid, client, "q", T0, list(hits), {"arm": arm} if arm else {}, events)


def _ev(action, doc, pos, ms=0):
    return UbiEvent(action, doc, pos, T0.replace(microsecond=ms * 1000))


def test_search_outcome_definitions():
    # first click in time is at position 3 (a later click at 1 does not count for MRR)
    s = _s("1", "u", "x", [_ev(IMPRESSION, "a", 1), _ev(CLICK, "c", 3, 1), _ev(CLICK, "a", 1, 2)])
    assert search_outcome(s) == (1.0, pytest.approx(1 / 3), 0.0, 0.0)
    # a click without a logged position takes its id's place in hit_ids
    assert search_outcome(_s("2", "u", "x", [_ev(CLICK, "b", None)]))[1] == pytest.approx(0.5)
    # a cart without a click: not clicked, not abandoned, carted
    assert search_outcome(_s("3", "u", "x", [_ev(ADD_TO_CART, "d", 4)])) == (0.0, 0.0, 0.0, 1.0)
    # impressions only: abandoned
    assert search_outcome(_s("4", "u", "x", [_ev(IMPRESSION, "a", 1)])) == (0.0, 0.0, 1.0, 0.0)


def test_ratio_metrics_over_searches_and_users():
    searches = [_s("1", "u1", "A", [_ev(CLICK, "a", 1)]), _s("2", "u1", "A", []), _s("3", "u2", "A", [_ev(CLICK, "b", 2)]),
                _s("4", "v1", "B", []), _s("5", "v1", "B", [_ev(CLICK, "d", 4), _ev(ADD_TO_CART, "d", 4, 1)])]
    table = build_table(searches, ["A", "B"])
    assert table.metrics() == ["ctr", "mrr", "abandonment", "add_to_cart_rate"]
    res = compare_arms(table, "A", resamples=200, permutations=200)
    a, b = res["arms"]["A"], res["arms"]["B"]
    assert (a["searches"], a["users"], b["searches"], b["users"]) == (3, 2, 2, 1)
    assert a["metrics"]["ctr"]["value"] == pytest.approx(2 / 3)
    assert a["metrics"]["mrr"]["value"] == pytest.approx((1 + 0.5) / 3)
    assert a["metrics"]["abandonment"]["value"] == pytest.approx(1 / 3)
    assert b["metrics"]["add_to_cart_rate"]["value"] == pytest.approx(0.5)
    # one user in B: every resample is that user, the CI is the point
    assert b["metrics"]["ctr"]["ci95"] == (pytest.approx(0.5), pytest.approx(0.5))
    ctr = next(c for c in res["comparisons"] if c["metric"] == "ctr")
    assert ctr["diff"] == pytest.approx(0.5 - 2 / 3) and ctr["users_arm"] == 1 and ctr["users_control"] == 2


def test_add_to_cart_rate_only_with_carts():
    table = build_table([_s("1", "u", "A", [_ev(CLICK, "a", 1)]), _s("2", "v", "B", [])], ["A", "B"])
    assert table.metrics() == ["ctr", "mrr", "abandonment"]
    assert {c["metric"] for c in compare_arms(table, "A", resamples=100, permutations=100)["comparisons"]} == set(table.metrics())


def test_client_in_two_arms_is_two_units():
    table = build_table([_s("1", "u", "A", []), _s("2", "u", "B", []), _s("3", "v", "A", [])], ["A", "B"])
    assert table.clients_in_several_arms == 1
    assert sorted(zip(table.unit_client, table.unit_arm.tolist())) == [("u", 0), ("u", 1), ("v", 0)]


def test_unknown_arm_and_control_are_errors():
    with pytest.raises(DistilRankError, match="arm 'C' is not one of"):
        build_table([_s("1", "u", "C", [])], ["A", "B"])
    with pytest.raises(DistilRankError, match="control arm 'Z'"):
        compare_arms(build_table([_s("1", "u", "A", [])], ["A"]), "Z")


def test_permutation_p_matches_exact_enumeration():
    rng = np.random.default_rng(5)
    arm = np.column_stack([rng.integers(1, 6, 4), rng.integers(0, 4, 4), rng.random(4), rng.integers(0, 3, 4), np.zeros(4)]).astype(float)
    arm[:, 1] = np.minimum(arm[:, 1], arm[:, 0])
    ctl = arm[::-1].copy()
    ctl[:, 1] = np.maximum(ctl[:, 1] - 1, 0)
    pooled = np.concatenate([arm, ctl])
    observed = ratio(arm.sum(0)) - ratio(ctl.sum(0))
    hits = 0
    combos = list(itertools.combinations(range(8), 4))
    for c in combos:  # every way to give 4 of the 8 users the arm label
        mask = np.zeros(8, bool)
        mask[list(c)] = True
        d = ratio(pooled[mask].sum(0)) - ratio(pooled[~mask].sum(0))
        hits += abs(d[0]) >= abs(observed[0]) - 1e-12
    exact = hits / len(combos)
    p = permutation_p(arm, ctl, permutations=20_000, rng=np.random.default_rng(0))
    assert p[0] == pytest.approx(exact, abs=0.015)


def test_bootstrap_resamples_whole_users():
    # two users: one with 1 search and 1 click, one with 9 searches and no click.  Resampling users gives only
    # ctr in {1, 0.1, 0} (both the first, one each, both the second); resampling searches would give 0..0.4 in steps.
    sums = np.array([[1, 1, 1, 0, 0], [9, 0, 0, 9, 0]], dtype=float)
    draws = bootstrap_draws(sums, resamples=500, rng=np.random.default_rng(1))
    assert set(np.round(draws[:, 0], 6)) == {1.0, 0.1, 0.0}


def test_better_arm_wins_with_small_p():
    grades = make_grades(40, 15, seed=2)
    log = ab_log(grades, {"bm25": "fixed", "student": "good"}, users_per_arm=60, searches_per_user=8, seed=4, propensity_sd=0.4)
    res = compare_arms(build_table(log.searches, ["bm25", "student"]), "bm25", resamples=1000, permutations=1000)
    by = {c["metric"]: c for c in res["comparisons"]}
    assert by["ctr"]["diff"] > 0 and by["mrr"]["diff"] > 0 and by["abandonment"]["diff"] < 0
    for m in ("ctr", "mrr", "abandonment"):
        assert by[m]["p_value"] < 0.05 and by[m]["p_holm"] < 0.05 and by[m]["significant"]
        lo, hi = by[m]["ci95"]
        assert (lo > 0) if m != "abandonment" else (hi < 0)


def test_same_ranker_is_not_significant():
    grades = make_grades(40, 15, seed=2)
    log = ab_log(grades, {"a": "good", "b": "good"}, users_per_arm=60, searches_per_user=8, seed=7, propensity_sd=0.4)
    res = compare_arms(build_table(log.searches, ["a", "b"]), "a", resamples=500, permutations=1000)
    assert not any(c["significant"] for c in res["comparisons"])


def _heavy_user_log(seed=0):
    """Two arms with the same ranker; users differ in click propensity and arm b has one user with 1,500 searches
    who clicks a lot."""
    grades = make_grades(30, 12, seed=1)
    gen = Gen(grades, seed=seed)
    prng = np.random.default_rng(seed)
    for arm in ("a", "b"):
        for u in range(40):
            prop = float(prng.lognormal(0.0, 0.3))
            for _ in range(6):
                gen.search(f"{arm}{u}", arm=arm, kind="good", propensity=prop)
    for _ in range(1500):
        gen.search("heavy", arm="b", kind="good", propensity=3.0)
    return gen.log()


def test_heavy_user_widens_the_client_ci():
    log = _heavy_user_log()
    width = {}
    for unit in ("client", "search"):
        res = compare_arms(build_table(log.searches, ["a", "b"], cluster_by=unit), "a", resamples=1000, permutations=200)
        lo, hi = res["arms"]["b"]["metrics"]["ctr"]["ci95"]
        width[unit] = hi - lo
    print(f"CI width of arm b's CTR: users resampled {width['client']:.4f}, searches resampled {width['search']:.4f}")
    assert width["client"] > 2.5 * width["search"]


def test_permutation_permutes_users_not_searches():
    log = _heavy_user_log()
    p = {}
    for unit in ("client", "search"):
        res = compare_arms(build_table(log.searches, ["a", "b"], cluster_by=unit), "a", resamples=200, permutations=2000)
        p[unit] = next(c for c in res["comparisons"] if c["metric"] == "ctr")["p_value"]
    print(f"p of the CTR difference: users permuted {p['client']:.4f}, searches permuted {p['search']:.4f}")
    assert p["search"] < 0.01  # 1,500 searches of one eager user look like a huge effect search by search
    assert p["client"] > 0.05  # but it is one user among 81


def test_20000_searches_analysed_quickly(tmp_path):
    from distilrank.plugin.abtest.online_config import load_online_config
    from distilrank.plugin.abtest.online_report import write_report
    from distilrank.plugin.abtest.online_run import analyse

    grades = make_grades(200, 20, seed=3)
    log = ab_log(grades, {"bm25": "fixed", "student": "good"}, users_per_arm=1000, searches_per_user=10, seed=5,
                 propensity_sd=0.5, add_to_cart=0.3)
    (tmp_path / "c.toml").write_text('[online]\nname = "exp"\ncontrol = "bm25"\nstart = "2025-06-01"\nend = "2025-06-02"\n'
                                     'resamples = 5000\npermutations = 5000\nout = "out"\n')
    cfg = load_online_config(tmp_path / "c.toml")
    t0 = time.perf_counter()
    res, grades_coec = analyse(log, cfg, human=grades)
    paths = write_report(res, cfg.online.out)
    total = time.perf_counter() - t0
    print(f"ab online analysis of {len(log.searches)} searches ({res['arms']['bm25']['users'] * 2} users, 5,000 resamples, "
          f"5,000 permutations): analyse {res['timing_s']['total']:.2f} s, with report {total:.2f} s")
    assert res["searches_analysed"] == 20_000 and paths["html"].exists()
    assert all(c["significant"] for c in res["comparisons"])
    assert res["coec"]["pairs_judged"] > 0 and grades_coec
