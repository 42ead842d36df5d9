"""Bad input to ``distilrank plugin``: each gets a clear error before anything is half-registered.

Zip problems are caught before the first request; cluster problems (unreachable, wrong credentials) name the
URL and the fix; a registration that fails half-way is deleted; a deployed model that scores differently from its
zip is undeployed; search bodies that make neural-search's rerank fail are refused by the helpers.
"""
from __future__ import annotations

import os
import zipfile

import icecat_student
import onnx
import pytest
import testkit

from distilrank.cli import main
from distilrank.errors import DistilRankError
from distilrank.plugin import api, ml_api
from distilrank.plugin.deploy import SmokeTestError, deploy_model, smoke_test
from distilrank.plugin.model_package import inspect_model_zip
from distilrank.plugin.pipelines import check_search_body, rerank_search_body
from distilrank.plugin.register import find_by_hash, register_package
from distilrank.plugin.transport import ClusterError, Transport
from tests.zips import rezip

GROUP = f"distilrank-it-bad-{os.getpid()}"


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    return icecat_student.build_icecat_student(tmp_path_factory.mktemp("bad-input-student"), seed=5, name="bad-input-s5")


@pytest.fixture(scope="module", autouse=True)
def _cleanup(t):
    yield
    for found in ml_api.search_model_groups(t, GROUP):
        for hit in ml_api.search_models(t, {"term": {"model_group_id": found["_id"]}}):
            api.delete(t, hit["_id"], force=True)


def _register_fails(t, zip_path, match: str, **kw):
    sent_before = len(t.requests)
    with pytest.raises(DistilRankError, match=match):
        api.register(t, zip_path, group=GROUP, progress=False, **kw)
    return t.requests[sent_before:]


def test_missing_tokenizer_json(t, student, tmp_path):
    bad = rezip(student.zip, tmp_path / "no-tok.zip", drop=("tokenizer.json",))
    assert _register_fails(t, bad, r"no-tok.zip: tokenizer.json missing") == []


def test_two_onnx_files(t, student, tmp_path):
    with zipfile.ZipFile(student.zip) as zf:
        graph = zf.read("model.onnx")
    bad = rezip(student.zip, tmp_path / "two.zip", add=(("other.onnx", graph),))
    assert _register_fails(t, bad, r"exactly one .onnx file.*model.onnx.*other.onnx") == []


def test_wrong_input_names(t, tmp_path):
    mz = testkit.build_tiny_cross_encoder(tmp_path / "tiny")
    onnx_path = next((tmp_path / "tiny").glob("*.onnx"))
    proto = onnx.load(str(onnx_path))
    rename = {"input_ids": "ids", "token_type_ids": "segment_ids"}
    for inp in proto.graph.input:
        inp.name = rename.get(inp.name, inp.name)
    for node in proto.graph.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
    bad = tmp_path / "renamed.zip"
    with zipfile.ZipFile(mz.path) as zin, zipfile.ZipFile(bad, "w") as zout:
        zout.writestr("model.onnx", proto.SerializeToString())
        zout.writestr("tokenizer.json", zin.read("tokenizer.json"))
    assert _register_fails(t, bad, r"interface ML Commons feeds.*inputs are \['ids', 'attention_mask', 'segment_ids'\]") == []


def test_wrong_hash(t, student):
    sent = _register_fails(t, student.zip, r"sha256 is [0-9a-f]{64}, but 0{64} was expected", expected_sha256="0" * 64)
    assert sent == []


def test_oversized_chunk_via_cli(cluster, student, capsys):
    rc = main(["plugin", "register", str(student.zip), "--url", cluster.url, "--group", GROUP, "--chunk-size", "10000001"])
    assert rc == 2
    assert "chunk size 10,000,001 bytes is outside 1..10,000,000" in capsys.readouterr().err


