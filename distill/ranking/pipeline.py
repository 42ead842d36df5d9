"""``distilrank run configs/esci.toml``: product-search distillation, evaluated as it ships (BM25 + student blend).

Stages (each writes under ``out_dir`` and is skipped when its output exists, so a killed run resumes)::

    out_dir/
      index.json, pools/, embeddings/    the data (:mod:`distilrank.distill.ranking.data`)
      scores/<teacher>/<split>/          zero-shot teacher scores of the three tables (judged, rerank, transfer)
      students/tokenizer.json            the student vocabulary (transfer queries + catalogue texts; no judged query)
      students/init-<teacher>-<dim>.npy  [student] init = "teacher": the word embeddings' start (a bi-encoder's view)
      students/<recipe>-<pairs>/         students that use no judgment: trained once, shared by every fold
      folds/fold-<i>/                    split.json, teachers/ (fine-tuned teachers), stacker.json, choice.json
                                         (every candidate recipe with its inner-fold score), blends.json, students/
                                         (fold-dependent and gold-only students), eval.json
      final/                             the recipe and blend chosen on every judged query: what ships
      report/                            report.md, report.html, eval.json
      run.json                           summary

Nothing chosen for a fold sees that fold's test queries: the stacker, the recipe (by nested inner folds) and every
blend are fitted on ``fold.train``; students learn from teacher scores on *unlabeled* queries only.  The stage
functions are :mod:`distilrank.distill.api`'s (``train_student``, ``gold_section``) and the blend is
:mod:`distilrank.plugin.blend`'s, the one the rescorer applies on the node.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from distilrank.atomic import write_json
from distilrank.distill.data.folds import QueryFold, check_disjoint, query_folds, split_queries
from distilrank.distill.ranking.blend_fit import fit_blend, inner_cv_blend_score
from distilrank.distill.ranking.config import RankingRunConfig
from distilrank.distill.ranking.data import RankingData, load_ranking_data
from distilrank.distill.ranking.evaluate import query_metrics, rerank_setting
from distilrank.distill.ranking.stacking import RankStacker, equal_stack, fit_rank_stacker
from distilrank.distill.ranking.students import student_scores, subset_rows, train_gold, train_recipe, word_init, write_choice
from distilrank.distill.signals import TeacherSignals, ranking_signals
from distilrank.distill.variants import StudentVariant
from distilrank.plugin.blend import BlendSettings, blend_window

if TYPE_CHECKING:
    from tokenizers import Tokenizer

Log = Callable[[str], None]
SPLITS = ("judged", "rerank", "transfer")
Scores = dict[str, dict[str, np.ndarray]]  # {split: {teacher: [N]}}


# --- teachers -----------------------------------------------------------------------------------------------------


def shared_teacher_scores(data: RankingData, out: Path, *, progress: bool | None) -> Scores:
    """Scores of the zero-shot teachers (bi-encoders, BM25) on the three tables, the same for every fold."""
    from distilrank.distill.ranking.teachers import score_pairs

    scores: Scores = {s: {} for s in SPLITS}
    for tc in data.cfg.teachers:
        for split in SPLITS:
            if tc.kind == "bm25":
                scores[split][tc.name] = data.bm25[split]
            elif tc.kind == "bi-encoder":
                scores[split][tc.name] = score_pairs(tc, data.tables[split], out / "scores" / tc.name / split, checkpoint=None,
                                                     embeddings=data.embeddings[tc.name], progress=progress)
    return scores


def fold_teacher_scores(data: RankingData, shared: Scores, ce_queries, fdir: Path, *, progress: bool | None, log: Log) -> Scores:
    """``shared`` plus each fine-tuned teacher, trained on ``ce_queries`` (judged + weak negatives) and scored on the tables."""
    from distilrank.distill.ranking.teachers import score_pairs, train_cross_encoder

    scores: Scores = {s: dict(v) for s, v in shared.items()}
    for tc in data.cfg.teachers:
        if tc.kind != "cross-encoder":
            continue
        t0 = time.perf_counter()
        ckpt = train_cross_encoder(tc, data.judged_and_negatives(ce_queries), fdir / "teachers" / tc.name, progress=progress)
        for split in SPLITS:
            scores[split][tc.name] = score_pairs(tc, data.tables[split], fdir / "scores" / tc.name / split, checkpoint=ckpt,
                                                 embeddings=None, progress=progress)
        log(f"{fdir.name}: teacher {tc.name} trained on {len(ce_queries)} queries and scored ({time.perf_counter() - t0:.0f}s)")
    return scores


def _fold_dependent(data: RankingData, target: str) -> bool:
    fine_tuned = {t.name for t in data.cfg.teachers if t.kind == "cross-encoder"}
    return target == "stack" or target in fine_tuned or (target == "stack-equal" and bool(fine_tuned))


def _signals(data: RankingData, scores: Scores, stacker: RankStacker) -> TeacherSignals:
    """The fold's teacher signals: each teacher, ``stack-equal`` and ``stack`` (``stacker``), within each query's pool."""
    return ranking_signals([tc.name for tc in data.cfg.teachers], scores, data.groups, stacker)


# --- students -----------------------------------------------------------------------------------------------------


@dataclass
class StudentTrainer:
    """Trains (once) and scores students of recipes at a size, shared or per fold (see the module doc); built by
    :func:`student_trainer`."""

    data: RankingData
    out: Path
    tokenizer: Tokenizer
    groups: np.ndarray
    progress: bool | None
    log: Log
    _init: tuple[str, np.ndarray] | None = field(default=None, init=False, repr=False)

    def rows(self, pairs: int | None) -> np.ndarray:
        return subset_rows(self.groups, pairs, seed=self.data.cfg.seed + 7)

    def init(self) -> tuple[str, np.ndarray] | None:
        """``[student] init = "teacher"``: ``(what, rows)``, the word embeddings' start from the first bi-encoder
        teacher (:func:`~distilrank.distill.ranking.students.word_init`), computed once per run; ``init = "random"``:
        ``None``."""
        cfg = self.data.cfg
        if cfg.student.init != "teacher":
            return None
        if self._init is None:
            name = next(t.name for t in cfg.teachers if t.kind == "bi-encoder")
            dim = cfg.student.embedding_dim
            rows = word_init(self.data.embeddings[name], self.tokenizer, dim, self.out / "students" / f"init-{name}-{dim}.npy",
                             seed=cfg.seed, progress=self.progress)
            self._init = (f"{name} word vectors", rows)
        return self._init

    def student(self, recipe: StudentVariant, signals: TeacherSignals, fdir: Path, *, pairs: int | None, seed: int) -> Path:
        """The trained student directory of ``recipe`` on the first ``pairs`` transfer pairs (``None``: all)."""
        rows = self.rows(pairs)
        name = f"{recipe.slug}-{len(rows)}" + (f"-seed{seed}" if seed != self.data.cfg.seed else "")
        home = fdir if _fold_dependent(self.data, recipe.targets) else self.out
        signal = signals.combined("transfer", recipe.targets)[rows]
        sub = self.data.tables["transfer"].select(rows)
        init = self.init()
        meta = {"teachers": [t.name for t in self.data.cfg.teachers], "config": self.data.cfg.source, **({"init": init[0]} if init else {})}
        return train_recipe(recipe, sub, signal, self.groups[rows], self.tokenizer, self.data.cfg.student,
                            home / "students" / name, seed=seed, progress=self.progress, log=self.log, metadata=meta,
                            init_embeddings=init[1] if init else None)

    def scores(self, student_dir: Path) -> dict[str, np.ndarray]:
        return student_scores(student_dir, {s: self.data.tables[s] for s in ("judged", "rerank")})


def student_trainer(data: RankingData, out: Path, *, progress: bool | None, log: Log) -> StudentTrainer:
    """The run's student trainer, with the student tokenizer built from the transfer queries and every product text
    (``out/students/tokenizer.json``, reused when it exists)."""
    from distilrank.distill.api import student_tokenizer

    texts = list(dict.fromkeys(data.tables["transfer"].queries)) + data.catalogue.texts(data.doc)
    tokenizer = student_tokenizer(texts, data.cfg.student, path=out / "students" / "tokenizer.json")
    return StudentTrainer(data, out, tokenizer, data.groups("transfer"), progress, log)


def candidate_recipes(cfg: RankingRunConfig) -> list[StudentVariant]:
    d = cfg.distill
    return [StudentVariant(targets=t, loss=loss, match_features=bool(m), temperature=d.temperature, init=cfg.student.init)
            for t, loss, m in itertools.product(d.targets, d.losses, d.match_features)]


def choose_recipe(data: RankingData, trainer: StudentTrainer, signals: TeacherSignals, queries, fdir: Path) -> StudentVariant:
    """The candidate with the best nested inner-fold score (BM25 blend fitted on the other inner folds) on ``queries``,
    ties to the simpler; every candidate and its score goes to ``fdir/choice.json`` and the log."""
    cfg = data.cfg
    recipes = candidate_recipes(cfg)
    if len(recipes) == 1:
        write_choice(fdir / "choice.json", [{"recipe": recipes[0].to_dict(), "inner_score": None}], recipes[0])
        return recipes[0]
    pool = data.judged_pool
    bm25 = data.per_query("rerank", data.bm25["rerank"], queries)
    rows = []
    for r in recipes:
        sdir = trainer.student(r, signals, fdir, pairs=cfg.distill.choice_pairs, seed=cfg.seed)
        model = data.per_query("rerank", trainer.scores(sdir)["rerank"], queries)
        res = inner_cv_blend_score(pool, bm25, model, data.grades, queries, k=cfg.eval.k, folds=cfg.distill.inner_folds, seed=cfg.seed)
        alone = float(np.mean([m["ndcg_esci"] for m in rerank_setting({q: pool[q] for q in queries}, model, data.grades, cfg.eval.k).values()]))
        rows.append({"recipe": r.to_dict(), "slug": r.slug, "inner_score": res["score"], "student_alone": alone, "student": str(sdir)})
        trainer.log(f"{fdir.name}: recipe {r.slug}: inner-fold nDCG@{cfg.eval.k} blend {res['score']:.4f} (student alone {alone:.4f})")
    best = max(rows, key=lambda x: (round(x["inner_score"], 4), -StudentVariant.from_dict(x["recipe"]).complexity()))
    chosen = StudentVariant.from_dict(best["recipe"])
    write_choice(fdir / "choice.json", rows, chosen)
    trainer.log(f"{fdir.name}: chosen recipe {chosen.slug}")
    return chosen


# --- evaluation ---------------------------------------------------------------------------------------------------


def eval_system(data: RankingData, queries, judged_z: np.ndarray, rerank_z: np.ndarray, blend: BlendSettings | None) -> dict:
    """Per-query metrics of one system on ``queries`` in the three settings; with ``blend``, the system's scores are
    blended with BM25 within each query's list, as the rescorer does within its window."""
    k = data.cfg.eval.k
    jz, jb = data.per_query("judged", judged_z, queries), data.per_query("judged", data.bm25["judged"], queries)
    jl = data.per_query("judged", data.tables["judged"].labels, queries)
    rz, rb = data.per_query("rerank", rerank_z, queries), data.per_query("rerank", data.bm25["rerank"], queries)

    def mix(first: np.ndarray, model: np.ndarray) -> np.ndarray:
        return model if blend is None else blend_window(first, model, blend)

    judged = {q: query_metrics(mix(jb[q], jz[q]), jl[q], k) for q in queries}
    rerank = rerank_setting({q: data.judged_pool[q] for q in queries}, {q: mix(rb[q], rz[q]) for q in queries}, data.grades, k)
    masks = {q: np.array([d in data.grades[q] for d in data.judged_pool[q]], bool) for q in queries}
    condensed = rerank_setting({q: [d for d, m in zip(data.judged_pool[q], masks[q]) if m] for q in queries},
                               {q: mix(rb[q][masks[q]], rz[q][masks[q]]) for q in queries}, data.grades, k)
    return {"judged": judged, "rerank": rerank, "condensed": condensed}


