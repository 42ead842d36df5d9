"""Student and teacher variants outside `configs/esci.toml`'s candidate grid, scored the way the run chooses its recipe:
for each of the run's 5 outer folds, nDCG@10 (ESCI gains) of BM25 + model over the fold's 80 *training* queries by
nested inner folds (the blend fitted on 3 inner folds, measured on the 4th; no outer test query is used).

Run (needs the dev node of `make esci`, `integration/cluster/start`, and `make esci`'s data in runs/esci; without its
shipped recipe, runs/esci/final/ship.json, the one in bench/results/esci.json is the reference):
    .venv/bin/python bench/esci_student_variants.py [--pairs 300000] [--only NAME ...]

Variants (each against the reference named in its row):

* ``reference``: the shipped recipe (mpnet-bi target, listwise, match features, T = 1, [student] of the config) on the
  first ``--pairs`` transfer pairs: the run's own choice-size student, reused from ``runs/esci/students``.
* ``embedding_dim=128``, ``hidden=2048-512-128-64``, ``temperature=0.5``, ``temperature=2``: one setting of the
  reference changed.
* ``target=stack``: the student distilled from each outer fold's fitted ranking stacker (mpnet-bi, minilm-bi, BM25,
  weights fitted on the fold's training queries), one student per fold.
* ``teacher: mpnet over title+brand+color+bullet points``: the zero-shot mpnet teacher (not a student) embedding the
  product text with its bullet points (max_length 128), against mpnet over the run's document text.
* ``transfer + 20 dense neighbours``: the reference recipe on the same number of transfer pairs drawn from pools
  extended by mpnet-bi's 20 nearest products BM25 did not retrieve (``[transfer] dense_k = 20``).  Scored in the rerank
  setting like every variant and, beside it, in the judged setting (the judged products of each inner fold's held-out
  queries ranked by the blend fitted on its other inner folds), where products BM25 does not retrieve are ranked.
* ``seeds``: the reference retrained with seeds 0, 1, 2 (how far one retraining moves the inner score), and per seed
  the same recipe trained 6 epochs instead of the section's 3 (the best epoch by validation loss is kept); both settings.
* ``teacher-stacks``: teacher level, both settings: mpnet-bi, MiniLM-bi and their z-stacks within each query's list
  (equal and 2:1 weights, no BM25 inside), each against mpnet-bi alone.
* ``soup``: per seed (0, 1), a soup of 3 students of the reference recipe (``[student] soup = 3``: one start, each
  member its own data order, weights averaged: the same size and latency) against the reference of that seed.
* ``full-soup``: the soup of 3 at full size (every transfer pair), beside its three members and the mean of their
  logits (an ensemble, three times the serving cost), each against member 0 (the ``soup = 1`` student); both settings.
* ``teacher-title``: teacher level, both settings: mpnet over the product title alone, its equal z-stack with mpnet over
  the run's document text and the larger of the two cosines, against mpnet over the document text.
* ``query-adapter``: teacher level, both settings: mpnet-bi with a linear adapter on the query embedding fitted on
  judgments (ListNet on ESCI gains), cross-fitted on the inner folds so no query is scored by an adapter that saw it,
  each setting of ``ADAPTERS`` against mpnet-bi zero-shot.
* ``gold fine-tune``: the shipped full-size student's MLP fine-tuned on the judgments of each inner fold's training
  queries (listwise over each query's BM25 top 100, unjudged = grade 0; 6 epochs, lr 1e-4, target = grade x 2),
  scored on the inner fold's held-out queries: nested one level deeper, so it is compared to the same student untuned.

Students and embeddings are cached under ``runs/esci/bench/student-variants``.  Writes
``bench/results/esci_student_variants.json`` (per-fold inner scores, mean, difference to the reference, seconds, load).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
STUDENT_SETTINGS = {"embedding_dim=128": {"embedding_dim": 128}, "hidden=2048-512-128-64": {"hidden": [2048, 512, 128, 64]}}


def _inner(ctx, model_rerank: np.ndarray, fold) -> float:
    from distilrank.distill.ranking.blend_fit import inner_cv_blend_score

    d = ctx["data"]
    bm = d.per_query("rerank", d.bm25["rerank"], fold.train)
    return inner_cv_blend_score(d.judged_pool, bm, d.per_query("rerank", model_rerank, fold.train), d.grades, fold.train,
                                k=d.cfg.eval.k, folds=d.cfg.distill.inner_folds, seed=d.cfg.seed)["score"]


def _student(ctx, name: str, recipe, section, signal: np.ndarray, *, seed: int | None = None,
             rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``judged`` and ``rerank`` logits of a student trained (or reused) on the first ``--pairs`` transfer pairs, or on
    ``rows`` when given (``seed``: the run's seed unless given)."""
    from distilrank.distill.ranking.students import student_scores, train_recipe, word_init

    d, tr = ctx["data"], ctx["trainer"]
    rows = ctx["rows"] if rows is None else rows
    seed = d.cfg.seed if seed is None else seed
    init = word_init(d.embeddings["mpnet-bi"], tr.tokenizer, section.embedding_dim,
                     Path(d.cfg.out_dir) / "students" / f"init-mpnet-bi-{section.embedding_dim}.npy", seed=d.cfg.seed)
    out = _student_dir(ctx, name, len(rows), seed)
    train_recipe(recipe, d.tables["transfer"].select(rows), signal[rows], tr.groups[rows], tr.tokenizer, section, out,
                 seed=seed, progress=False, log=print, init_embeddings=init)
    return student_scores(out, {s: d.tables[s] for s in ("judged", "rerank")})


