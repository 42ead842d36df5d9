"""Candidate pools: which products each query is paired with.

* the **transfer pool**: each unlabeled query's BM25 top ``k`` from the real index (what the
  reranker will actually see) plus a few random products (so the student also sees off-topic
  ones);
* **weak negatives** for training a teacher or fitting the stacker: products in a judged
  query's BM25 pool that no one judged, plus random products, all labeled 0;
* the **rerank pool**: an evaluation query's BM25 top ``depth`` with BM25 scores, reranked
  by each model in the "rerank BM25's top 100" setting.

A pool is ``{query: [doc id, ...]}``; files are JSONL, one ``{"query", "doc_ids"[, "scores"]}``
per line, written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from distilrank.atomic import atomic_open
from distilrank.catalogue import Catalogue
from distilrank.errors import DataError

Pool = dict[str, list[str]]


def read_queries(path: str | Path, *, limit: int = 0, exclude: Sequence[str] = ()) -> list[str]:
    """Distinct non-empty query lines of a one-query-per-line file (a TSV keeps its first column).

    ``exclude`` drops queries (e.g. judged evaluation queries) so that no evaluation query leaks
    into the transfer set.
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(p, None, "query file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(p, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    skip = set(exclude)
    out = list(dict.fromkeys(q for q in (line.split("\t")[0].strip() for line in lines) if q and q not in skip))
    return out[:limit] if limit else out


def write_pool(path: str | Path, pool: Mapping[str, Sequence[str]], scores: Mapping[str, Sequence[float]] | None = None) -> None:
    """Atomically write a pool (with optional per-doc scores) as JSONL."""
    with atomic_open(path) as fh:
        for q, ids in pool.items():
            row: dict = {"query": q, "doc_ids": list(ids)}
            if scores is not None:
                row["scores"] = [float(s) for s in scores[q]]
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_pool(path: str | Path) -> tuple[Pool, dict[str, list[float]]]:
    """``(pool, scores)`` from :func:`write_pool`'s file (``scores`` empty when none were written)."""
    pool: Pool = {}
    scores: dict[str, list[float]] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            try:
                row = json.loads(line)
                pool[row["query"]] = list(row["doc_ids"])
                if "scores" in row:
                    scores[row["query"]] = list(row["scores"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(path, lineno, f"not a pool row ({exc})") from None
    return pool, scores


def add_random(pool: Mapping[str, Sequence[str]], catalogue: Catalogue, n: int, *, seed: int,
               exclude: Mapping[str, Mapping[str, float]] | None = None) -> Pool:
    """Each query's docs followed by ``n`` random catalogue products not already in its list (nor in ``exclude[q]``)."""
    rng = np.random.default_rng(seed)
    out: Pool = {}
    for q, ids in pool.items():
        taken = set(ids) | set((exclude or {}).get(q, {}))
        extra: list[str] = []
        while n and len(extra) < n and len(taken) < len(catalogue):
            d = catalogue.ids[int(rng.integers(len(catalogue)))]
            if d not in taken:
                taken.add(d)
                extra.append(d)
        out[q] = list(ids) + extra
    return out


def dense_top_k(query_vecs: np.ndarray, doc_vecs: np.ndarray, doc_ids: Sequence[str], k: int, *, chunk: int = 2048) -> list[list[str]]:
    """Each query's ``k`` nearest ``doc_ids`` by dot product (cosine for unit vectors), best first.

    ``query_vecs`` float32 ``[Q, dim]``, ``doc_vecs`` float32 ``[D, dim]`` aligned with ``doc_ids``; ties go to the
    earlier document.  Returns ``Q`` lists of ``min(k, D)`` ids."""
    k = max(0, min(k, len(doc_ids)))
    out: list[list[str]] = []
    for s in range(0, len(query_vecs), chunk):
        top = np.argsort(-(query_vecs[s : s + chunk] @ doc_vecs.T), axis=1, kind="stable")[:, :k]
        out.extend([doc_ids[i] for i in row] for row in top)
    return out


def extend_pool(pool: Mapping[str, Sequence[str]], extra: Mapping[str, Sequence[str]]) -> Pool:
    """Each query's docs followed by those of ``extra[q]`` not already in its list (order kept)."""
    out: Pool = {}
    for q, ids in pool.items():
        taken = set(ids)
        out[q] = list(ids) + [d for d in extra.get(q, ()) if d not in taken and not taken.add(d)]
    return out


def weak_negatives(bm25_pool: Mapping[str, Sequence[str]], judged: Mapping[str, Mapping[str, float]], catalogue: Catalogue, *,
                   n_bm25: int, n_random: int, seed: int) -> Pool:
    """Per judged query: ``n_bm25`` products drawn from its BM25 pool that nobody judged, then ``n_random``
    random unjudged products.  All are treated as irrelevant (label 0)."""
    rng = np.random.default_rng(seed)
    picked: Pool = {}
    for q, ids in bm25_pool.items():
        unjudged = [d for d in ids if d not in judged.get(q, {})]
        take = rng.permutation(len(unjudged))[:n_bm25] if unjudged else []
        picked[q] = [unjudged[i] for i in sorted(take)]
    return add_random(picked, catalogue, n_random, seed=seed + 1, exclude=judged)


def cap_pairs(pool: Mapping[str, Sequence[str]], max_pairs: int | None, *, seed: int) -> Pool:
    """Whole queries in a seeded order until ``max_pairs`` pairs (``None``: no cap; below 1 is a ValueError);
    queries keep their doc order.

    Successive caps with the same seed are nested (the first 50k pairs are inside the first 100k),
    which is what a scale curve needs."""
    if max_pairs is None:
        return dict(pool)
    if max_pairs < 1:
        raise ValueError(f"max_pairs must be >= 1 or None (no cap), got {max_pairs}")
    order = np.random.default_rng(seed).permutation(len(pool))
    queries = list(pool)
    out: Pool = {}
    total = 0
    for i in order:
        q = queries[i]
        if total + len(pool[q]) > max_pairs and out:
            break
        out[q] = list(pool[q])
        total += len(pool[q])
    return out


def bm25_pool(search: Callable[[Sequence[str], int], dict[str, list[tuple[str, float]]]], queries: Sequence[str], k: int,
              ) -> tuple[Pool, dict[str, list[float]]]:
    """Run ``search(queries, k)`` (e.g. :func:`distilrank.plugin.catalogue_index.bm25_top_k` bound to an index) into ``(pool, scores)``."""
    hits = search(queries, k)
    return {q: [d for d, _ in hits.get(q, [])] for q in queries}, {q: [s for _, s in hits.get(q, [])] for q in queries}
