"""``distilrank run configs/esci.toml``: product-search distillation, evaluated by query-grouped folds.

Stages (each writes under ``out_dir`` and is skipped when its output exists, so a killed run
resumes)::

    out_dir/
      index.json                         the catalogue indexed in OpenSearch (BM25 first pass)
      pools/judged-bm25.jsonl            judged queries' BM25 top `rerank_depth` (rerank setting, weak negatives)
      pools/transfer.jsonl               unlabeled queries x (BM25 top k + random products)
      embeddings/                        bi-encoder embedding cache (zero-shot, shared by all folds)
      folds/fold-<i>/                    one query-grouped fold: split.json, teachers/, scores/,
                                         stacker.json, students/<variant>/, eval.json
      final/                             the same on every judged query (no evaluation): the student to ship
      report/                            report.md, report.html, eval.json
      run.json                           summary

For each fold, the fold's test queries are never seen by its teachers, its stacker or its
students: cross-encoders train on ``fold.train`` minus the stacking queries, the stacker is
fitted on those stacking queries, students learn from teacher scores on *unlabeled* queries
only (no judged query is in the transfer set).  Results of all folds are pooled per query.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from distilrank.distill.atomic import write_json
from distilrank.distill.data.catalogue import Catalogue, DocumentText, check_fields, id_pairs, judged_pairs, read_catalogue
from distilrank.distill.data.folds import QueryFold, check_disjoint, query_folds, split_queries
from distilrank.distill.data.pairs import Pairs
from distilrank.distill.ranking.config import RankingRunConfig, RankingTeacher
from distilrank.distill.ranking.evaluate import judged_setting, rerank_setting
from distilrank.distill.ranking.pools import Pool, add_random, cap_pairs, read_pool, read_queries, weak_negatives, write_pool
from distilrank.distill.ranking.teachers import EmbeddingCache, score_pairs, train_cross_encoder

Log = Callable[[str], None]


class RankingData:
    """Everything a fold needs, loaded once: catalogue, judgments, pools and the cluster helpers."""

    def __init__(self, cfg: RankingRunConfig, transport, log: Log) -> None:
        from distilrank.plugin.abtest.judgments import load_judgments
        from distilrank.plugin.catalogue_index import bm25_scores, bm25_top_k, index_catalogue

        self.cfg, self.log = cfg, log
        out = Path(cfg.out_dir)
        self.catalogue: Catalogue = read_catalogue(cfg.catalogue.path, id_field=cfg.catalogue.id_field, limit=cfg.catalogue.limit)
        check_fields(self.catalogue, cfg.document, f"{cfg.source}: [document]")
        j = load_judgments(cfg.judgments.path, grade_map=cfg.judgments.grade_map or None)
        queries = list(j.queries)[: cfg.judgments.limit_queries or None]
        self.grades = {q: dict(j[q]) for q in queries}
        self.queries = queries
        self.doc: DocumentText = cfg.document
        index, fields = cfg.index.name, cfg.index.bm25_fields
        self.index_info = index_catalogue(transport, index, self.catalogue, self.doc, recreate=cfg.index.recreate, log=log)
        write_json(out / "index.json", {**self.index_info, "bm25_fields": fields})
        self.bm25 = lambda qd: bm25_scores(transport, index, qd, fields=fields)

        _check_recipe(cfg, out / "pools" / "recipe.json")
        judged_pool_path = out / "pools" / "judged-bm25.jsonl"
        if not judged_pool_path.exists():
            hits = bm25_top_k(transport, index, queries, cfg.eval.rerank_depth, fields=fields)
            write_pool(judged_pool_path, {q: [d for d, _ in hits[q]] for q in queries}, {q: [s for _, s in hits[q]] for q in queries})
        self.judged_pool, self.judged_pool_bm25 = read_pool(judged_pool_path)

        transfer_path = out / "pools" / "transfer.jsonl"
        if not transfer_path.exists():
            tq = read_queries(cfg.transfer.queries, exclude=queries)
            if cfg.transfer.max_queries:
                order = np.random.default_rng(cfg.seed).permutation(len(tq))[: cfg.transfer.max_queries]
                tq = [tq[i] for i in sorted(order)]
            t0 = time.perf_counter()
            pool: Pool = {}
            step = 2000
            for s in range(0, len(tq), step):
                hits = bm25_top_k(transport, index, tq[s : s + step], cfg.transfer.bm25_k, fields=fields) if cfg.transfer.bm25_k else {}
                pool.update({q: [d for d, _ in hits.get(q, [])] for q in tq[s : s + step]})
                log(f"transfer pool: BM25 top {cfg.transfer.bm25_k} for {min(s + step, len(tq))}/{len(tq)} queries")
            pool = add_random(pool, self.catalogue, cfg.transfer.random_per_query, seed=cfg.seed)
            pool = cap_pairs({q: d for q, d in pool.items() if d}, cfg.transfer.scored_pairs, seed=cfg.seed)
            write_pool(transfer_path, pool)
            log(f"transfer pool: {sum(map(len, pool.values()))} pairs over {len(pool)} queries in {time.perf_counter() - t0:.0f}s")
        self.transfer_pool, _ = read_pool(transfer_path)
        check_disjoint(list(self.transfer_pool), queries)
        self.transfer = id_pairs(self.transfer_pool, self.catalogue, self.doc, source=str(transfer_path))
        self.negatives = weak_negatives(self.judged_pool, self.grades, self.catalogue, n_bm25=_neg(cfg, "bm25_negatives"),
                                        n_random=_neg(cfg, "random_negatives"), seed=cfg.seed)
        self.embeddings: EmbeddingCache | None = None
        bi = [t for t in cfg.teachers if t.kind == "bi-encoder"]
        if bi:
            from distilrank.distill.config import resolve_base_model
            from distilrank.distill.teacher.biencoder import BiEncoder

            self.embeddings = EmbeddingCache(BiEncoder(resolve_base_model(bi[0].base), max_length=bi[0].max_length), out / "embeddings")
            # every string any fold will score, embedded once up front (one cache file)
            self.embeddings.vectors(list(dict.fromkeys(self.catalogue.texts(self.doc) + queries + list(self.transfer_pool))))

    # --- tables ----------------------------------------------------------------------------
    def judged(self, queries) -> Pairs:
        """Judged (query, product text, grade) rows of ``queries``."""
        return judged_pairs(self.grades, self.catalogue, self.doc, queries=list(queries), origin=self.cfg.judgments.path)

    def weak(self, queries) -> Pairs:
        """Weak negatives of ``queries`` with label 0."""
        p = id_pairs({q: self.negatives[q] for q in queries}, self.catalogue, self.doc, source="weak negatives")
        return p.with_labels(np.zeros(len(p), np.float32))

    def rerank_pool(self, queries) -> Pairs:
        """The BM25 top ``rerank_depth`` of ``queries`` as unlabeled rows."""
        return id_pairs({q: self.judged_pool[q] for q in queries}, self.catalogue, self.doc, source="rerank pool")


def _check_recipe(cfg: RankingRunConfig, path: Path) -> None:
    """Pools, folds and scores on disk belong to one data recipe: refuse to resume ``out_dir`` with another one.

    The recipe is every setting the pools and splits depend on; a run whose recipe differs from the one
    recorded in ``pools/recipe.json`` raises :class:`ConfigError` naming the first differing setting
    (choose a new ``out_dir``, or delete the old one to start over)."""
    from distilrank.distill.errors import ConfigError

    recipe = json.loads(json.dumps({
        "catalogue": asdict(cfg.catalogue), "document": asdict(cfg.document), "index": asdict(cfg.index) | {"recreate": None},
        "judgments": asdict(cfg.judgments), "transfer": asdict(cfg.transfer), "rerank_depth": cfg.eval.rerank_depth,
        "seed": cfg.seed, "negatives": [_neg(cfg, "bm25_negatives"), _neg(cfg, "random_negatives")]}))
    if path.exists():
        old = json.loads(path.read_text())
        for section in recipe:
            if old.get(section) != recipe[section]:
                raise ConfigError(cfg.source, section, f"differs from the run already in {path.parent.parent} "
                                  f"({json.dumps(old.get(section))} there): use another out_dir, or delete that one to start over")
    else:  # a new run (or pools written before recipes were recorded, adopted as they are)
        write_json(path, recipe)


def _neg(cfg: RankingRunConfig, name: str) -> int:
    ce = [t for t in cfg.teachers if t.kind == "cross-encoder"]
    return getattr(ce[0] if ce else RankingTeacher(), name)


def _labeled(judged: Pairs, weak: Pairs) -> Pairs:
    """Judgments plus weak negatives, keeping ``doc_id`` (``Pairs.concat`` drops extras)."""
    both = Pairs.concat([judged, weak], source="judged + weak negatives")
    both.extra["doc_id"] = judged.extra["doc_id"] + weak.extra["doc_id"]
    return both


def _split_by_query(pairs: Pairs, values: np.ndarray) -> dict[str, np.ndarray]:
    """``{query: values of its rows}`` in row order."""
    out: dict[str, list[int]] = {}
    for i, q in enumerate(pairs.queries):
        out.setdefault(q, []).append(i)
    return {q: values[np.asarray(ix)] for q, ix in out.items()}


Combine = Callable[[str, str], np.ndarray]  # (split, "stack" | teacher name) -> scores of that split's rows


def _fold_tables(data: RankingData, fold: QueryFold, out: Path, *, evaluate: bool) -> tuple[dict[str, Pairs], tuple[str, ...]]:
    """The fold's tables to score (stacking split, transfer set, test tables when ``evaluate``) and its
    cross-encoder training queries; the query split is checked disjoint and written to ``split.json``."""
    cfg = data.cfg
    ce_queries, stack_queries = split_queries(fold.train, cfg.judgments.stack_fraction, seed=cfg.seed + fold.index)
    check_disjoint(ce_queries, stack_queries)
    check_disjoint(fold.train, fold.test)
    write_json(out / "split.json", {"fold": fold.index, "teacher_train": list(ce_queries), "stacker": list(stack_queries),
                                    "test": list(fold.test)})
    tables = {"stack": _labeled(data.judged(stack_queries), data.weak(stack_queries)), "transfer": data.transfer}
    if evaluate:
        tables["test-judged"] = data.judged(fold.test)
        tables["test-rerank"] = data.rerank_pool(fold.test)
    return tables, ce_queries


def _score_with_teachers(data: RankingData, tables: dict[str, Pairs], ce_queries, out: Path, *, progress: bool | None,
                         log: Log) -> dict[str, dict[str, np.ndarray]]:
    """``{split: {teacher: scores}}``; each cross-encoder is first trained on ``ce_queries`` (judged + weak negatives)."""
    scores: dict[str, dict[str, np.ndarray]] = {s: {} for s in tables}
    for tc in data.cfg.teachers:
        ckpt = None
        if tc.kind == "cross-encoder":
            train = _labeled(data.judged(ce_queries), data.weak(ce_queries))
            t0 = time.perf_counter()
            ckpt = train_cross_encoder(tc, train, out / "teachers" / tc.name, progress=progress)
            log(f"{out.name}: teacher {tc.name} trained on {len(ce_queries)} queries ({len(train)} pairs) in {time.perf_counter() - t0:.0f}s")
        for split, pairs in tables.items():
            t0 = time.perf_counter()
            scores[split][tc.name] = score_pairs(tc, pairs, out / "scores" / tc.name / split, checkpoint=ckpt,
                                                 embeddings=data.embeddings, bm25=data.bm25, progress=progress)
            if split == "transfer":
                log(f"{out.name}: teacher {tc.name} scored {len(pairs)} transfer pairs ({time.perf_counter() - t0:.0f}s)")
    return scores


def _fold_tokenizer(data: RankingData, fold: QueryFold, out: Path):
    """The fold's student tokenizer (``students/tokenizer.json``), built from the transfer set and the training judgments once."""
    from distilrank.distill.student.tokenizer import build_student_tokenizer, load_tokenizer, save_tokenizer

    tok_path = out / "students" / "tokenizer.json"
    if tok_path.exists():
        return load_tokenizer(tok_path)
    cfg, labeled = data.cfg, data.judged(fold.train)
    tokenizer = build_student_tokenizer(data.transfer.queries + data.transfer.texts + labeled.queries + labeled.texts,
                                        vocab_size=cfg.student.vocab_size, min_count=cfg.student.min_count,
                                        max_length=cfg.student.max_length)
    save_tokenizer(tokenizer, tok_path)
    return tokenizer


