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

import dataclasses
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from distilrank.atomic import atomic_path, write_json
from distilrank.distill import api
from distilrank.distill.api import gold_section, student_configs
from distilrank.distill.config import RunConfig, StudentSection
from distilrank.distill.data.sentences import hold_out_sentences
from distilrank.distill.evaluation.report import format_summary
from distilrank.distill.student.model import StudentConfig
from distilrank.distill.student.store import load_student
from distilrank.distill.student.train import StudentTrainConfig
from distilrank.distill.targets import Stacker, average_logits, fit_stacker, soft_targets, temperature_sweep
from distilrank.errors import ConfigError
from distilrank.metrics import accuracy, agreement, bootstrap_ci, positives
from distilrank.pairs import Pairs
from distilrank.readers import read_pairs
from distilrank.sources import read_source
from distilrank.timing import best_of_seconds

Log = Callable[[str], None]
__all__ = ["run_pipeline", "prepare_data", "student_configs", "variant_configs", "Variant", "RunData"]


# --- 1. data ------------------------------------------------------------------


@dataclass
class RunData:
    """The labeled and unlabeled tables of one run.

    ``train`` is every labeled row the run may learn from (after the ``select`` sentences and their phrases
    were removed); the teachers see ``teacher_train``, the stacker ``holdout`` (disjoint parts of ``train``).
    ``evals`` maps split name -> labeled table the students are measured on (``select`` first when present,
    then ``dev``).
    """

    train: Pairs
    teacher_train: Pairs
    holdout: Pairs
    evals: dict[str, Pairs]
    transfer: Pairs
    info: dict


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


@dataclass
class TeacherSignals:
    """Teacher logits per split and how they combine: ``combined(split, how)`` for ``how`` a teacher name,
    ``"mean"`` or ``"stack"`` (the stacker's calibrated logit).  Every value is a raw logit ``[N]``."""

    names: list[str]
    logits: dict[str, dict[str, np.ndarray]]
    stacker: Stacker | None

    def combined(self, split: str, how: str) -> np.ndarray:
        z = np.stack([self.logits[split][n] for n in self.names])
        if how == "stack":
            if self.stacker is None:
                raise ValueError("combine = 'stack' needs the stacker holdout (data.stack_holdout)")
            return self.stacker.apply(z)
        if how == "mean":
            return average_logits(z)
        return self.logits[split][how]

    def signals(self) -> list[str]:
        """Every signal a student can learn from: each teacher, then the combinations."""
        combos = ["mean", "stack"] if self.stacker is not None else ["mean"]
        return self.names + (combos if len(self.names) > 1 else [])


def teacher_signals(cfg: RunConfig, data: RunData, logits: dict[str, dict[str, np.ndarray]], out: Path) -> TeacherSignals:
    """Fit the stacker on the holdout rows (when there are any) and write it to ``targets/stacker.json``."""
    names = [t.name for t in cfg.teachers]
    stacker = None
    if len(data.holdout):
        stacker = fit_stacker(np.stack([logits["holdout"][n] for n in names]), data.holdout.labels, names)
        write_json(out / "targets" / "stacker.json", stacker.to_dict())
    return TeacherSignals(names, logits, stacker)


