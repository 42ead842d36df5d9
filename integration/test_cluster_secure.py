"""The secured node (security plugin: TLS on HTTP and transport, basic auth)."""
from __future__ import annotations

import ssl
import urllib.error
import urllib.request

import oscluster
import pytest
import testkit
from conftest import deploy_tiny_model, make_client, remove_model

from distilrank.plugin import ml_api


def test_tls_and_basic_auth_required(secure_cluster):
    url = secure_cluster.url
    assert url.startswith("https://")
    ctx = ssl.create_default_context(cafile=secure_cluster.ca_cert)
    # no credentials: 401
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url + "/", context=ctx, timeout=30)
    assert e.value.code == 401
    # an unknown CA is refused by the client
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/", context=ssl.create_default_context(), timeout=30)
    # wrong password: 401
    from opensearchpy.exceptions import AuthenticationException

    bad = make_client(url, secure_cluster.user, "wrong-password", secure_cluster.ca_cert)
    with pytest.raises(AuthenticationException):
        bad.info()
    # right password and verified certificate
    assert secure_cluster.client.info()["version"]["number"]
    who = secure_cluster.client.transport.perform_request("GET", "/_plugins/_security/authinfo")
    assert who["user_name"] == secure_cluster.user


def test_secure_plugins_and_settings(secure_cluster):
    assert {"opensearch-security", "opensearch-ml", "opensearch-job-scheduler"} <= secure_cluster.plugins
    if not secure_cluster.state.get("external"):
        versions = oscluster.read_env_file(oscluster.VERSIONS_FILE)
        assert secure_cluster.client.info()["version"]["number"] == versions["SECURE_OPENSEARCH_VERSION"]
    nodes = secure_cluster.client.nodes.info(metric="settings", flat_settings=True)["nodes"]
    for node in nodes.values():
        for k, v in oscluster.node_settings().items():
            assert str(node["settings"].get(k)).lower() == v.lower(), k


def test_secure_register_deploy_predict(secure_cluster, tiny_model_zip):
    group, model_id, _ = deploy_tiny_model(secure_cluster, tiny_model_zip, "secure")
    try:
        docs = ["apple pie is great", "banana bread"]
        scores = ml_api.predict_similarity(secure_cluster.t, model_id, "sweet apple pie", docs)
        assert scores == pytest.approx([testkit.reference_score("sweet apple pie", d) for d in docs], abs=1e-5)
    finally:
        remove_model(secure_cluster, model_id)