def _blend(data: RankingData, model_rerank: np.ndarray, queries) -> tuple[BlendSettings, list[dict]]:
    return fit_blend(data.judged_pool, data.per_query("rerank", data.bm25["rerank"], queries),
                     data.per_query("rerank", model_rerank, queries), data.grades, queries, data.cfg.eval.k)


# --- one fold -----------------------------------------------------------------------------------------------------


def _split(data: RankingData, fold: QueryFold, fdir: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(teacher-training queries, stacker queries)`` of the fold, recorded in ``split.json``: with a fine-tuned
    teacher the stacker gets ``stack_fraction`` of the training queries the teacher never saw; else all of them."""
    cfg = data.cfg
    if any(t.kind == "cross-encoder" for t in cfg.teachers) and len(fold.train) > 1:
        ce_queries, stack_queries = split_queries(fold.train, cfg.judgments.stack_fraction, seed=cfg.seed + fold.index)
    else:
        ce_queries, stack_queries = (), tuple(fold.train)
    check_disjoint(ce_queries, stack_queries)
    check_disjoint(fold.train, fold.test)
    write_json(fdir / "split.json", {"fold": fold.index, "teacher_train": list(ce_queries), "stacker": list(stack_queries),
                                     "test": list(fold.test)})
    return ce_queries, stack_queries


def _fit_stacker(data: RankingData, scores: Scores, queries) -> RankStacker:
    rows = data.rows_of("judged", queries)
    g = data.groups("judged")[rows]
    return fit_rank_stacker({n: z[rows] for n, z in scores["judged"].items()}, data.tables["judged"].labels[rows], g, seed=data.cfg.seed)


def run_fold(data: RankingData, trainer: StudentTrainer, shared: Scores, fold: QueryFold, fdir: Path, *, evaluate: bool,
             progress: bool | None, log: Log) -> dict:
    """Stacker, recipe, students and blends chosen on ``fold.train``; every system evaluated on ``fold.test`` when
    ``evaluate``.  Returns ``{"recipe", "student", "blend", "stacker", ["eval"]}``."""
    cfg = data.cfg
    ce_queries, stack_queries = _split(data, fold, fdir)
    scores = fold_teacher_scores(data, shared, ce_queries, fdir, progress=progress, log=log)
    stacker = _fit_stacker(data, scores, stack_queries)
    write_json(fdir / "stacker.json", stacker.to_dict())
    signals = _signals(data, scores, stacker)
    recipe = choose_recipe(data, trainer, signals, fold.train, fdir)
    sdir = trainer.student(recipe, signals, fdir, pairs=None, seed=cfg.seed)
    _link(fdir / "students" / "distilled", sdir)
    st = trainer.scores(sdir)
    blend, grid = _blend(data, st["rerank"], fold.train)
    stacked = {s: signals.combined(s, "stack") for s in ("judged", "rerank")}
    t_blend, _ = _blend(data, stacked["rerank"], fold.train)
    blends = {"student": blend.to_dict(), "teacher stacked": t_blend.to_dict(), "grid": grid}
    result = {"recipe": recipe.to_dict(), "student": str(sdir), "blend": blend.to_dict(), "stacker": stacker.to_dict()}
    if not evaluate:
        write_json(fdir / "blends.json", blends)
        return result
    test = fold.test
    systems = {"BM25": eval_system(data, test, data.bm25["judged"], data.bm25["rerank"], None)}
    for tc in cfg.teachers:
        if tc.kind != "bm25":
            systems[f"teacher {tc.name}"] = eval_system(data, test, scores["judged"][tc.name], scores["rerank"][tc.name], None)
    systems["teacher stacked"] = eval_system(data, test, stacked["judged"], stacked["rerank"], None)
    systems["teacher stacked + BM25"] = eval_system(data, test, stacked["judged"], stacked["rerank"], t_blend)
    systems["student"] = eval_system(data, test, st["judged"], st["rerank"], None)
    systems["student + BM25"] = eval_system(data, test, st["judged"], st["rerank"], blend)
    for size in cfg.distill.scale_curve:
        if size < len(data.tables["transfer"]):
            sc = trainer.scores(trainer.student(recipe, signals, fdir, pairs=size, seed=cfg.seed))
            b, _ = _blend(data, sc["rerank"], fold.train)
            systems[f"student + BM25 ({len(trainer.rows(size))} pairs)"] = eval_system(data, test, sc["judged"], sc["rerank"], b)
    if cfg.distill.gold_student:
        gdir = train_gold(data.judged_and_negatives(fold.train), trainer.tokenizer, cfg.student, fdir / "students" / "gold-only",
                          seed=cfg.seed, progress=progress, log=log, init=trainer.init())
        g = trainer.scores(gdir)
        systems["gold-only student"] = eval_system(data, test, g["judged"], g["rerank"], None)
        gb, _ = _blend(data, g["rerank"], fold.train)
        systems["gold-only student + BM25"] = eval_system(data, test, g["judged"], g["rerank"], gb)
    write_json(fdir / "blends.json", blends)
    result["eval"] = {setting: {name: per[setting] for name, per in systems.items()} for setting in ("judged", "rerank", "condensed")}
    write_json(fdir / "eval.json", result["eval"])
    return result


def seed_spread(data: RankingData, trainer: StudentTrainer, shared: Scores, folds: list[QueryFold], recipe: StudentVariant,
                log: Log) -> dict:
    """The shipped recipe retrained at full size with the run's seed and each of ``distill.seeds``; for every seed, BM25 +
    student evaluated by the same folds (blend fitted on each fold's training queries).  ``{setting: {"per_seed",
    "mean", "std", "min", "max"}}``; empty when the recipe depends on the folds (one student per fold and seed)."""
    cfg = data.cfg
    if _fold_dependent(data, recipe.targets):
        log(f"seed spread: skipped, recipe {recipe.slug} is trained per fold")
        return {}
    per_seed: dict[str, list[dict]] = {"judged": [], "rerank": []}
    for seed in [cfg.seed, *cfg.distill.seeds]:
        signals = _signals(data, shared, equal_stack(list(shared["judged"])))  # fold-independent: no fitted stacker used
        sc = trainer.scores(trainer.student(recipe, signals, trainer.out, pairs=None, seed=seed))
        pooled: dict[str, dict[str, float]] = {"judged": {}, "rerank": {}}
        for fold in folds:
            b, _ = _blend(data, sc["rerank"], fold.train)
            res = eval_system(data, fold.test, sc["judged"], sc["rerank"], b)
            for setting in pooled:
                pooled[setting].update({q: m["ndcg_esci"] for q, m in res[setting].items()})
        for setting, per_q in pooled.items():
            per_seed[setting].append({"seed": seed, "ndcg_esci": float(np.mean(list(per_q.values())))})
        log(f"seed spread: seed {seed}: BM25 + student nDCG@{cfg.eval.k} judged {per_seed['judged'][-1]['ndcg_esci']:.4f}, "
            f"rerank {per_seed['rerank'][-1]['ndcg_esci']:.4f}")
    out = {}
    for setting, rows in per_seed.items():
        v = np.array([r["ndcg_esci"] for r in rows])
        out[setting] = {"recipe": recipe.slug, "per_seed": rows, "mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                        "min": float(v.min()), "max": float(v.max())}
    return out


def _link(link: Path, target: Path) -> None:
    """``link`` -> ``target`` (relative symlink), replaced atomically."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(link.name + ".tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(target, link.parent))
    os.replace(tmp, link)


