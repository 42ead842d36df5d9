"""Everything a product-search run reads once: catalogue, judgments, BM25 pools, the transfer set and its BM25 scores.

:func:`load_ranking_data` does the work (indexing the catalogue, BM25 searches, embedding every distinct string with
each bi-encoder teacher) and writes its results under ``out_dir`` so that a second call only reads them::

    index.json                  the catalogue's index (BM25 first pass)
    pools/recipe.json           the data recipe the pools were built with (a different one is refused)
    pools/judged-bm25.jsonl     each judged query's BM25 top ``rerank_depth`` with scores (the rerank setting)
    pools/transfer.jsonl        each unlabeled query's BM25 top ``bm25_k`` with scores, its ``dense_k`` nearest products
                                by the first bi-encoder teacher not among them, then ``random_per_query`` random products
                                (the last two score 0: outside the query's BM25 top k)
    embeddings/<teacher>/       bi-encoder embeddings of every product text and query (resumable parts)

:class:`RankingData` is the loaded result (no side effects): three tables every system is scored on (all judged
rows, all rerank pools, the transfer set), their BM25 scores, and per-query views for evaluation.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from distilrank.atomic import write_json
from distilrank.catalogue import Catalogue, DocumentText, check_fields, id_pairs, judged_pairs, read_catalogue
from distilrank.distill.config import TeacherConfig
from distilrank.distill.data.folds import check_disjoint
from distilrank.distill.ranking.config import RankingRunConfig
from distilrank.distill.ranking.pools import (
    Pool,
    add_random,
    cap_pairs,
    dense_top_k,
    extend_pool,
    read_pool,
    read_queries,
    weak_negatives,
    write_pool,
)
from distilrank.distill.ranking.stacking import group_index
from distilrank.distill.teacher.embedding_store import EmbeddingStore
from distilrank.errors import ConfigError
from distilrank.pairs import Pairs

Log = Callable[[str], None]


@dataclass
class RankingData:
    """The loaded data of a run.  Tables: ``judged`` (every judgment, ``labels`` = grades, ``extra["doc_id"]``),
    ``rerank`` (every judged query's BM25 top ``rerank_depth``, in BM25 order), ``transfer`` (unlabeled queries'
    pools, grouped by query).  ``bm25[split]`` float32 ``[N]`` is the first-pass score of each row (0 where BM25 does not
    match / outside the top k)."""

    cfg: RankingRunConfig
    catalogue: Catalogue
    queries: list[str]
    grades: dict[str, dict[str, float]]
    judged_pool: Pool
    transfer_pool: Pool
    tables: dict[str, Pairs]
    bm25: dict[str, np.ndarray]
    negatives: Pool
    embeddings: dict[str, EmbeddingStore]
    index_info: dict
    _groups: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    @property
    def doc(self) -> DocumentText:
        return self.cfg.document

    def groups(self, split: str) -> np.ndarray:
        """int64 ``[N]``: each row's query index in ``tables[split]`` (computed once per split)."""
        if split not in self._groups:
            self._groups[split] = group_index(self.tables[split].queries)
        return self._groups[split]

    def rows_of(self, split: str, queries) -> np.ndarray:
        """Row indices of ``tables[split]`` whose query is in ``queries`` (row order kept)."""
        keep = set(queries)
        return np.array([i for i, q in enumerate(self.tables[split].queries) if q in keep], dtype=np.int64)

    def per_query(self, split: str, values: np.ndarray, queries) -> dict[str, np.ndarray]:
        """``{query: values of its rows}`` (row order) for ``queries`` (a query without rows maps to an empty array)."""
        out: dict[str, list[int]] = {q: [] for q in queries}
        for i, q in enumerate(self.tables[split].queries):
            if q in out:
                out[q].append(i)
        return {q: np.asarray(values)[np.asarray(ix, dtype=np.int64)] for q, ix in out.items()}

    def judged_and_negatives(self, queries) -> Pairs:
        """Judged rows of ``queries`` plus their weak negatives (label 0), ``extra["doc_id"]`` kept."""
        judged = judged_pairs(self.grades, self.catalogue, self.doc, queries=list(queries), origin=self.cfg.judgments.path)
        weak = id_pairs({q: self.negatives[q] for q in queries}, self.catalogue, self.doc, source="weak negatives")
        weak = weak.with_labels(np.zeros(len(weak), np.float32))
        both = Pairs.concat([judged, weak], source="judged + weak negatives")
        both.extra["doc_id"] = judged.extra["doc_id"] + weak.extra["doc_id"]
        return both


