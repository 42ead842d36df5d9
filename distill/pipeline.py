"""``distilrank run CONFIG``: labeled data + unlabeled data -> teachers -> soft targets -> students -> report.

Every stage writes its outputs under ``out_dir`` and is skipped when they
already exist, so a killed run continues where it stopped::

    out_dir/
      data/transfer.jsonl               the transfer set (unlabeled + augmented)
      teachers/<name>/best/             fine-tuned teachers (distilrank.distill.teacher.finetune)
      scores/<name>/<split>/            teacher logits per split (distilrank.distill.teacher.scoring)
      targets/                          stacker.json, temperature.json
      students/<variant>/               students (distilrank.distill.student.train)
      report/                           eval.json, report.md, report.html (+ plots)
      run.json                          summary: metrics per variant, timings, speed

Model selection is honest when ``data.select_sentences`` holds out whole train
sentences (:mod:`distilrank.distill.data.sentences`): every student is scored on them and
on dev, and each distilled student is compared with the gold-label student by a
paired test on each split (per-sentence correctness).  Choose settings on the
``select`` split; dev is reported, never tuned on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from distilrank.atomic import atomic_path, write_json
from distilrank.distill import api
from distilrank.distill.api import student_configs
from distilrank.distill.config import RunConfig, StudentSection
from distilrank.distill.data.sentences import hold_out_sentences
from distilrank.distill.evaluation.pairs_run import evaluate_students, write_run_report
from distilrank.distill.evaluation.report import format_summary
from distilrank.distill.run_data import RunData
from distilrank.distill.signals import TeacherSignals, pair_signals
from distilrank.distill.student.model import StudentConfig
from distilrank.distill.targets import fit_stacker, soft_targets, temperature_sweep
from distilrank.distill.variants import StudentVariant
from distilrank.formats.pairs import read_pairs
from distilrank.metrics import positives
from distilrank.pairs import Pairs
from distilrank.sources import read_source

Log = Callable[[str], None]
__all__ = ["run_pipeline", "prepare_data", "variant_configs"]


# --- 1. data ------------------------------------------------------------------


def _build_transfer(cfg: RunConfig, train: Pairs) -> tuple[Pairs, int]:
    """The transfer set (unlabeled sources, then their augmented variants) and how many rows are unaugmented."""
    parts = [train if s.use == "train" else read_source(s) for s in cfg.data.transfer]
    ts = api.build_transfer_set(parts or [train], cfg.augment, seed=cfg.seed)
    return ts.pairs, ts.unlabeled


def prepare_data(cfg: RunConfig, out: Path, log: Log) -> RunData:
    """Read the sources, hold out the ``select`` sentences and the stacker rows, build (or reuse) the transfer set."""
    train = read_source(cfg.data.train, require_labels=True)
    evals: dict[str, Pairs] = {}
    if cfg.data.select_sentences:
        train, evals["select"] = hold_out_sentences(train, cfg.data.select_sentences, seed=cfg.seed)
    evals["dev"] = read_source(cfg.data.dev, require_labels=True)
    perm = np.random.default_rng(cfg.seed).permutation(len(train))
    needs_holdout = cfg.distill.combine == "stack" or ("combine" in cfg.distill.experiments and len(cfg.teachers) > 1)
    n_hold = int(round(len(train) * cfg.data.stack_holdout)) if needs_holdout else 0
    holdout, teacher_train = train.select(np.sort(perm[:n_hold])), train.select(np.sort(perm[n_hold:]))

    transfer_path, manifest_path = out / "data" / "transfer.jsonl", out / "data" / "manifest.json"
    recipe = json.dumps({"data": asdict(cfg.data), "augment": asdict(cfg.augment), "seed": cfg.seed}, sort_keys=True)
    if transfer_path.exists() and manifest_path.exists() and json.loads(manifest_path.read_text()).get("recipe") == recipe:
        # Reuse the transfer set of an earlier run: teacher scores are keyed to its exact rows.
        transfer = read_pairs(transfer_path, label_field=None)
        n_base = json.loads(manifest_path.read_text())["transfer_unlabeled"]
        log(f"data: reusing {transfer_path}")
    else:
        transfer, n_base = _build_transfer(cfg, train)
        transfer.to_jsonl(transfer_path)
        write_json(manifest_path, {"recipe": recipe, "transfer_unlabeled": n_base, "transfer_total": len(transfer)})
    info = {"train": len(train), "teacher_train": len(teacher_train), "stack_holdout": len(holdout),
            **{split: len(p) for split, p in evals.items()},
            "transfer_unlabeled": n_base, "transfer_augmented": len(transfer) - n_base, "transfer_total": len(transfer)}
    log(f"data: {json.dumps(info)}")
    return RunData(train, teacher_train, holdout, evals, transfer, info)


# --- 2. teachers and their scores ---------------------------------------------


def train_teachers(cfg: RunConfig, data: RunData, out: Path, *, progress: bool | None, log: Log) -> dict[str, dict]:
    """Fine-tune every ``[[teachers]]`` entry on ``data.teacher_train``; a teacher with a ``result.json`` is reused.

    The fine-tuner keeps its best checkpoint on the ``select`` sentences when the run holds some out, else the
    last weights: dev never chooses anything.  Returns name -> fine-tuning result."""
    results = {}
    for tc in cfg.teachers:
        tdir = out / "teachers" / tc.name
        if (tdir / "result.json").exists():
            results[tc.name] = json.loads((tdir / "result.json").read_text())
            log(f"teacher {tc.name}: already trained, reusing {tdir / 'best'}")
            continue
        res = api.train_teacher(data.teacher_train, tdir, tc, dev=data.evals.get("select"), progress=progress)
        results[tc.name] = asdict(res)
        log(f"teacher {tc.name}: trained, {res.examples_per_second:.0f} examples/s"
            + (f", select accuracy {res.best['accuracy']:.4f}" if res.best else ""))
    return results


def score_splits(cfg: RunConfig, data: RunData, out: Path, *, progress: bool | None) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Teacher logits ``split -> teacher -> [N]`` for the eval splits, the stacker holdout and the transfer set
    (chunked and resumable), and the transfer-set scoring speed per teacher (rows/s)."""
    splits = {**data.evals, "transfer": data.transfer, **({"holdout": data.holdout} if len(data.holdout) else {})}
    logits: dict[str, dict[str, np.ndarray]] = {}
    checkpoints = {tc.name: out / "teachers" / tc.name / "best" for tc in cfg.teachers}
    for split, pairs in splits.items():
        scores = api.score_with_teachers(checkpoints, pairs, {n: out / "scores" / n / split for n in checkpoints},
                                         {tc.name: tc for tc in cfg.teachers}, progress=progress,
                                         engine=cfg.engine if split == "transfer" else None)
        logits[split] = dict(zip(scores.names, scores.logits))
        if split == "transfer":
            speed = {n: r["rows_per_second"] for n, r in scores.reports.items() if r["rows_scored"]}
    return logits, speed