# --- the run ------------------------------------------------------------------------------------------------------


def export_shipped(final: dict, out: Path, log: Log) -> str:
    """The shipped student as an ML Commons / rescorer zip (parity-checked) whose model card carries the fitted blend,
    so ``distilrank plugin register`` stores the blend with the model; returns the zip's path."""
    from distilrank.distill.export import export_student

    zips = sorted(out.glob("*.zip"))
    if zips:
        return str(zips[0])
    res = export_student(final["student"], out, name="distilrank-esci-student", blend=final["blend"])
    log(f"final: exported {res.zip} (parity max |torch - onnx| {res.parity.max_abs_diff:.1e}); blend {final['blend']}")
    return str(res.zip)



def run_ranking(cfg: RankingRunConfig, transport, *, progress: bool | None = None, log: Log = print) -> dict:
    """Run every stage of a ranking config; return the summary also written to ``out_dir/run.json``."""
    from distilrank.distill.ranking.report import summarize, write_ranking_report

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_run = time.perf_counter()
    data = load_ranking_data(cfg, transport, log, progress=progress)
    log(f"data: {len(data.catalogue)} products, {len(data.queries)} judged queries, "
        f"{len(data.tables['transfer'])} transfer pairs over {len(data.transfer_pool)} unlabeled queries")
    shared = shared_teacher_scores(data, out, progress=progress)
    trainer = student_trainer(data, out, progress=progress, log=log)
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
        fold_results.append(run_fold(data, trainer, shared, fold, out / "folds" / f"fold-{fold.index}", evaluate=True,
                                     progress=progress, log=log))
        log(f"fold {fold.index}: done in {time.perf_counter() - t0:.0f}s")
    final = None
    if cfg.distill.final_student:  # what ships: recipe, stacker and blend chosen on every judged query
        final = run_fold(data, trainer, shared, QueryFold(len(folds), tuple(data.queries), ()), out / "final", evaluate=False,
                         progress=progress, log=log)
        final["export"] = export_shipped(final, out / "final" / "export", log)
        write_json(out / "final" / "ship.json", final)
    seeds = seed_spread(data, trainer, shared, folds, StudentVariant.from_dict(final["recipe"]), log) if final and cfg.distill.seeds else {}
    summary_serve = None
    if cfg.serve.enabled:
        from distilrank.distill.ranking.serve import serve_and_compare

        summary_serve = serve_and_compare(cfg, transport, out, log)
    summary = summarize(cfg, protocol, fold_results, final, data, seconds=time.perf_counter() - t_run, seeds=seeds)
    if summary_serve is not None:
        summary["serve"] = summary_serve
    paths = write_ranking_report(summary, out / "report")
    summary["report"] = {k: str(v) for k, v in paths.items()}
    write_json(out / "run.json", summary)
    for line in summary["headline"]:
        log(line)
    log(f"report: {paths['html']}")
    return summary


__all__ = ["StudentTrainer", "eval_system", "run_fold", "run_ranking"]