def _student_variants(data: RankingData, fold: QueryFold, combined: Combine, *, evaluate: bool) -> dict[str, tuple[Pairs, np.ndarray, dict]]:
    """``{name: (pairs, soft targets, metadata)}``: the distilled student, the gold-only baseline, and with
    ``evaluate`` the single-teacher and scale-curve students."""
    from distilrank.distill.targets import soft_targets

    cfg = data.cfg
    T, main_how = cfg.distill.temperature, cfg.distill.combine
    variants: dict[str, tuple[Pairs, np.ndarray, dict]] = {
        "distilled": (data.transfer, soft_targets(combined("transfer", main_how), T), {"targets": main_how, "T": T})}
    if cfg.distill.gold_student:
        gold = _labeled(data.judged(fold.train), data.weak(fold.train))
        variants["gold-only"] = (gold, (gold.labels / 3.0).astype(np.float32), {"targets": "judgments + weak negatives", "T": None})
    if not evaluate:
        return variants
    for n in [t.name for t in cfg.teachers if t.kind != "bm25"] if main_how == "stack" else []:
        variants[f"distilled ({n} only)"] = (data.transfer, soft_targets(combined("transfer", n), T), {"targets": n, "T": T})
    for size in cfg.distill.scale_curve:
        if size < len(data.transfer):
            sub = cap_pairs(data.transfer_pool, size, seed=cfg.seed + 7)
            idx = _rows_of(data.transfer, set(sub))
            variants[f"distilled ({len(idx)} pairs)"] = (data.transfer.select(idx), soft_targets(combined("transfer", main_how)[idx], T),
                                                         {"targets": main_how, "T": T})
    return variants


