"""Subcommands of ``distilrank`` that live in the plugin package (``export``)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path


def cmd_export(args: argparse.Namespace) -> None:
    from distill.cli import _emit, _read
    from plugin.export import export_student

    metrics = None
    if args.metrics:
        data = json.loads(Path(args.metrics).read_text())
        result = data.get("result", data.get("main", data))
        metrics = {"student": result.get("student"), "teacher": result.get("teacher"), "recovery": result.get("recovery")}
    pairs = _read(args, args.parity_data) if args.parity_data else None
    quality = None
    if args.quality_data:
        from distill.config import DataSource
        from distill.pipeline import load_source

        quality = load_source(DataSource(path=args.quality_data, query_field=args.quality_query_field, text_field=args.quality_text_field,
                                         label_field=args.quality_label_field), require_labels=True)
    res = export_student(args.student, args.out, name=args.name, parity_pairs=pairs, tolerance=args.tolerance,
                         max_length=args.max_length or None, metrics=metrics, quantize=args.quantize == "int8", quality_pairs=quality)
    human = (f"exported {res.zip} ({res.zip_bytes:,} bytes, sha256 {res.sha256})\n"
             f"parity: max |torch - onnx| = {res.parity.max_abs_diff:.2e} over {res.parity.n_pairs} pairs (tolerance {res.parity.tolerance:g})\n"
             f"onnx runtime, 1 thread, one pair per call: {res.latency['onnx_ms_per_pair_single_call']:.3f} ms/pair\n"
             f"model card: {res.card_markdown}")
    if res.quantization:
        q = res.quantization
        human += (f"\nint8: accuracy {q['int8_accuracy']:.2f}% vs fp32 {q['fp32_accuracy']:.2f}%, {q['speedup']:.2f}x faster per call "
                  f"-> shipped {res.precision}")
    _emit(args, asdict(res), human)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the plugin's subcommands on the main ``distilrank`` parser."""
    from distill.cli import _add_data_args

    p = sub.add_parser("export", help="export a student to ONNX + tokenizer.json + ML Commons zip + model card, with a parity check")
    p.add_argument("--student", required=True, help="student directory (from 'student train' or 'run')")
    p.add_argument("--out", required=True)
    p.add_argument("--name", help="model name (default: the student directory name)")
    p.add_argument("--parity-data", help="pairs to check parity on (default: bundled SST-2 + Icecat + edge cases)")
    p.add_argument("--tolerance", type=float, default=1e-4)
    p.add_argument("--max-length", type=int, default=0, help="override the tokenizer's truncation length")
    p.add_argument("--metrics", help="eval.json or run.json whose metrics go into the model card")
    p.add_argument("--quantize", choices=["none", "int8"], default="none",
                   help="also build an int8 graph; shipped only if it loses < 0.2 accuracy points on --quality-data and is faster")
    p.add_argument("--quality-data", help="labeled pairs for the int8 quality gate (e.g. the dev set)")
    p.add_argument("--quality-query-field", default="query")
    p.add_argument("--quality-text-field", default="text")
    p.add_argument("--quality-label-field", default="label")
    _add_data_args(p, prefix="", labels=False)
    p.set_defaults(func=cmd_export)