def _student_dir(ctx, name: str, pairs: int, seed: int) -> Path:
    """Where :func:`_student` trains (or finds) the student ``name`` on ``pairs`` transfer pairs with ``seed``."""
    return ctx["work"] / "students" / (f"{name}-{pairs}" + (f"-seed{seed}" if seed != ctx["data"].cfg.seed else ""))


def _reference(ctx, seed: int) -> dict[str, np.ndarray]:
    """``judged`` and ``rerank`` logits of the reference recipe on the first ``--pairs`` transfer pairs, trained with ``seed``
    (or reused: the seed-0 one is the run's own choice-size student)."""
    tr = ctx["trainer"]
    return tr.scores(tr.student(ctx["recipe"], ctx["signals"], ctx["work"], pairs=ctx["pairs"], seed=seed))


def _tag(setting: str) -> str:
    """The suffix of a variant's row name in ``setting``."""
    return "" if setting == "rerank" else ", judged setting"


def _inner_both(ctx, model_judged: np.ndarray, model_rerank: np.ndarray, fold) -> tuple[float, float]:
    """:func:`_inner`'s score and its judged-setting twin: each inner fold's held-out queries' judged products ranked by
    BM25 + model with the blend the same nested choice fitted on the other inner folds (rerank setting)."""
    from distilrank.distill.data.folds import query_folds
    from distilrank.distill.ranking.blend_fit import inner_cv_blend_score
    from distilrank.distill.ranking.evaluate import query_metrics
    from distilrank.plugin.blend import BlendSettings, blend_window

    d, k = ctx["data"], ctx["data"].cfg.eval.k
    res = inner_cv_blend_score(d.judged_pool, d.per_query("rerank", d.bm25["rerank"], fold.train),
                               d.per_query("rerank", model_rerank, fold.train), d.grades, fold.train, k=k,
                               folds=d.cfg.distill.inner_folds, seed=d.cfg.seed)
    bm, mz = d.per_query("judged", d.bm25["judged"], fold.train), d.per_query("judged", model_judged, fold.train)
    labels = d.per_query("judged", d.tables["judged"].labels, fold.train)
    inner = query_folds(list(fold.train), d.cfg.distill.inner_folds, seed=d.cfg.seed)
    per_q = [query_metrics(blend_window(bm[q], mz[q], BlendSettings(**s)), labels[q], k)["ndcg_esci"]
             for f, s in zip(inner, res["settings"]) for q in f.test]
    return res["score"], float(np.mean(per_q))


