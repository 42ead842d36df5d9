"""docker/ agrees with the cluster the integration tests assemble (integration/cluster): the compose files build
docker/Dockerfile at the pinned version with the same node settings file, the Dockerfile, the rescorer's pom and
versions.env name the same versions, and ``docker compose config`` (where the compose CLI plugin is installed)
resolves every service to that image and those settings.  The several-node files discover their own services, and
compose.cluster.yml is the cluster of integration/cluster/multinode.py (names, roles, heap, HTTP port plan).  No
cluster is started."""
from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.paths import REPO_ROOT

yaml = pytest.importorskip("yaml")

DOCKER = REPO_ROOT / "docker"
CLUSTER = "compose.cluster.yml"
FILES = [CLUSTER, "compose.dev.yml", "compose.secure.yml", "compose.staging.yml"]
IMAGE = re.compile(r"^distilrank-opensearch:\$\{OPENSEARCH_VERSION(:\?[^}]*)?\}$")
VERSION_VAR = re.compile(r"^\$\{OPENSEARCH_VERSION(:\?[^}]*)?\}$")
DATA_DIR = "/usr/share/opensearch/data"
HTTP_PORT = 9200  # inside the container


def _cluster_module(name: str):
    """integration/cluster/<name>.py (standard library only), the module the integration tests import by that name."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "integration" / "cluster" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


oscluster = _cluster_module("oscluster")
multinode = _cluster_module("multinode")  # imports oscluster, registered above


def compose(name: str) -> dict:
    return yaml.safe_load((DOCKER / name).read_text())


def services(name: str) -> dict:
    return compose(name)["services"]


def csv(value: str) -> list[str]:
    return [item.strip() for item in str(value).split(",") if item.strip()]


def node_name(svc: dict) -> str:
    return svc["environment"]["node.name"]


@pytest.mark.parametrize("name", FILES)
def test_compose_uses_pinned_image_and_shared_settings(name):
    for svc in services(name).values():
        assert IMAGE.match(svc["image"]), svc["image"]
        assert svc["build"]["context"] == ".." and svc["build"]["dockerfile"] == "docker/Dockerfile"
        assert VERSION_VAR.match(svc["build"]["args"]["OPENSEARCH_VERSION"])
        assert svc["env_file"] == ["../integration/cluster/node-settings.env"]
        assert (DOCKER / svc["env_file"][0]).resolve() == oscluster.SETTINGS_FILE.resolve()


@pytest.mark.parametrize("name", FILES)
def test_compose_discovery_names_its_own_services_and_nodes(name):
    """One service: single-node discovery.  Several: no single-node discovery, every seed host is a service of the
    file and every initial cluster-manager name the node name of one of them, the same lists on every node."""
    svcs = services(name)
    names = {node_name(svc) for svc in svcs.values()}
    assert len(names) == len(svcs), "node names must differ"
    if len(svcs) == 1:
        (svc,) = svcs.values()
        assert svc["environment"]["discovery.type"] == "single-node"
        assert "discovery.seed_hosts" not in svc["environment"]
        return
    seeds = {svc["environment"]["discovery.seed_hosts"] for svc in svcs.values()}
    managers = {svc["environment"]["cluster.initial_cluster_manager_nodes"] for svc in svcs.values()}
    assert len(seeds) == 1 and len(managers) == 1, "all nodes must share the discovery settings"
    for svc in svcs.values():
        assert "discovery.type" not in svc["environment"]
    assert {host.rsplit(":", 1)[0] if ":" in host else host for host in csv(seeds.pop())} <= set(svcs)
    assert set(csv(managers.pop())) <= names


@pytest.mark.parametrize("name", FILES)
def test_compose_gives_every_node_its_own_data_volume(name):
    doc = compose(name)
    sources = []
    for svc in doc["services"].values():
        data = [v.split(":")[0] for v in svc["volumes"] if v.split(":")[1] == DATA_DIR]
        assert len(data) == 1, svc["volumes"]
        sources += data
    assert len(set(sources)) == len(sources), f"shared data volume: {sources}"
    assert set(sources) <= set(doc.get("volumes") or {}), "data volumes must be named volumes of the file"


def test_cluster_compose_is_the_multinode_cluster():
    """compose.cluster.yml: the three nodes of ``multinode.py start`` (defaults): names, roles, initial cluster
    managers, heap, and node i's HTTP published on the host port multinode.py gives node i."""
    svcs = sorted(services(CLUSTER).values(), key=node_name)
    params = inspect.signature(multinode.start).parameters
    nodes, port, heap = params["nodes"].default, params["port"].default, params["heap"].default
    assert port == multinode.DEFAULT_PORT
    assert len(svcs) == nodes == 3
    for i, svc in enumerate(svcs):
        env = svc["environment"]
        want = multinode.node_overrides(i, nodes, port)
        assert env["cluster.name"] == want["cluster.name"]
        assert env["node.name"] == want["node.name"]
        assert csv(env["node.roles"]) == want["node.roles"]
        assert csv(env["cluster.initial_cluster_manager_nodes"]) == want["cluster.initial_cluster_manager_nodes"]
        assert env["OPENSEARCH_JAVA_OPTS"].split() == [f"-Xms{heap}", f"-Xmx{heap}"]
        assert env["DISABLE_SECURITY_PLUGIN"] == "true"  # plain HTTP, like the loopback cluster
        assert svc["ports"] == [f"127.0.0.1:{port + i}:{HTTP_PORT}"]
        assert f"wait_for_nodes={nodes}" in svc["healthcheck"]["test"][-1]
    assert compose(CLUSTER)["name"] == multinode.node_overrides(0, nodes, port)["cluster.name"]
    urls = ",".join(f"http://localhost:{port + i}" for i in range(nodes))
    assert f"OPENSEARCH_URL={urls}" in (DOCKER / CLUSTER).read_text()  # the usage comment


