"""Team-draft interleaving properties, the click model, credit assignment and the aggregate win rate."""

import random

import pytest

from distilrank.errors import DistilRankError
from distilrank.plugin.abtest.interleaving import (
    SHARED,
    ClickModel,
    QueryOutcome,
    interleave_query,
    query_rng,
    summarize,
    team_draft,
)
from distilrank.plugin.abtest.stats import sign_test, wilson_ci


def check_team_draft(a, b, il, share_common_prefix=True):
    docs, teams = il.docs, il.teams
    assert len(docs) == len(set(docs)), "no duplicates"
    n = {"A": 0, "B": 0}
    start = 0
    if share_common_prefix:
        while start < len(docs) and teams[start] == SHARED:
            assert a[start] == b[start] == docs[start]
            start += 1
    for i in range(start, len(docs)):
        own = a if teams[i] == "A" else b
        assert teams[i] in ("A", "B")
        # the pick is the picking ranking's highest doc not shown before it (prefix property)
        assert docs[i] == next(d for d in own if d not in docs[:i])
        n[teams[i]] += 1
        assert abs(n["A"] - n["B"]) <= 1, "teams stay balanced after every pick"
    return n


def test_disjoint_lists_each_contribute_in_their_own_order():
    a, b = [f"a{i}" for i in range(5)], [f"b{i}" for i in range(5)]
    for seed in range(20):
        il = team_draft(a, b, random.Random(seed))
        n = check_team_draft(a, b, il)
        # drafting stops once one ranking is used up, so the other may have one doc left over
        assert sorted(n.values()) in ([4, 5], [5, 5])
        assert [d for d in il.docs if d.startswith("a")] == a[:n["A"]] and [d for d in il.docs if d.startswith("b")] == b[:n["B"]]
        assert check_team_draft(a, b, team_draft(a, b, random.Random(seed), length=8)) == {"A": 4, "B": 4}


def test_random_overlapping_lists_properties_and_truncation_prefix():
    rng = random.Random(0)
    pool = [f"d{i}" for i in range(12)]
    for trial in range(300):
        a = rng.sample(pool, rng.randint(1, 10))
        b = rng.sample(pool, rng.randint(1, 10))
        share = trial % 2 == 0
        full = team_draft(a, b, random.Random(trial), share_common_prefix=share)
        n = check_team_draft(a, b, full, share)
        if share and a[0] != b[0]:
            assert min(n.values()) >= 1 or len(full.docs) == 1  # each list contributes
        for m in range(len(full.docs) + 1):
            cut = team_draft(a, b, random.Random(trial), length=m, share_common_prefix=share)
            assert cut.docs == full.docs[:m] and cut.teams == full.teams[:m]


def test_stops_when_either_list_runs_out_and_dedups_inputs():
    for seed in range(10):
        il = team_draft(["x"], ["y1", "y2", "y3"], random.Random(seed))
        assert il.docs in (["x"], ["y1", "x"])
    il = team_draft(["p", "p", "q"], ["q", "r"], random.Random(1))
    assert len(il.docs) == len(set(il.docs))
    with pytest.raises(DistilRankError):
        team_draft(["a"], ["b"], random.Random(0), length=-1)


def test_identical_lists_share_everything_and_always_tie():
    ranking = [f"d{i}" for i in range(10)]
    judged = {d: float(i % 4) for i, d in enumerate(ranking)}
    il = team_draft(ranking, ranking, random.Random(0))
    assert il.docs == ranking and set(il.teams) == {SHARED}
    paper = team_draft(ranking, ranking, random.Random(0), share_common_prefix=False)
    assert paper.docs == ranking and set(paper.teams) <= {"A", "B"}
    for model in (ClickModel(), ClickModel(model="cascade"), ClickModel(eta=0.0, min_click=1.0)):
        for seed in range(5):
            out = interleave_query(f"q{seed}", ranking, ranking, judged, model, seed=seed, impressions=20)
            assert out.winner == "tie" and out.clicks_a == out.clicks_b == 0