def _per_fold_both(ctx, scores: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """:func:`_inner_both` of a model's ``judged`` and ``rerank`` scores over the outer folds, by setting."""
    both = [_inner_both(ctx, scores["judged"], scores["rerank"], f) for f in ctx["folds"]]
    return {"rerank": [b[0] for b in both], "judged": [b[1] for b in both]}


def with_dense(ctx, k: int = 20) -> list[dict]:
    """The reference recipe on as many transfer pairs from pools extended by mpnet-bi's ``k`` nearest products."""
    from distilrank.catalogue import id_pairs
    from distilrank.distill.ranking.data import dense_neighbours
    from distilrank.distill.ranking.pools import extend_pool
    from distilrank.distill.ranking.stacking import group_index
    from distilrank.distill.ranking.students import student_scores, subset_rows, train_recipe

    d, tr, t0 = ctx["data"], ctx["trainer"], time.time()
    if d.cfg.transfer.dense_k:
        raise SystemExit(f"{d.cfg.source}: the run's pools already hold dense rows ([transfer] dense_k = {d.cfg.transfer.dense_k})")
    store, r = d.embeddings["mpnet-bi"], d.cfg.transfer.random_per_query
    near = dense_neighbours(store, d.catalogue, d.doc, list(d.transfer_pool), k, log=print)
    # each pool is BM25's hits then random_per_query random products: the neighbours go between the two
    hits = extend_pool({q: ids[: len(ids) - r] for q, ids in d.transfer_pool.items()}, near)
    pool = extend_pool(hits, {q: ids[len(ids) - r :] for q, ids in d.transfer_pool.items()})
    table = id_pairs(pool, d.catalogue, d.doc, source="transfer pools + dense neighbours")
    groups = group_index(table.queries)
    rows = subset_rows(groups, len(ctx["rows"]), seed=d.cfg.seed + 7)
    sub = table.select(rows)
    target = store.pair_cosine(sub)
    init = tr.init()
    out = ctx["work"] / "students" / f"dense{k}-{len(rows)}"
    train_recipe(ctx["recipe"], sub, target, groups[rows], tr.tokenizer, d.cfg.student, out, seed=d.cfg.seed, progress=False,
                 log=print, init_embeddings=init[1] if init else None)
    z = student_scores(out, {s: d.tables[s] for s in ("judged", "rerank")})
    inner, refs = _per_fold_both(ctx, z), _per_fold_both(ctx, _reference(ctx, d.cfg.seed))
    added = len(table) - sum(map(len, d.transfer_pool.values()))
    run_pool = {q: set(ids) for q, ids in d.transfer_pool.items()}
    share = float(np.mean([i not in run_pool[q] for q, i in zip(sub.queries, sub.extra["doc_id"])]))
    print(f"with dense neighbours: inner rerank {np.mean(inner['rerank']):.4f} judged {np.mean(inner['judged']):.4f} "
          f"(reference {np.mean(refs['rerank']):.4f} / {np.mean(refs['judged']):.4f})", flush=True)
    what = f"{len(rows)} pairs, {share:.1%} of them dense neighbours ({added} added over all pools)"
    return [_summary({"variant": "reference, judged setting", "what": ctx["recipe"].slug, "inner": refs["judged"]}, refs["judged"]),
            _summary({"variant": f"transfer + {k} dense neighbours", "what": what, "inner": inner["rerank"],
                      "seconds": round(time.time() - t0, 1)}, refs["rerank"]),
            _summary({"variant": f"transfer + {k} dense neighbours, judged setting", "what": "the same student",
                      "inner": inner["judged"]}, refs["judged"])]


def student_variants(ctx, names: list[str]) -> list[dict]:
    from distilrank.distill.ranking.stacking import fit_rank_stacker
    from distilrank.distill.signals import ranking_signals

    d, rows_out = ctx["data"], []
    recipe, mp = ctx["recipe"], ctx["shared"]["transfer"]["mpnet-bi"]
    ref = [_inner(ctx, _reference(ctx, d.cfg.seed)["rerank"], f) for f in ctx["folds"]]
    rows_out.append({"variant": "reference", "what": recipe.slug, "inner": ref})
    for name in names:
        t0 = time.time()
        if name in STUDENT_SETTINGS:
            z = _student(ctx, name, recipe, dataclasses.replace(d.cfg.student, **STUDENT_SETTINGS[name]), mp)["rerank"]
            inner = [_inner(ctx, z, f) for f in ctx["folds"]]
        elif name.startswith("temperature="):
            z = _student(ctx, name, dataclasses.replace(recipe, temperature=float(name.split("=")[1])), d.cfg.student, mp)["rerank"]
            inner = [_inner(ctx, z, f) for f in ctx["folds"]]
        elif name == "target=stack":
            inner = []
            for f in ctx["folds"]:
                r = d.rows_of("judged", f.train)
                stacker = fit_rank_stacker({n: v[r] for n, v in ctx["shared"]["judged"].items()}, d.tables["judged"].labels[r],
                                           d.groups("judged")[r], seed=d.cfg.seed)
                sig = ranking_signals([t.name for t in d.cfg.teachers], ctx["shared"], d.groups, stacker).combined("transfer", "stack")
                inner.append(_inner(ctx, _student(ctx, f"stack-fold{f.index}", dataclasses.replace(recipe, targets="stack"),
                                                  d.cfg.student, sig)["rerank"], f))
        else:
            continue
        rows_out.append({"variant": name, "what": "student", "inner": inner, "seconds": round(time.time() - t0, 1)})
        print(f"{name}: inner {np.mean(inner):.4f} (reference {np.mean(ref):.4f})", flush=True)
    return [_summary(r, ref) for r in rows_out]


def seeds_and_epochs(ctx, seeds: tuple[int, ...] = (0, 1, 2), epochs: int = 6) -> list[dict]:
    """The reference recipe retrained with each of ``seeds`` (the spread one retraining gives), and the same with
    ``epochs`` epochs instead of the section's (best epoch by validation loss, as always), per seed; both settings."""
    d, t0 = ctx["data"], time.time()
    mp, recipe = ctx["shared"]["transfer"]["mpnet-bi"], ctx["recipe"]
    ref, longer = {}, {}
    for s in seeds:
        ref[s] = _per_fold_both(ctx, _reference(ctx, s))
        longer[s] = _per_fold_both(ctx, _student(ctx, f"epochs={epochs}", recipe, dataclasses.replace(d.cfg.student, epochs=epochs),
                                                 mp, seed=s))
        print(f"seed {s}: reference {np.mean(ref[s]['rerank']):.4f} / {np.mean(ref[s]['judged']):.4f}, {epochs} epochs "
              f"{np.mean(longer[s]['rerank']):.4f} / {np.mean(longer[s]['judged']):.4f} (rerank / judged)", flush=True)
    rows = []
    for setting in ("rerank", "judged"):
        base = ref[seeds[0]][setting]
        for s in seeds:
            rows.append(_summary({"variant": f"reference, seed {s}{_tag(setting)}", "what": recipe.slug, "inner": ref[s][setting]}, base))
        for s in seeds:
            rows.append(_summary({"variant": f"epochs={epochs}, seed {s}{_tag(setting)}", "what": "student", "inner": longer[s][setting]},
                                 ref[s][setting]))
    rows[-1]["seconds"] = round(time.time() - t0, 1)
    return rows


def soups(ctx, seeds: tuple[int, ...] = (0, 1), members: int = 3) -> list[dict]:
    """Per seed, a soup of ``members`` students of the reference recipe (``[student] soup``: one start, each member
    its own data order, weights averaged) against the reference of the same seed; both settings."""
    d, t0 = ctx["data"], time.time()
    mp, recipe = ctx["shared"]["transfer"]["mpnet-bi"], ctx["recipe"]
    rows = []
    for s in seeds:
        ref = _per_fold_both(ctx, _reference(ctx, s))
        soup = _per_fold_both(ctx, _student(ctx, f"soup={members}", recipe, dataclasses.replace(d.cfg.student, soup=members), mp, seed=s))
        print(f"seed {s}: reference {np.mean(ref['rerank']):.4f} / {np.mean(ref['judged']):.4f}, soup of {members} "
              f"{np.mean(soup['rerank']):.4f} / {np.mean(soup['judged']):.4f} (rerank / judged)", flush=True)
        for setting in ("rerank", "judged"):
            rows.append(_summary({"variant": f"soup of {members}, seed {s}{_tag(setting)}", "what": f"{recipe.slug}, soup = {members}",
                                  "inner": soup[setting]}, ref[setting]))
    rows[-1]["seconds"] = round(time.time() - t0, 1)
    return rows


def full_size_soup(ctx, members: int = 3) -> list[dict]:
    """At full size (every transfer pair): a soup of ``members`` students of the reference recipe, its members (member 0
    is the ``soup = 1`` student) and the mean of the members' logits (an ensemble: ``members`` times the serving cost),
    each against member 0; both settings."""
    from distilrank.distill.ranking.students import student_scores

    d, t0 = ctx["data"], time.time()
    rows = ctx["trainer"].rows(None)
    mp, recipe = ctx["shared"]["transfer"]["mpnet-bi"], ctx["recipe"]
    soup = _per_fold_both(ctx, _student(ctx, f"soup={members}", recipe, dataclasses.replace(d.cfg.student, soup=members), mp, rows=rows))
    out = _student_dir(ctx, f"soup={members}", len(rows), d.cfg.seed)
    logits = [student_scores(out / "soup" / f"member-{i}", {s: d.tables[s] for s in ("judged", "rerank")}) for i in range(members)]
    member = [_per_fold_both(ctx, z) for z in logits]
    ensemble = _per_fold_both(ctx, {s: np.mean([z[s] for z in logits], axis=0) for s in ("judged", "rerank")})
    def both(r: dict[str, list[float]]) -> str:
        return f"{np.mean(r['rerank']):.4f}/{np.mean(r['judged']):.4f}"

    print(f"full size: members {' '.join(map(both, member))}, soup {both(soup)}, logit ensemble {both(ensemble)} (rerank/judged)",
          flush=True)
    rows_out, what = [], f"{recipe.slug}, {len(rows)} pairs"
    for setting in ("rerank", "judged"):
        mean = float(np.mean([np.mean(m[setting]) for m in member]))
        for i, m in enumerate(member):
            rows_out.append(_summary({"variant": f"full size, soup member {i}{_tag(setting)}", "what": what, "inner": m[setting]},
                                     member[0][setting]))
        for name, r in ((f"full size, soup of {members}", soup), (f"full size, mean logit of the {members} members", ensemble)):
            row = _summary({"variant": f"{name}{_tag(setting)}", "what": what, "inner": r[setting]}, member[0][setting])
            rows_out.append({**row, "minus_members_mean": row["mean"] - mean})
    rows_out[-1]["seconds"] = round(time.time() - t0, 1)
    return rows_out


def teacher_stacks(ctx) -> list[dict]:
    """Teacher level, both settings: mpnet-bi, MiniLM-bi and their z-stacks within each query's list (equal and 2:1
    weights; no BM25 inside: the blend adds it), each against mpnet-bi alone."""
    from distilrank.distill.ranking.stacking import RankStacker

    d, shared = ctx["data"], ctx["shared"]
    stacks = {"mpnet-bi": (["mpnet-bi"], [1.0]), "minilm-bi": (["minilm-bi"], [1.0]),
              "equal z-stack of mpnet-bi and minilm-bi": (["mpnet-bi", "minilm-bi"], [0.5, 0.5]),
              "2:1 z-stack of mpnet-bi and minilm-bi": (["mpnet-bi", "minilm-bi"], [2 / 3, 1 / 3])}
    inner = {}
    for name, (teachers, weights) in stacks.items():
        st = RankStacker(teachers, weights, fitted_on="fixed weights (no judgments)")
        inner[name] = _per_fold_both(ctx, {s: st.apply({t: shared[s][t] for t in teachers}, d.groups(s)) for s in ("judged", "rerank")})
    return [_summary({"variant": f"teacher: {name}{_tag(setting)}", "what": "teacher",
                      "inner": inner[name][setting]}, inner["mpnet-bi"][setting])
            for setting in ("rerank", "judged") for name in stacks]


def _mpnet_products(ctx, cache: str, ids: list[str], text, max_length: int) -> dict[str, np.ndarray]:
    """all-mpnet-base-v2 unit vectors of ``text(record)`` for each product id in ``ids`` (``max_length`` tokens), cached
    as ``work/<cache>`` and reused when it holds the same ids."""
    from distilrank.distill.config import resolve_base_model
    from distilrank.distill.teacher.biencoder import BiEncoder

    d, path = ctx["data"], ctx["work"] / cache
    if path.exists() and list((c := np.load(path))["ids"]) == ids:
        return dict(zip(ids, c["v"]))
    records = [d.catalogue.records[d.catalogue.position(i)] for i in ids]
    v = BiEncoder(resolve_base_model("all-mpnet-base-v2"), max_length=max_length).encode([text(r) for r in records])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, ids=np.array(ids), v=v)
    return dict(zip(ids, v))


