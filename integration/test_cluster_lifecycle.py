"""Start/stop robustness of integration/cluster (clear errors, idempotence, no stray processes)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import oscluster
import pytest

CLUSTER_DIR = Path(oscluster.__file__).resolve().parent


@pytest.fixture
def private_run_dir(tmp_path, monkeypatch):
    """Node state/data in a temp dir (the download cache stays shared)."""
    monkeypatch.setenv("DISTILRANK_OPENSEARCH_RUN", str(tmp_path / "run"))
    return tmp_path / "run"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_versions_pinned_in_one_place():
    v = oscluster.read_env_file(oscluster.VERSIONS_FILE)
    assert v["OPENSEARCH_PLUGIN_VERSION"] == v["OPENSEARCH_VERSION"] + ".0"
    assert v["SECURE_OPENSEARCH_PLUGIN_VERSION"] == v["SECURE_OPENSEARCH_VERSION"] + ".0"
    docker_env = CLUSTER_DIR.parent.parent / "docker" / ".env"
    assert docker_env.resolve() == oscluster.VERSIONS_FILE.resolve(), "docker/.env must link to versions.env"


def test_port_in_use_is_a_clear_error(private_run_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        t0 = time.time()
        with pytest.raises(oscluster.ClusterError, match=rf"port {port} .* in use"):
            oscluster.start(http_port=port, tier=1)
        assert time.time() - t0 < 10


def test_missing_jdk_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("OPENSEARCH_JAVA_HOME", "/nonexistent/jdk")
    with pytest.raises(oscluster.ClusterError, match=r"no JDK with 90 <= version <= 99"):
        oscluster.find_java(90, 99)


def test_out_of_disk_is_a_clear_error(tmp_path):
    with pytest.raises(oscluster.ClusterError, match="out of disk"):
        oscluster.check_disk(tmp_path, 1e9, "a test")


def test_prune_keeps_the_most_recently_used_homes(tmp_path, private_run_dir):
    now = time.time()
    ages = {"a": 10, "b": 20, "c": 30, "d": 40, "old": 5 * 24 * 3600}  # seconds since last use
    for name, age in ages.items():
        home = tmp_path / "homes" / f"opensearch-9.9.9-{name}"
        home.mkdir(parents=True)
        (home / ".last_used").touch()
        os.utime(home / ".last_used", (now - age, now - age))
    mid_assembly = tmp_path / "homes" / "opensearch-9.9.9-e.tmp"
    mid_assembly.mkdir()
    removed = oscluster.prune_homes(tmp_path, max_age_s=3 * 24 * 3600, keep=2)
    assert sorted(p.name for p in removed) == ["opensearch-9.9.9-c", "opensearch-9.9.9-d", "opensearch-9.9.9-old"]
    assert sorted(p.name for p in (tmp_path / "homes").iterdir()) == [
        "opensearch-9.9.9-a", "opensearch-9.9.9-b", "opensearch-9.9.9-e.tmp"]


def test_stop_without_node_is_harmless(private_run_dir):
    proc = subprocess.run([str(CLUSTER_DIR / "stop")], capture_output=True, text=True,
                          env=dict(os.environ, DISTILRANK_OPENSEARCH_RUN=str(private_run_dir)))
    assert proc.returncode == 0
    assert "no dev node" in proc.stderr


def test_start_is_idempotent(cluster):
    if cluster.state.get("external"):
        pytest.skip("node given by OPENSEARCH_URL")
    t0 = time.time()
    again = oscluster.start(tier=cluster.state.get("tier", 2))
    assert again["already_running"] and again["pid"] == cluster.state["pid"]
    assert time.time() - t0 < 15


def test_start_stop_leaves_no_process(private_run_dir, cluster):
    """A second, private tier-1 node: start (warm cache), stop, and nothing is left behind."""
    if cluster.state.get("external"):
        pytest.skip("uses the local cache, which an external node does not fill")
    port = free_port()
    while not oscluster.port_free(port + 100):
        port = free_port()
    proc = subprocess.run([sys.executable, str(CLUSTER_DIR / "oscluster.py"), "start", "--tier", "1",
                           "--port", str(port), "--heap", "512m", "--offline", "--json"],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, DISTILRANK_OPENSEARCH_RUN=str(private_run_dir)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    state = json.loads(proc.stdout)
    assert state["url"] == f"http://127.0.0.1:{port}"
    assert oscluster.pid_alive(state["pid"])
    assert oscluster.healthy(state)[0]
    proc = subprocess.run([str(CLUSTER_DIR / "stop")], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, DISTILRANK_OPENSEARCH_RUN=str(private_run_dir)))
    assert proc.returncode == 0, proc.stderr
    assert not oscluster.pid_alive(state["pid"])
    assert oscluster.port_free(port) and oscluster.port_free(port + 100)
    assert not (private_run_dir / "dev" / "state.json").exists()


def test_node_dying_at_start_reports_its_log(private_run_dir, cluster):
    """A node that exits during start-up (here: a bad heap size) gives an error with the log tail."""
    if cluster.state.get("external"):
        pytest.skip("uses the local cache, which an external node does not fill")
    port = free_port()
    while not oscluster.port_free(port + 100):
        port = free_port()
    t0 = time.time()
    with pytest.raises(oscluster.ClusterError) as e:
        oscluster.start(tier=1, http_port=port, heap="1x", offline=True, timeout=120)
    msg = str(e.value)
    assert "exited with code" in msg and "node.out" in msg and "1x" in msg, msg
    assert time.time() - t0 < 120
    assert oscluster.status("dev") is None or oscluster.status("dev")["pid"] == cluster.state["pid"]
    assert not (private_run_dir / "dev" / "state.json").exists()
