"""Candidate pools: query files, pool files, random additions, weak negatives and nested pair caps."""

import json

import numpy as np
import pytest

from distilrank.catalogue import Catalogue
from distilrank.distill.ranking.pools import (
    add_random,
    bm25_pool,
    cap_pairs,
    dense_top_k,
    extend_pool,
    read_pool,
    read_queries,
    weak_negatives,
    write_pool,
)
from distilrank.errors import DataError


def _catalogue(n: int = 60) -> Catalogue:
    ids = [f"P{i:03d}" for i in range(n)]
    return Catalogue(ids, [{"asin": d, "title": f"product {d}"} for d in ids], "mem")


# --- queries -----------------------------------------------------------------------------


def test_read_queries_dedup_tsv_exclude_limit(tmp_path):
    p = tmp_path / "q.tsv"
    p.write_text("red socks\t12\n  blue mug  \n\nred socks\t99\nlamp\nmüsli bowl\ttrailing\n   \t\nlamp\n", encoding="utf-8")
    assert read_queries(p) == ["red socks", "blue mug", "lamp", "müsli bowl"]
    assert read_queries(p, exclude=["lamp", "red socks"]) == ["blue mug", "müsli bowl"]
    assert read_queries(p, limit=2) == ["red socks", "blue mug"]
    # exclude applies before the limit: the limit counts kept queries
    assert read_queries(p, limit=2, exclude=["red socks"]) == ["blue mug", "lamp"]


