"""docker/ compose files use the pinned version and the same node settings as integration/cluster."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import oscluster

yaml = pytest.importorskip("yaml")

DOCKER = Path(oscluster.__file__).resolve().parents[2] / "docker"
FILES = ["compose.dev.yml", "compose.secure.yml", "compose.staging.yml"]
IMAGE = re.compile(r"^opensearchproject/opensearch:\$\{OPENSEARCH_VERSION(:\?[^}]*)?\}$")


def services(name: str) -> dict:
    return yaml.safe_load((DOCKER / name).read_text())["services"]


@pytest.mark.parametrize("name", FILES)
def test_compose_uses_pinned_image_and_shared_settings(name):
    for svc in services(name).values():
        assert IMAGE.match(svc["image"]), svc["image"]
        assert svc["env_file"] == ["../integration/cluster/node-settings.env"]
        assert (DOCKER / svc["env_file"][0]).resolve() == oscluster.SETTINGS_FILE.resolve()


def test_compose_profiles():
    dev = services("compose.dev.yml")["opensearch"]["environment"]
    assert dev["discovery.type"] == "single-node" and dev["DISABLE_SECURITY_PLUGIN"] == "true"
    secure = services("compose.secure.yml")["opensearch"]["environment"]
    assert "OPENSEARCH_INITIAL_ADMIN_PASSWORD" in secure and "DISABLE_SECURITY_PLUGIN" not in secure
    staging = services("compose.staging.yml")
    roles = sorted(s["environment"]["node.roles"] for s in staging.values())
    assert roles == ["cluster_manager,data,ingest", "ml"]


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
        assert svc["image"] == f"opensearchproject/opensearch:{version}"
        for key, value in oscluster.node_settings().items():
            if key == "plugins.ml_commons.only_run_on_ml_node" and name == "compose.staging.yml":
                assert svc["environment"][key] == "true"  # the staging cluster has a dedicated ML node
            else:
                assert svc["environment"][key] == value, key
