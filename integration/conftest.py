"""Fixtures for the tests that run against a real OpenSearch node with ML Commons.

Which node:
* ``OPENSEARCH_URL`` set: that node (``OPENSEARCH_USER``/``OPENSEARCH_PASSWORD``/``OPENSEARCH_CA_CERT`` for a
  secured one); it is never stopped by the tests.
* otherwise a node already started by ``integration/cluster/start`` (state file), left running;
* otherwise the tests start one (``DISTILRANK_OPENSEARCH_TIER``, default 2) and stop it at the end.

The secured node (``secure_cluster``) works the same way with ``OPENSEARCH_SECURE_URL`` and
``integration/cluster/start --secure``.

If a node cannot be started, or lacks a plugin or module a test needs (:func:`needs_on_node`), the tests are
skipped with the reason, unless ``DISTILRANK_REQUIRE_CLUSTER`` is set (``.ci/run`` and ``integration/cluster/ci``
set it): then they fail.
"""
from __future__ import annotations

import atexit
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "cluster"))
sys.path.append(str(Path(__file__).resolve().parents[1]))  # the repository root: tests.zips, shared with the unit tests

import oscluster  # noqa: E402
import testkit  # noqa: E402

REPORT: dict[str, object] = {}


@dataclass
class Node:
    url: str
    client: object
    state: dict
    started_here: bool
    user: str | None = None
    password: str | None = None
    ca_cert: str | None = None
    plugins: set[str] = field(default_factory=set)
    modules: set[str] = field(default_factory=set)

    @property
    def t(self):
        """distilrank's transport (:mod:`distilrank.plugin.ml_api` takes it) with this node's URL and credentials."""
        from distilrank.plugin import api

        return api.connect(url=self.url, user=self.user, password=self.password, ca_certs=self.ca_cert)


def make_client(url: str, user: str | None = None, password: str | None = None, ca_cert: str | None = None,
                **kw):
    from opensearchpy import OpenSearch

    args = dict(hosts=[url], timeout=120, **kw)
    if user:
        args["http_auth"] = (user, password or "")
    if url.startswith("https"):
        args.update(use_ssl=True, verify_certs=bool(ca_cert), ca_certs=ca_cert, ssl_show_warn=False)
    return OpenSearch(**args)


def _require() -> bool:
    return os.environ.get("DISTILRANK_REQUIRE_CLUSTER", "").lower() not in ("", "0", "false", "no")


def skip_or_fail(msg: str) -> None:
    """Skip the calling test with ``msg``, or fail it when ``DISTILRANK_REQUIRE_CLUSTER`` is set."""
    if _require():
        pytest.fail(msg + "\n(DISTILRANK_REQUIRE_CLUSTER is set, so this is a failure)", pytrace=False)
    pytest.skip(msg)


def needs_on_node(node: Node, why: str, plugins: tuple[str, ...] = (), modules: tuple[str, ...] = ()) -> None:
    """Return if ``node`` has every plugin and module named; otherwise :func:`skip_or_fail` with ``why``, what is
    missing and the node's start-up notes about it (e.g. why a plugin was not installed)."""
    missing = [f"plugin {p}" for p in plugins if p not in node.plugins] + [f"module {m}" for m in modules if m not in node.modules]
    if not missing:
        return
    names = [m.split(" ", 1)[1] for m in missing]
    notes = [n for n in node.state.get("notes", []) if any(name in n for name in names)]
    skip_or_fail(f"{why}: {', '.join(missing)} absent on the node at {node.url}" + "".join(f"; note: {n}" for n in notes))


