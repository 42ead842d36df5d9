"""Concurrent search load on a real OpenSearch node: the rerank pipeline (depth 100) vs BM25 alone.

Run: .venv/bin/python bench/load.py [--duration 15] [--clients 1,4,16,64] [--depth 100] [--url URL]
(the machine's load average is recorded beside the numbers; nothing else on the machine is paused or signalled).

Setup (not timed): the real Icecat catalogue (19,406 product titles, BM25 on ``title``) indexed on 127.0.0.1, the
default-architecture distilrank student (random weights: latency does not depend on them, see
``bench/rerank_latency.py``) registered, deployed and smoke-tested with ``distilrank plugin``'s API, and the rerank
pipeline ``oversample(depth/10) -> rerank(ml_opensearch) -> truncate_hits`` created. Queries: 50 one/two-word
queries from catalogue titles that match at least ``depth`` products.

For each mode (``bm25``: ``size 10``, no pipeline; ``rerank``: ``size 10`` through the pipeline, so ``depth`` hits are
scored per search) and each number of concurrent clients (threads, each with its own connection and no retries so
every rejection is counted), the clients search back to back for ``--duration`` seconds. Reported per cell:
throughput (successful searches/s), p50/p99 latency of the successful ones (ms), errors by kind (HTTP status + what
the node says is full, timeouts) and the node's thread pool rejections (``search``, ``opensearch_ml_*``) during the
cell. Saturation = the smallest number of clients after which more clients add less than 10% throughput. When a
cell had HTTP 429s it is run again through the distilrank transport with its default retries (backoff on 429), to
show what the helpers make of it. Results: ``runs/bench/load.json`` and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "integration" / "cluster"))
sys.path.insert(0, str(ROOT / "bench"))

PIPELINE = "distilrank-bench-load"


def error_kind(exc: BaseException) -> str:
    """A short label for a failed search: ``HTTP 429 (ML Commons thread pool 'x' is full)``, ``timeout``, ..."""
    from distilrank.plugin.transport import ClusterError, overload_cause

    if isinstance(exc, ClusterError):
        if exc.status == 429:
            return f"HTTP 429 ({overload_cause(exc.reason)})"
        if exc.status is None:
            return "timeout" if "no answer" in str(exc) else "connection"
        return f"HTTP {exc.status} ({str(exc).splitlines()[0].split(': ', 1)[-1][:80]})"
    return type(exc).__name__


def pool_rejections(t) -> dict[str, int]:
    """Rejected-task counters of the search and ML Commons thread pools, summed over the nodes."""
    stats = t.request("GET", "/_nodes/stats/thread_pool")["nodes"]
    out: Counter = Counter()
    for node in stats.values():
        for name, pool in node["thread_pool"].items():
            if name == "search" or name.startswith("opensearch_ml"):
                out[name] += pool.get("rejected", 0)
    return dict(out)


def run_cell(url: str, index: str, queries: list[str], mode: str, clients: int, duration: float, timeout: float,
             retries: int = 0) -> dict:
    """``clients`` threads searching back to back for ``duration`` s; returns throughput, latencies and errors."""
    from distilrank.plugin import api
    from distilrank.plugin.pipelines import rerank_search_body

    lat: list[float] = []
    errors: Counter = Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + duration

    def worker(n: int) -> None:
        t = api.connect(url=url, retries=retries, timeout=timeout)
        i = n * 7
        while time.monotonic() < stop_at:
            q = queries[i % len(queries)]
            i += 1
            if mode == "bm25":
                body, params = {"size": 10, "query": {"match": {"title": q}}}, {"search_pipeline": "_none"}
            else:
                body, params = rerank_search_body(q, size=10, fields=["title"]), {"search_pipeline": PIPELINE}
            t0 = time.perf_counter()
            try:
                hits = t.request("POST", f"/{index}/_search", body, params=params)["hits"]["hits"]
                ms = 1000 * (time.perf_counter() - t0)
                with lock:
                    lat.append(ms) if len(hits) == 10 else errors.update(["short result"])
            except Exception as exc:  # noqa: BLE001 - every failure is counted by kind
                with lock:
                    errors[error_kind(exc)] += 1

    from distilrank.plugin import api as _api

    probe = _api.connect(url=url)
    before = pool_rejections(probe)
    t_start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.monotonic() - t_start
    after = pool_rejections(probe)
    a = np.array(lat) if lat else np.array([np.nan])
    return {"mode": mode, "clients": clients, "retries": retries, "seconds": round(wall, 2), "ok": len(lat),
            "qps": round(len(lat) / wall, 2), "p50_ms": round(float(np.percentile(a, 50)), 1),
            "p99_ms": round(float(np.percentile(a, 99)), 1), "errors": dict(errors),
            "rejected": {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) - before.get(k, 0)}}


def saturation(cells: list[dict]) -> int | None:
    """Smallest client count after which the next count adds < 10% throughput (``None`` if it kept scaling)."""
    rows = sorted(cells, key=lambda c: c["clients"])
    for a, b in zip(rows, rows[1:]):
        if b["qps"] < 1.10 * a["qps"]:
            return a["clients"]
    return None


def setup(url: str, depth: int, work: Path) -> tuple[str, list[str], dict]:
    """Index the catalogue (reused when complete), register + deploy the student, create the pipeline."""
    from rerank_latency import INDEX, build_index, catalogue, pick_queries, student_zips

    from distilrank.plugin import api

    t = api.connect(url=url)
    products = catalogue()
    client = t.client
    if not client.indices.exists(index=INDEX) or client.count(index=INDEX)["count"] != len(products):
        build_index(client, products)
    fp32, _ = student_zips([p["title"] for p in products], work)
    reg = api.register(t, fp32, group="distilrank-bench", name="bench-load-student", deploy=True, progress=False, rescorer=False)
    api.pipeline(t, PIPELINE, reg["model_id"], document_fields=["title"], depth=depth, size=10, index=INDEX)
    queries = pick_queries(client, products, 50, min_hits=depth, seed=1)
    return INDEX, queries, {"model_id": reg["model_id"], "products": len(products), "zip_bytes": fp32.stat().st_size}


def table(cells: list[dict]) -> str:
    lines = ["| mode | clients | retries | searches/s | p50 ms | p99 ms | errors | node rejections |", "|---|---|---|---|---|---|---|---|"]
    for c in cells:
        errs = ", ".join(f"{k}: {v}" for k, v in c["errors"].items()) or "0"
        rej = ", ".join(f"{k}: {v}" for k, v in c["rejected"].items()) or "0"
        lines.append(f"| {c['mode']} | {c['clients']} | {c['retries']} | {c['qps']} | {c['p50_ms']} | {c['p99_ms']} | {errs} | {rej} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="node URL (default OPENSEARCH_URL, else the local dev node, started if needed)")
    ap.add_argument("--duration", type=float, default=15.0, help="seconds of searching per (mode, clients) cell")
    ap.add_argument("--clients", default="1,4,16,64", help="comma-separated numbers of concurrent clients")
    ap.add_argument("--depth", type=int, default=100, help="hits reranked per search")
    ap.add_argument("--timeout", type=float, default=30.0, help="client read timeout per search, seconds")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench" / "load.json"), help="JSON results")
    args = ap.parse_args(argv)
    from rerank_latency import node_url

    url = node_url(args)
    counts = [int(c) for c in args.clients.split(",") if c]
    with tempfile.TemporaryDirectory() as work:
        index, queries, info = setup(url, args.depth, Path(work))
    print(f"[load] {info['products']:,} products, student {info['model_id']} ({info['zip_bytes']:,} bytes), depth {args.depth}, "
          f"{len(queries)} queries, {args.duration:g} s per cell", file=sys.stderr)
    cells: list[dict] = []
    load_before = list(os.getloadavg())
    for mode in ("bm25", "rerank"):
        for n in counts:
            cell = run_cell(url, index, queries, mode, n, args.duration, args.timeout)
            print(f"[load] {json.dumps(cell)}", file=sys.stderr)
            cells.append(cell)
            if any(k.startswith("HTTP 429") for k in cell["errors"]):
                cells.append(run_cell(url, index, queries, mode, n, args.duration, args.timeout, retries=3))
                print(f"[load] with retries: {json.dumps(cells[-1])}", file=sys.stderr)
    sat = {m: saturation([c for c in cells if c["mode"] == m and c["retries"] == 0]) for m in ("bm25", "rerank")}
    result = {"url": url, "depth": args.depth, "duration_s": args.duration, **info, "cells": cells, "saturation_clients": sat,
              "load_average_before": load_before, "load_average_after": list(os.getloadavg())}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(cells))
    print(f"\nsaturation (clients after which +<10% throughput): {sat}; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