def _train_fold_students(data: RankingData, variants: dict[str, tuple[Pairs, np.ndarray, dict]], tokenizer, out: Path, *,
                         progress: bool | None, log: Log) -> dict[str, dict]:
    """Train every variant not trained yet into ``students/<slug>``; ``{name: {"dir", "train_pairs", metadata...}}``."""
    from distilrank.distill.pipeline import student_configs
    from distilrank.distill.student.train import train_student

    cfg = data.cfg
    model_cfg, train_cfg = student_configs(cfg.student, tokenizer.get_vocab_size())
    # The gold-only baseline has ~100x fewer pairs: give it more, slower-decaying epochs (the best epoch
    # by validation loss is kept) so that it is not simply under-trained.
    gold_cfg = replace(train_cfg, epochs=max(train_cfg.epochs, 20), lr_decay=max(train_cfg.lr_decay, 0.9), val_fraction=0.05)
    names = [t.name for t in cfg.teachers]
    students = {}
    for name, (pairs, targets, meta) in variants.items():
        sdir = out / "students" / _slug(name)
        if not (sdir / "result.json").exists():
            t0 = time.perf_counter()
            train_student(pairs, targets, tokenizer, sdir, model_config=model_cfg, config=gold_cfg if name == "gold-only" else train_cfg,
                          progress=progress,
                          metadata={"variant": name, **meta, "teachers": names, "config": cfg.source, "document": asdict(data.doc)})
            log(f"{out.name}: student {name} trained on {len(pairs)} pairs in {time.perf_counter() - t0:.0f}s")
        students[name] = {"dir": str(sdir), "train_pairs": len(pairs), **meta}
    return students