def teacher_signals(cfg: RunConfig, data: RunData, logits: dict[str, dict[str, np.ndarray]], out: Path) -> TeacherSignals:
    """Fit the stacker on the holdout rows (when there are any) and write it to ``targets/stacker.json``."""
    names = [t.name for t in cfg.teachers]
    stacker = None
    if len(data.holdout):
        stacker = fit_stacker(np.stack([logits["holdout"][n] for n in names]), data.holdout.labels, names)
        write_json(out / "targets" / "stacker.json", stacker.to_dict())
    return pair_signals(names, logits, stacker)


# --- 3. students --------------------------------------------------------------


def student_variants(cfg: RunConfig, signals: TeacherSignals, n_transfer: int) -> dict[str, StudentVariant]:
    """``main``, the gold-label baselines, one ablation per experiment of ``cfg.distill.experiments`` (each differs
    from ``main`` in one setting and names it as its ``baseline``), and the scale curve (``main`` on fewer rows).

    With ``distill.ablation_rows`` below the transfer-set size the ablations and their baseline (``main@N``) are
    trained on the first ``N`` rows of the shuffled transfer set, so the table compares like with like for less time.
    """
    s, d = cfg.student, cfg.distill
    main = StudentVariant(name="main", targets=d.combine, temperature=d.temperature, interactions=s.interactions, loss=s.loss, init=s.init)
    gold = StudentVariant(name="gold-labels-only", targets="gold", interactions=s.interactions, loss="bce")
    out = {"main": main}
    exps = d.experiments
    if "gold" in exps:
        out[gold.name] = gold
    if "gold-init" in exps:
        out["gold-labels-only+init=teacher"] = replace(gold, name="gold-labels-only+init=teacher", init="teacher")
    ablations: dict[str, StudentVariant] = {}
    if "temperature" in exps:
        for t in d.temperatures:
            if t != d.temperature or main.loss != "bce":
                ablations[f"T={t:g}"] = replace(main, temperature=t, loss="bce")
    if "combine" in exps:
        for how in signals.signals():
            if how != main.targets:
                ablations[f"combine={how}"] = replace(main, targets=how)
    if "interactions" in exps:
        ablations["no-interactions" if main.interactions else "interactions"] = replace(main, interactions=not main.interactions)
    if "loss" in exps:
        other = "bce" if main.loss == "mse" else "mse"
        ablations[f"loss={other}"] = replace(main, loss=other)
    if "init" in exps:
        other = "random" if main.init == "teacher" else "teacher"
        ablations[f"init={other}"] = replace(main, init=other)
    if "trigrams" in exps:
        ablations["no-trigrams" if s.trigrams else "trigrams"] = replace(main, trigrams=not s.trigrams)
    if "wide" in exps:
        ablations[f"embedding_dim={2 * s.embedding_dim}"] = replace(main, embedding_dim=2 * s.embedding_dim)
    n = d.ablation_rows if d.ablation_rows is not None and d.ablation_rows < n_transfer else None
    base = "main" if n is None else f"main@{n}"
    if ablations and n is not None:
        out[base] = replace(main, name=base, rows=n)
    for name, v in ablations.items():
        full = name if n is None else f"{name}@{n}"
        out[full] = replace(v, name=full, rows=n, baseline=base)
    for size in d.scale_curve:
        if size < n_transfer:
            out.setdefault(f"main@{size}", replace(main, name=f"main@{size}", rows=size))
    return out