def _query_cosines(ctx, vec: dict[str, np.ndarray], split: str) -> np.ndarray:
    """float32 per row of table ``split``: the cosine of the row's query (mpnet-bi, from the run's store) with ``vec`` of
    its product."""
    d = ctx["data"]
    qv = dict(zip(d.queries, d.embeddings["mpnet-bi"].vectors(d.queries)))
    t = d.tables[split]
    return np.array([float(qv[q] @ vec[i]) for q, i in zip(t.queries, t.extra["doc_id"])], np.float32)


def teacher_with_bullets(ctx) -> list[dict]:
    """mpnet over the run's document text vs over the same text + bullet points (max_length 128), teacher level."""
    d, t0 = ctx["data"], time.time()
    ids = sorted(set(d.tables["judged"].extra["doc_id"]) | set(d.tables["rerank"].extra["doc_id"]))

    def text(r: dict) -> str:
        head = " ".join(str(r[f]) for f in ("title", "brand", "color") if r.get(f))
        return head + ". " + str(r.get("bullet_points") or "").replace("\n", " ")

    z = _query_cosines(ctx, _mpnet_products(ctx, "mpnet-bullets-128.npz", ids, text, 128), "rerank")
    ref = [_inner(ctx, ctx["shared"]["rerank"]["mpnet-bi"], f) for f in ctx["folds"]]
    inner = [_inner(ctx, z, f) for f in ctx["folds"]]
    print(f"teacher with bullet points: inner {np.mean(inner):.4f} (mpnet over the document text {np.mean(ref):.4f})", flush=True)
    return [_summary({"variant": "teacher reference", "what": "mpnet-bi over the run's document text", "inner": ref}, ref),
            _summary({"variant": "teacher: mpnet over title+brand+color+bullet points", "what": "teacher", "inner": inner,
                      "seconds": round(time.time() - t0, 1)}, ref)]


