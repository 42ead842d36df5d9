"""Query-grouped splits: every pair of a query lands on the same side.

Ranking data leaks when one query's products are split between training and
evaluation (the model memorises the query).  These helpers assign whole
queries to folds, deterministically from a seed, and :func:`check_disjoint`
asserts that no query is on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from distilrank.errors import DistilRankError


@dataclass(frozen=True)
class QueryFold:
    """One fold: ``train`` and ``test`` query strings (disjoint, both in input order)."""

    index: int
    train: tuple[str, ...]
    test: tuple[str, ...]


def query_folds(queries: Sequence[str], k: int, *, seed: int = 0) -> list[QueryFold]:
    """``k`` folds over the distinct ``queries``: each query is in exactly one fold's ``test``.

    Fold sizes differ by at most one.  Raises :class:`DistilRankError` when ``k < 2`` or there are
    fewer distinct queries than folds.
    """
    distinct = list(dict.fromkeys(queries))
    if k < 2 or len(distinct) < k:
        raise DistilRankError(f"need 2 <= k <= {len(distinct)} distinct queries for query folds, got k={k}")
    order = np.random.default_rng(seed).permutation(len(distinct))
    fold_of = np.empty(len(distinct), dtype=np.int64)
    fold_of[order] = np.arange(len(distinct)) % k
    folds = []
    for f in range(k):
        test = tuple(q for q, g in zip(distinct, fold_of) if g == f)
        train = tuple(q for q, g in zip(distinct, fold_of) if g != f)
        check_disjoint(train, test)
        folds.append(QueryFold(f, train, test))
    return folds


def split_queries(queries: Sequence[str], fraction: float, *, seed: int = 0) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(rest, held)``: a seeded ``fraction`` of the distinct queries held out (at least one each side)."""
    distinct = list(dict.fromkeys(queries))
    if not 0 < fraction < 1 or len(distinct) < 2:
        raise DistilRankError(f"need 0 < fraction < 1 and >= 2 distinct queries, got {fraction} and {len(distinct)}")
    n_held = min(len(distinct) - 1, max(1, int(round(fraction * len(distinct)))))
    held_idx = set(np.random.default_rng(seed).permutation(len(distinct))[:n_held].tolist())
    held = tuple(q for i, q in enumerate(distinct) if i in held_idx)
    rest = tuple(q for i, q in enumerate(distinct) if i not in held_idx)
    check_disjoint(rest, held)
    return rest, held


def check_disjoint(a: Sequence[str], b: Sequence[str]) -> None:
    """Raise :class:`DistilRankError` naming the queries that are on both sides."""
    both = sorted(set(a) & set(b))
    if both:
        raise DistilRankError(f"{len(both)} queries on both sides of a query-grouped split, e.g. {both[:3]}")