# --- 3. students --------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One student to train: which targets, which loss, which start, which rows.

    ``combine`` is a teacher signal (see :class:`TeacherSignals`) or ``"gold"`` (trained on ``data.train``'s
    labels; ``temperature`` and ``loss`` then do not apply).  ``rows`` trains on the first ``rows`` rows of a
    fixed shuffle of the transfer set (the scale curve); ``None`` = all.
    """

    name: str
    combine: str
    temperature: float | None
    interactions: bool
    loss: str
    init: str
    rows: int | None = None
    embedding_dim: int | None = None  # None = the [student] section's
    trigrams: bool | None = None  # None = the [student] section's
    baseline: str | None = None  # the variant an ablation is compared with (paired), besides the gold-label student

    @property
    def gold(self) -> bool:
        return self.combine == "gold"


def student_variants(cfg: RunConfig, signals: TeacherSignals, n_transfer: int) -> dict[str, Variant]:
    """``main``, the gold-label baselines, one ablation per experiment of ``cfg.distill.experiments`` (each differs
    from ``main`` in one setting and names it as its ``baseline``), and the scale curve (``main`` on fewer rows).

    With ``distill.ablation_rows`` below the transfer-set size the ablations and their baseline (``main@N``) are
    trained on the first ``N`` rows of the shuffled transfer set, so the table compares like with like for less time.
    """
    s, d = cfg.student, cfg.distill
    main = Variant("main", d.combine, d.temperature, s.interactions, s.loss, s.init)
    gold = Variant("gold-labels-only", "gold", None, s.interactions, "bce", "random")
    out = {"main": main}
    exps = d.experiments
    if "gold" in exps:
        out[gold.name] = gold
    if "gold-init" in exps:
        out["gold-labels-only+init=teacher"] = replace(gold, name="gold-labels-only+init=teacher", init="teacher")
    ablations: dict[str, Variant] = {}
    if "temperature" in exps:
        for t in d.temperatures:
            if t != d.temperature or main.loss != "bce":
                ablations[f"T={t:g}"] = replace(main, temperature=t, loss="bce")
    if "combine" in exps:
        for how in signals.signals():
            if how != main.combine:
                ablations[f"combine={how}"] = replace(main, combine=how)
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


def variant_configs(section: StudentSection, v: Variant, vocab_size: int, seed: int) -> tuple[StudentConfig, StudentTrainConfig]:
    """Settings of ``v``: the section's, with the variant's changes.  Gold-label students run ``gold_epochs`` with
    the learning-rate schedule stretched to them (the same total decay from first to last epoch as the others)."""
    return student_configs(variant_section(section, v), vocab_size, seed=seed)


def variant_section(section: StudentSection, v: Variant) -> StudentSection:
    """The ``[student]`` section with the variant's changes (what :func:`distilrank.distill.api.train_student` trains)."""
    s = replace(section, interactions=v.interactions, embedding_dim=v.embedding_dim or section.embedding_dim,
                trigrams=section.trigrams if v.trigrams is None else v.trigrams, loss=v.loss)
    return gold_section(s) if v.gold else s


def student_tokenizer(cfg: RunConfig, data: RunData, out: Path):
    """The word-level student tokenizer, built once from the transfer set and train (``students/tokenizer.json``)."""
    return api.student_tokenizer(data.transfer.texts + data.transfer.queries + data.train.texts + data.train.queries,
                                 cfg.student, path=out / "students" / "tokenizer.json")


def _init_vectors(cfg: RunConfig, tokenizer, out: Path, dim: int, *, progress: bool | None) -> np.ndarray:
    """Teacher word vectors ``[vocab, dim]`` for the student vocabulary (:mod:`distilrank.distill.student.init`), cached as
    ``students/init-<dim>.npy``.  The teacher is the main signal's when it is one teacher, else the first one."""
    from distilrank.distill.student.init import teacher_word_vectors

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


def _setting_defaults() -> dict[str, dict]:
    """Field defaults of the three settings sections of ``settings.json`` (JSON-normalised)."""
    def of(cls: type) -> dict:
        return {f.name: json.loads(json.dumps(f.default)) for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}

    return {"variant": of(Variant), "model": of(StudentConfig), "train": of(StudentTrainConfig)}


def _reuse_student(sdir: Path, settings: dict) -> bool:
    """True when ``sdir`` holds a finished student trained with exactly ``settings``; False when it holds none (or
    an unfinished one with the same settings, which then resumes).  Raises :class:`ConfigError` when the directory
    was trained with other settings (a changed config must not silently reuse an old student)."""
    path = sdir / "settings.json"
    if path.exists():
        old, new = json.loads(path.read_text()), json.loads(json.dumps(settings))
        defaults = _setting_defaults()
        # a setting added after the student was trained reads as its default
        diff = sorted(f"{section}.{k}" for section in new for k in new[section]
                      if old.get(section, {}).get(k, defaults[section].get(k, dataclasses.MISSING)) != new[section][k])
        if diff:
            raise ConfigError(sdir, ", ".join(diff) or "settings",
                              "this student was trained with other settings; delete the directory or use another out_dir")
    elif (sdir / "state.pt").exists() or (sdir / "result.json").exists():
        raise ConfigError(sdir, "settings.json", "missing: cannot tell which settings this student was trained with")
    return (sdir / "result.json").exists()


