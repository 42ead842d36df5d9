"""The parts of the plugin that need no cluster: zip inspection, register request, pipelines and search bodies,
smoke samples, local scoring, the CLI's argument handling, and the A/B config."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from distilrank.cli import main
from distilrank.distill.export import export_student
from distilrank.distill.student.model import StudentConfig
from distilrank.distill.student.tokenizer import build_student_tokenizer
from distilrank.distill.student.train import StudentTrainConfig, train_student
from distilrank.errors import ConfigError, DistilRankError
from distilrank.pairs import Pairs
from distilrank.plugin.deploy import default_smoke_pairs
from distilrank.plugin.local_scoring import LocalScorer
from distilrank.plugin.ml_api import MAX_CHUNK_BYTES
from distilrank.plugin.model_package import PackageError, check_chunk_size, inspect_model_zip
from distilrank.plugin.pipelines import RerankSpec, check_search_body, read_pipeline_spec, rerank_pipeline_body, rerank_search_body
from distilrank.plugin.register import register_meta_body
from tests.conftest import sentiment_pairs


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("student")
    train = sentiment_pairs(300)
    tok = build_student_tokenizer(train.queries + train.texts, min_count=1, max_length=64)
    cfg = StudentConfig(vocab_size=tok.get_vocab_size(), bigram_buckets=101, embedding_dim=8, hidden=[16])
    train_student(train, train.labels, tok, d / "s", model_config=cfg, config=StudentTrainConfig(epochs=1, batch_size=64), progress=False)
    return export_student(d / "s", d / "export", name="toy", metrics={"student": {"accuracy": 0.91}})


def test_inspect_valid_zip(exported):
    pkg = inspect_model_zip(exported.zip, expected_sha256=exported.sha256.upper())
    assert pkg.sha256 == exported.sha256 and pkg.onnx_member == "model.onnx" and pkg.tokenizer_max_length == 64
    assert pkg.card["name"] == "toy" and pkg.name() == "toy"
    chunks = list(pkg.chunks(1000))
    assert b"".join(c for _, c in chunks) == open(exported.zip, "rb").read()
    assert [i for i, _ in chunks] == list(range(pkg.n_chunks(1000))) and all(len(c) <= 1000 for _, c in chunks)


def _rezip(src, dest, drop=(), add=()):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for n in zin.namelist():
            if n not in drop:
                zout.writestr(n, zin.read(n))
        for n, data in add:
            zout.writestr(n, data)
    return dest


def test_bad_zips_named_precisely(exported, tmp_path):
    with pytest.raises(PackageError, match=r"nozip.zip: model zip not found"):
        inspect_model_zip(tmp_path / "nozip.zip")
    with pytest.raises(PackageError, match=r"notok.zip: tokenizer.json missing"):
        inspect_model_zip(_rezip(exported.zip, tmp_path / "notok.zip", drop=("tokenizer.json",)))
    with pytest.raises(PackageError, match=r"badtok.zip: tokenizer.json does not load"):
        inspect_model_zip(_rezip(exported.zip, tmp_path / "badtok.zip", drop=("tokenizer.json",),
                                 add=(("tokenizer.json", '{"model": {"type": "Nope"}}'),)))
    with pytest.raises(PackageError, match=r"badonnx.zip: model.onnx is not a loadable ONNX model"):
        inspect_model_zip(_rezip(exported.zip, tmp_path / "badonnx.zip", drop=("model.onnx",), add=(("model.onnx", b"junk"),)))
    with pytest.raises(PackageError, match=r"sha256 is [0-9a-f]{64}, but abc was expected"):
        inspect_model_zip(exported.zip, expected_sha256="abc")


def test_chunk_size_limits_and_chunks_rebuild_the_zip(exported):
    assert check_chunk_size(MAX_CHUNK_BYTES) == MAX_CHUNK_BYTES
    for bad in (0, MAX_CHUNK_BYTES + 1):
        with pytest.raises(PackageError, match="outside 1..10,000,000"):
            check_chunk_size(bad)
    pkg = inspect_model_zip(exported.zip)
    data = Path(exported.zip).read_bytes()
    for size in (1000, pkg.size - 1, pkg.size, MAX_CHUNK_BYTES):
        chunks = list(pkg.chunks(size))
        assert [i for i, _ in chunks] == list(range(pkg.n_chunks(size)))
        assert all(len(c) <= size for _, c in chunks) and b"".join(c for _, c in chunks) == data


def test_register_meta_body(exported):
    pkg = inspect_model_zip(exported.zip)
    body = register_meta_body(pkg, "g1", "toy", 1000)
    assert body["function_name"] == "TEXT_SIMILARITY" and body["model_format"] == "ONNX"
    assert body["model_content_hash_value"] == pkg.sha256 and body["model_content_size_in_bytes"] == pkg.size
    assert body["total_chunks"] == pkg.n_chunks(1000) and body["model_config"]["embedding_dimension"] == 1  # 2.19 needs it
    assert "accuracy 0.9100" in body["description"]
    assert json.loads(body["model_config"]["all_config"])["distilrank"]["sha256"] == pkg.sha256


def test_pipeline_body_and_spec_round_trip():
    spec = RerankSpec("m1", ["title", "brand"], depth=50, size=10, alias="staging")
    body = rerank_pipeline_body(spec)
    assert body["request_processors"] == [{"oversample": {"sample_factor": 5.0}}]
    assert body["response_processors"][0] == {"rerank": {"ml_opensearch": {"model_id": "m1"}, "context": {"document_fields": ["title", "brand"]}}}
    assert body["response_processors"][1] == {"truncate_hits": {}}
    assert read_pipeline_spec(body) == spec
    assert read_pipeline_spec({"description": "someone else's"}) is None
    with pytest.raises(DistilRankError, match="depth 5 is smaller than the page size 10"):
        rerank_pipeline_body(RerankSpec("m1", depth=5, size=10))


def test_search_body_guards():
    body = rerank_search_body('say "hi"', size=3, fields=["title"])
    assert body == {"size": 3, "query": {"match": {"title": 'say "hi"'}}, "ext": {"rerank": {"query_context": {"query_text": 'say "hi"'}}}}
    assert rerank_search_body("x", fields=["a", "b"])["query"] == {"multi_match": {"query": "x", "fields": ["a", "b"]}}
    with pytest.raises(DistilRankError, match="size must be >= 1"):
        rerank_search_body("x", size=0, fields=["title"])
    with pytest.raises(DistilRankError, match="track_total_hits: false"):
        rerank_search_body("x", fields=["title"], track_total_hits=False)
    with pytest.raises(DistilRankError, match="ext.rerank.query_context"):
        check_search_body({"size": 10, "query": {"match_all": {}}})
    check_search_body({"size": 10, "ext": {"rerank": {"query_context": {"query_text_path": "query.match.title"}}}})
    # more match-query clauses than max_clause_count (HTTP 400 too_many_clauses on the node): refused, 1,000 terms are fine
    with pytest.raises(DistilRankError, match=r"10,000 characters has 2,000 terms.*max_clause_count \(1024"):
        rerank_search_body("usb cable " * 1000, fields=["title"])
    assert rerank_search_body("usb cable " * 512, fields=["title"])["size"] == 10


def test_smoke_pairs_and_local_scoring(exported):
    groups = default_smoke_pairs()
    assert sum(len(d) for _, d in groups) == 24 and all(docs for _, docs in groups)
    assert len(groups) > 2  # several queries, icecat pairs and edge cases
    scorer = LocalScorer(exported.zip)
    q, docs = groups[0]
    scores = scorer.score(q, docs)
    assert scores.shape == (len(docs),) and scores.dtype == np.float32
    from distilrank.distill.student.store import load_student

    student = load_student(Path(exported.out_dir).parent / "s")
    np.testing.assert_allclose(scores, student.score(Pairs([q] * len(docs), docs)), atol=1e-4)


def test_cli_rejects_bad_zip_before_contacting_the_cluster(exported, tmp_path, capsys):
    bad = _rezip(exported.zip, tmp_path / "bad.zip", drop=("tokenizer.json",))
    assert main(["plugin", "register", str(bad), "--url", "http://127.0.0.1:1", "--retries", "0"]) == 2
    err = capsys.readouterr().err
    assert "tokenizer.json missing" in err and "cannot reach" not in err


def test_ab_assign_cli(capsys):
    assert main(["--json", "ab", "assign", "--experiment", "e", "--salt", "s", "--arm", "control::50", "--arm",
                 "student:distilrank-staging:50", "u1", "u2", "u1"]) == 0
    rows = json.loads(capsys.readouterr().out)["assignments"]
    assert rows[0] == rows[2] and {r["arm"] for r in rows} <= {"control", "student"}
    assert all((r["search_pipeline"] is None) == (r["arm"] == "control") for r in rows)
    assert main(["ab", "assign", "--experiment", "e", "--salt", "s", "--arm", "control:90", "u1"]) == 2


AB_OK = """
[experiment]
name = "e"
index = "products"
judgments = "j.csv"
[[arm]]
name = "bm25"
query = { match = { title = "{{query}}" } }
[[arm]]
name = "student"
alias = "staging"
query = { match = { title = "{{query}}" } }
"""


def test_ab_config(tmp_path):
    from distilrank.plugin.abtest.config import load_ab_config

    p = tmp_path / "ab.toml"
    p.write_text(AB_OK)
    cfg = load_ab_config(p)
    assert cfg.judgments == str(tmp_path / "j.csv") and [a.name for a in cfg.arms] == ["bm25", "student"]
    assert cfg.arms[0].body('a "quoted" query', 10) == {"size": 10, "query": {"match": {"title": 'a "quoted" query'}}}
    for broken, field in ((AB_OK.replace('index = "products"\n', ""), "experiment.index"),
                          (AB_OK.replace('"{{query}}" } }\n[[arm]]', '"fixed" } }\n[[arm]]'), "arm[0].query"),
                          (AB_OK.replace('alias = "staging"', 'alias = "staging"\npipline = "x"'), "arm[1].pipline"),
                          (AB_OK.replace('judgments = "j.csv"', 'judgments = "j.csv"\nbaseline = "nope"'), "experiment.baseline")):
        p.write_text(broken)
        with pytest.raises(ConfigError, match=f"field '{field}'".replace("[", r"\[").replace("]", r"\]")):
            load_ab_config(p)