def teacher_title(ctx) -> list[dict]:
    """mpnet over the product title alone, the z-stack of it and mpnet over the run's document text (equal weights) and
    the larger of the two cosines, teacher level, both settings, against mpnet over the document text."""
    from distilrank.distill.ranking.stacking import RankStacker

    d, t0, shared, splits = ctx["data"], time.time(), ctx["shared"], ("judged", "rerank")
    ids = [str(r[d.cfg.catalogue.id_field]) for r in d.catalogue.records]
    vec = _mpnet_products(ctx, "mpnet-title-64.npz", ids, lambda r: str(r.get("title") or ""), 64)
    title = {s: _query_cosines(ctx, vec, s) for s in splits}
    doc = {s: shared[s]["mpnet-bi"] for s in splits}
    stack = RankStacker(["title", "doc"], [0.5, 0.5], fitted_on="fixed weights (no judgments)")
    views = {"mpnet-bi over the document text": doc, "mpnet over the title alone": title,
             "equal z-stack of mpnet over the title and over the document text":
                 {s: stack.apply({"title": title[s], "doc": doc[s]}, d.groups(s)) for s in splits},
             "the larger of the two mpnet cosines": {s: np.maximum(title[s], doc[s]) for s in splits}}
    inner = {name: _per_fold_both(ctx, z) for name, z in views.items()}
    ref = inner["mpnet-bi over the document text"]
    rows = [_summary({"variant": f"teacher: {name}{_tag(setting)}", "what": "teacher", "inner": r[setting]}, ref[setting])
            for setting in ("rerank", "judged") for name, r in inner.items()]
    rows[-1]["seconds"] = round(time.time() - t0, 1)
    return rows