def _recipe(cfg: RankingRunConfig) -> dict:
    return json.loads(json.dumps({
        "catalogue": asdict(cfg.catalogue), "document": asdict(cfg.document), "index": asdict(cfg.index) | {"recreate": None},
        "judgments": asdict(cfg.judgments), "transfer": asdict(cfg.transfer), "rerank_depth": cfg.eval.rerank_depth,
        "seed": cfg.seed, "negatives": [_neg(cfg, "bm25_negatives"), _neg(cfg, "random_negatives")]}))


def check_recipe(cfg: RankingRunConfig, path: Path) -> None:
    """Pools, folds and scores on disk belong to one data recipe: refuse to resume ``out_dir`` with another one
    (:class:`ConfigError` naming the first differing section); a new run records its recipe in ``path``."""
    recipe = _recipe(cfg)
    if path.exists():
        old = json.loads(path.read_text())
        for section in recipe:
            if old.get(section) != recipe[section]:
                raise ConfigError(cfg.source, section, f"differs from the run already in {path.parent.parent} "
                                  f"({json.dumps(old.get(section))} there): use another out_dir, or delete that one to start over")
    else:
        write_json(path, recipe)


def _neg(cfg: RankingRunConfig, name: str) -> int:
    ce = [t for t in cfg.teachers if t.kind == "cross-encoder"]
    return getattr(ce[0] if ce else TeacherConfig(), name)


def dense_neighbours(store: EmbeddingStore, catalogue: Catalogue, doc: DocumentText, queries: list[str], k: int, *,
                     progress: bool | None = None, log: Log | None = None) -> dict[str, list[str]]:
    """Each query's ``k`` nearest catalogue products (ids, best first) by the cosine of ``store``'s embeddings of the
    query and of each product's ``doc`` text; missing strings are embedded first."""
    t0 = time.perf_counter()
    qv = store.vectors(queries, progress=progress)
    dv = store.vectors(catalogue.texts(doc), progress=progress)
    near = dense_top_k(qv, dv, catalogue.ids, k)
    if log:
        log(f"transfer pool: {k} nearest products by the bi-encoder for {len(queries)} queries in {time.perf_counter() - t0:.0f}s")
    return dict(zip(queries, near))


def _transfer_pool(cfg: RankingRunConfig, transport, catalogue: Catalogue, judged: list[str], path: Path, log: Log,
                   dense: EmbeddingStore | None, progress: bool | None) -> None:
    from distilrank.plugin.catalogue_index import bm25_top_k

    tq = read_queries(cfg.transfer.queries, exclude=judged)
    if cfg.transfer.max_queries:
        order = np.random.default_rng(cfg.seed).permutation(len(tq))[: cfg.transfer.max_queries]
        tq = [tq[i] for i in sorted(order)]
    t0 = time.perf_counter()
    pool: Pool = {}
    scores: dict[str, list[float]] = {}
    step = 2000
    for s in range(0, len(tq), step):
        hits = bm25_top_k(transport, cfg.index.name, tq[s : s + step], cfg.transfer.bm25_k,
                          fields=cfg.index.bm25_fields) if cfg.transfer.bm25_k else {}
        for q in tq[s : s + step]:
            pool[q] = [d for d, _ in hits.get(q, [])]
            scores[q] = [sc for _, sc in hits.get(q, [])]
        log(f"transfer pool: BM25 top {cfg.transfer.bm25_k} for {min(s + step, len(tq))}/{len(tq)} queries")
    if cfg.transfer.dense_k and dense is not None:
        pool = extend_pool(pool, dense_neighbours(dense, catalogue, cfg.document, tq, cfg.transfer.dense_k, progress=progress, log=log))
    pool = add_random(pool, catalogue, cfg.transfer.random_per_query, seed=cfg.seed)
    pool = cap_pairs({q: d for q, d in pool.items() if d}, cfg.transfer.scored_pairs, seed=cfg.seed)
    write_pool(path, pool, {q: scores[q] + [0.0] * (len(pool[q]) - len(scores[q])) for q in pool})
    log(f"transfer pool: {sum(map(len, pool.values()))} pairs over {len(pool)} queries in {time.perf_counter() - t0:.0f}s")


