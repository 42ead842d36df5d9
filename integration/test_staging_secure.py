"""Least privilege on the secured node (OpenSearch 2.19.1 + security), set up with the security REST API here.

* a read-only user: ``plugin register`` / ``plugin promote`` end with a clear 403 naming the missing permission,
  its searches still work;
* two operators (``ml_full_access`` + search-pipeline and registry-index permissions) with different backend roles:
  with ``plugins.ml_commons.model_access_control_enabled`` one operator's private model group (and its model) is
  invisible to the other;
* no password ever appears in the CLI's output, ``--json``, its errors or the exceptions.

The 2.19.1 secure node has no neural-search (no ``opensearch-security`` zip exists for the 3.x versions that have
it, see integration/README.md), so a rerank pipeline cannot be created there: searches are plain BM25 searches.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import secrets

import pytest
from conftest import REPORT

from distilrank.cli import main
from distilrank.plugin import api, ml_api
from distilrank.plugin.transport import ClusterError

SEC = "/_plugins/_security/api"
TAG = f"{os.getpid()}"
INDEX = f"distilrank-it-secure-{TAG}"
READER, OP_A, OP_B = f"dr-reader-{TAG}", f"dr-op-a-{TAG}", f"dr-op-b-{TAG}"
OPERATOR_ROLE, READER_ROLE = f"dr-operator-{TAG}", f"dr-reader-{TAG}"
PASSWORDS = {u: f"Dr{secrets.token_hex(10)}!x9Q" for u in (READER, OP_A, OP_B)}


def _sec(node, method: str, path: str, body=None):
    return node.client.transport.perform_request(method, f"{SEC}/{path}", body=body)


@pytest.fixture(scope="module")
def users(secure_cluster):
    c = secure_cluster.client
    if c.indices.exists(index=INDEX):
        c.indices.delete(index=INDEX)
    c.indices.create(index=INDEX, body={"mappings": {"properties": {"title": {"type": "text"}}}})
    c.index(index=INDEX, id="1", body={"title": "hp toner cartridge"}, params={"refresh": "true"})
    _sec(secure_cluster, "PUT", f"roles/{READER_ROLE}", {
        "cluster_permissions": ["cluster_composite_ops_ro"],
        "index_permissions": [{"index_patterns": [INDEX, "distilrank-registry"], "allowed_actions": ["read"]}]})
    _sec(secure_cluster, "PUT", f"roles/{OPERATOR_ROLE}", {
        "cluster_permissions": ["cluster:admin/search/pipeline/*", "cluster_composite_ops_ro"],
        "index_permissions": [{"index_patterns": ["distilrank-registry"], "allowed_actions": ["indices_all"]},
                              {"index_patterns": [INDEX], "allowed_actions": ["read"]}]})
    for user, roles in ((READER, ["team_r"]), (OP_A, ["team_a"]), (OP_B, ["team_b"])):
        _sec(secure_cluster, "PUT", f"internalusers/{user}", {"password": PASSWORDS[user], "backend_roles": roles})
    _sec(secure_cluster, "PUT", f"rolesmapping/{READER_ROLE}", {"users": [READER]})
    _sec(secure_cluster, "PUT", f"rolesmapping/{OPERATOR_ROLE}", {"users": [OP_A, OP_B]})
    from opensearchpy.exceptions import NotFoundError

    try:
        ml_full = _sec(secure_cluster, "GET", "rolesmapping/ml_full_access").get("ml_full_access")
    except NotFoundError:
        ml_full = None
    had_mapping, ml_full = ml_full is not None, ml_full or {}
    _sec(secure_cluster, "PUT", "rolesmapping/ml_full_access",
         {"users": sorted(set(ml_full.get("users", [])) | {OP_A, OP_B}), "backend_roles": ml_full.get("backend_roles", []),
          "hosts": ml_full.get("hosts", [])})
    c.cluster.put_settings(body={"persistent": {"plugins.ml_commons.model_access_control_enabled": True}})
    yield {u: api.connect(url=secure_cluster.url, user=u, password=PASSWORDS[u], ca_certs=secure_cluster.ca_cert) for u in PASSWORDS}
    c.cluster.put_settings(body={"persistent": {"plugins.ml_commons.model_access_control_enabled": None}})
    if had_mapping:
        _sec(secure_cluster, "PUT", "rolesmapping/ml_full_access",
             {"users": ml_full.get("users", []), "backend_roles": ml_full.get("backend_roles", []), "hosts": ml_full.get("hosts", [])})
    else:
        _sec(secure_cluster, "DELETE", "rolesmapping/ml_full_access")
    for path in (f"rolesmapping/{READER_ROLE}", f"rolesmapping/{OPERATOR_ROLE}", f"roles/{READER_ROLE}",
                 f"roles/{OPERATOR_ROLE}", *(f"internalusers/{u}" for u in PASSWORDS)):
        with contextlib.suppress(Exception):
            _sec(secure_cluster, "DELETE", path)
    c.indices.delete(index=INDEX)


def _cli(monkeypatch, node, user: str, *argv: str) -> tuple[int, str, str]:
    """Run ``distilrank`` in-process as ``user`` (password from the environment, as the docs recommend)."""
    monkeypatch.setenv("OPENSEARCH_PASSWORD", PASSWORDS[user])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv[:1]) + [*argv[1:], "--url", node.url, "--user", user, "--ca-certs", node.ca_cert])
    return rc, out.getvalue(), err.getvalue()


def _no_secret(*texts: str) -> None:
    for text in texts:
        for user, pw in PASSWORDS.items():
            assert pw not in text, f"the password of {user} leaked"


def test_read_only_user_gets_a_clear_403(secure_cluster, users, tiny_model_zip, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    rc, out, err = _cli(monkeypatch, secure_cluster, READER, "--json", "plugin", "register", str(tiny_model_zip.path),
                        "--skip-preflight", "--group", f"dr-reader-group-{TAG}")
    assert rc != 0, out
    assert "HTTP 403" in err or "lacks permission" in err, err
    assert f"user '{READER}' lacks permission" in err and "no permissions for [cluster:admin/opensearch/ml/" in err, err
    rc2, out2, err2 = _cli(monkeypatch, secure_cluster, READER, "plugin", "promote", "staging", "--model-id", "nope")
    assert rc2 != 0 and "lacks permission" in err2 and "no permissions for [cluster:admin/opensearch/ml/models/get]" in err2, err2
    with pytest.raises(ClusterError) as e:
        api.register(users[READER], tiny_model_zip.path, group=f"dr-reader-group-{TAG}", check=False, progress=False)
    assert e.value.status == 403
    # searches still work for the read-only user
    hits = users[READER].request("POST", f"/{INDEX}/_search", {"query": {"match": {"title": "toner"}}})["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["1"]
    _no_secret(out, err, out2, err2, str(e.value), repr(e.value), json.dumps(str(e.value.reason)), caplog.text)
    REPORT["least_privilege"] = {"register": err.strip().splitlines()[0][:300], "promote": err2.strip().splitlines()[0][:300]}


def test_private_model_group_invisible_to_another_backend_role(secure_cluster, users, tiny_model_zip, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    group = f"dr-private-{TAG}"
    rc, out, err = _cli(monkeypatch, secure_cluster, OP_A, "--json", "plugin", "register", str(tiny_model_zip.path),
                        "--skip-preflight", "--group", group, "--deploy", "--no-rescorer")
    assert rc == 0, err
    res = json.loads(out)
    model_id = res["model_id"]
    try:
        assert res["deployment"]["state"] == "DEPLOYED" and res["smoke_test"]["passed"]
        a, b = users[OP_A], users[OP_B]
        assert [g["_id"] for g in ml_api.search_model_groups(a, group)] == [res["model_group_id"]]
        assert ml_api.search_model_groups(b, group) == []  # invisible to team_b
        assert ml_api.search_models(b, {"term": {"_id": model_id}}) == []
        with pytest.raises(ClusterError) as e:
            ml_api.get_model(b, model_id)
        assert e.value.status == 403 and "permission" in str(e.value).lower(), str(e.value)
        with pytest.raises(ClusterError) as e2:
            ml_api.predict_similarity(b, model_id, "apple", ["apple pie"])
        assert e2.value.status == 403
        # the owner can list it, with the true state
        rc, out_list, err_list = _cli(monkeypatch, secure_cluster, OP_A, "--json", "plugin", "list", "--group", group)
        assert rc == 0, err_list
        assert [m["state"] for m in json.loads(out_list)["models"]] == ["DEPLOYED"]
        _no_secret(out, err, out_list, err_list, str(e.value), str(e2.value), caplog.text)
    finally:
        api.delete(users[OP_A], model_id, force=True)