#: the query adapters tried: kind (``full``: q + A q, ``diag``: q + a * q), Adam steps, learning rate, L2 on A
ADAPTERS = (("diag", 100, 1e-2, 1e-3), ("diag", 100, 1e-3, 1e-3), ("full", 100, 1e-3, 1e-2), ("full", 100, 1e-3, 1e-1),
            ("full", 200, 1e-3, 1e-3), ("full", 100, 1e-4, 1e-2), ("full", 30, 1e-3, 1e-2))


def query_adapter(ctx, adapters=ADAPTERS, scale: float = 20.0) -> list[dict]:
    """mpnet-bi with a linear adapter on the query embedding (product embeddings frozen), fitted on judgments: ListNet
    (softmax of ``scale`` x cosine against the normalised ESCI gains) over each training query's judged products and
    BM25 top 100 (unjudged = gain 0), full batch, Adam, A = 0 at the start.  Cross-fitted inside each outer fold: the
    adapter fitted on 3 inner folds scores the 4th (the inner folds of :func:`_inner_both`), so no score comes from an
    adapter that saw its query; teacher level, both settings, against mpnet-bi zero-shot."""
    import torch

    from distilrank.distill.data.folds import query_folds
    from distilrank.grades import esci_gain

    d, t0, splits = ctx["data"], time.time(), ("judged", "rerank")
    store, tables = d.embeddings["mpnet-bi"], {s: d.tables[s] for s in splits}
    qv = dict(zip(d.queries, store.vectors(d.queries)))
    dv = {s: store.vectors(list(tables[s].texts)) for s in splits}
    gain = {s: esci_gain(np.array([d.grades[q].get(i, 0.0) for q, i in zip(t.queries, t.extra["doc_id"])], np.float64))
            for s, t in tables.items()}
    rows = {s: d.per_query(s, np.arange(len(tables[s])), d.queries) for s in splits}

    def lists(queries) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        out = []
        for q in queries:  # the judged products, then the BM25 top 100 products not judged (gain 0)
            picked = {}
            for s in splits:
                for r in rows[s][q]:
                    picked.setdefault(tables[s].extra["doc_id"][r], (dv[s][r], gain[s][r]))
            g = np.array([x[1] for x in picked.values()])
            if g.sum() > 0:
                out.append((torch.from_numpy(qv[q]), torch.from_numpy(np.stack([x[0] for x in picked.values()])),
                            torch.from_numpy(g / g.sum()).float()))
        return out

    def fit(queries, kind: str, steps: int, lr: float, l2: float) -> np.ndarray:
        torch.manual_seed(d.cfg.seed)
        dim = len(qv[d.queries[0]])
        a = torch.zeros((dim, dim) if kind == "full" else (dim,), requires_grad=True)
        opt, data = torch.optim.Adam([a], lr=lr), lists(queries)
        for _ in range(steps):
            loss = torch.zeros(())
            for q, docs, p in data:
                qa = q + (a @ q if kind == "full" else a * q)
                loss = loss - (p * torch.log_softmax(scale * (docs @ (qa / qa.norm())), 0)).sum()
            loss = loss / len(data) + l2 * (a**2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return a.detach().numpy()

    def scores(a: np.ndarray, kind: str) -> dict[str, np.ndarray]:
        out = {}
        for s in splits:
            q = np.stack([qv[x] for x in tables[s].queries])
            qa = q + (q @ a.T if kind == "full" else q * a)
            out[s] = ((qa / np.linalg.norm(qa, axis=1, keepdims=True)) * dv[s]).sum(1).astype(np.float32)
        return out

    ref = _per_fold_both(ctx, {s: ctx["shared"][s]["mpnet-bi"] for s in splits})
    result = []
    for kind, steps, lr, l2 in adapters:
        per_fold = []
        for f in ctx["folds"]:
            z = {s: np.zeros(len(tables[s]), np.float32) for s in splits}
            for inner in query_folds(list(f.train), d.cfg.distill.inner_folds, seed=d.cfg.seed):
                fitted = scores(fit(list(inner.train), kind, steps, lr, l2), kind)
                for s in splits:
                    r = d.rows_of(s, inner.test)
                    z[s][r] = fitted[s][r]
            per_fold.append(_inner_both(ctx, z["judged"], z["rerank"], f))
        name = f"teacher: mpnet-bi + {kind} query adapter ({steps} steps, lr {lr:g}, L2 {l2:g})"
        print(f"{name}: inner {np.mean([x[0] for x in per_fold]):.4f} / {np.mean([x[1] for x in per_fold]):.4f} "
              f"(zero-shot {np.mean(ref['rerank']):.4f} / {np.mean(ref['judged']):.4f}, rerank / judged)", flush=True)
        for i, setting in enumerate(("rerank", "judged")):
            result.append(_summary({"variant": f"{name}{_tag(setting)}", "what": "teacher", "inner": [x[i] for x in per_fold]},
                                   ref[setting]))
    result[-1]["seconds"] = round(time.time() - t0, 1)
    return result


def gold_finetune(ctx, epochs: int = 6, lr: float = 1e-4, scale: float = 2.0) -> list[dict]:
    """The shipped full-size student, and the same student with its MLP fine-tuned on inner-training judgments."""
    import torch

    from distilrank.distill.data.folds import query_folds
    from distilrank.distill.ranking.blend_fit import blended, fit_blend
    from distilrank.distill.ranking.evaluate import rerank_setting
    from distilrank.distill.student.predict import batch_tensors, predict_encoded
    from distilrank.distill.student.store import load_student
    from distilrank.distill.student.tokenizer import encode_pairs
    from distilrank.distill.student.train import listwise_loss

    d, t0 = ctx["data"], time.time()
    base = load_student(ctx["trainer"].student(ctx["recipe"], ctx["signals"], ctx["work"], pairs=None, seed=d.cfg.seed))
    t = d.tables["rerank"]
    enc = encode_pairs(base.tokenizer, t.queries, t.texts)
    grade = np.array([d.grades[q].get(i, 0.0) for q, i in zip(t.queries, t.extra["doc_id"])], np.float32)
    rows = d.per_query("rerank", np.arange(len(t)), d.queries)
    bm = d.per_query("rerank", d.bm25["rerank"], d.queries)

    def tuned(train: list[str]) -> np.ndarray:
        torch.manual_seed(d.cfg.seed)
        m = copy.deepcopy(base.model)
        m.train()
        opt = torch.optim.Adam(m.dense_parameters(), lr=lr)
        for e in range(epochs):
            order = np.random.default_rng(d.cfg.seed + e).permutation(len(train))
            for s in range(0, len(order), 8):
                batch = [train[i] for i in order[s : s + 8]]
                idx = np.concatenate([rows[q] for q in batch])
                g = np.concatenate([np.full(len(rows[q]), j) for j, q in enumerate(batch)])
                target = torch.from_numpy(np.stack([grade[idx] * scale, g], 1).astype(np.float32))
                loss = listwise_loss(m(*batch_tensors(enc, idx)).squeeze(1), target)
                opt.zero_grad()
                loss.backward()
                opt.step()
        return predict_encoded(m, enc)

    def held_out(z: np.ndarray, train: list[str], test: list[str]) -> dict[str, float]:
        model = d.per_query("rerank", z, d.queries)
        b, _ = fit_blend(d.judged_pool, bm, model, d.grades, train, d.cfg.eval.k)
        return {q: m["ndcg_esci"] for q, m in rerank_setting({q: d.judged_pool[q] for q in test}, blended(bm, model, b, test), d.grades, d.cfg.eval.k).items()}

    z0 = predict_encoded(base.model, enc)
    ref = [_inner(ctx, z0, f) for f in ctx["folds"]]  # the untuned student, by the run's own nested score
    inner = []
    for f in ctx["folds"]:  # the same inner folds as inner_cv_blend_score, each with its own fine-tuned model
        per_query: dict[str, float] = {}
        for inn in query_folds(list(f.train), d.cfg.distill.inner_folds, seed=d.cfg.seed):
            per_query.update(held_out(tuned(list(inn.train)), list(inn.train), list(inn.test)))
        inner.append(float(np.mean(list(per_query.values()))))
    print(f"gold fine-tune: inner {np.mean(inner):.4f} (untuned {np.mean(ref):.4f})", flush=True)
    what = f"MLP fine-tuned {epochs} epochs, lr {lr}, listwise on grade x {scale}"
    return [_summary({"variant": "full-size reference", "what": f"{ctx['recipe'].slug}, all transfer pairs, untuned", "inner": ref}, ref),
            _summary({"variant": "gold fine-tune", "what": what, "inner": inner, "seconds": round(time.time() - t0, 1)}, ref)]


def _summary(row: dict, ref: list[float]) -> dict:
    inner = [float(x) for x in row["inner"]]
    return {**row, "inner": inner, "mean": float(np.mean(inner)), "minus_reference": float(np.mean(inner) - np.mean(ref)),
            "folds_better": int(sum(x > r for x, r in zip(inner, ref)))}


#: the variants with a function of their own (each returns its rows), run in this order after :func:`student_variants`
OWN_VARIANTS = {"dense": with_dense, "teacher-bullets": teacher_with_bullets, "gold-finetune": gold_finetune,
                "seeds": seeds_and_epochs, "teacher-stacks": teacher_stacks, "soup": soups, "full-soup": full_size_soup,
                "teacher-title": teacher_title, "query-adapter": query_adapter}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/esci.toml", help="the ranking config of the finished run (as `make esci` names it: run from the repository root)")
    ap.add_argument("--pairs", type=int, default=300_000, help="transfer pairs of the student variants (the run's choice size)")
    ap.add_argument("--only", nargs="*", default=None, help="variant names to run (default: all)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "esci_student_variants.json"), help="results JSON")
    args = ap.parse_args(argv)
    from distilrank.atomic import write_json
    from distilrank.distill.data.folds import query_folds
    from distilrank.distill.ranking.pipeline import shared_teacher_scores, student_trainer
    from distilrank.distill.ranking.stacking import equal_stack
    from distilrank.distill.run import load_run_config
    from distilrank.distill.signals import ranking_signals
    from distilrank.distill.variants import StudentVariant
    from distilrank.plugin.connection import load_connection
    from distilrank.plugin.transport import Transport

    cfg = load_run_config(args.config, ())
    load, t0 = list(os.getloadavg()), time.time()
    from distilrank.distill.ranking.data import load_ranking_data

    data = load_ranking_data(cfg, Transport(load_connection(args.config)), log=lambda s: None, progress=False)
    shared = shared_teacher_scores(data, Path(cfg.out_dir), progress=False)
    trainer = student_trainer(data, Path(cfg.out_dir), progress=False, log=print)
    ship = Path(cfg.out_dir) / "final" / "ship.json"  # the run's shipped recipe; before the run has shipped, the committed one
    recipe = StudentVariant.from_dict(json.loads(ship.read_text())["recipe"] if ship.exists()
                                      else json.loads((ROOT / "bench" / "results" / "esci.json").read_text())["final"]["recipe"])
    ctx = {"data": data, "shared": shared, "trainer": trainer, "recipe": recipe, "pairs": args.pairs, "rows": trainer.rows(args.pairs),
           "signals": ranking_signals([t.name for t in cfg.teachers], shared, data.groups, equal_stack(list(shared["judged"]))),
           "folds": query_folds(data.queries, cfg.judgments.folds, seed=cfg.seed), "work": Path(cfg.out_dir) / "bench" / "student-variants"}
    names = args.only or [*STUDENT_SETTINGS, "temperature=0.5", "temperature=2", "target=stack", *OWN_VARIANTS]
    rows = student_variants(ctx, [n for n in names if n not in OWN_VARIANTS])
    for name, variant in OWN_VARIANTS.items():
        if name in names:
            rows += variant(ctx)
    out = {"protocol": f"inner-fold nDCG@{cfg.eval.k} (ESCI gains) of BM25 + model on each outer fold's training queries, "
                       f"blend fitted on {cfg.distill.inner_folds - 1} of {cfg.distill.inner_folds} inner folds",
           "config": Path(args.config).name, "pairs": len(ctx["rows"]), "recipe": recipe.slug, "variants": rows,
           "seconds": round(time.time() - t0, 1), "load_average": load, "load_average_after": list(os.getloadavg()), "cpus": os.cpu_count()}
    write_json(Path(args.out), out)
    for r in rows:
        print(f"{r['variant']:55s} {r['mean']:.4f}  {r['minus_reference']:+.4f}  better in {r['folds_better']}/5 folds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