def embedding_stores(cfg: RankingRunConfig) -> dict[str, EmbeddingStore]:
    """One resumable store per bi-encoder teacher under ``out_dir/embeddings/<name>``."""
    from distilrank.distill.ranking.teachers import embedding_store

    return {t.name: embedding_store(t, Path(cfg.out_dir)) for t in cfg.teachers if t.kind == "bi-encoder"}


def load_ranking_data(cfg: RankingRunConfig, transport, log: Log = print, *, progress: bool | None = None) -> RankingData:
    """Build (first call) or read (later calls) everything the module doc lists; returns the loaded :class:`RankingData`."""
    from distilrank.distill.ranking.teachers import bm25_of_pairs
    from distilrank.judgments import load_judgments
    from distilrank.plugin.catalogue_index import bm25_scores, bm25_top_k, index_catalogue

    out = Path(cfg.out_dir)
    catalogue = read_catalogue(cfg.catalogue.path, id_field=cfg.catalogue.id_field, limit=cfg.catalogue.limit)
    check_fields(catalogue, cfg.document, f"{cfg.source}: [document]")
    j = load_judgments(cfg.judgments.path, grade_map=cfg.judgments.grade_map or None)
    queries = list(j.queries)[: cfg.judgments.limit_queries or None]
    grades = {q: dict(j[q]) for q in queries}
    index, fields = cfg.index.name, cfg.index.bm25_fields
    index_info = index_catalogue(transport, index, catalogue, cfg.document, recreate=cfg.index.recreate, log=log)
    write_json(out / "index.json", {**index_info, "bm25_fields": fields})
    check_recipe(cfg, out / "pools" / "recipe.json")
    judged_path = out / "pools" / "judged-bm25.jsonl"
    if not judged_path.exists():
        hits = bm25_top_k(transport, index, queries, cfg.eval.rerank_depth, fields=fields)
        write_pool(judged_path, {q: [d for d, _ in hits[q]] for q in queries}, {q: [s for _, s in hits[q]] for q in queries})
    judged_pool, judged_bm25 = read_pool(judged_path)
    stores = embedding_stores(cfg)
    transfer_path = out / "pools" / "transfer.jsonl"
    if not transfer_path.exists():
        _transfer_pool(cfg, transport, catalogue, queries, transfer_path, log, next(iter(stores.values()), None), progress)
    transfer_pool, transfer_bm25 = read_pool(transfer_path)
    check_disjoint(list(transfer_pool), queries)
    judged = judged_pairs(grades, catalogue, cfg.document, queries=queries, origin=cfg.judgments.path)
    tables = {"judged": judged, "rerank": id_pairs({q: judged_pool[q] for q in queries}, catalogue, cfg.document, source="rerank pools"),
              "transfer": id_pairs(transfer_pool, catalogue, cfg.document, source=str(transfer_path))}
    bm25 = {"judged": bm25_of_pairs(judged, lambda wanted: bm25_scores(transport, index, wanted, fields=fields)),
            "rerank": np.concatenate([np.asarray(judged_bm25[q], np.float32) for q in queries]) if queries else np.zeros(0, np.float32),
            "transfer": np.concatenate([np.asarray(transfer_bm25[q], np.float32) for q in transfer_pool])}
    negatives = weak_negatives(judged_pool, grades, catalogue, n_bm25=_neg(cfg, "bm25_negatives"),
                               n_random=_neg(cfg, "random_negatives"), seed=cfg.seed)
    strings = list(dict.fromkeys(catalogue.texts(cfg.document) + queries + list(transfer_pool)))
    for name, store in stores.items():
        if (new := store.ensure(strings, progress=progress, log=log)):
            log(f"teacher {name}: embedded {new} new strings")
    return RankingData(cfg, catalogue, queries, grades, judged_pool, transfer_pool, tables, bm25, negatives, stores, index_info)


__all__ = ["RankingData", "check_recipe", "dense_neighbours", "load_ranking_data"]