def test_unreachable_cluster(student, capsys):
    rc = main(["plugin", "register", str(student.zip), "--url", "http://127.0.0.1:1", "--retries", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot reach the cluster at http://127.0.0.1:1" in err and "fix: check --url" in err


def test_wrong_credentials(secure_cluster, capsys):
    rc = main(["plugin", "preflight", "--url", secure_cluster.url, "--user", secure_cluster.user, "--password", "wrong-Passw0rd!",
               "--ca-certs", secure_cluster.ca_cert, "--retries", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "authentication failed" in err and f"user '{secure_cluster.user}'" in err
    assert "wrong-Passw0rd!" not in err
    # the right credentials and the CA bundle work
    t = api.connect(url=secure_cluster.url, user=secure_cluster.user, password=secure_cluster.password,
                    ca_certs=secure_cluster.ca_cert)
    checks = {c["name"]: c for c in api.preflight(t)["checks"]}
    assert checks["cluster"]["status"] in ("ok", "warn") and checks["ml-commons"]["status"] == "ok"


def test_tls_without_ca_is_explained(secure_cluster, capsys):
    rc = main(["plugin", "preflight", "--url", secure_cluster.url, "--user", secure_cluster.user, "--retries", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "TLS" in err and "--ca-certs" in err


def test_missing_index_field_refused_before_registering(cluster, t, student):
    c = cluster.client
    index = f"distilrank-it-bad-fields-{os.getpid()}"
    c.indices.create(index=index, body={"mappings": {"properties": {"name": {"type": "text"}}}})
    try:
        sent = _register_fails(t, student.zip, r"index .* has no field 'title'.*text fields there: name",
                               promote_alias=f"it{os.getpid()}-bad", index=index, document_fields=["title"])
        assert not [r for r in sent if not r.path.endswith("_search") and r.method != "GET"]
        assert find_by_hash(t, student.sha256) == []
        assert ml_api.get_search_pipeline(t, f"distilrank-it{os.getpid()}-bad") is None
    finally:
        c.indices.delete(index=index)


class FlakyUploads(Transport):
    """A transport whose upload of chunk 1 always fails with HTTP 500 (a node dying mid-upload)."""

    def request(self, method, path, body=None, params=None, **kw):
        if "/upload_chunk/1" in path:
            raise ClusterError(f"{method} {path} failed with HTTP 500: injected", status=500)
        return super().request(method, path, body, params, **kw)


def test_failed_upload_is_cleaned_up(cluster, student):
    t = FlakyUploads(api.connect(url=cluster.url).settings)
    pkg = inspect_model_zip(student.zip)
    with pytest.raises(ClusterError, match=r"upload of chunk 2/\d+ .* failed after 4 tries") as exc:
        register_package(t, pkg, group=GROUP, chunk_size=100_000, progress=False)
    assert exc.value.status == 500
    model_id = next(r.path.split("/")[4] for r in t.requests if "/upload_chunk/" in r.path)
    assert ml_api.get_model(t, model_id) is None
    assert find_by_hash(t, pkg.sha256) == []


def test_stale_half_registration_is_replaced(t, student):
    pkg = inspect_model_zip(student.zip)
    from distilrank.plugin.register import model_group, register_meta_body

    group_id, _ = model_group(t, GROUP)
    stale = ml_api.register_meta(t, register_meta_body(pkg, group_id, "stale", 10_000_000))  # no chunks: REGISTERING
    assert ml_api.get_model(t, stale)["model_state"] == "REGISTERING"
    reg = register_package(t, pkg, group=GROUP, progress=False)
    assert reg.cleaned_up == [stale] and not reg.reused
    assert ml_api.get_model(t, stale) is None
    assert [h["_id"] for h in find_by_hash(t, pkg.sha256, group_id)] == [reg.model_id]


def test_smoke_mismatch_undeploys(t, student, tmp_path):
    other = icecat_student.build_icecat_student(tmp_path, seed=6, name="bad-input-s6")
    reg = register_package(t, inspect_model_zip(student.zip), group=GROUP, progress=False)
    deploy_model(t, reg.model_id)
    with pytest.raises(SmokeTestError, match=r"scores differ from bad-input-s6.zip .* \(model undeployed\)"):
        smoke_test(t, reg.model_id, other.zip)
    assert ml_api.get_model(t, reg.model_id)["model_state"] in api.NOT_SERVING_STATES
    assert ml_api.model_states_on_nodes(t, reg.model_id) == {}


def test_rerank_hazards_are_real_and_guarded(cluster, t, student):
    """What the node does with the bodies the helpers refuse (OpenSearch 3.6.0 + neural-search 3.6.0.0)."""
    from opensearchpy.exceptions import RequestError, TransportError

    index = f"distilrank-it-hazards-{os.getpid()}"
    c = cluster.client
    c.indices.create(index=index, body={"mappings": {"properties": {"title": {"type": "text"}}}})
    for i, p in enumerate(icecat_student.products()[:50]):
        c.index(index=index, id=str(i), body={"title": p["title"]})
    c.indices.refresh(index=index)
    reg = register_package(t, inspect_model_zip(student.zip), group=GROUP, progress=False)
    deploy_model(t, reg.model_id)
    api.pipeline(t, "distilrank-it-hazards", reg.model_id, document_fields=["title"], depth=20, size=10, index=index)
    good = rerank_search_body("cable", size=5, fields=["title"])
    params = {"search_pipeline": "distilrank-it-hazards"}
    query = {"match": {"title": "cable"}}
    try:
        assert c.search(index=index, body=good, params=params)["hits"]["hits"]
        with pytest.raises(TransportError) as e:  # no ext.rerank
            c.search(index=index, body={"size": 5, "query": query}, params=params)
        assert e.value.status_code == 500
        with pytest.raises(RequestError, match="No text documents"):  # size 0
            c.search(index=index, body={**good, "size": 0}, params=params)
        with pytest.raises(TransportError) as e:  # track_total_hits false
            c.search(index=index, body={**good, "track_total_hits": False}, params=params)
        assert e.value.status_code == 500
        for body, msg in (({"size": 5, "query": query}, "ext.rerank.query_context"), ({**good, "size": 0}, "size must be >= 1"),
                          ({**good, "track_total_hits": False}, "track_total_hits: false")):
            with pytest.raises(DistilRankError, match=msg):
                check_search_body(body)
        # a document field the index lacks is accepted by the node and scores empty text: refused by the helper
        with pytest.raises(DistilRankError, match="has no field 'name'"):
            api.pipeline(t, "distilrank-it-hazards-2", reg.model_id, document_fields=["name"], index=index)
    finally:
        ml_api.delete_search_pipeline(t, "distilrank-it-hazards")
        c.indices.delete(index=index)
