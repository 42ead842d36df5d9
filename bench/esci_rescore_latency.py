"""Latency the ``distilrank`` rescorer adds on real product documents, side by side with the ML Commons reranks.

Run: .venv/bin/python bench/esci_rescore_latency.py --zip NEW.zip [--zip OLD.zip]
     [--text-source _source --text-source auto --text-source token_ids] [--depth 10 --depth 100 --depth 500]
     [--ml-commons] [--searches 60] [--url URL]

The ESCI catalogue (6,764 products of ``$DISTILRANK_DATA/esci-shopping``) is indexed as ``configs/esci.toml`` indexes it
(``distilrank_text`` = title + brand + color, a doc-values ``keyword``; multi-field BM25 over title^2, brand, color,
bullet_points, description). Every zip is registered (``distilrank plugin register``). Arms, per depth (the BM25 top
``depth`` rescored, 10 hits returned):

* each zip as a rescorer (``score_mode = blend``, ``normalization = min_max``, weights 0.5 / 0.5), once per
  ``--text-source``: ``_source`` (parse each hit's source), ``auto`` (the keyword's doc values here), ``token_ids``
  (ids written at index time by ``distilrank plugin tokenize-index`` into a binary doc-values field, one per zip;
  ``token_ids_field`` in the body);
* with ``--ml-commons``: the first zip and a MiniLM-L6-shaped cross-encoder (6 layers, hidden 384, the real
  all-MiniLM-L6-v2 tokenizer, random weights: the cost of a MiniLM rerank, not its quality) through ML Commons rerank
  pipelines over the same ``distilrank_text``.

For each of ``--searches`` real shopping queries, in rotating order: BM25 alone, then every arm. Added latency = the
arm's client wall time minus the BM25 search of the same query; p50/p99, and ratios from the same run. Beside it:
each zip's own cost for one window (one batched ONNX Runtime run over the first query's ``depth`` documents, 1 thread,
best of 20), with tokenization and without it (the ONNX run alone: what a rescore with token ids still pays); where
the rescorer's time goes per window (the plugin's stage timers, ``_stats`` ``stages``, each arm alone over the same
queries); and the machine's load average. Results: ``bench/results/esci_rescore_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
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
TEXT = "distilrank_text"


def _queries(n: int) -> list[str]:
    from distilrank.distill.ranking.pools import read_queries

    judged = [json.loads(line)["query"] for line in (DATA / "judgments-dev.jsonl").read_text().splitlines() if line.strip()]
    rest = read_queries(DATA / "queries-unlabeled.tsv", limit=4 * n)
    return list(dict.fromkeys(judged + rest))[:n]


def _body(q: str, depth: int, arm: dict | None) -> tuple[dict, str]:
    """The search body of ``arm`` (``None``: BM25 alone) and its search pipeline (``_none`` for all but ML Commons)."""
    from distilrank.plugin.catalogue_index import bm25_query
    from distilrank.plugin.pipelines import rerank_search_body
    from distilrank.plugin.rescore import rescore_search_body

    if arm is None:
        return {"size": 10, "query": bm25_query(q, FIELDS), "_source": False}, "_none"
    if arm["kind"] == "ml_commons":
        return {**rerank_search_body(q, size=10, query=bm25_query(q, FIELDS)), "_source": False}, arm["pipelines"][depth]
    source = arm["text_source"]
    body = rescore_search_body(q, model=arm["model_id"], fields=[TEXT], window_size=depth, size=10, score_mode="blend",
                               query_weight=0.5, model_weight=0.5, normalization="min_max", query=bm25_query(q, FIELDS),
                               text_source="auto" if source == "token_ids" else source, token_ids_field=arm.get("token_ids_field"))
    return {**body, "_source": False}, "_none"


def _timed(client, q: str, depth: int, arm: dict | None) -> float:
    body, pipeline = _body(q, depth, arm)
    t0 = time.perf_counter()
    client.search(index=INDEX, body=body, params={"search_pipeline": pipeline})
    ms = 1000 * (time.perf_counter() - t0)
    return ms


def _stages(t, model_id: str) -> dict:
    """The rescorer's stage timers of ``model_id`` on the node (``_stats``), summed over the node's loaded copies."""
    from distilrank.plugin import rescorer_api

    total: dict = {}
    for m in rescorer_api.loaded_models(t):
        if m.get("model_id") == model_id:
            for k, v in (m.get("stages") or {}).items():
                total[k] = total.get(k, 0) + v
    return total


def _per_window(before: dict, after: dict) -> dict:
    """Mean milliseconds per window of each stage between two ``_stages`` readings, and the token-id counters."""
    stages = [k[: -len("_ms")] for k in after if k.endswith("_ms")]
    windows = after.get("windows", 0) - before.get("windows", 0)
    out = {"windows": windows, **{s: (after[f"{s}_ms"] - before.get(f"{s}_ms", 0)) / windows if windows else None for s in stages}}
    for k in after:
        if k.startswith("token_ids_"):
            out[k] = after[k] - before.get(k, 0)
    return out


def _arms(t, args, queries: list[str], work: Path) -> dict[str, dict]:
    """Register every zip (and with ``--ml-commons`` deploy it and the MiniLM shape) and describe each arm."""
    from distilrank.plugin import api
    from distilrank.plugin.tokenize_index import tokenize_index

    arms: dict[str, dict] = {}
    for i, zp in enumerate(args.zip):
        ml = bool(args.ml_commons and i == 0)
        reg = api.register(t, zp, group="distilrank-bench-esci", name=f"bench-esci-{i}", deploy=ml, progress=False, smoke=False)
        name = Path(zp).name if Path(zp).name not in {a["zip_name"] for a in arms.values()} else f"{i}:{zp}"
        field = None
        if "token_ids" in args.text_source:
            field = f"distilrank_token_ids_{i}"
            tokenize_index(t, INDEX, zp, [TEXT], field=field, log=lambda m: None)
        for source in args.text_source:
            arms[f"{name} rescorer [{source}]"] = {"kind": "rescorer", "zip": str(zp), "zip_name": name, "text_source": source,
                                                   "model_id": reg["model_id"], "bytes": reg["bytes"],
                                                   "token_ids_field": field if source == "token_ids" else None}
        if ml:
            arms[f"{name} ML Commons rerank"] = {"kind": "ml_commons", "zip": str(zp), "zip_name": name, "model_id": reg["model_id"]}
    if args.ml_commons:
        from rerank_latency import minilm_zip

        zp = minilm_zip(work)
        reg = api.register(t, zp, group="distilrank-bench-esci", name="bench-esci-minilm", deploy=True, progress=False,
                           smoke=False, rescorer=False)
        arms["MiniLM-L6 shape ML Commons rerank"] = {"kind": "ml_commons", "zip": str(zp), "zip_name": "MiniLM-L6 shape",
                                                     "model_id": reg["model_id"]}
    for arm in arms.values():
        if arm["kind"] == "ml_commons":
            arm["pipelines"] = {}
            for d in [d for d in args.depth if d <= args.ml_commons_max_depth]:
                pname = f"distilrank-bench-esci-{arm['model_id'].lower()}-{d}"
                api.pipeline(t, pname, arm["model_id"], document_fields=[TEXT], depth=d, size=10, index=INDEX)
                arm["pipelines"][d] = pname
    return arms


def _run_depth(t, arms: dict[str, dict], queries: list[str], depth: int) -> dict:
    """Every arm at ``depth`` over ``queries`` (rotating order), then each rescorer arm alone for its stage timers."""
    names = [n for n in arms if arms[n]["kind"] == "rescorer" or depth in arms[n]["pipelines"]]
    for q in queries[:10]:  # warm-up: model loads, JIT, caches
        for n in names:
            _timed(t.client, q, depth, arms[n])
        _timed(t.client, q, depth, None)
    load_before = list(os.getloadavg())
    added: dict[str, list[float]] = {n: [] for n in names}
    base: list[float] = []
    for i, q in enumerate(queries):
        order = [None, *names]
        order = order[i % len(order):] + order[: i % len(order)]
        ms = {n: _timed(t.client, q, depth, None if n is None else arms[n]) for n in order}
        base.append(ms[None])
        for n in names:
            added[n].append(ms[n] - ms[None])
    out = {"depth": depth, "bm25_p50_ms": float(np.percentile(base, 50)), "load_average_before": load_before,
           "load_average_after": list(os.getloadavg()), "arms": {}}
    for n in names:
        a = np.array(added[n])
        out["arms"][n] = {"added_p50_ms": float(np.percentile(a, 50)), "added_p99_ms": float(np.percentile(a, 99))}
        if arms[n]["kind"] == "rescorer":
            before = _stages(t, arms[n]["model_id"])
            for q in queries:
                _timed(t.client, q, depth, arms[n])
            out["arms"][n]["stages_ms_per_window"] = _per_window(before, _stages(t, arms[n]["model_id"]))
    return out


def _model_cost(t, arms: dict[str, dict], query: str, depth: int) -> dict[str, dict]:
    """Each zip's own cost for the first query's window at ``depth``: with and without tokenization."""
    from rerank_latency import local_ms_batch

    from distilrank.plugin.catalogue_index import bm25_query

    hits = t.client.search(index=INDEX, body={"size": depth, "query": bm25_query(query, FIELDS), "_source": [TEXT]})["hits"]["hits"]
    texts = [h["_source"][TEXT] for h in hits]
    out = {}
    for arm in arms.values():
        if arm["zip_name"] not in out:
            zp = Path(arm["zip"])
            out[arm["zip_name"]] = {"with_tokenization_ms": local_ms_batch(zp, texts, query, tokenize=True),
                                    "onnx_run_only_ms": local_ms_batch(zp, texts, query, tokenize=False),
                                    "window": len(texts)}
    return out


def _report(result: dict) -> None:
    print(f"ESCI, {result['searches']} queries, BM25 multi-field first pass, rescorer blend + min_max, 10 hits returned "
          f"({os.cpu_count()} cores)")
    for d in result["depths"]:
        print(f"depth {d['depth']}: BM25 p50 {d['bm25_p50_ms']:.1f} ms, load average {d['load_average_before'][0]:.2f}")
        minilm = d["arms"].get("MiniLM-L6 shape ML Commons rerank", {}).get("added_p50_ms")
        for n, r in d["arms"].items():
            cost = result["model_cost"][str(d["depth"])].get(n.split(" rescorer")[0], {})
            extra = f"; {r['added_p50_ms'] / cost['onnx_run_only_ms']:.1f}x the model's ONNX run ({cost['onnx_run_only_ms']:.1f} ms)" \
                if cost and "rescorer" in n else ""
            vs = f"; MiniLM rerank / this = {minilm / r['added_p50_ms']:.0f}x" if minilm and "rescorer" in n else ""
            print(f"  {n}: +{r['added_p50_ms']:.1f} ms p50, +{r['added_p99_ms']:.1f} ms p99{extra}{vs}")
            st = r.get("stages_ms_per_window") or {}
            if st.get("windows"):
                print("    in the rescorer, ms per window: " + ", ".join(f"{k} {v:.2f}" for k, v in st.items()
                                                                        if k != "windows" and not k.startswith("token_ids_")
                                                                        and v) + (f"; docs from token ids {st['token_ids_used']}"
                                                                                  if st.get("token_ids_used") else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zip", action="append", required=True, help="a student zip (repeat: the first is the reference)")
    ap.add_argument("--text-source", action="append", choices=["auto", "_source", "stored", "doc_values", "token_ids"],
                    help="where the rescorer reads the model text (repeat to compare; default auto); token_ids: ids "
                         "written at index time by 'plugin tokenize-index'")
    ap.add_argument("--depth", action="append", type=int, help="rescore window (repeat; default 100)")
    ap.add_argument("--ml-commons", action="store_true", help="also the first zip and a MiniLM-L6 shape through ML Commons rerank")
    ap.add_argument("--ml-commons-max-depth", type=int, default=100,
                    help="deepest window the ML Commons arms run at (a MiniLM rerank of 500 hits takes seconds per search)")
    ap.add_argument("--searches", type=int, default=60, help="queries timed per arm and depth")
    ap.add_argument("--url", help="node URL (default: $OPENSEARCH_URL or the local test node)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "esci_rescore_latency.json"), help="JSON results")
    args = ap.parse_args()
    args.text_source = args.text_source or ["auto"]
    args.depth = args.depth or [100]
    from rerank_latency import node_url

    from distilrank.catalogue import DocumentText, read_catalogue
    from distilrank.plugin import api
    from distilrank.plugin.catalogue_index import index_catalogue

    url = node_url(args)
    t = api.connect(url=url, timeout=300)
    catalogue = read_catalogue(require_data("esci-shopping/products.jsonl"), id_field="asin")
    doc = DocumentText(fields=["title", "brand", "color"], max_chars=0, index_field=TEXT)
    index_catalogue(t, INDEX, catalogue, doc, recreate=True, log=lambda m: print(m, file=sys.stderr))  # this bench's own index
    queries = [q for q in _queries(2 * args.searches)  # queries BM25 finds something for
               if t.client.count(index=INDEX, body={"query": _body(q, 10, None)[0]["query"]})["count"] > 0][:args.searches]
    with tempfile.TemporaryDirectory(prefix="distilrank-bench-esci-") as tmp:
        arms = _arms(t, args, queries, Path(tmp))
        result = {"node": t.client.info()["version"]["number"], "url": url, "index": INDEX, "searches": len(queries),
                  "cpus": os.cpu_count(), "arms": {n: {k: v for k, v in a.items() if k != "pipelines"} for n, a in arms.items()},
                  "model_cost": {str(d): _model_cost(t, arms, queries[0], d) for d in args.depth},
                  "depths": [_run_depth(t, arms, queries, d) for d in args.depth]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    _report(result)
    print(f"results: {out}")


if __name__ == "__main__":
    main()
