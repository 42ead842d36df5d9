"""``distilrank run CONFIG``: labeled data + unlabeled data -> teachers -> soft targets -> students -> report.

Every stage writes its outputs under ``out_dir`` and is skipped when they
already exist, so a killed run continues where it stopped::

    out_dir/
      data/transfer.jsonl               the transfer set (unlabeled + augmented)
      teachers/<name>/best/             fine-tuned teachers (distill.teacher.finetune)
      scores/<name>/<split>/            teacher logits per split (distill.teacher.scoring)
      targets/                          stacker.json, temperature.json
      students/<variant>/               students (distill.student.train)
      report/                           eval.json, report.md, report.html (+ plots)
      run.json                          summary: metrics per variant, timings, speed
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from distill.atomic import write_json
from distill.augment import augment
from distill.config import DataSource, RunConfig, StudentSection, resolve_base_model
from distill.data.pairs import Pairs
from distill.data.readers import read_amazon_reviews, read_pairs
from distill.evaluation.evaluate import evaluate_scores, format_summary
from distill.evaluation.metrics import positives
from distill.evaluation.report import write_report
from distill.student.model import StudentConfig
from distill.student.store import load_student
from distill.student.tokenizer import build_student_tokenizer, load_tokenizer, save_tokenizer
from distill.student.train import StudentTrainConfig, train_student
from distill.targets import average_logits, fit_stacker, soft_targets, temperature_sweep
from distill.teacher.finetune import TeacherTrainConfig, finetune_teacher
from distill.teacher.scoring import load_logits, score_transfer_set


def load_source(src: DataSource, *, require_labels: bool = False) -> Pairs:
    """Read one configured data source."""
    if src.format == "amazon-reviews" or (src.format == "auto" and Path(src.path).is_dir()):
        return read_amazon_reviews(src.path, sentences=src.sentences, limit=src.limit)
    return read_pairs(src.path, query_field=src.query_field or None, text_field=src.text_field,
                      label_field=src.label_field or None, format=src.format, require_labels=require_labels, limit=src.limit)


def _student_configs(section: StudentSection, vocab_size: int) -> tuple[StudentConfig, StudentTrainConfig]:
    model = StudentConfig(vocab_size=vocab_size, bigram_buckets=section.bigram_buckets, embedding_dim=section.embedding_dim,
                          hidden=list(section.hidden), interactions=section.interactions, dropout=section.dropout)
    train = StudentTrainConfig(epochs=section.epochs, batch_size=section.batch_size, lr=section.lr,
                               embedding_lr=section.embedding_lr, lr_decay=section.lr_decay)
    return model, train


def _latency_per_100(score: Callable[[Pairs], np.ndarray], pairs: Pairs, repeats: int = 3) -> float:
    """Best-of-``repeats`` milliseconds to score 100 pairs as one batch."""
    sample = pairs.select(np.arange(min(100, len(pairs))))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        score(sample)
        best = min(best, time.perf_counter() - t0)
    return 1000 * best * 100 / len(sample)


def run_pipeline(cfg: RunConfig, *, progress: bool | None = None, log: Callable[[str], None] = print) -> dict:
    """Run every stage of ``cfg``; return the summary also written to ``out_dir/run.json``."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_run = time.perf_counter()

    # 1. data ---------------------------------------------------------------
    t0 = time.perf_counter()
    train_all = load_source(cfg.data.train, require_labels=True)
    dev = load_source(cfg.data.dev, require_labels=True)
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(len(train_all))
    needs_holdout = cfg.distill.combine == "stack" or ("combine" in cfg.distill.experiments and len(cfg.teachers) > 1)
    n_hold = int(round(len(train_all) * cfg.data.stack_holdout)) if needs_holdout else 0
    holdout, teacher_train = train_all.select(np.sort(perm[:n_hold])), train_all.select(np.sort(perm[n_hold:]))
    transfer_path, manifest_path = out / "data" / "transfer.jsonl", out / "data" / "manifest.json"
    recipe = json.dumps({"data": asdict(cfg.data), "augment": asdict(cfg.augment), "seed": cfg.seed}, sort_keys=True)
    if transfer_path.exists() and manifest_path.exists() and json.loads(manifest_path.read_text()).get("recipe") == recipe:
        # Reuse the transfer set of an earlier run: teacher scores are keyed to its exact rows.
        transfer = read_pairs(transfer_path, label_field=None)
        n_base = json.loads(manifest_path.read_text())["transfer_unlabeled"]
        log(f"data: reusing {transfer_path}")
    else:
        parts = [train_all.without_labels() if s.use == "train" else load_source(s).without_labels() for s in cfg.data.transfer]
        base = Pairs.concat(parts or [train_all.without_labels()], source="transfer")
        pieces = [base]
        if cfg.augment.enabled:
            pieces.append(augment(base, n_per_example=cfg.augment.n_per_example, p_mask=cfg.augment.p_mask, p_swap=cfg.augment.p_swap,
                                  p_ngram=cfg.augment.p_ngram, seed=cfg.seed, max_rows=cfg.augment.max_rows))
        transfer = Pairs.concat(pieces, source="transfer+augmented")
        transfer.to_jsonl(transfer_path)
        n_base = len(base)
        write_json(manifest_path, {"recipe": recipe, "transfer_unlabeled": n_base, "transfer_total": len(transfer)})
    data_info = {"train": len(train_all), "teacher_train": len(teacher_train), "stack_holdout": len(holdout), "dev": len(dev),
                 "transfer_unlabeled": n_base, "transfer_augmented": len(transfer) - n_base, "transfer_total": len(transfer)}
    log(f"data: {json.dumps(data_info)}")
    timings["data"] = time.perf_counter() - t0

    # 2. teachers -----------------------------------------------------------
    t0 = time.perf_counter()
    teacher_results = {}
    for tc in cfg.teachers:
        tdir = out / "teachers" / tc.name
        if (tdir / "result.json").exists():
            teacher_results[tc.name] = json.loads((tdir / "result.json").read_text())
            log(f"teacher {tc.name}: already trained, reusing {tdir / 'best'}")
            continue
        res = finetune_teacher(resolve_base_model(tc.base), teacher_train, dev, tdir, progress=progress, config=TeacherTrainConfig(
            epochs=tc.epochs, batch_size=tc.batch_size, lr=tc.lr, max_length=tc.max_length, seed=tc.seed,
            max_steps=tc.max_steps or None, num_layers=tc.num_layers or None, mixed_precision=tc.mixed_precision))
        teacher_results[tc.name] = asdict(res)
        log(f"teacher {tc.name}: dev accuracy {res.best.get('accuracy', float('nan')):.4f} ({res.examples_per_second:.0f} examples/s)")
    timings["teachers"] = time.perf_counter() - t0

    # 3. teacher scores on dev, holdout and the transfer set ------------------
    t0 = time.perf_counter()
    splits = {"dev": dev, "transfer": transfer, **({"holdout": holdout} if len(holdout) else {})}
    logits: dict[str, dict[str, np.ndarray]] = {s: {} for s in splits}
    scoring_speed = {}
    for tc in cfg.teachers:
        for split, pairs in splits.items():
            sdir = out / "scores" / tc.name / split
            rep = score_transfer_set(out / "teachers" / tc.name / "best", pairs, sdir, batch_size=tc.score_batch_size,
                                     max_length=tc.max_length, precision=tc.mixed_precision, progress=progress)
            if split == "transfer" and rep["rows_scored"]:
                scoring_speed[tc.name] = rep["rows_per_second"]
            logits[split][tc.name] = load_logits(sdir)
    timings["scoring"] = time.perf_counter() - t0
    names = [t.name for t in cfg.teachers]

    # 4. soft targets ---------------------------------------------------------
    stacker = None
    if len(holdout) and len(names) > 0:
        stacker = fit_stacker(np.stack([logits["holdout"][n] for n in names]), holdout.labels, names)
        write_json(out / "targets" / "stacker.json", stacker.to_dict())

    def combined(split: str, how: str) -> np.ndarray:
        z = np.stack([logits[split][n] for n in names])
        if how == "stack":
            assert stacker is not None
            return stacker.apply(z)
        if how == "mean":
            return average_logits(z)
        return logits[split][how]

    main_how = cfg.distill.combine
    dev_teacher = combined("dev", main_how)
    calib = temperature_sweep(dev_teacher, dev.labels, sorted({*cfg.distill.temperatures, cfg.distill.temperature}))
    write_json(out / "targets" / "temperature.json", calib)

    # 5. students -------------------------------------------------------------
    t0 = time.perf_counter()
    tok_path = out / "students" / "tokenizer.json"
    if tok_path.exists():
        tokenizer = load_tokenizer(tok_path)
    else:
        tokenizer = build_student_tokenizer(transfer.texts + transfer.queries + train_all.texts + train_all.queries,
                                            vocab_size=cfg.student.vocab_size, min_count=cfg.student.min_count,
                                            max_length=cfg.student.max_length)
        save_tokenizer(tokenizer, tok_path)
    model_cfg, train_cfg = _student_configs(cfg.student, tokenizer.get_vocab_size())
    T = cfg.distill.temperature
    variants: dict[str, dict] = {"main": {"combine": main_how, "temperature": T, "data": "transfer", "interactions": model_cfg.interactions}}
    if "gold" in cfg.distill.experiments:
        variants["gold-labels-only"] = {"combine": "gold", "temperature": None, "data": "train", "interactions": model_cfg.interactions}
    if "temperature" in cfg.distill.experiments:
        for t in cfg.distill.temperatures:
            if t != T:
                variants[f"T={t:g}"] = {"combine": main_how, "temperature": t, "data": "transfer", "interactions": model_cfg.interactions}
    if "combine" in cfg.distill.experiments and len(names) > 1:
        for how in [*names, "mean", "stack"]:
            if how != main_how:
                variants[f"combine={how}"] = {"combine": how, "temperature": T, "data": "transfer", "interactions": model_cfg.interactions}
    if "interactions" in cfg.distill.experiments:
        variants["interactions" if not model_cfg.interactions else "no-interactions"] = {
            "combine": main_how, "temperature": T, "data": "transfer", "interactions": not model_cfg.interactions}

    rows, dev_scores = [], {}
    for name, v in variants.items():
        sdir = out / "students" / name.replace("=", "-")
        if v["data"] == "train":
            pairs, targets = train_all, positives(train_all.labels).astype(np.float32)
        else:
            pairs, targets = transfer, soft_targets(combined("transfer", v["combine"]), v["temperature"])
        mc = StudentConfig(**{**model_cfg.to_dict(), "interactions": v["interactions"]})
        if not (sdir / "result.json").exists():
            train_student(pairs, targets, tokenizer, sdir, model_config=mc, config=train_cfg, progress=progress,
                          metadata={"variant": name, **v, "teachers": names, "config": cfg.source})
        result = json.loads((sdir / "result.json").read_text())
        student = load_student(sdir)
        z = student.score(dev)
        dev_scores[name] = z
        # recovery and agreement are measured against the teacher signal this student learned from
        # (the main combination for the gold-label baseline)
        own_teacher = dev_teacher if v["combine"] in ("gold", main_how) else combined("dev", v["combine"])
        ev = evaluate_scores(dev, z, own_teacher)
        rows.append({"student": name, "targets": v["combine"], "T": "-" if v["temperature"] is None else v["temperature"],
                     "interactions": v["interactions"], "train_rows": len(pairs), "dev_accuracy": ev["student"]["accuracy"],
                     "dev_auc": ev["student"]["auc"], "teacher_accuracy": ev["teacher"]["accuracy"],
                     "recovery": ev["recovery"]["accuracy"], "agreement": ev["agreement"], "pairs_per_s": result["pairs_per_second"]})
        log(f"student {name}: dev accuracy {ev['student']['accuracy']:.4f} (recovery {100 * ev['recovery']['accuracy']:.1f}%)")
    timings["students"] = time.perf_counter() - t0

    # 6. report ---------------------------------------------------------------
    from distill.teacher.model import load_teacher

    main_student = load_student(out / "students" / "main")
    first_teacher = load_teacher(out / "teachers" / names[0] / "best", device="cpu", max_length=cfg.teachers[0].max_length)
    speed = {"student_ms_per_100_pairs": _latency_per_100(main_student.score, dev),
             f"teacher_{names[0]}_ms_per_100_pairs": _latency_per_100(first_teacher.score, dev)}
    speed["teacher_over_student"] = speed[f"teacher_{names[0]}_ms_per_100_pairs"] / speed["student_ms_per_100_pairs"]
    result = evaluate_scores(dev, dev_scores["main"], dev_teacher)
    signals = {n: logits["dev"][n] for n in names}
    if len(names) > 1:
        signals.update({f"combined ({how})": combined("dev", how) for how in (["mean", "stack"] if stacker is not None else ["mean"])})
    teacher_rows = []
    for label, z in signals.items():
        gold = evaluate_scores(dev, z)["student"]
        teacher_rows.append({"teacher": label, "dev_accuracy": gold["accuracy"], "dev_auc": gold["auc"]})
    paths = write_report(result, out / "report", title=f"distilrank run: {Path(cfg.source).name}", student_logits=dev_scores["main"],
                         teacher_logits=dev_teacher, labels=dev.labels,
                         extra_tables={"Students (SST-2-style dev)": rows, "Teachers": teacher_rows,
                                       "Temperature (teacher calibration on dev)": calib,
                                       "CPU speed (1 process, this machine)": [speed], "Data": [data_info]})
    timings["total"] = time.perf_counter() - t_run
    summary = {"config": cfg.source, "out_dir": str(out), "data": data_info, "teachers": teacher_rows, "students": rows,
               "main": result, "temperature": calib, "stacker": stacker.to_dict() if stacker else None, "speed": speed,
               "teacher_scoring_rows_per_s": scoring_speed, "timings_s": timings, "report": {k: str(v) for k, v in paths.items()}}
    write_json(out / "run.json", summary)
    log(format_summary(result))
    log(f"student {speed['student_ms_per_100_pairs']:.2f} ms / 100 pairs vs teacher {speed[f'teacher_{names[0]}_ms_per_100_pairs']:.1f} ms "
        f"({speed['teacher_over_student']:.0f}x faster); report: {paths['html']}")
    return summary
