"""Team-draft credit from logged clicks: the interleaved list a front end shows, per-search credit, sign tests."""

from collections import Counter
from datetime import datetime, timezone

import pytest

from distilrank.errors import DistilRankError
from distilrank.plugin.abtest.click_interleaving import (
    PROBLEMS,
    credit_search,
    credit_searches,
    interleaved_list,
    interleaving_results,
    summarize_credits,
)
from distilrank.plugin.ubi.records import CLICK, LoggedSearch, UbiEvent
from tests.plugin.abtest.ubi_gen import Gen, make_grades

T0 = datetime(2025, 6, 1, tzinfo=timezone.utc)


def _s(teams, clicks, hits=None, client="u", qid="1"):
    hits = hits or [f"d{i}" for i in range(len(teams))]
    events = [UbiEvent(CLICK, doc, pos, T0) for doc, pos in clicks]
    return LoggedSearch(qid, client, "q", T0, hits, {"teams": teams}, events)


def test_interleaved_list_names_teams_by_arm_and_is_seeded_by_key():
    a, b = ["x", "y", "p", "q", "t", "u"], ["x", "y", "r", "s", "v", "w"]
    il = interleaved_list(a, b, experiment="e", arm_a="bm25", arm_b="student", key="search-1", length=6)
    attrs = il["query_attributes"]
    teams = attrs["teams"]
    assert (attrs["experiment"], attrs["arm_a"], attrs["arm_b"], attrs["interleaving"]) == ("e", "bm25", "student", "team_draft")
    assert il["hit_ids"][:2] == ["x", "y"] and teams[:2] == ["shared", "shared"]
    assert set(teams[2:]) == {"bm25", "student"} and len(il["hit_ids"]) == len(teams) == 6
    for doc, team in zip(il["hit_ids"][2:], teams[2:]):
        assert doc in (a if team == "bm25" else b)
    assert interleaved_list(a, b, experiment="e", arm_a="bm25", arm_b="student", key="search-1", length=6) == il
    firsts = {interleaved_list(a, b, experiment="e", arm_a="bm25", arm_b="student", key=f"s{i}")["query_attributes"]["teams"][2]
              for i in range(40)}
    assert firsts == {"bm25", "student"}  # fresh coin flips per search key
    with pytest.raises(DistilRankError):
        interleaved_list(a, b, experiment="e", arm_a="x", arm_b="x", key="k")


def test_credit_counts_distinct_clicked_hits_per_team():
    problems = Counter()
    s = _s(["shared", "A", "B", "A"], [("d0", 1), ("d1", 2), ("d1", 2), (None, 4), ("d2", None)])
    c = credit_search(s, problems)
    assert c.pair == ("A", "B") and c.credit == {"A": 2, "B": 1} and c.winner() == "A"
    assert not problems
    tie = credit_search(_s(["shared", "A", "B"], [("d0", 1)]), problems)
    assert tie.winner() is None and tie.credit == {}
    assert credit_search(_s(["A", "B"], [("zzz", 9)]), problems).credit == {}
    assert problems[PROBLEMS["unknown_click"]] == 1
    assert credit_search(_s(["A", "B"], [], hits=["d0", "d1", "d2"]), problems) is None
    assert problems[PROBLEMS["teams_mismatch"]] == 1
    assert credit_search(LoggedSearch("9", "u", "q", T0, ["d0"], {"arm": "A"}, []), problems) is None  # not interleaved


def test_one_team_search_gets_its_logged_pair():
    s = _s(["shared", "B"], [("d1", 2)])
    s.attributes.update(arm_a="A", arm_b="B")
    c = credit_search(s, Counter())
    assert c.pair == ("A", "B") and c.winner() == "B"


def test_one_team_search_gets_the_logs_only_pair():
    credits, problems = credit_searches([_s(["A", "B"], [("d0", 1)], qid="1"), _s(["shared", "B"], [("d1", 2)], qid="2")])
    assert [c.pair for c in credits] == [("A", "B"), ("A", "B")] and [c.winner() for c in credits] == ["A", "B"]
    credits, problems = credit_searches([_s(["A", "B"], []), _s(["A", "C"], []), _s(["B"], [("d0", 1)])])
    assert len(credits) == 2 and problems[PROBLEMS["no_pair"]] == 1


def test_summary_orients_on_the_control_and_counts_users():
    searches = [_s(["A", "B"], [("d1", 2)], client="u1", qid=str(i)) for i in range(5)]  # u1: B wins 5 times
    searches += [_s(["A", "B"], [("d0", 1)], client=f"v{i}", qid=f"v{i}") for i in range(3)]  # 3 users: A wins once
    credits, _ = credit_searches(searches)
    (row,) = summarize_credits(credits, control="A")
    assert (row["arm"], row["baseline"], row["wins_arm"], row["wins_baseline"], row["ties"]) == ("B", "A", 5, 3, 0)
    assert row["win_rate_arm"] == pytest.approx(5 / 8)
    assert (row["users"], row["user_wins_arm"], row["user_wins_baseline"]) == (4, 1, 3)
    assert row["p_value"] == pytest.approx(0.7265625) and row["p_value_users"] == pytest.approx(0.625)


def test_better_arm_wins_interleaving_with_small_p():
    gen = Gen(make_grades(40, 15, seed=4), seed=8)
    for u in range(80):
        for _ in range(5):
            gen.interleaved(f"u{u}", "bm25", "fixed", "student", "good")
    res = interleaving_results(gen.log().searches, control="bm25")
    (row,) = res["pairs"]
    print(f"interleaving: student wins {row['wins_arm']}, bm25 wins {row['wins_baseline']}, ties {row['ties']}, "
          f"p {row['p_value']:.2g}, users p {row['p_value_users']:.2g}")
    assert res["interleaved_searches"] == 400 and not res["problems"]
    assert row["arm"] == "student" and row["win_rate_arm"] > 0.6
    assert row["p_value"] < 0.05 and row["p_value_users"] < 0.05 and row["significant"]
    assert row["ci95"][0] > 0.5
