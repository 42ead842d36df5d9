"""Latency the ``distilrank`` rescorer adds on real product documents, for several student zips side by side.

Run: .venv/bin/python bench/esci_rescore_latency.py --zip NEW.zip [--zip OLD.zip] [--text-source _source --text-source auto]
     [--depth 100] [--searches 100] [--url URL]

The ESCI catalogue (6,764 products of ``$DISTILRANK_DATA/esci-shopping``) is indexed as ``configs/esci.toml`` indexes it
(``distilrank_text`` = title + brand + color, multi-field BM25 over title^2, brand, color, bullet_points,
description; the model text is a doc-values ``keyword``).  Every zip is registered (ML Commons + the rescorer's copy, ``distilrank plugin register``).  For each
of ``--searches`` real shopping queries, in rotating order: BM25 alone (size 10), then each zip as a rescorer over
the BM25 top ``--depth`` with ``score_mode = blend`` and ``normalization = min_max`` (weights 0.5 / 0.5 in the body),
once per ``--text-source`` (where the rescorer reads the model text: ``auto`` = doc values here, ``_source``), each
returning 10 hits.  Added latency = the arm's client wall time minus the BM25 search of the same query; p50/p99
over the queries, and the ratio of each zip's p50 to the first zip's, from the same run.  Beside it: each zip's own
cost for one window (one batched ONNX Runtime run over the first query's ``--depth`` documents, tokenization included,
1 thread), where the rescorer's time goes per window (the plugin's own stage timers, ``_stats`` ``stages``, over the
same queries, each arm alone: reading texts, tokenizing, building tensors, the ONNX Runtime run, blend + sort) and the machine's load
average.  Results: ``bench/results/esci_rescore_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from distilrank.data_root import data_root, require_data

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "integration" / "cluster"))
sys.path.insert(0, str(ROOT / "bench"))
DATA = data_root() / "esci-shopping"
INDEX = "distilrank-esci"
FIELDS = ["title^2", "brand", "color", "bullet_points", "description"]


def _queries(n: int) -> list[str]:
    from distilrank.distill.ranking.pools import read_queries

    judged = [json.loads(line)["query"] for line in (DATA / "judgments-dev.jsonl").read_text().splitlines() if line.strip()]
    rest = read_queries(DATA / "queries-unlabeled.tsv", limit=4 * n)
    return list(dict.fromkeys(judged + rest))[:n]


def _body(q: str, depth: int, model: str | None, text_source: str = "auto") -> dict:
    from distilrank.plugin.catalogue_index import bm25_query
    from distilrank.plugin.rescore import rescore_search_body

    if model is None:
        return {"size": 10, "query": bm25_query(q, FIELDS), "_source": False}
    body = rescore_search_body(q, model=model, fields=["distilrank_text"], window_size=depth, size=10, score_mode="blend",
                               query_weight=0.5, model_weight=0.5, normalization="min_max", query=bm25_query(q, FIELDS),
                               text_source=text_source)
    return {**body, "_source": False}


def _timed(client, body: dict) -> float:
    t0 = time.perf_counter()
    client.search(index=INDEX, body=body, params={"search_pipeline": "_none"})
    return 1000 * (time.perf_counter() - t0)


def _stages(t, model_id: str) -> dict:
    """The rescorer's stage timers of ``model_id`` on the node (``_stats``), summed over the node's loaded copies."""
    from distilrank.plugin import rescorer_api

    total: dict = {}
    for m in rescorer_api.stats(t).get("models", []):
        if m.get("model_id") == model_id:
            for k, v in (m.get("stages") or {}).items():
                total[k] = total.get(k, 0) + v
    return total


def _per_window(before: dict, after: dict) -> dict:
    """Mean milliseconds per window of each stage between two ``_stages`` readings."""
    from_stats = [k[: -len("_ms")] for k in after if k.endswith("_ms")]
    windows = after.get("windows", 0) - before.get("windows", 0)
    return {"windows": windows, **{s: (after[f"{s}_ms"] - before.get(f"{s}_ms", 0)) / windows if windows else None for s in from_stats}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zip", action="append", required=True, help="a student zip (repeat: the first is the reference)")
    ap.add_argument("--text-source", action="append", choices=["auto", "_source", "stored", "doc_values"],
                    help="where the rescorer reads the model text (repeat to compare; default auto)")
    ap.add_argument("--depth", type=int, default=100, help="rescore window (BM25 hits rescored per search)")
    ap.add_argument("--searches", type=int, default=100, help="queries timed per arm")
    ap.add_argument("--url", help="node URL (default: $OPENSEARCH_URL or the local test node)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "esci_rescore_latency.json"), help="JSON results")
    args = ap.parse_args()
    from rerank_latency import local_ms_batch, node_url

    from distilrank.catalogue import DocumentText, read_catalogue
    from distilrank.plugin import api
    from distilrank.plugin.catalogue_index import index_catalogue

    url = node_url(args)
    t = api.connect(url=url, timeout=300)
    catalogue = read_catalogue(require_data("esci-shopping/products.jsonl"), id_field="asin")
    doc = DocumentText(fields=["title", "brand", "color"], max_chars=0, index_field="distilrank_text")
    index_catalogue(t, INDEX, catalogue, doc, recreate=True, log=lambda m: print(m, file=sys.stderr))  # this bench's own index
    queries = _queries(args.searches)
    arms = {}
    sources = args.text_source or ["auto"]
    for i, zp in enumerate(args.zip):
        reg = api.register(t, zp, group="distilrank-bench-esci", name=f"bench-esci-{i}", deploy=False, progress=False, smoke=False)
        hits = t.client.search(index=INDEX, body={"size": args.depth, "query": _body(queries[0], args.depth, None)["query"],
                                                  "_source": ["distilrank_text"]})["hits"]["hits"]
        texts = [h["_source"]["distilrank_text"] for h in hits]
        local = local_ms_batch(Path(zp), texts, query=queries[0])
        name = Path(zp).name if Path(zp).name not in {a["zip_name"] for a in arms.values()} else f"{i}:{zp}"
        for source in sources:
            arms[f"{name} [text_source {source}]"] = {"zip": str(zp), "zip_name": name, "text_source": source, "model_id": reg["model_id"],
                                                      "bytes": reg["bytes"], "local_ms_per_window": local}
    names = list(arms)
    for q in queries[:10]:  # warm-up: model loads, JIT, caches
        for n in names:
            _timed(t.client, _body(q, args.depth, arms[n]["model_id"], arms[n]["text_source"]))
        _timed(t.client, _body(q, args.depth, None))
    load_before = list(os.getloadavg())
    added: dict[str, list[float]] = {n: [] for n in names}
    base: list[float] = []
    for i, q in enumerate(queries):
        order = [None, *names]
        order = order[i % len(order):] + order[: i % len(order)]
        ms = {n: _timed(t.client, _body(q, args.depth, None) if n is None else _body(q, args.depth, arms[n]["model_id"], arms[n]["text_source"]))
              for n in order}
        base.append(ms[None])
        for n in names:
            added[n].append(ms[n] - ms[None])
    result = {"node": t.client.info()["version"]["number"], "url": url, "index": INDEX, "depth": args.depth, "searches": len(queries),
              "bm25_p50_ms": float(np.percentile(base, 50)), "arms": {}, "load_average_before": load_before,
              "load_average_after": list(os.getloadavg()), "cpus": os.cpu_count()}
    for n in names:  # the breakdown: each arm alone over the same queries, between two readings of the node's stage timers
        before = _stages(t, arms[n]["model_id"])
        for q in queries:
            _timed(t.client, _body(q, args.depth, arms[n]["model_id"], arms[n]["text_source"]))
        arms[n]["stages_ms_per_window"] = _per_window(before, _stages(t, arms[n]["model_id"]))
    ref = float(np.percentile(added[names[0]], 50))
    for n in names:
        a = np.array(added[n])
        result["arms"][n] = {**arms[n], "added_p50_ms": float(np.percentile(a, 50)), "added_p99_ms": float(np.percentile(a, 99)),
                             "p50_ratio_to_first": float(np.percentile(a, 50)) / ref if ref else None}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"BM25 p50 {result['bm25_p50_ms']:.1f} ms over {len(queries)} ESCI queries, rescore depth {args.depth}, blend + min_max "
          f"(load average {load_before[0]:.2f} on {os.cpu_count()} cores)")
    for n, r in result["arms"].items():
        print(f"  {n}: +{r['added_p50_ms']:.1f} ms p50, +{r['added_p99_ms']:.1f} ms p99 ({r['p50_ratio_to_first']:.2f}x the first); "
              f"model alone {r['local_ms_per_window']:.1f} ms per window")
        st = r["stages_ms_per_window"]
        if st.get("windows"):
            print("    inside the rescorer, ms per window: " + ", ".join(f"{k} {v:.2f}" for k, v in st.items() if k != "windows"))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