def test_click_model_deterministic_and_hand_checked():
    docs = [f"d{i}" for i in range(10)]
    judged = {d: float(i % 3) for i, d in enumerate(docs)}
    m = ClickModel()
    assert m.simulate(docs, judged, query_rng(3, "q")) == m.simulate(docs, judged, query_rng(3, "q"))
    runs = {tuple(m.simulate(docs * 3, judged, query_rng(s, "q"))) for s in range(10)}
    assert len(runs) > 1
    assert m.p_click(1.0, 3.0) == pytest.approx(0.05 + 0.9 * 1 / 3)
    assert m.p_click(7.0, 3.0) == pytest.approx(0.95)
    stepped = ClickModel(click_prob={0: 0.1, 2: 0.6})
    assert [stepped.p_click(g, 3) for g in (0, 1, 2, 3)] == [0.1, 0.1, 0.6, 0.6]
    perfect = {0: 0.0, 1: 1.0}
    always = ClickModel(eta=0.0, click_prob=perfect)  # examine everything, click exactly the relevant
    assert always.simulate(["a", "b", "c", "x"], {"a": 0, "b": 1, "c": 1}, random.Random(0)) == [False, True, True, False]
    first_only = ClickModel(model="cascade", click_prob=perfect, stop_prob=1.0)
    assert first_only.simulate(["a", "b", "c"], {"a": 0, "b": 1, "c": 1}, random.Random(0)) == [False, True, False]


def test_pbm_click_rate_matches_examination_times_attractiveness():
    m = ClickModel(eta=1.0)
    rng = random.Random(5)
    n = 20_000
    clicks = sum(m.simulate(["x", "top"], {"top": 3.0, "x": 0.0}, rng)[1] for _ in range(n))
    assert clicks / n == pytest.approx(0.5 * 0.95, abs=0.015)  # examined at rank 2 with 1/2, then 0.95


def test_better_ranking_wins_and_summary_statistics():
    judged = {f"r{i}": 3.0 for i in range(5)} | {f"n{i}": 0.0 for i in range(5)}
    good = [f"r{i}" for i in range(5)] + [f"n{i}" for i in range(5)]
    bad = good[::-1]
    outcomes = [interleave_query(f"q{i}", bad, good, judged, ClickModel(), seed=1) for i in range(40)]
    assert interleave_query("q0", bad, good, judged, ClickModel(), seed=1) == outcomes[0]
    s = summarize(outcomes)
    assert s.wins_b > 30 and s.wins_a + s.wins_b + s.ties == 40
    assert s.win_rate_b == pytest.approx(s.wins_b / (s.wins_a + s.wins_b))
    assert s.ci95 == wilson_ci(s.wins_b, s.wins_a + s.wins_b) and s.p_value == sign_test(s.wins_a, s.wins_b)
    assert s.p_value < 0.001
    hand = summarize([QueryOutcome("a", 3, 1, 1), QueryOutcome("b", 0, 2, 1), QueryOutcome("c", 1, 1, 1),
                      QueryOutcome("d", 0, 5, 1)])
    assert (hand.wins_a, hand.wins_b, hand.ties, hand.win_rate_b) == (1, 2, 1, pytest.approx(2 / 3))
    empty = summarize([QueryOutcome("a", 0, 0, 1)])
    assert empty.win_rate_b is None and empty.ci95 is None and empty.p_value is None


def test_click_model_validation():
    with pytest.raises(DistilRankError, match="pbm"):
        ClickModel(model="dbn")
    with pytest.raises(DistilRankError, match="probability"):
        ClickModel(click_prob={1: 1.5})
    with pytest.raises(DistilRankError, match="impressions"):
        interleave_query("q", ["a"], ["b"], {}, ClickModel(), impressions=0)