def variant_configs(section: StudentSection, v: StudentVariant, vocab_size: int, seed: int) -> tuple[StudentConfig, StudentSection]:
    """Settings of ``v``: the section's, with the variant's changes.  Gold-label students run ``gold_epochs`` with
    the learning-rate schedule stretched to them (the same total decay from first to last epoch as the others)."""
    return student_configs(v.section(section), vocab_size, seed=seed)


def student_tokenizer(cfg: RunConfig, data: RunData, out: Path):
    """The word-level student tokenizer, built once from the transfer set and train (``students/tokenizer.json``)."""
    return api.student_tokenizer(data.transfer.texts + data.transfer.queries + data.train.texts + data.train.queries,
                                 cfg.student, path=out / "students" / "tokenizer.json")


def _init_vectors(cfg: RunConfig, tokenizer, out: Path, dim: int, *, progress: bool | None) -> np.ndarray:
    """Teacher word vectors ``[vocab, dim]`` for the student vocabulary (:mod:`distilrank.distill.student.embedding_init`), cached as
    ``students/init-<dim>.npy``.  The teacher is the main signal's when it is one teacher, else the first one."""
    from distilrank.distill.student.embedding_init import teacher_word_vectors

    path = out / "students" / f"init-{dim}.npy"
    if path.exists():
        return np.load(path)
    names = [t.name for t in cfg.teachers]
    teacher = cfg.distill.combine if cfg.distill.combine in names else names[0]
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    vectors = teacher_word_vectors(out / "teachers" / teacher / "best", [w for w, _ in vocab], dim,
                                   seed=cfg.seed, progress=progress)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, vectors)
    return vectors