def test_read_queries_errors_name_the_file(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(DataError) as e:
        read_queries(p)
    assert str(p) in str(e.value) and "not UTF-8" in str(e.value) and "byte 3" in str(e.value)
    with pytest.raises(DataError, match="not found"):
        read_queries(tmp_path / "nope.txt")


# --- pool files --------------------------------------------------------------------------


def test_pool_round_trip_with_and_without_scores(tmp_path):
    pool = {"red socks": ["P001", "P007", "P003"], "mug": ["P010"], "empty": [], "thé vert": ["P002"]}
    scores = {"red socks": [12.5, 9.25, 9.25], "mug": [3], "empty": [], "thé vert": [1.0]}
    write_pool(tmp_path / "sub" / "pool.jsonl", pool, scores)
    got, got_scores = read_pool(tmp_path / "sub" / "pool.jsonl")
    assert got == pool and list(got) == list(pool)
    assert got_scores == {"red socks": [12.5, 9.25, 9.25], "mug": [3.0], "empty": [], "thé vert": [1.0]}
    assert "thé vert" in (tmp_path / "sub" / "pool.jsonl").read_text(encoding="utf-8")  # written as UTF-8, not escaped
    write_pool(tmp_path / "plain.jsonl", pool)
    assert read_pool(tmp_path / "plain.jsonl") == (pool, {})
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["pool.jsonl"]  # no temp file left behind


def test_read_pool_bad_line_names_the_line(tmp_path):
    p = tmp_path / "pool.jsonl"
    write_pool(p, {"a": ["P1"], "b": ["P2"]})
    with open(p, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"query": "c"}) + "\n")
    with pytest.raises(DataError) as e:
        read_pool(p)
    assert f"{p}:3:" in str(e.value) and "not a pool row" in str(e.value)
    p.write_text('{"query": "a", "doc_ids": ["P1"]}\n{broken\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"pool\.jsonl:2: not a pool row"):
        read_pool(p)


def test_bm25_pool_from_a_search_function():
    def search(queries, k):
        assert k == 2
        return {"a": [("P1", 3.0), ("P2", 1.5)]}  # "b" found nothing

    assert bm25_pool(search, ["a", "b"], 2) == ({"a": ["P1", "P2"], "b": []}, {"a": [3.0, 1.5], "b": []})


# --- random additions and weak negatives -------------------------------------------------


def test_add_random_adds_n_new_distinct_docs():
    cat = _catalogue()
    pool = {"q1": ["P000", "P001", "P002"], "q2": [], "q3": ["P059"]}
    exclude = {"q1": {"P003": 3.0, "P004": 0.0}, "q3": {f"P{i:03d}": 1.0 for i in range(0, 40)}}
    out = add_random(pool, cat, 5, seed=0, exclude=exclude)
    assert list(out) == list(pool)
    for q, ids in pool.items():
        assert out[q][: len(ids)] == ids  # original docs first, in order
        extra = out[q][len(ids):]
        assert len(extra) == 5 and len(set(extra)) == 5
        assert not set(extra) & set(ids) and not set(extra) & set(exclude.get(q, {}))
        assert all(d in cat for d in extra)
    assert add_random(pool, cat, 5, seed=0, exclude=exclude) == out
    assert add_random(pool, cat, 5, seed=1, exclude=exclude) != out
    assert add_random(pool, cat, 0, seed=0) == pool


def test_add_random_stops_when_the_catalogue_is_used_up():
    cat = _catalogue(6)
    out = add_random({"q": ["P000", "P001"]}, cat, 10, seed=0, exclude={"q": {"P002": 1.0}})
    assert out["q"][:2] == ["P000", "P001"] and sorted(out["q"][2:]) == ["P003", "P004", "P005"]


def test_dense_top_k_is_the_exact_nearest_by_cosine_in_order():
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(50, 8)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries = rng.normal(size=(7, 8)).astype(np.float32)
    ids = [f"P{i:03d}" for i in range(50)]
    got = dense_top_k(queries, docs, ids, 5, chunk=3)  # chunks smaller than the query count
    for q, near in zip(queries, got):
        want = [ids[i] for i in np.argsort(-(docs @ q), kind="stable")[:5]]
        assert near == want
    assert dense_top_k(queries[:1], docs[:3], ids[:3], 10) == [[ids[i] for i in np.argsort(-(docs[:3] @ queries[0]))]]
    assert dense_top_k(queries[:2], docs, ids, 0) == [[], []]
    # equal scores: the earlier document first
    assert dense_top_k(np.ones((1, 2), np.float32), np.ones((4, 2), np.float32), ["a", "b", "c", "d"], 3) == [["a", "b", "c"]]


def test_extend_pool_appends_only_new_docs_in_order():
    pool = {"q1": ["P1", "P2"], "q2": [], "q3": ["P9"]}
    out = extend_pool(pool, {"q1": ["P2", "P7", "P1", "P8", "P7"], "q2": ["P5"], "other": ["P4"]})
    assert out == {"q1": ["P1", "P2", "P7", "P8"], "q2": ["P5"], "q3": ["P9"]}
    assert pool["q1"] == ["P1", "P2"]  # the input is not changed


def test_weak_negatives_never_return_a_judged_doc():
    cat = _catalogue()
    bm25 = {"q1": [f"P{i:03d}" for i in range(20)], "q2": ["P030", "P031", "P032"]}
    judged = {"q1": {f"P{i:03d}": 3.0 for i in range(0, 20, 2)} | {"P045": 2.0}, "q2": {"P031": 1.0}}
    out = weak_negatives(bm25, judged, cat, n_bm25=4, n_random=3, seed=5)
    assert list(out) == ["q1", "q2"]
    for q, ids in out.items():
        assert not set(ids) & set(judged[q]), q
        assert len(ids) == len(set(ids))
        assert len(ids) <= 4 + 3
    # q1: 10 unjudged pool docs, 4 drawn (kept in pool order), then 3 random unjudged catalogue products
    q1 = out["q1"]
    assert len(q1) == 4 + 3
    assert q1[:4] == sorted(q1[:4]) and all(d in bm25["q1"] for d in q1[:4])
    # q2: only 2 unjudged pool docs
    assert out["q2"][:2] == ["P030", "P032"] and len(out["q2"]) == 2 + 3
    assert weak_negatives(bm25, judged, cat, n_bm25=4, n_random=3, seed=5) == out
    none = weak_negatives({"q": ["P001"]}, {"q": {"P001": 3.0}}, cat, n_bm25=4, n_random=0, seed=0)
    assert none == {"q": []}


# --- caps --------------------------------------------------------------------------------


def _pool_of_sizes(sizes):
    return {f"q{i:02d}": [f"P{i:02d}-{j}" for j in range(n)] for i, n in enumerate(sizes)}


def test_cap_pairs_keeps_whole_queries_in_order():
    pool = _pool_of_sizes([7, 3, 12, 5, 9, 4, 8, 6, 10, 2, 11, 5])
    capped = cap_pairs(pool, 30, seed=0)
    assert sum(len(v) for v in capped.values()) <= 30
    for q, ids in capped.items():
        assert ids == pool[q]  # whole query, doc order kept
    # one more query would have crossed the cap
    left = [q for q in pool if q not in capped]
    assert left
    assert cap_pairs(pool, 30, seed=0) == capped
    assert cap_pairs(pool, None, seed=0) == pool and cap_pairs(pool, None, seed=0) is not pool
    assert cap_pairs(pool, 10_000, seed=3).keys() == pool.keys()
    with pytest.raises(ValueError, match="max_pairs must be >= 1 or None"):
        cap_pairs(pool, 0, seed=0)  # 0 is not "no cap"


def test_cap_pairs_is_nested_for_the_same_seed():
    pool = _pool_of_sizes([(i * 7) % 13 + 1 for i in range(40)])
    for seed in range(5):
        small, big = cap_pairs(pool, 50, seed=seed), cap_pairs(pool, 100, seed=seed)
        assert set(small) <= set(big) and len(small) < len(big)
        assert sum(map(len, small.values())) <= 50 and sum(map(len, big.values())) <= 100
        assert list(big)[: len(small)] == list(small)  # same seeded order, the small cap is a prefix


def test_cap_smaller_than_the_first_query_keeps_that_query():
    pool = _pool_of_sizes([20, 30])
    capped = cap_pairs(pool, 5, seed=0)
    assert len(capped) == 1 and len(next(iter(capped.values()))) in (20, 30)
