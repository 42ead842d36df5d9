"""A several-node OpenSearch cluster on loopback from the same offline assembly as the one-node test node.

Run: python3 integration/cluster/multinode.py start [--nodes 3] [--port 9230] [--heap 768m]
     python3 integration/cluster/multinode.py stop | status [--json]

Every node is data + cluster-manager eligible + ML (the dev profile's plugins and settings, tier 2, with the
distilrank rescorer), discovering the others through ``discovery.seed_hosts`` instead of ``discovery.type:
single-node``; node ``i`` listens on HTTP ``port + i`` and transport ``port + 100 + i`` (default 9230-9232 /
9330-9332: clear of the one-node dev node 9200/9300 and the secure node 9201/9301). Each node has its own run folder
(``run_dir("multi-<i>")``: config, data, logs, ``state.json``); the cluster's state (every node's URL and pid) is
``run_dir("multi")/state.json``. ``start`` waits until all nodes have joined and the cluster is at least yellow;
it is idempotent while the recorded nodes are alive and healthy. ``stop`` ends only the processes this module
started (the pids in the state files). The fault tests use :func:`kill_node` (SIGKILL), :func:`stop_node` (SIGTERM)
and :func:`restart_node` (the same config and data) on one node of that cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import oscluster  # noqa: E402

NAME = "multi"
DEFAULT_PORT = 9230


def node_run(i: int) -> Path:
    return oscluster.run_dir(f"{NAME}-{i}")


def cluster_state_file() -> Path:
    return oscluster.run_dir(NAME) / "state.json"


def node_overrides(i: int, nodes: int, port: int) -> dict:
    """``opensearch.yml`` settings of node ``i`` of ``nodes``: name, ports, discovery of the others."""
    names = [f"distilrank-{NAME}-{k}" for k in range(nodes)]
    return {
        "cluster.name": f"distilrank-{NAME}",
        "node.name": names[i],
        "http.port": str(port + i),
        "transport.port": str(port + 100 + i),
        "discovery.type": None,
        "discovery.seed_hosts": [f"127.0.0.1:{port + 100 + k}" for k in range(nodes)],
        "cluster.initial_cluster_manager_nodes": names,
        "node.roles": ["cluster_manager", "data", "ingest", "ml"],
        "path.data": str(node_run(i) / "data"),
        "path.logs": str(node_run(i) / "logs"),
    }


def cluster_health(state: dict, nodes: int) -> tuple[bool, str]:
    """Healthy when ``nodes`` nodes have joined and the cluster is yellow or green, asked through every node."""
    for url in state["urls"]:
        try:
            code, body = oscluster.http_get({"url": url}, f"/_cluster/health?wait_for_nodes={nodes}&wait_for_status=yellow"
                                                          "&timeout=1s", timeout=10)
        except (OSError, ValueError) as e:
            return False, f"{url}: {type(e).__name__}: {e}"
        info = json.loads(body) if code in (200, 408) else {}
        if code != 200 or info.get("number_of_nodes") != nodes or info.get("status") not in ("green", "yellow"):
            return False, f"{url}: HTTP {code}: {body[:300]}"
    return True, "ok"


def status() -> dict | None:
    """The recorded cluster when every one of its nodes is alive; ``None`` otherwise (stale state removed)."""
    try:
        state = json.loads(cluster_state_file().read_text())
    except (OSError, ValueError):
        return None
    if not all(oscluster.pid_alive(pid) for pid in state["pids"]):
        return None
    return state


def _wait(state: dict, procs: list, nodes: int, timeout: float) -> None:
    deadline = time.time() + timeout
    detail = ""
    while True:
        for i, proc in enumerate(procs):
            if proc.poll() is not None:
                stop()
                raise oscluster.ClusterError(f"node {i} exited with code {proc.returncode} during start-up:\n"
                                             f"{oscluster.log_tail(node_run(i))}")
        ok, detail = cluster_health(state, nodes)
        if ok:
            return
        if time.time() > deadline:
            stop()
            raise oscluster.ClusterError(f"the {nodes}-node cluster did not form within {timeout:.0f}s (last: {detail}); "
                                         f"nodes stopped.\n{oscluster.log_tail(node_run(0))}")
        time.sleep(1)


def start(nodes: int = 3, port: int = DEFAULT_PORT, heap: str = "768m", timeout: float = 300, offline: bool = False) -> dict:
    """Assemble (cached), configure and start ``nodes`` nodes; wait until they form one cluster. Returns the state:
    ``{"name", "nodes", "urls", "pids", "run_dirs", "url", "timings"}`` (``url``: all URLs comma-separated, what
    ``OPENSEARCH_URL`` takes)."""
    running = status()
    if running and running["nodes"] == nodes and cluster_health(running, nodes)[0]:
        oscluster.log(f"already running: {running['url']}")
        return dict(running, already_running=True)
    if running:
        stop()
    t0 = time.time()
    prof = oscluster.make_profile(False, 2, port, heap)
    for k in range(nodes):
        for p in (port + k, port + 100 + k):
            if not oscluster.port_free(p):
                raise oscluster.ClusterError(f"port {p} on 127.0.0.1 is in use; pick other ports with --port")
    root = oscluster.cache_root()
    java = oscluster.find_java(prof.java_min, prof.java_max, root)
    oscluster.check_disk(root, 0.5 * nodes, f"starting {nodes} nodes")
    dl = oscluster.Downloader(root, offline=offline)
    with oscluster.file_lock(root / "locks" / "download.lock"):
        home, notes = oscluster.assemble_home(prof, dl, java, root)
        torch_dir = oscluster.prepare_torch(dl, root)
    t_ready = time.time()
    procs = []
    for i in range(nodes):
        run = node_run(i)
        shutil.rmtree(run, ignore_errors=True)
        (run / "logs").mkdir(parents=True, exist_ok=True)
        oscluster.write_config(prof, home, run, java, root, oscluster.DEFAULT_PASSWORD, node_overrides(i, nodes, port))
        procs.append(oscluster.spawn_node(home, run, java, torch_dir))
    urls = [f"http://127.0.0.1:{port + i}" for i in range(nodes)]
    state = {"name": NAME, "nodes": nodes, "urls": urls, "url": ",".join(urls), "pids": [p.pid for p in procs],
             "run_dirs": [str(node_run(i)) for i in range(nodes)], "home": str(home), "heap": heap, "notes": notes,
             "port": port, "java": str(java), "torch_dir": str(torch_dir)}
    cluster_state_file().parent.mkdir(parents=True, exist_ok=True)
    _save(state)
    oscluster.log(f"started {nodes} nodes (pids {state['pids']}); waiting up to {timeout:.0f}s for them to form a cluster ...")
    _wait(state, procs, nodes, timeout)
    state["timings"] = {"prepare_s": round(t_ready - t0, 1), "boot_s": round(time.time() - t_ready, 1)}
    _save(state)
    oscluster.log(f"{nodes}-node cluster healthy after {round(time.time() - t0, 1)}s: {state['url']}")
    return state


def _save(state: dict) -> None:
    cluster_state_file().write_text(json.dumps(state, indent=2) + "\n")


def kill_node(state: dict, i: int) -> int:
    """SIGKILL node ``i`` of the cluster this module started (its process group: no shutdown, like a crashed machine);
    returns its pid. The state keeps the pid until :func:`restart_node`."""
    import signal

    pid = state["pids"][i]
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)
    deadline = time.time() + 30
    while oscluster.pid_alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    return pid


def stop_node(state: dict, i: int, grace: float = 60) -> None:
    """Stop node ``i`` the way an operator does in a rolling restart (SIGTERM, SIGKILL only after ``grace`` seconds)."""
    oscluster._terminate(state["pids"][i], grace)


def restart_node(state: dict, i: int, timeout: float = 300) -> float:
    """Start node ``i`` again on its own config and data (after :func:`kill_node` or :func:`stop_node`) and wait until
    all nodes are in the cluster again (yellow or green); returns the seconds that took. Updates the state's pid."""
    t0 = time.time()
    proc = oscluster.spawn_node(Path(state["home"]), node_run(i), Path(state["java"]), Path(state["torch_dir"]))
    state["pids"][i] = proc.pid
    _save(state)
    deadline = time.time() + timeout
    while not cluster_health(state, state["nodes"])[0]:
        if proc.poll() is not None:
            raise oscluster.ClusterError(f"node {i} exited with code {proc.returncode} on restart:\n{oscluster.log_tail(node_run(i))}")
        if time.time() > deadline:
            raise oscluster.ClusterError(f"node {i} did not rejoin within {timeout:.0f}s: {cluster_health(state, state['nodes'])[1]}")
        time.sleep(0.5)
    return time.time() - t0