def train_variants(cfg: RunConfig, data: RunData, signals: TeacherSignals, variants: dict[str, StudentVariant], tokenizer, out: Path,
                   *, progress: bool | None, log: Log) -> dict[str, Path]:
    """Train (or reuse) every variant's student; returns variant name -> student directory."""
    from distilrank.distill.student.train import soup_tag

    order = np.random.default_rng([cfg.seed, 7]).permutation(len(data.transfer))
    dirs = {}
    # smallest first: the scale curve and the ablations report early, the full-size students last
    for name, v in sorted(variants.items(), key=lambda kv: len(data.train) if kv[1].gold else (kv[1].rows or len(data.transfer))):
        sdir = out / "students" / name.replace("=", "-").replace("@", "-at-")
        dirs[name] = sdir
        section = v.section(cfg.student)
        what = {k: val for k, val in asdict(v).items() if k not in ("name", "baseline")}  # what the student is trained on
        record = api.student_record(section, tokenizer.get_vocab_size(), seed=cfg.seed, trained_on=what)
        if api.reuse_student(sdir, record):
            continue
        if v.gold:
            pairs, targets = data.train, positives(data.train.labels).astype(np.float32)
        else:
            z = signals.combined("transfer", v.targets)
            pairs, targets = data.transfer, (z if v.loss == "mse" else soft_targets(z, v.temperature))
            if v.rows is not None:
                sel = np.sort(order[: v.rows])
                pairs, targets = pairs.select(sel), targets[sel]
        init = _init_vectors(cfg, tokenizer, out, section.embedding_dim, progress=progress) if v.init == "teacher" else None
        api.train_student(pairs, targets, sdir, section, tokenizer=tokenizer, seed=cfg.seed, progress=progress, init_embeddings=init,
                          trained_on=what,
                          on_epoch=lambda r, name=name: log(f"student {name}{soup_tag(r)}: epoch {r['epoch']}/{r['epochs']} train loss "
                                                            f"{r['train_loss']:.4f} val loss {r['val_loss']:.4f} "
                                                            f"({r['pairs_per_second']:.0f} pairs/s)"),
                          metadata={"variant": name, **asdict(v), "teachers": signals.names, "config": cfg.source})
        log(f"student {name}: trained on {len(pairs)} rows in {api.training_report(sdir)['seconds']:.0f} s")
    return dirs


# --- 4. evaluation ------------------------------------------------------------


# --- 5. the run ---------------------------------------------------------------


def run_pipeline(cfg: RunConfig, *, progress: bool | None = None, log: Log = print) -> dict:
    """Run every stage of ``cfg``; return the summary also written to ``out_dir/run.json``."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_run = t0 = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal t0
        timings[stage] = time.perf_counter() - t0
        t0 = time.perf_counter()

    data = prepare_data(cfg, out, log)
    lap("data")
    train_teachers(cfg, data, out, progress=progress, log=log)
    lap("teachers")
    logits, scoring_speed = score_splits(cfg, data, out, progress=progress)
    signals = teacher_signals(cfg, data, logits, out)
    lap("scoring")
    calib = temperature_sweep(signals.combined("dev", cfg.distill.combine), data.evals["dev"].labels,
                              sorted({*cfg.distill.temperatures, cfg.distill.temperature}))
    write_json(out / "targets" / "temperature.json", calib)
    tokenizer = student_tokenizer(cfg, data, out)
    variants = student_variants(cfg, signals, len(data.transfer))
    dirs = train_variants(cfg, data, signals, variants, tokenizer, out, progress=progress, log=log)
    lap("students")
    ev = evaluate_students(data, signals, variants, dirs, cfg.distill.combine, seed=cfg.seed)
    for r in ev["students"]:
        log(f"student {r['student']}: " + "  ".join(f"{s} accuracy {r[f'{s}_accuracy']:.4f} (recovery {100 * r[f'{s}_recovery_own']:.1f}% "
                                                       f"own, {100 * r[f'{s}_recovery_best']:.1f}% best)" for s in data.evals))
    lap("evaluation")
    summary = write_run_report(cfg, data, signals, variants, ev, calib, out)
    timings["total"] = time.perf_counter() - t_run
    summary.update({"teacher_scoring_rows_per_s": scoring_speed, "timings_s": timings})
    write_json(out / "run.json", summary)
    log(format_summary(summary["main"]))
    log(summary["summary"])
    speed = summary["speed"]
    log(f"student {speed['student_ms_per_100_pairs']:.2f} ms / 100 pairs vs teacher {speed['teacher_ms_per_100_pairs']:.1f} ms "
        f"({speed['teacher_over_student']:.0f}x faster, batch of 100, PyTorch CPU); {timings['total']:.0f} s in all; "
        f"report: {summary['report']['html']}")
    return summary