def _node(name: str, url_env: str, secure: bool, request) -> Node:
    started_here = False
    if os.environ.get(url_env):
        state = {"url": os.environ[url_env], "name": name, "external": True,
                 "user": os.environ.get("OPENSEARCH_USER"), "password": os.environ.get("OPENSEARCH_PASSWORD"),
                 "ca_cert": os.environ.get("OPENSEARCH_CA_CERT")}
    else:
        state = oscluster.status(name)
        if state is None or not oscluster.healthy(state)[0]:
            tier = int(os.environ.get("DISTILRANK_OPENSEARCH_TIER", "2"))
            try:
                state = oscluster.start(secure=secure, tier=tier)
            except oscluster.ClusterError as e:
                skip_or_fail(f"cannot start the {name} OpenSearch node: {e}")
            started_here = not state.get("already_running")
            if started_here:
                # also on an interrupted session (quiet if the finalizer already stopped it)
                atexit.register(lambda: oscluster.status(name) and oscluster.stop(name=name))

                def _stop():
                    oscluster.stop(name=name)

                request.addfinalizer(_stop)
    client = make_client(state["url"], state.get("user"), state.get("password"), state.get("ca_cert"))
    info = client.nodes.info(metric="plugins")["nodes"]
    plugins = {p["name"] for n in info.values() for p in n["plugins"]}
    modules = {m["name"] for n in info.values() for m in n["modules"]}
    node = Node(state["url"], client, state, started_here, state.get("user"), state.get("password"),
                state.get("ca_cert"), plugins, modules)
    REPORT[name] = {"url": node.url, "version": client.info()["version"]["number"],
                    "cat_plugins": client.cat.plugins(v=True), "timings": state.get("timings"),
                    "notes": state.get("notes", []), "started_here": started_here}
    return node


@pytest.fixture(scope="session")
def cluster(request) -> Node:
    return _node("dev", "OPENSEARCH_URL", False, request)


@pytest.fixture(scope="session")
def secure_cluster(request) -> Node:
    return _node("secure", "OPENSEARCH_SECURE_URL", True, request)


@pytest.fixture(scope="module")
def t(cluster):
    """distilrank's transport (:func:`distilrank.plugin.api.connect`) to the dev node: what the tests drive the plugin with."""
    from distilrank.plugin import api

    return api.connect(url=cluster.url)


@pytest.fixture(scope="session")
def tiny_model_zip(tmp_path_factory) -> testkit.ModelZip:
    return testkit.build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-model"))


def deploy_tiny_model(node: Node, mz: testkit.ModelZip, tag: str):
    """Register (chunked upload) and deploy the tiny cross-encoder with distilrank's own client; (group, model, deployment)."""
    from distilrank.plugin.deploy import deploy_model
    from distilrank.plugin.model_package import inspect_model_zip
    from distilrank.plugin.register import register_package

    t = node.t
    reg = register_package(t, inspect_model_zip(mz.path), group=f"distilrank-it-{tag}-{os.getpid()}",
                           name=f"distilrank-tiny-{tag}", progress=False)
    return reg.model_group_id, reg.model_id, deploy_model(t, reg.model_id)


def remove_model(node: Node, model_id: str) -> None:
    """Undeploy and delete a model (best effort: the node may be shutting down)."""
    from distilrank.plugin import ml_api, registry_store

    try:
        ml_api.undeploy(node.t, model_id)
        ml_api.delete_model(node.t, model_id)
        registry_store.delete_model_record(node.t, model_id)
    except Exception:  # noqa: BLE001 - cleanup only
        pass


@pytest.fixture(scope="session")
def deployed_model(cluster, tiny_model_zip):
    """(model_group_id, model_id) of the tiny cross-encoder, registered and deployed on the dev node."""
    group, model_id, _ = deploy_tiny_model(cluster, tiny_model_zip, "dev")
    yield group, model_id
    remove_model(cluster, model_id)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not REPORT:
        return
    tr = terminalreporter
    tr.section("OpenSearch integration nodes")
    for name, r in REPORT.items():
        if not isinstance(r, dict) or "url" not in r:
            continue
        tr.write_line(f"{name}: OpenSearch {r['version']} at {r['url']}"
                      + (f", start timings {r['timings']}" if r.get("timings") else "")
                      + ("" if r.get("started_here") else " (already running)"))
        for line in str(r["cat_plugins"]).rstrip().splitlines():
            tr.write_line(f"  {line}")
        for n in r.get("notes") or []:
            tr.write_line(f"  note: {n}")
    for key in ("promote_under_traffic", "two_operators", "faults", "serving_bad_input", "least_privilege"):
        if REPORT.get(key):
            tr.write_line(f"{key}: {json.dumps(REPORT[key], default=str)}")
    if "predict" in REPORT:
        tr.write_line(f"_predict (tiny ONNX cross-encoder): {REPORT['predict']}")