def _evaluate_fold(data: RankingData, fold: QueryFold, tables: dict[str, Pairs], scores: dict[str, dict[str, np.ndarray]],
                   combined: Combine, students: dict[str, dict], out: Path) -> dict:
    """Every system (BM25, each teacher, the stacked teacher, each student) on the fold's test queries in both
    settings (judged documents; reranked BM25 pool); written to ``eval.json``."""
    from distilrank.distill.student.store import load_student

    cfg = data.cfg
    judged_t, rerank_t = tables["test-judged"], tables["test-rerank"]
    bm25_teacher = next((t.name for t in cfg.teachers if t.kind == "bm25"), None)  # the baseline is already scored
    if bm25_teacher is not None:
        systems_judged: dict[str, np.ndarray] = {"BM25": scores["test-judged"][bm25_teacher]}
    else:
        from distilrank.distill.ranking.teachers import bm25_of_pairs

        systems_judged = {"BM25": bm25_of_pairs(judged_t, data.bm25)}
    systems_rerank: dict[str, np.ndarray | None] = {"BM25": None}
    for tc in cfg.teachers:
        if tc.kind != "bm25":
            systems_judged[f"teacher {tc.name}"] = scores["test-judged"][tc.name]
            systems_rerank[f"teacher {tc.name}"] = scores["test-rerank"][tc.name]
    systems_judged["teacher stacked"] = combined("test-judged", "stack")
    systems_rerank["teacher stacked"] = combined("test-rerank", "stack")
    for name, info in students.items():
        st = load_student(info["dir"])
        systems_judged[f"student {name}"] = st.score(judged_t)
        systems_rerank[f"student {name}"] = st.score(rerank_t)
    result = {"judged": {}, "rerank": {}}
    pool = {q: data.judged_pool[q] for q in fold.test}
    for sysname, z in systems_judged.items():
        result["judged"][sysname] = judged_setting(fold.test, judged_t.queries, judged_t.labels, z, cfg.eval.k)
    for sysname, z in systems_rerank.items():
        per_q = None if z is None else _split_by_query(rerank_t, z)
        result["rerank"][sysname] = rerank_setting(pool, None if per_q is None else {q: per_q.get(q, np.zeros(0)) for q in fold.test},
                                                   data.grades, cfg.eval.k)
    write_json(out / "eval.json", result)
    return result