def train_students(cfg: RunConfig, data: RunData, signals: TeacherSignals, variants: dict[str, Variant], tokenizer, out: Path,
                   *, progress: bool | None, log: Log) -> dict[str, Path]:
    """Train (or reuse) every variant's student; returns variant name -> student directory."""
    order = np.random.default_rng([cfg.seed, 7]).permutation(len(data.transfer))
    dirs = {}
    # smallest first: the scale curve and the ablations report early, the full-size students last
    for name, v in sorted(variants.items(), key=lambda kv: len(data.train) if kv[1].gold else (kv[1].rows or len(data.transfer))):
        sdir = out / "students" / name.replace("=", "-").replace("@", "-at-")
        dirs[name] = sdir
        section = variant_section(cfg.student, v)
        base, train_cfg = student_configs(section, tokenizer.get_vocab_size(), seed=cfg.seed)
        what = {k: val for k, val in asdict(v).items() if k not in ("name", "baseline")}  # what the student is trained on
        settings = {"variant": what, "model": base.to_dict(), "train": asdict(train_cfg)}
        if _reuse_student(sdir, settings):
            continue
        if v.gold:
            pairs, targets = data.train, positives(data.train.labels).astype(np.float32)
        else:
            z = signals.combined("transfer", v.combine)
            pairs, targets = data.transfer, (z if v.loss == "mse" else soft_targets(z, v.temperature))
            if v.rows is not None:
                sel = np.sort(order[: v.rows])
                pairs, targets = pairs.select(sel), targets[sel]
        init = _init_vectors(cfg, tokenizer, out, base.embedding_dim, progress=progress) if v.init == "teacher" else None
        write_json(sdir / "settings.json", settings)
        api.train_student(pairs, targets, sdir, section, tokenizer=tokenizer, seed=cfg.seed, progress=progress, init_embeddings=init,
                          on_epoch=lambda r, name=name: log(f"student {name}: epoch {r['epoch']}/{r['epochs']} train loss "
                                                            f"{r['train_loss']:.4f} val loss {r['val_loss']:.4f} "
                                                            f"({r['pairs_per_second']:.0f} pairs/s)"),
                          metadata={"variant": name, **asdict(v), "teachers": signals.names, "config": cfg.source})
        log(f"student {name}: trained on {len(pairs)} rows in {api.training_report(sdir)['seconds']:.0f} s")
    return dirs


# --- 4. evaluation ------------------------------------------------------------


def _paired_rows(name: str, baseline_name: str, correct: dict[str, np.ndarray], baseline: dict[str, np.ndarray], *,
                 seed: int) -> list[dict]:
    """``name`` minus ``baseline_name`` on each split: per-sentence correctness deltas, paired permutation p-value and
    95% bootstrap CI (accuracy as a fraction), right_only_* = sentences only one of the two gets right."""
    from distilrank.plugin.abtest.stats import paired_summary

    rows = []
    for split, c in correct.items():
        s = paired_summary(c - baseline[split], seed=seed)
        lo, hi = s.ci or (float("nan"), float("nan"))
        rows.append({"student": name, "baseline": baseline_name, "split": split, "delta_accuracy": s.mean, "ci_low": lo, "ci_high": hi,
                     "p_value": s.p_value, "right_only_this": s.wins, "right_only_baseline": s.losses, "n": s.n})
    return rows


def _onnx_ms_per_pair(student_dir: Path, pairs: Pairs) -> float:
    """ONNX Runtime milliseconds per pair, one pair per call on one thread (the ML Commons way), measured once per
    student and kept in its ``onnx_latency.json`` (a resumed run reports the same number)."""
    from distilrank.distill.export.onnx_graph import export_onnx
    from distilrank.plugin.serving_contract import ms_per_pair_single_calls, onnx_session

    cached = student_dir / "onnx_latency.json"
    if cached.exists():
        return float(json.loads(cached.read_text())["ms_per_pair"])
    student = load_student(student_dir)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(student.model, Path(tmp) / "model.onnx")
        ms = ms_per_pair_single_calls(onnx_session(path), student.tokenizer, pairs, n=100)
    write_json(cached, {"ms_per_pair": ms, "pairs": min(100, len(pairs)), "threads": 1})
    return ms


