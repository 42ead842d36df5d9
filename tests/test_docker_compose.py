"""docker/ agrees with the cluster the integration tests assemble (integration/cluster): the compose files build
docker/Dockerfile at the pinned version with the same node settings file, the Dockerfile, the rescorer's pom and
versions.env name the same versions, and ``docker compose config`` (where the compose CLI plugin is installed)
resolves every service to that image and those settings.  No cluster is started."""
from __future__ import annotations

import importlib.util
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
FILES = ["compose.dev.yml", "compose.secure.yml", "compose.staging.yml"]
IMAGE = re.compile(r"^distilrank-opensearch:\$\{OPENSEARCH_VERSION(:\?[^}]*)?\}$")
VERSION_VAR = re.compile(r"^\$\{OPENSEARCH_VERSION(:\?[^}]*)?\}$")


def _oscluster():
    """integration/cluster/oscluster.py (standard library only), the module the integration tests import."""
    if "oscluster" not in sys.modules:
        spec = importlib.util.spec_from_file_location("oscluster", REPO_ROOT / "integration" / "cluster" / "oscluster.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["oscluster"] = module
        spec.loader.exec_module(module)
    return sys.modules["oscluster"]


oscluster = _oscluster()


def services(name: str) -> dict:
    return yaml.safe_load((DOCKER / name).read_text())["services"]


@pytest.mark.parametrize("name", FILES)
def test_compose_uses_pinned_image_and_shared_settings(name):
    for svc in services(name).values():
        assert IMAGE.match(svc["image"]), svc["image"]
        assert svc["build"]["context"] == ".." and svc["build"]["dockerfile"] == "docker/Dockerfile"
        assert VERSION_VAR.match(svc["build"]["args"]["OPENSEARCH_VERSION"])
        assert svc["env_file"] == ["../integration/cluster/node-settings.env"]
        assert (DOCKER / svc["env_file"][0]).resolve() == oscluster.SETTINGS_FILE.resolve()


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