def run_fold(data: RankingData, fold: QueryFold, out: Path, *, evaluate: bool, progress: bool | None, log: Log) -> dict:
    """Train teachers, stacker and students on ``fold.train``; evaluate on ``fold.test`` when ``evaluate``."""
    from distilrank.distill.targets import fit_stacker

    cfg = data.cfg
    tables, ce_queries = _fold_tables(data, fold, out, evaluate=evaluate)
    scores = _score_with_teachers(data, tables, ce_queries, out, progress=progress, log=log)
    names = [t.name for t in cfg.teachers]
    stack_labels = tables["stack"].labels / 3.0
    stacker = fit_stacker(np.stack([scores["stack"][n] for n in names]), stack_labels, names, l2=cfg.distill.stacker_l2)
    write_json(out / "stacker.json", stacker.to_dict())

    def combined(split: str, how: str) -> np.ndarray:
        return stacker.apply(np.stack([scores[split][n] for n in names])) if how == "stack" else scores[split][how]

    variants = _student_variants(data, fold, combined, evaluate=evaluate)
    students = _train_fold_students(data, variants, _fold_tokenizer(data, fold, out), out, progress=progress, log=log)
    if not evaluate:
        return {"students": students, "stacker": stacker.to_dict()}
    result = _evaluate_fold(data, fold, tables, scores, combined, students, out)
    return {"students": students, "stacker": stacker.to_dict(), "eval": result}


def _rows_of(pairs: Pairs, queries: set[str]) -> np.ndarray:
    return np.array([i for i, q in enumerate(pairs.queries) if q in queries], dtype=np.int64)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in name).strip("-")


def run_ranking(cfg: RankingRunConfig, transport, *, progress: bool | None = None, log: Log = print) -> dict:
    """Run every stage of a ranking config; return the summary also written to ``out_dir/run.json``."""
    from distilrank.distill.ranking.report import summarize, write_ranking_report

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_run = time.perf_counter()
    data = RankingData(cfg, transport, log)
    log(f"data: {len(data.catalogue)} products, {len(data.queries)} judged queries, "
        f"{len(data.transfer)} transfer pairs over {len(data.transfer_pool)} unlabeled queries")
    if cfg.judgments.folds:
        folds = query_folds(data.queries, cfg.judgments.folds, seed=cfg.seed)
        protocol = f"{cfg.judgments.folds}-fold query-grouped cross-validation over {len(data.queries)} judged queries"
    else:
        rest, held = split_queries(data.queries, cfg.judgments.eval_fraction, seed=cfg.seed)
        folds = [QueryFold(0, rest, held)]
        protocol = f"fixed query-grouped split: {len(rest)} training / {len(held)} evaluation queries"
    fold_results = []
    for fold in folds:
        t0 = time.perf_counter()
        fold_results.append(run_fold(data, fold, out / "folds" / f"fold-{fold.index}", evaluate=True, progress=progress, log=log))
        log(f"fold {fold.index}: done in {time.perf_counter() - t0:.0f}s")
    final = None
    if cfg.distill.final_student:  # the student to ship: the same recipe on every judged query (no evaluation left)
        final = run_fold(data, QueryFold(len(folds), tuple(data.queries), ()), out / "final", evaluate=False, progress=progress, log=log)
    summary_serve = None
    if cfg.serve.enabled:  # each fold's student and teacher reranking on the node, A/B vs BM25 (distilrank.distill.ranking.serve)
        from distilrank.distill.ranking.serve import serve_and_compare

        summary_serve = serve_and_compare(cfg, transport, out, log)
    summary = summarize(cfg, protocol, fold_results, final, data, seconds=time.perf_counter() - t_run)
    if summary_serve is not None:
        summary["serve"] = summary_serve
    paths = write_ranking_report(summary, out / "report")
    summary["report"] = {k: str(v) for k, v in paths.items()}
    write_json(out / "run.json", summary)
    for line in summary["headline"]:
        log(line)
    log(f"report: {paths['html']}")
    return summary


__all__ = ["RankingData", "run_fold", "run_ranking"]