def evaluate_students(data: RunData, signals: TeacherSignals, variants: dict[str, Variant], dirs: dict[str, Path],
                      main_combine: str, *, seed: int) -> dict:
    """Every student on every eval split against its own teacher signal and the best teacher signal.

    Returns ``{"students": rows, "paired": rows, "teachers": rows, "logits": {split: {variant: [N]}}}``:
    accuracy with 95% bootstrap CI per split, recovery = student accuracy / teacher accuracy against the signal
    the student learned from (``own``; the main signal for gold-label students) and against the most accurate
    teacher signal on that split (``best``), agreement with its own teacher, ONNX ms per pair per architecture.
    """
    teacher_rows, best = [], {}
    for split, pairs in data.evals.items():
        for how in signals.signals():
            acc = accuracy(signals.combined(split, how), pairs.labels)
            teacher_rows.append({"teacher": how, "split": split, "accuracy": acc})
            if acc > best.get(split, ("", -1.0))[1]:
                best[split] = (how, acc)
    logits: dict[str, dict[str, np.ndarray]] = {split: {} for split in data.evals}
    correct: dict[str, dict[str, np.ndarray]] = {}  # variant -> split -> per-row 0/1 correctness
    latency: dict[str, float] = {}  # one measurement per architecture (equal graphs cost the same)
    rows = []
    for name, v in variants.items():
        student = load_student(dirs[name])
        arch = json.dumps(student.model.config.to_dict(), sort_keys=True)
        if arch not in latency:
            latency[arch] = _onnx_ms_per_pair(dirs[name], data.evals["dev"])
        row: dict = {"student": name, "targets": v.combine, "T": "-" if v.gold or v.loss == "mse" else v.temperature,
                     "loss": "bce" if v.gold else v.loss, "init": v.init, "interactions": v.interactions,
                     "train_rows": len(data.train) if v.gold else (v.rows or len(data.transfer))}
        own_signal = main_combine if v.gold else v.combine
        correct[name] = {}
        for split, pairs in data.evals.items():
            z = student.score(pairs)
            logits[split][name] = z
            c = correct[name][split] = ((z > 0) == positives(pairs.labels)).astype(np.float64)
            own_z = signals.combined(split, own_signal)
            acc, lo_hi = float(c.mean()), bootstrap_ci(c, resamples=2000, seed=seed)
            row.update({f"{split}_accuracy": acc, f"{split}_ci95": list(lo_hi),
                        f"{split}_recovery_own": acc / accuracy(own_z, pairs.labels), f"{split}_recovery_best": acc / best[split][1],
                        f"{split}_agreement": agreement(z, own_z)})
        row["onnx_ms_per_pair"] = latency[arch]
        rows.append(row)
    paired = []
    gold_name = next((n for n, v in variants.items() if v.gold and v.init == "random"), None)
    for name, v in variants.items():
        for base in ([gold_name] if gold_name and name != gold_name else []) + ([v.baseline] if v.baseline else []):
            paired += _paired_rows(name, base, correct[name], correct[base], seed=seed)
    return {"students": rows, "paired": paired, "teachers": teacher_rows, "best_teacher": best, "logits": logits}


