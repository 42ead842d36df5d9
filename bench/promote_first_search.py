"""The first rescored search after an alias moves to a new model on three nodes, without and with the warm that
``plugin promote`` / ``rollback`` run before the alias moves, against the warm p50/p99 of the same run.

Run: .venv/bin/python bench/promote_first_search.py --zip runs/esci/final/export/distilrank-esci-student.zip [--promotes 5]

Uses the running three-node cluster of ``integration/cluster/multinode.py`` (started offline, and stopped at the end,
when none is running). Index: the Icecat titles with 3 primaries + 1 replica (so a search touches shards on every
node). For each of ``--promotes`` rounds and each mode:

* ``cold``: a new model (the zip with one extra file: a new SHA-256 under a new id, as a freshly registered version)
  is uploaded to the rescorer and the alias record moves to it; the next rescored search through the alias loads it
  on every node that holds a searched shard;
* ``warmed``: the same, but ``_warm`` with the alias (what ``plugin promote`` calls: every data node loads the model
  and scores one dummy window of the alias's depth, the models behind the other aliases protected) runs before the
  alias moves.

Then ``--searches`` rescored searches through the alias (queries rotating, coordinators rotating over the nodes) give
the warm p50/p99. The alias record is written with ``registry_store.save_alias`` (``promote`` also changes the ML
Commons pipeline, which the rescorer does not read). Each round's model is deleted afterwards. Goal: the median
first search after a warmed promote within 2x of the warm p50. Writes ``bench/results/promote_first_search.json``
with every measurement, the machine's load average and CPU count; on 2 shared cores the ratios, not the absolute
times, are the result.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "integration" / "cluster"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
ALIAS = "bench-promote"
DEPTH = 100


def _search(t, q: str) -> float:
    """One rescored search through the alias (ms, client wall time); raises on a partial answer."""
    from rerank_latency import INDEX

    from distilrank.plugin.rescore import rescore_search_body

    body = rescore_search_body(q, model=ALIAS, fields=["title"], window_size=DEPTH, size=10, query={"match": {"title": q}})
    t0 = time.perf_counter()
    resp = t.request("POST", f"/{INDEX}/_search", body, params={"search_pipeline": "_none"})
    ms = 1000 * (time.perf_counter() - t0)
    if resp["_shards"]["failed"] or resp.get("timed_out"):
        raise SystemExit(f"partial answer for {q!r}: {resp['_shards']}")
    return ms


def _round(t, nodes: list, zip_path: Path, work: Path, mode: str, i: int, queries: list[str], searches: int) -> dict:
    from distilrank.plugin import aliases, registry_store, rescore
    from tests.zips import rezip

    model_id = f"bench-promote-{os.getpid()}-{mode}-{i}"
    variant = rezip(zip_path, work / f"{model_id}.zip", add=(("variant.txt", model_id),))
    rescore.upload_model(t, model_id, variant)
    variant.unlink()
    warm = aliases.warm_rescorer(t, model_id, window_size=DEPTH, alias=ALIAS) if mode == "warmed" else None
    registry_store.save_alias(t, {"alias": ALIAS, "model_id": model_id, "history": []})
    first = _search(nodes[i % len(nodes)], queries[0])
    warm_ms = [_search(nodes[k % len(nodes)], queries[k % len(queries)]) for k in range(searches)]
    return {"model_id": model_id, "first_ms": first, "warm_p50_ms": float(np.percentile(warm_ms, 50)),
            "warm_p99_ms": float(np.percentile(warm_ms, 99)), "warm_ms": warm_ms,
            "warm_call": {n["name"]: {k: n[k] for k in ("already_loaded", "load_ms", "warm_window_ms", "evicted")}
                          for n in (warm or {}).get("nodes", {}).values()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zip", required=True, help="the student zip whose variants are promoted")
    ap.add_argument("--promotes", type=int, default=5, help="promotes measured per mode")
    ap.add_argument("--searches", type=int, default=40, help="warm rescored searches after each promote (p50/p99)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "promote_first_search.json"), help="JSON results")
    args = ap.parse_args(argv)
    import multinode
    from load import ensure_index
    from rerank_latency import catalogue, pick_queries

    from distilrank.plugin import api, registry_store, rescore

    running = multinode.status()
    state = running if running and multinode.cluster_health(running, 3)[0] else multinode.start(nodes=3, offline=True)
    started_here = state is not running
    try:
        t = api.connect(url=state["url"], timeout=300)
        nodes = [api.connect(url=u, timeout=300) for u in state["urls"]]  # each coordinates in turn
        products = catalogue()
        ensure_index(t, products, shards=3, replicas=1)
        queries = pick_queries(t.client, products, 20, min_hits=DEPTH, seed=3)
        load = list(os.getloadavg())
        rounds: dict[str, list[dict]] = {"cold": [], "warmed": []}
        previous = None  # the model the alias pointed at before this round's promote (deleted after it)
        with tempfile.TemporaryDirectory() as work:
            for i in range(args.promotes):
                for mode in rounds:
                    r = _round(t, nodes, Path(args.zip), Path(work), mode, i, queries, args.searches)
                    rounds[mode].append(r)
                    print(f"[promote] {mode} {i + 1}/{args.promotes}: first search {r['first_ms']:.0f} ms, warm p50 "
                          f"{r['warm_p50_ms']:.1f} ms, p99 {r['warm_p99_ms']:.1f} ms", file=sys.stderr)
                    if previous:
                        rescore.delete_model(t, previous)
                    previous = r["model_id"]
        registry_store.delete_alias(t, ALIAS)
        rescore.delete_model(t, previous)
    finally:
        if started_here:
            multinode.stop()
    summary = {m: {"median_first_ms": float(np.median([r["first_ms"] for r in v])),
                   "median_warm_p50_ms": float(np.median([r["warm_p50_ms"] for r in v])),
                   "median_warm_p99_ms": float(np.median([r["warm_p99_ms"] for r in v]))} for m, v in rounds.items()}
    for m in summary.values():
        m["first_over_warm_p50"] = m["median_first_ms"] / m["median_warm_p50_ms"]
    result = {"zip": args.zip, "zip_bytes": Path(args.zip).stat().st_size, "nodes": 3, "index": "Icecat titles, 3 primaries + 1 replica",
              "depth": DEPTH, "promotes": args.promotes, "searches": args.searches, "summary": summary, "rounds": rounds,
              "goal": "median first search after a warmed promote <= 2x the warm p50",
              "goal_met": summary["warmed"]["first_over_warm_p50"] <= 2.0,
              "load_average": load, "load_average_after": list(os.getloadavg()), "cpus": os.cpu_count()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"three nodes, {result['zip_bytes']:,}-byte zip, depth {DEPTH}, median of {args.promotes} promotes "
          f"(load {load[0]:.2f} on {os.cpu_count()} cores):")
    print("| promote | first rescored search ms | warm p50 ms | warm p99 ms | first / warm p50 |\n|---|---|---|---|---|")
    for m, s in summary.items():
        print(f"| {m} | {s['median_first_ms']:.0f} | {s['median_warm_p50_ms']:.1f} | {s['median_warm_p99_ms']:.1f} | "
              f"{s['first_over_warm_p50']:.2f}x |")
    print(f"goal (warmed first <= 2x warm p50): {'met' if result['goal_met'] else 'missed'}; results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
