"""Concurrent search load on a real OpenSearch cluster: BM25 alone, the ML Commons rerank pipeline and the distilrank
rescorer, at one rerank depth (default 100).

Run: .venv/bin/python bench/load.py [--duration 15] [--clients 1,4,16,64] [--depth 100] [--modes bm25,rerank,rescorer]
     [--url URL[,URL...]]
(the machine's load average is recorded beside the numbers; nothing else on the machine is paused or signalled).
``bench/load_nodes.py`` runs the same cells on one node and on three nodes side by side.

Setup (not timed): the real Icecat catalogue (19,406 product titles, BM25 on ``title``) indexed (reused when complete
with the asked shard and replica counts), the default-architecture distilrank student (random weights: latency does
not depend on them, see ``bench/rerank_latency.py``) registered with ``distilrank plugin``'s API: uploaded to the
``distilrank`` rescorer plugin for ``rescorer``, deployed and smoke-tested in ML Commons for ``rerank``, whose
pipeline ``oversample(depth/10) -> rerank(ml_opensearch) -> truncate_hits`` is created. Queries: 50 one/two-word
queries from catalogue titles that match at least ``depth`` products.

Modes (every search returns ``size 10``): ``bm25``: no pipeline, no rescore; ``rerank``: through the pipeline, so
``depth`` hits are scored per search by ML Commons; ``rescorer``: ``"rescore": {"window_size": depth, "distilrank":
{"model": <student id>, "query_text": q, "fields": ["title"]}}``, the window scored by the rescorer plugin on each
shard. Each mode starts with 30 untimed searches spread over the nodes (JIT, caches, the model loading), then for
each number of concurrent clients (threads, each with its own connection and no retries so every rejection is
counted), the clients search back to back for ``--duration`` seconds. ``--url`` may name several nodes of one
cluster, comma-separated: every client then connects to all of them, client ``n`` starting at node ``n mod nodes``
and going round-robin, so the coordinating node is spread over the cluster. A search counts as failed when it raises,
when ``_shards.failed > 0``, when ``timed_out`` is true or when it returns fewer than 10 hits. Reported per cell:
throughput (successful searches/s), p50/p99 latency of the successful ones (ms), failures by kind (HTTP status + what
the node says is full, client timeouts, shard failures, search timeouts, short results) and the cluster's thread pool
rejections (``search``, ``opensearch_ml_*``, summed over the nodes) during the cell. Saturation = the smallest number
of clients after which more clients add less than 10% throughput. When a cell had HTTP 429s it is run again through
the distilrank transport with its default retries (backoff on 429), to show what the helpers make of it. Results:
``runs/bench/load.json`` and a Markdown table on stdout.
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
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "integration" / "cluster"))
sys.path.insert(0, str(ROOT / "bench"))

PIPELINE = "distilrank-bench-load"
MODES = ("bm25", "rerank", "rescorer")


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


def response_failure(resp: dict) -> str | None:
    """Why an answered search still failed (``None`` when it did not): shard failures, a search timeout, < 10 hits."""
    shards = resp.get("_shards") or {}
    if shards.get("failed", 0) > 0:
        reasons = [str(((f.get("reason") or {}).get("type")) or "?") for f in shards.get("failures") or []]
        return f"shard failures ({', '.join(sorted(set(reasons))) or '?'})"
    if resp.get("timed_out"):
        return "timed_out (partial results)"
    if len(resp.get("hits", {}).get("hits", [])) != 10:
        return "short result"
    return None


def pool_rejections(t) -> dict[str, int]:
    """Rejected-task counters of the search and ML Commons thread pools, summed over the nodes."""
    stats = t.request("GET", "/_nodes/stats/thread_pool")["nodes"]
    out: Counter = Counter()
    for node in stats.values():
        for name, pool in node["thread_pool"].items():
            if name == "search" or name.startswith("opensearch_ml"):
                out[name] += pool.get("rejected", 0)
    return dict(out)


def search_request(mode: str, query: str, *, depth: int, model_id: str | None) -> tuple[dict, dict]:
    """(body, params) of one ``mode`` search for ``query`` returning 10 hits."""
    if mode == "bm25":
        return {"size": 10, "query": {"match": {"title": query}}}, {"search_pipeline": "_none"}
    if mode == "rerank":
        from distilrank.plugin.pipelines import rerank_search_body

        return rerank_search_body(query, size=10, fields=["title"]), {"search_pipeline": PIPELINE}
    if mode == "rescorer":
        from distilrank.plugin.rescore import rescore_search_body

        if not model_id:
            raise ValueError("the rescorer mode needs the registered student's model id")
        return rescore_search_body(query, model=model_id, fields=["title"], window_size=depth, size=10,
                                   query={"match": {"title": query}}), {"search_pipeline": "_none"}
    raise ValueError(f"unknown mode {mode!r}; one of {MODES}")


def rotated(url: str, n: int) -> str:
    """The comma-separated node URLs of ``url`` rotated left by ``n`` (client ``n`` starts at node ``n mod nodes``)."""
    urls = [u.strip() for u in url.split(",") if u.strip()]
    k = n % len(urls)
    return ",".join(urls[k:] + urls[:k])


def connect_in_order(url: str, **settings: Any):
    """``api.connect`` whose connection pool keeps ``url``'s node order (opensearch-py shuffles it), so round-robin
    starts at the first node."""
    from distilrank.plugin import api

    t = api.connect(url=url, **settings)
    pool = t.client.transport.connection_pool
    conns = getattr(pool, "connections", None)
    if isinstance(conns, list) and len(conns) > 1:
        order = [u.rstrip("/") for u in url.split(",")]
        conns.sort(key=lambda c: order.index(c.host) if c.host in order else len(order))
    return t


def run_cell(url: str, index: str, queries: list[str], mode: str, clients: int, duration: float, timeout: float,
             retries: int = 0, *, depth: int = 100, model_id: str | None = None) -> dict:
    """``clients`` threads searching back to back for ``duration`` s; returns throughput, latencies and failures."""
    lat: list[float] = []
    errors: Counter = Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + duration

    def worker(n: int) -> None:
        t = connect_in_order(rotated(url, n), retries=retries, timeout=timeout)
        i = n * 7
        while time.monotonic() < stop_at:
            body, params = search_request(mode, queries[i % len(queries)], depth=depth, model_id=model_id)
            i += 1
            t0 = time.perf_counter()
            try:
                resp = t.request("POST", f"/{index}/_search", body, params=params)
                ms = 1000 * (time.perf_counter() - t0)
                failure = response_failure(resp)
                with lock:
                    lat.append(ms) if failure is None else errors.update([failure])
            except Exception as exc:  # noqa: BLE001 - every failure is counted by kind
                with lock:
                    errors[error_kind(exc)] += 1

    probe = connect_in_order(url)
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
            "failed": sum(errors.values()), "qps": round(len(lat) / wall, 2),
            "p50_ms": round(float(np.percentile(a, 50)), 1), "p99_ms": round(float(np.percentile(a, 99)), 1),
            "errors": dict(errors),
            "rejected": {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) - before.get(k, 0)}}


def warm_up(url: str, index: str, queries: list[str], mode: str, *, depth: int, model_id: str | None,
            searches: int = 30) -> int:
    """Untimed ``mode`` searches, spread over the nodes of ``url`` (JIT, caches, the rescorer loading the model on
    every node it runs on), so the first cell does not carry a cold start. Returns how many failed."""
    failed = 0
    nodes = len(url.split(","))
    clients = [connect_in_order(rotated(url, n), timeout=300) for n in range(nodes)]
    for i in range(searches):
        body, params = search_request(mode, queries[i % len(queries)], depth=depth, model_id=model_id)
        try:
            failed += response_failure(clients[i % nodes].request("POST", f"/{index}/_search", body, params=params)) is not None
        except Exception:  # noqa: BLE001 - the timed cells count failures by kind
            failed += 1
    return failed


def saturation(cells: list[dict]) -> int | None:
    """Smallest client count after which the next count adds < 10% throughput (``None`` if it kept scaling)."""
    rows = sorted(cells, key=lambda c: c["clients"])
    for a, b in zip(rows, rows[1:]):
        if b["qps"] < 1.10 * a["qps"]:
            return a["clients"]
    return None


def ensure_index(t, products: list[dict], *, shards: int = 1, replicas: int = 0) -> None:
    """The catalogue index with ``shards`` primaries and ``replicas`` replicas (``t``: a
    :class:`~distilrank.plugin.transport.Transport`), reused when it is complete and has those counts (else rebuilt by
    ``rerank_latency.build_index``); waits until every copy is allocated (a ``ClusterError`` naming the index after 120 s)."""
    from rerank_latency import INDEX, build_index

    from distilrank.plugin.index_api import wait_for_status

    client = t.client
    if client.indices.exists(index=INDEX) and client.count(index=INDEX)["count"] == len(products):
        settings = client.indices.get_settings(index=INDEX)[INDEX]["settings"]["index"]
        if (int(settings["number_of_shards"]), int(settings["number_of_replicas"])) == (shards, replicas):
            wait_for_status(t, "green", index=INDEX, timeout=120)
            return
    build_index(client, products, shards=shards, replicas=replicas)
    wait_for_status(t, "green", index=INDEX, timeout=120)


def setup(url: str, depth: int, work: Path, modes: tuple[str, ...] = MODES, *, shards: int = 1,
          replicas: int = 0) -> tuple[str, list[str], dict]:
    """Index the catalogue, register the student (rescorer upload for ``rescorer``; deploy + pipeline for
    ``rerank``). Returns (index, queries, info with the model id)."""
    from rerank_latency import INDEX, catalogue, pick_queries, student_zips

    from distilrank.plugin import api, rescore

    t = connect_in_order(url, timeout=300)
    if "rescorer" in modes and not rescore.rescorer_installed(t):
        raise SystemExit("the distilrank rescorer plugin is not on every node (integration/cluster/start installs it)")
    products = catalogue()
    ensure_index(t, products, shards=shards, replicas=replicas)
    info: dict = {"products": len(products), "shards": shards, "replicas": replicas, "model_id": None, "zip_bytes": None}
    if {"rerank", "rescorer"} & set(modes):
        fp32, _ = student_zips([p["title"] for p in products], work)
        reg = api.register(t, fp32, group="distilrank-bench", name="bench-load-student", deploy="rerank" in modes,
                           progress=False, rescorer="rescorer" in modes)
        if "rescorer" in modes and "rescorer" not in reg:
            raise SystemExit("the student was not uploaded to the rescorer")
        if "rerank" in modes:
            api.pipeline(t, PIPELINE, reg["model_id"], document_fields=["title"], depth=depth, size=10, index=INDEX)
        info.update(model_id=reg["model_id"], zip_bytes=fp32.stat().st_size)
    queries = pick_queries(t.client, products, 50, min_hits=depth, seed=1)
    return INDEX, queries, info


def run(url: str, *, modes: tuple[str, ...], counts: list[int], duration: float, depth: int = 100,
        timeout: float = 30.0, shards: int = 1, replicas: int = 0, retry_429: bool = True, label: str = "load") -> dict:
    """Set up, then every (mode, clients) cell in turn; returns the results dict that ``load.json`` holds."""
    with tempfile.TemporaryDirectory() as work:
        index, queries, info = setup(url, depth, Path(work), modes, shards=shards, replicas=replicas)
    print(f"[{label}] {info['products']:,} products ({shards} primar{'y' if shards == 1 else 'ies'}, {replicas} replicas), student "
          f"{info['model_id']}, depth {depth}, {len(queries)} queries, {duration:g} s per cell", file=sys.stderr)
    cells: list[dict] = []
    load_before = list(os.getloadavg())
    for mode in modes:
        warm_up(url, index, queries, mode, depth=depth, model_id=info["model_id"])
        for n in counts:
            cell = run_cell(url, index, queries, mode, n, duration, timeout, depth=depth, model_id=info["model_id"])
            print(f"[{label}] {json.dumps(cell)}", file=sys.stderr)
            cells.append(cell)
            if retry_429 and any(k.startswith("HTTP 429") for k in cell["errors"]):
                cells.append(run_cell(url, index, queries, mode, n, duration, timeout, retries=3, depth=depth,
                                      model_id=info["model_id"]))
                print(f"[{label}] with retries: {json.dumps(cells[-1])}", file=sys.stderr)
    sat = {m: saturation([c for c in cells if c["mode"] == m and c["retries"] == 0]) for m in modes}
    return {"url": url, "depth": depth, "duration_s": duration, **info, "cells": cells, "saturation_clients": sat,
            "load_average_before": load_before, "load_average_after": list(os.getloadavg()), "cpu_count": os.cpu_count()}


def table(cells: list[dict]) -> str:
    lines = ["| mode | clients | retries | searches/s | p50 ms | p99 ms | failed | node rejections |",
             "|---|---|---|---|---|---|---|---|"]
    for c in cells:
        errs = ", ".join(f"{k}: {v}" for k, v in c["errors"].items()) or "0"
        rej = ", ".join(f"{k}: {v}" for k, v in c["rejected"].items()) or "0"
        lines.append(f"| {c['mode']} | {c['clients']} | {c['retries']} | {c['qps']} | {c['p50_ms']} | {c['p99_ms']} | {errs} | {rej} |")
    return "\n".join(lines)


def parse_modes(text: str) -> tuple[str, ...]:
    """``bm25,rescorer`` -> ``("bm25", "rescorer")``; exits on an unknown mode."""
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise SystemExit(f"--modes: unknown {bad or text!r}; choose from {','.join(MODES)}")
    return modes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="node URL(s), comma-separated for several nodes of one cluster (default "
                                  "OPENSEARCH_URL, else the local dev node, started if needed)")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated modes, of {','.join(MODES)}")
    ap.add_argument("--duration", type=float, default=15.0, help="seconds of searching per (mode, clients) cell")
    ap.add_argument("--clients", default="1,4,16,64", help="comma-separated numbers of concurrent clients")
    ap.add_argument("--depth", type=int, default=100, help="hits reranked per search")
    ap.add_argument("--shards", type=int, default=1, help="primaries of the catalogue index")
    ap.add_argument("--replicas", type=int, default=0, help="replicas of the catalogue index")
    ap.add_argument("--timeout", type=float, default=30.0, help="client read timeout per search, seconds")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench" / "load.json"), help="JSON results")
    args = ap.parse_args(argv)
    from rerank_latency import node_url

    modes = parse_modes(args.modes)
    url = node_url(args)
    counts = [int(c) for c in args.clients.split(",") if c]
    result = run(url, modes=modes, counts=counts, duration=args.duration, depth=args.depth, timeout=args.timeout,
                 shards=args.shards, replicas=args.replicas)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result["cells"]))
    print(f"\nsaturation (clients after which +<10% throughput): {result['saturation_clients']}; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