def _scale_figure(points: list[tuple[int, float, float, float]], split: str) -> bytes:
    from distilrank.reporting import agg_pyplot, figure_png

    plt = agg_pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    n, acc, lo, hi = (np.array(x) for x in zip(*points))
    ax.errorbar(n, 100 * acc, yerr=[100 * (acc - lo), 100 * (hi - acc)], marker="o", capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel("transfer rows (log scale)")
    ax.set_ylabel(f"{split} accuracy (%)")
    ax.grid(alpha=0.3)
    return figure_png(fig)


def scale_curve(ev: dict, variants: dict[str, Variant], n_transfer: int, split: str) -> tuple[list[dict], bytes | None]:
    """Rows ``{transfer_rows, <split>_accuracy, ci}`` for ``main`` and its ``main@N`` runs, and their plot."""
    by_name = {r["student"]: r for r in ev["students"]}
    names = [n for n, v in variants.items() if n == "main" or (v.rows is not None and n.startswith("main@"))]
    if len(names) < 2:
        return [], None
    pts = sorted((variants[n].rows or n_transfer, by_name[n][f"{split}_accuracy"], *by_name[n][f"{split}_ci95"]) for n in names)
    rows = [{"transfer_rows": n, f"{split}_accuracy": a, "ci95": [lo, hi]} for n, a, lo, hi in pts]
    return rows, _scale_figure(pts, split)


# --- 5. the run ---------------------------------------------------------------


def _latency_per_100(score: Callable[[Pairs], np.ndarray], pairs: Pairs, repeats: int = 3) -> float:
    """Best-of-``repeats`` milliseconds to score 100 pairs as one batch."""
    sample = pairs.select(np.arange(min(100, len(pairs))))
    return 1000 * best_of_seconds(lambda: score(sample), repeats) * 100 / len(sample)


def plain_summary(ev: dict, own_teacher: str) -> str:
    """One plain sentence per eval split on what the main student's numbers mean."""
    by_name = {r["student"]: r for r in ev["students"]}
    main = by_name["main"]
    lines = []
    for split, (best_name, _) in ev["best_teacher"].items():
        gold = next((p for p in ev["paired"] if p["student"] == "main" and p["split"] == split and p["baseline"] == "gold-labels-only"), None)
        vs_gold = ""
        if gold is not None:
            verdict = "better than" if gold["ci_low"] > 0 else ("worse than" if gold["ci_high"] < 0 else "not distinguishable from")
            vs_gold = (f"; {verdict} the student trained on the gold labels alone ({100 * gold['delta_accuracy']:+.2f} points, "
                       f"95% CI {100 * gold['ci_low']:+.2f} to {100 * gold['ci_high']:+.2f}, p = {gold['p_value']:.3g})")
        lines.append(f"{split} ({_split_size(ev, split)} sentences): the distilled student is right on {100 * main[f'{split}_accuracy']:.2f}% "
                     f"(95% CI {100 * main[f'{split}_ci95'][0]:.2f}-{100 * main[f'{split}_ci95'][1]:.2f}), keeping "
                     f"{100 * main[f'{split}_recovery_own']:.1f}% of the teacher it learned from ({own_teacher}) and "
                     f"{100 * main[f'{split}_recovery_best']:.1f}% of the best teacher ({best_name}){vs_gold}.")
    return "\n".join(lines)


def _split_size(ev: dict, split: str) -> int:
    return len(next(iter(ev["logits"][split].values())))


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
    dirs = train_students(cfg, data, signals, variants, tokenizer, out, progress=progress, log=log)
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


def write_run_report(cfg: RunConfig, data: RunData, signals: TeacherSignals, variants: dict[str, Variant], ev: dict,
                     calib: list[dict], out: Path) -> dict:
    """The main student's evaluation on dev with every table of the run (``out/report``) and the run summary
    (without timings): :func:`distilrank.distill.api.evaluate_student` on the logits :func:`evaluate_students` computed."""
    dev = data.evals["dev"]
    dev_teacher = signals.combined("dev", cfg.distill.combine)
    speed = _speeds(cfg, out, dev)
    pick = "select" if "select" in data.evals else "dev"
    curve_rows, curve_png = scale_curve(ev, variants, len(data.transfer), pick)
    summary_text = plain_summary(ev, cfg.distill.combine)
    tables = {"Students": ev["students"], "Paired differences (per sentence): each student minus gold-labels-only, each ablation minus its baseline": ev["paired"],
              "Teachers": ev["teachers"], "Temperature (teacher calibration on dev)": calib,
              "CPU speed (1 process, this machine)": [speed], "Data": [data.info]}
    if curve_rows:
        tables["Scale curve (main student, same teacher and settings)"] = curve_rows
    figures = {"scale_curve.png": (curve_png, f"Main student {pick} accuracy (95% CI) against transfer-set size.")} if curve_png else None
    evaluated = api.evaluate_student(ev["logits"]["dev"]["main"], dev, teacher=dev_teacher, out_dir=out / "report",
                                     title=f"distilrank run: {Path(cfg.source).name}", extra_tables=tables, extra_figures=figures)
    return {"config": cfg.source, "out_dir": str(out), "data": data.info, "teachers": ev["teachers"],
            "best_teacher": ev["best_teacher"], "students": ev["students"], "paired": ev["paired"], "scale_curve": curve_rows,
            "main": evaluated["result"], "summary": summary_text, "temperature": calib,
            "stacker": signals.stacker.to_dict() if signals.stacker else None, "speed": speed, "report": evaluated["report"]}


def _speeds(cfg: RunConfig, out: Path, dev: Pairs) -> dict:
    from distilrank.distill.teacher.model import load_teacher

    first = cfg.teachers[0]
    student = load_student(out / "students" / "main")
    teacher = load_teacher(out / "teachers" / first.name / "best", device="cpu", max_length=first.max_length)
    speed = {"student_ms_per_100_pairs": _latency_per_100(student.score, dev), "teacher": first.name,
             "teacher_ms_per_100_pairs": _latency_per_100(teacher.score, dev)}
    speed["teacher_over_student"] = speed["teacher_ms_per_100_pairs"] / speed["student_ms_per_100_pairs"]
    return speed