def stop() -> bool:
    """Stop the recorded nodes (SIGTERM, SIGKILL after a grace period); True when there was a cluster to stop."""
    try:
        state = json.loads(cluster_state_file().read_text())
    except (OSError, ValueError):
        oscluster.log("no several-node cluster is recorded as running")
        return False
    for pid in state["pids"]:
        if oscluster.pid_alive(pid):
            oscluster._terminate(pid)
    with contextlib.suppress(OSError):
        cluster_state_file().unlink()
    oscluster.log(f"stopped the {state['nodes']}-node cluster (pids {state['pids']})")
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="multinode", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start", help="assemble if needed, start N nodes, wait until they form one cluster (idempotent)")
    s.add_argument("--nodes", type=int, default=3, help="number of nodes [3]")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port of node 0; node i: port+i, transport port+100+i [9230]")
    s.add_argument("--heap", default="768m", help="JVM heap per node [768m]")
    s.add_argument("--timeout", type=float, default=300, help="seconds to wait for the cluster [300]")
    s.add_argument("--offline", action="store_true", help="use only the cache, never download")
    s.add_argument("--json", action="store_true", help="print the cluster state as JSON")
    for cmd in ("stop", "status"):
        p = sub.add_parser(cmd)
        p.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "start":
            st = start(args.nodes, args.port, args.heap, args.timeout, args.offline)
            print(json.dumps(st, indent=2) if args.json else f"OPENSEARCH_URL={st['url']}")
            return 0
        if args.cmd == "stop":
            stop()
            return 0
        st = status()
        ok = bool(st) and cluster_health(st, st["nodes"])[0]
        print(json.dumps(dict(st or {}, running=bool(st), healthy=ok)) if args.json else
              (f"{NAME}: {st['nodes']} nodes {st['url']} {'healthy' if ok else 'UNHEALTHY'}" if st else f"{NAME}: not running"))
        return 0 if ok else 1
    except oscluster.ClusterError as e:
        print(f"[opensearch] ERROR: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
