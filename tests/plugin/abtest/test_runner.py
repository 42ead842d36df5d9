"""Choosing the arm to promote from an A/B report (no cluster: results from an injected search function)."""

import pytest

from distilrank.errors import DistilRankError
from distilrank.judgments import from_pairs
from distilrank.plugin.abtest.offline import run_comparison
from distilrank.plugin.abtest.runner import choose_winner


def _results(better: bool, n: int = 20):
    grades = {f"q{i}": {f"q{i}-good": 3.0, f"q{i}-ok": 1.0, f"q{i}-bad": 0.0} for i in range(n)}
    judgments = from_pairs(grades)

    def search_fn(arm, query, k):
        docs = [f"{query}-bad", f"{query}-ok", f"{query}-good"]
        if arm == "student" and better:
            docs = docs[::-1]
        return docs, 1.0

    return run_comparison(judgments, ["bm25", "student"], search_fn, k=3, n_permutations=2000, bootstrap_resamples=500)


def test_significant_winner_is_chosen():
    arm, reason = choose_winner(_results(True))
    assert arm == "student" and "NDCG@3" in reason and "Holm p" in reason


def test_no_significant_winner_refuses_unless_named():
    res = _results(False)
    with pytest.raises(DistilRankError, match="no arm is significantly better than the baseline 'bm25'"):
        choose_winner(res)
    assert choose_winner(res, "student") == ("student", "chosen explicitly")
    with pytest.raises(DistilRankError, match="arm 'nope' is not in the report"):
        choose_winner(res, "nope")