def test_dockerfile_adds_the_rescorer_plugin_built_for_the_pinned_version():
    """FROM the pinned image, COPY the zip that `mvn package` in plugin/opensearch writes, and only that in the context."""
    versions = oscluster.read_env_file(oscluster.VERSIONS_FILE)
    text = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^ARG OPENSEARCH_VERSION=" + re.escape(versions["OPENSEARCH_VERSION"]) + "$", text, re.M)
    assert re.search(r"^FROM opensearchproject/opensearch:\$\{OPENSEARCH_VERSION\}$", text, re.M)
    zip_arg = re.search(r"^ARG PLUGIN_ZIP=(\S+)$", text, re.M).group(1)
    pom = (REPO_ROOT / "plugin" / "opensearch" / "pom.xml").read_text()
    plugin_version = re.search(r"<artifactId>distilrank-opensearch</artifactId>\s*<version>([^<]+)</version>", pom).group(1)
    assert f"<opensearch.version>{versions['OPENSEARCH_VERSION']}</opensearch.version>" in pom
    assert plugin_version == versions["OPENSEARCH_PLUGIN_VERSION"]
    assert zip_arg == f"plugin/opensearch/target/distilrank-opensearch-{plugin_version}.zip"
    assert "opensearch-plugin install --batch file:///tmp/distilrank-opensearch.zip" in text
    ignore = [ln for ln in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines() if ln and not ln.startswith("#")]
    assert ignore == ["*", "!plugin/opensearch/target/distilrank-opensearch-*.zip"]


def _compose_available() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.parametrize("name", FILES)
def test_docker_compose_config(name):
    if not _compose_available():
        pytest.skip("`docker compose` (the compose CLI plugin) is not installed here")
    env = dict(os.environ, OPENSEARCH_INITIAL_ADMIN_PASSWORD="Example-Passw0rd!")
    env.pop("OPENSEARCH_VERSION", None)
    proc = subprocess.run(["docker", "compose", "-f", str(DOCKER / name), "config", "--format", "json"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)
    version = oscluster.read_env_file(oscluster.VERSIONS_FILE)["OPENSEARCH_VERSION"]
    for svc in cfg["services"].values():
        assert svc["image"] == f"distilrank-opensearch:{version}"
        assert svc["build"]["args"]["OPENSEARCH_VERSION"] == version
        for key, value in oscluster.node_settings().items():
            if key == "plugins.ml_commons.only_run_on_ml_node" and name == "compose.staging.yml":
                assert svc["environment"][key] == "true"  # the staging cluster has a dedicated ML node
            else:
                assert svc["environment"][key] == value, key
