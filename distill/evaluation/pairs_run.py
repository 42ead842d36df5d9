"""Evaluation and report of a sentence-pair run (:mod:`distilrank.distill.pipeline`): every student on every eval
split against its teachers, paired tests against the gold-label student, the scale curve, CPU speeds, and the
run's report (``out_dir/report``) with a plain-language summary."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from distilrank.atomic import write_json
from distilrank.distill import api
from distilrank.distill.config import RunConfig
from distilrank.distill.run_data import RunData
from distilrank.distill.signals import TeacherSignals
from distilrank.distill.student.store import load_student
from distilrank.distill.variants import StudentVariant
from distilrank.metrics import accuracy, agreement, bootstrap_ci, positives
from distilrank.pairs import Pairs
from distilrank.timing import best_of_seconds


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


def evaluate_students(data: RunData, signals: TeacherSignals, variants: dict[str, StudentVariant], dirs: dict[str, Path],
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
        row: dict = {"student": name, "targets": v.targets, "T": "-" if v.gold or v.loss == "mse" else v.temperature,
                     "loss": "bce" if v.gold else v.loss, "init": v.init, "interactions": v.interactions,
                     "train_rows": len(data.train) if v.gold else (v.rows or len(data.transfer))}
        own_signal = main_combine if v.gold else v.targets
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


def scale_curve(ev: dict, variants: dict[str, StudentVariant], n_transfer: int, split: str) -> tuple[list[dict], bytes | None]:
    """Rows ``{transfer_rows, <split>_accuracy, ci}`` for ``main`` and its ``main@N`` runs, and their plot."""
    by_name = {r["student"]: r for r in ev["students"]}
    names = [n for n, v in variants.items() if n == "main" or (v.rows is not None and n.startswith("main@"))]
    if len(names) < 2:
        return [], None
    pts = sorted((variants[n].rows or n_transfer, by_name[n][f"{split}_accuracy"], *by_name[n][f"{split}_ci95"]) for n in names)
    rows = [{"transfer_rows": n, f"{split}_accuracy": a, "ci95": [lo, hi]} for n, a, lo, hi in pts]
    return rows, _scale_figure(pts, split)


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


def write_run_report(cfg: RunConfig, data: RunData, signals: TeacherSignals, variants: dict[str, StudentVariant], ev: dict,
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
