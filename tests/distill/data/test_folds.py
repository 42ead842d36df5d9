"""Query-grouped folds and splits: whole queries per side, deterministic by seed."""

from collections import Counter

import pytest

from distilrank.distill.data.folds import QueryFold, check_disjoint, query_folds, split_queries
from distilrank.errors import DistilRankError

QUERIES = [f"query {i:02d}" for i in range(23)]


@pytest.mark.parametrize("k", [2, 3, 5, 23])
def test_every_query_is_tested_exactly_once_and_sides_are_disjoint(k):
    folds = query_folds(QUERIES, k, seed=7)
    assert [f.index for f in folds] == list(range(k))
    assert all(isinstance(f, QueryFold) for f in folds)
    tested = Counter(q for f in folds for q in f.test)
    assert set(tested) == set(QUERIES) and set(tested.values()) == {1}
    for f in folds:
        assert not set(f.train) & set(f.test)
        assert set(f.train) | set(f.test) == set(QUERIES)
        assert len(f.train) + len(f.test) == len(QUERIES)
        # both sides keep input order
        assert list(f.test) == [q for q in QUERIES if q in set(f.test)]
        assert list(f.train) == [q for q in QUERIES if q in set(f.train)]
    sizes = [len(f.test) for f in folds]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == len(QUERIES)


def test_folds_are_deterministic_by_seed_and_seeds_differ():
    a = query_folds(QUERIES, 4, seed=1)
    assert query_folds(QUERIES, 4, seed=1) == a
    b = query_folds(QUERIES, 4, seed=2)
    assert [f.test for f in b] != [f.test for f in a]
    assert len({tuple(f.test for f in query_folds(QUERIES, 4, seed=s)) for s in range(10)}) > 5


def test_duplicate_queries_count_once():
    dup = QUERIES[:6] + QUERIES[:6] + QUERIES[6:10] + QUERIES[3:5]
    folds = query_folds(dup, 3, seed=0)
    tested = [q for f in folds for q in f.test]
    assert sorted(tested) == sorted(QUERIES[:10])  # 10 distinct queries, each once
    assert all(len(f.train) == len(set(f.train)) for f in folds)
    assert sorted(len(f.test) for f in folds) == [3, 3, 4]
    # exactly as if the duplicates were not there
    assert folds == query_folds(QUERIES[:10], 3, seed=0)


def test_bad_k_or_too_few_queries():
    with pytest.raises(DistilRankError, match="k=1"):
        query_folds(QUERIES, 1)
    with pytest.raises(DistilRankError, match="k=0"):
        query_folds(QUERIES, 0)
    with pytest.raises(DistilRankError, match=r"2 <= k <= 3 .*k=4"):
        query_folds(["a", "b", "c", "a", "b"], 4)
    assert len(query_folds(["a", "b", "c", "a"], 3)) == 3


@pytest.mark.parametrize("fraction,n_held", [(0.2, 5), (0.5, 12), (0.01, 1), (0.99, 22)])
def test_split_sizes_disjoint_and_deterministic(fraction, n_held):
    rest, held = split_queries(QUERIES, fraction, seed=3)
    assert len(held) == n_held and len(rest) == len(QUERIES) - n_held
    assert not set(rest) & set(held) and set(rest) | set(held) == set(QUERIES)
    assert list(held) == [q for q in QUERIES if q in set(held)]
    assert split_queries(QUERIES, fraction, seed=3) == (rest, held)


def test_split_seeds_differ_and_duplicates_count_once():
    held_sets = {split_queries(QUERIES, 0.3, seed=s)[1] for s in range(10)}
    assert len(held_sets) > 5
    rest, held = split_queries(["a", "b", "a", "c", "d", "b"], 0.5, seed=0)
    assert len(held) == 2 and sorted(rest + held) == ["a", "b", "c", "d"]
    with pytest.raises(DistilRankError):
        split_queries(QUERIES, 0.0)
    with pytest.raises(DistilRankError):
        split_queries(QUERIES, 1.0)
    with pytest.raises(DistilRankError):
        split_queries(["only", "only"], 0.5)
    assert split_queries(["a", "b"], 0.9) in ((("a",), ("b",)), (("b",), ("a",)))


def test_check_disjoint_names_a_shared_query():
    check_disjoint(["a", "b"], ["c"])
    check_disjoint([], [])
    with pytest.raises(DistilRankError) as e:
        check_disjoint(["red socks", "lamp", "mug"], ["mug", "tea", "lamp"])
    assert "2 queries on both sides" in str(e.value) and "'lamp'" in str(e.value) and "'mug'" in str(e.value)
