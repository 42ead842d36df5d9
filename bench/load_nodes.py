"""One node vs three nodes, side by side in one run: BM25 and the distilrank rescorer under concurrent clients.

Run: .venv/bin/python bench/load_nodes.py [--duration 15] [--clients 1,4,16] [--depth 100] [--modes bm25,rescorer]
     [--sequential] [--online] [--one-port 9200] [--three-port 9230]

Clusters: the one-node dev node (``integration/cluster/start``: 127.0.0.1:9200, 1g heap; the catalogue index as
``bench/rerank_latency.py`` builds it, 1 primary, 0 replicas) and the three-node cluster of
``integration/cluster/multinode.py`` (127.0.0.1:9230-9232, 768m heap each; the index with 3 primaries + 1 replica). A
cluster that is already running (or still starting: waited for) is used and left running; one this script starts is
stopped at the end (also on error); nothing else is touched. The ports only matter for a cluster started here. Both
run at the same time when the machine's available memory allows (about 10.5 GiB free for the two), and then the cells
alternate between them (one node, then three nodes, for each mode and number of clients) so that drifting background
load falls on both alike; otherwise (or with ``--sequential``) one after the other. Nodes are started from the local
cache only (``offline``) unless ``--online``.

Every cell is ``bench/load.py``'s: setup there (catalogue index, student registered and uploaded to the rescorer),
untimed warm-up searches per mode, ``--clients`` threads searching back to back for ``--duration`` s, ``size 10``;
``rescorer`` rescoring a window of ``--depth`` hits per shard with ``"distilrank": {"model": <student>, "query_text":
q, "fields": ["title"]}``. On three nodes every client connects to all of them, client ``n`` starting at node ``n mod
3``, so the coordinating node is spread. A search fails when it raises, has ``_shards.failed > 0``, ``timed_out`` or
fewer than 10 hits. One Markdown table: per mode and clients, searches/s, p50/p99 ms and failed searches on one node
and on three nodes side by side, with the machine's load average before and after and its CPU count. Results:
``bench/results/load_nodes.json``.

On 2 shared cores (the dev machine) the point is correctness (every search answered, no shard failures, the
coordinator spread) and the shape of the curves, not absolute throughput: three nodes on the same two cores compete
for the CPU the one node has alone, and whatever else runs on the machine takes its share (see the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "integration" / "cluster"))
sys.path.insert(0, str(ROOT / "bench"))

import load  # noqa: E402

ONE, THREE = "one node", "three nodes"
# rough resident memory of a node with ML Commons and the rescorer: heap + native (DJL/ONNX Runtime) + metaspace
NEED_GIB = {ONE: 2.5, THREE: 3 * 2.0}
HEADROOM_GIB = 2.0


@dataclass
class Cluster:
    """A running cluster to measure: its URL(s), the index layout and whether this script started it."""

    name: str
    url: str
    nodes: int
    shards: int
    replicas: int
    started_here: bool
    stop: Callable[[], object]
    setup: dict = field(default_factory=dict)
    stopped: bool = False

    def release(self) -> None:
        """Stop the cluster if this script started it (once); a cluster found running is left alone."""
        if self.started_here and not self.stopped:
            self.stop()
            self.stopped = True


def wait_healthy(check: Callable[[], bool], what: str, seconds: float = 300) -> None:
    """Wait for a cluster found running (someone may be starting it) to be healthy; exit if it does not become so
    (it is not this script's to restart)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} is running but not healthy after {seconds:.0f} s; not touching it")
        time.sleep(2)


def one_node(offline: bool, port: int | None = None) -> Cluster:
    """The dev node (default 127.0.0.1:9200): the running one (left running), else started (stopped at the end)."""
    import oscluster

    def stop() -> bool:
        return oscluster.stop(name="dev")

    state = oscluster.status("dev")
    if state:
        wait_healthy(lambda: oscluster.healthy(state)[0], f"the dev node at {state['url']}")
        return Cluster(ONE, state["url"], 1, 1, 0, False, stop)
    state = oscluster.start(tier=2, http_port=port, offline=offline)
    return Cluster(ONE, state["url"], 1, 1, 0, not state.get("already_running"), stop)


def three_nodes(offline: bool, port: int = 9230) -> Cluster:
    """The three-node cluster (default 127.0.0.1:9230-9232): the running one (left running), else started (stopped at
    the end). A running cluster of another size is not this script's to restart: exits."""
    import multinode

    state = multinode.status()
    if state:
        if state["nodes"] != 3:
            raise SystemExit(f"a {state['nodes']}-node cluster is running at {state['url']}; not restarting it with 3 nodes")
        wait_healthy(lambda: multinode.cluster_health(state, 3)[0], f"the three-node cluster at {state['url']}")
        return Cluster(THREE, state["url"], 3, 3, 1, False, multinode.stop)
    state = multinode.start(nodes=3, port=port, offline=offline)
    return Cluster(THREE, state["url"], 3, 3, 1, not state.get("already_running"), multinode.stop)


def available_gib() -> float:
    """``MemAvailable`` of ``/proc/meminfo`` in GiB (0 when unreadable)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def fit_together() -> bool:
    """Whether the clusters not running yet fit beside each other in the available memory."""
    import multinode
    import oscluster

    need = (0 if oscluster.status("dev") else NEED_GIB[ONE]) + (0 if multinode.status() else NEED_GIB[THREE])
    return available_gib() >= need + HEADROOM_GIB


def prepare(c: Cluster, args: argparse.Namespace) -> tuple[str, list[str]]:
    """``load.setup`` on ``c``: index (``c.shards`` x ``c.replicas``), student registered. Returns (index, queries)."""
    with tempfile.TemporaryDirectory() as work:
        index, queries, info = load.setup(c.url, args.depth, Path(work), args.modes, shards=c.shards, replicas=c.replicas)
    nodes = load.connect_in_order(c.url).request("GET", "/_cluster/health")["number_of_nodes"]
    if nodes != c.nodes:
        raise SystemExit(f"{c.name} at {c.url} has {nodes} nodes")
    c.setup = info
    print(f"[load-nodes] {c.name} ({c.url}): {info['products']:,} products, {c.shards} primar{'y' if c.shards == 1 else 'ies'} + "
          f"{c.replicas} replica{'' if c.replicas == 1 else 's'}, student {info['model_id']}", file=sys.stderr)
    return index, queries


def measure(group: list[Cluster], args: argparse.Namespace, counts: list[int], load_avg: dict) -> dict[str, list[dict]]:
    """Set up every cluster of ``group`` (all running), then each (mode, clients) cell on each cluster in turn.
    ``load_avg``: the load average when the first group's cells start (``before``) and the last's end (``after``)."""
    ready = {c.name: prepare(c, args) for c in group}
    cells: dict[str, list[dict]] = {c.name: [] for c in group}
    load_avg.setdefault("before", list(os.getloadavg()))
    for mode in args.modes:
        for c in group:
            index, queries = ready[c.name]
            load.warm_up(c.url, index, queries, mode, depth=args.depth, model_id=c.setup["model_id"])
        for n in counts:
            for c in group:
                index, queries = ready[c.name]
                cell = load.run_cell(c.url, index, queries, mode, n, args.duration, args.timeout, depth=args.depth,
                                     model_id=c.setup["model_id"])
                print(f"[load-nodes] {c.name}: {json.dumps(cell)}", file=sys.stderr)
                cells[c.name].append(cell)
    load_avg["after"] = list(os.getloadavg())
    return cells


def failed(cell: dict | None) -> str:
    if cell is None:
        return "-"
    kinds = ", ".join(f"{k}: {v}" for k, v in cell["errors"].items())
    return f"{cell['failed']} ({kinds})" if kinds else "0"


def table(result: dict) -> str:
    """One row per (mode, clients): searches/s, p50, p99, failed on one node | on three nodes."""
    names = [n for n in (ONE, THREE) if n in result["clusters"]]
    cols = [f"{n}: {h}" for n in names for h in ("searches/s", "p50 ms", "p99 ms", "failed")]
    lines = ["| mode | clients | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    by = {n: {(c["mode"], c["clients"]): c for c in result["clusters"][n]["cells"]} for n in names}
    for mode in result["modes"]:
        for k in result["clients"]:
            row = [mode, str(k)]
            for n in names:
                c = by[n].get((mode, k))
                row += [str(c["qps"]), str(c["p50_ms"]), str(c["p99_ms"])] if c else ["-"] * 3
                row.append(failed(c))
            lines.append("| " + " | ".join(row) + " |")
    la = result["load_average_before"], result["load_average_after"]
    lines.append("")
    lines.append(f"{result['cpu_count']} CPUs; load average (1/5/15 min) before {' '.join(f'{x:.2f}' for x in la[0])}, "
                 f"after {' '.join(f'{x:.2f}' for x in la[1])}; depth {result['depth']}, {result['duration_s']:g} s per "
                 f"cell; clusters {'up at the same time, cells alternating' if result['together'] else 'one after the other'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=15.0, help="seconds of searching per (cluster, mode, clients) cell")
    ap.add_argument("--clients", default="1,4,16", help="comma-separated numbers of concurrent clients")
    ap.add_argument("--depth", type=int, default=100, help="rescore window (and rerank depth) per search")
    ap.add_argument("--modes", default="bm25,rescorer", help=f"comma-separated modes, of {','.join(load.MODES)}")
    ap.add_argument("--timeout", type=float, default=30.0, help="client read timeout per search, seconds")
    ap.add_argument("--one-port", type=int, default=9200, help="HTTP port of the one-node dev node, if started here")
    ap.add_argument("--three-port", type=int, default=9230, help="HTTP port of node 0 of the three-node cluster, if "
                                                                  "started here (node i: port+i)")
    ap.add_argument("--sequential", action="store_true", help="one cluster after the other even if both fit")
    ap.add_argument("--online", action="store_true", help="let node start-up download what the cache lacks")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "load_nodes.json"), help="JSON results")
    args = ap.parse_args(argv)
    args.modes = load.parse_modes(args.modes)
    counts = [int(c) for c in args.clients.split(",") if c]
    offline = not args.online
    together = not args.sequential and fit_together()
    print(f"[load-nodes] {available_gib():.1f} GiB available: clusters "
          f"{'together' if together else 'one after the other'}", file=sys.stderr)
    starters: list[Callable[[bool], Cluster]] = [lambda off: one_node(off, args.one_port),
                                                 lambda off: three_nodes(off, args.three_port)]
    clusters: list[Cluster] = []
    cells: dict[str, list[dict]] = {}
    load_avg: dict[str, list[float]] = {}
    try:
        if together:
            for start in starters:
                clusters.append(start(offline))
            cells = measure(clusters, args, counts, load_avg)
        else:
            for start in starters:
                c = start(offline)
                clusters.append(c)
                cells.update(measure([c], args, counts, load_avg))
                c.release()
    finally:
        for c in reversed(clusters):
            c.release()
    result = {"depth": args.depth, "duration_s": args.duration, "modes": list(args.modes), "clients": counts,
              "together": together, "cpu_count": os.cpu_count(), "load_average_before": load_avg["before"],
              "load_average_after": load_avg["after"],
              "clusters": {c.name: {"url": c.url, "nodes": c.nodes, "started_here": c.started_here, **c.setup,
                                    "cells": cells[c.name]} for c in clusters}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"\nresults in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
