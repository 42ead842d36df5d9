"""ONNX export for ML Commons: interface contract, zip layout and hash, parity, old cluster runtimes."""

import hashlib
import json
import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest

from distilrank.cli import main
from distilrank.distill.config import StudentSection
from distilrank.distill.export import export_student
from distilrank.distill.export.exporter import default_parity_pairs
from distilrank.distill.export.parity import check_parity
from distilrank.distill.student.model import StudentConfig
from distilrank.distill.student.store import load_student
from distilrank.distill.student.tokenizer import build_student_tokenizer
from distilrank.distill.student.train import fit_student
from distilrank.errors import DistilRankError
from distilrank.pairs import Pairs
from distilrank.plugin.model_zip import build_model_zip, validate_model_zip
from distilrank.plugin.serving_contract import describe_interface, interface_problems
from tests.conftest import sentiment_pairs
from tests.paths import TESTS_DIR

COMPAT_SCRIPT = TESTS_DIR / "compat" / "score_with_runtime.py"


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("student")
    sample = default_parity_pairs()
    train = Pairs.concat([sentiment_pairs(400), sample.with_labels(np.full(len(sample), 0.5, np.float32))])
    tok = build_student_tokenizer(train.queries + train.texts, min_count=1, max_length=64)
    cfg = StudentConfig(vocab_size=tok.get_vocab_size(), bigram_buckets=1009, embedding_dim=16, hidden=[32, 16])
    fit_student(train, train.labels, tok, d, model_config=cfg, config=StudentSection(epochs=2, batch_size=64), progress=False)
    return d


@pytest.fixture(scope="module")
def exported(student_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    return export_student(student_dir, out, name="toy-student", metrics={"dev_accuracy": 0.9})


def test_onnx_interface_contract(exported):
    info = describe_interface(exported.onnx)
    assert [(i["name"], i["dtype"]) for i in info["inputs"]] == [("input_ids", "int64"), ("attention_mask", "int64"), ("token_type_ids", "int64")]
    assert all(len(i["shape"]) == 2 and all(isinstance(d, str) for d in i["shape"]) for i in info["inputs"])
    assert len(info["outputs"]) == 1
    out = info["outputs"][0]
    assert out["dtype"] == "float32" and out["shape"][1] == 1 and isinstance(out["shape"][0], str)
    assert info["opsets"] == {"ai.onnx": 17} and info["ir_version"] <= 8
    assert interface_problems(info) == []
    assert "Mod" in info["operators"]  # bigram hashing happens inside the graph


def test_interface_problems_are_detected(tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input_ids", TensorProto.INT32, ["b", "s"])
    m = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 2])
    graph = helper.make_graph([helper.make_node("Cast", ["input_ids"], ["c"], to=TensorProto.FLOAT),
                               helper.make_node("Concat", ["c", "c"], ["y"], axis=1)], "g", [x, m], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, tmp_path / "bad.onnx")
    problems = " | ".join(interface_problems(describe_interface(tmp_path / "bad.onnx")))
    for expected in ("expected exactly ['input_ids', 'attention_mask', 'token_type_ids']", "input_ids is int32",
                     "expected [batch, 1]", "opset 18 > 17"):
        assert expected in problems


def test_zip_layout_and_hash(exported):
    with zipfile.ZipFile(exported.zip) as zf:
        assert sorted(zf.namelist()) == ["model.onnx", "tokenizer.json"]
        assert zf.read("tokenizer.json") == Path(exported.tokenizer).read_bytes()
    assert exported.sha256 == hashlib.sha256(Path(exported.zip).read_bytes()).hexdigest()
    card = json.loads(Path(exported.card_json).read_text())
    assert card["zip"]["sha256"] == exported.sha256 and card["function_name"] == "TEXT_SIMILARITY"
    assert card["metrics"] == {"dev_accuracy": 0.9}
    assert exported.sha256 in Path(exported.card_markdown).read_text()
    # deterministic: zipping the same files again gives the same hash
    assert build_model_zip(exported.onnx, exported.tokenizer, Path(exported.out_dir) / "again.zip") == exported.sha256


def test_bad_zips_are_rejected(tmp_path, exported):
    def make(name, members):
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as zf:
            for m in members:
                zf.writestr(m, b"x")
        return path

    cases = {"two.zip": (["a.onnx", "b.onnx", "tokenizer.json"], "exactly one .onnx"),
             "notok.zip": (["model.onnx"], "tokenizer.json missing"),
             "nested.zip": (["m/model.onnx", "m/tokenizer.json"], "must be flat"),
             "native.zip": (["model.onnx", "tokenizer.json", "libx.so"], "rejects zips containing")}
    for name, (members, message) in cases.items():
        with pytest.raises(DistilRankError, match=message):
            validate_model_zip(make(name, members))
    (tmp_path / "junk.zip").write_bytes(b"junk")
    with pytest.raises(DistilRankError, match="not a zip file"):
        validate_model_zip(tmp_path / "junk.zip")


def test_parity_on_real_sample_including_edge_cases(exported):
    sample = default_parity_pairs()
    assert {"", "😀 phone", "笔记本电脑"} <= set(sample.queries)
    assert exported.parity.passed and exported.parity.n_pairs == len(sample)
    assert exported.parity.max_abs_diff < 1e-4


def test_parity_catches_a_different_model(student_dir, exported, tmp_path):
    proto = onnx.load(exported.onnx)
    biggest = max(proto.graph.initializer, key=lambda t: np.prod(t.dims))
    arr = onnx.numpy_helper.to_array(biggest).copy()
    arr += 0.01
    biggest.CopyFrom(onnx.numpy_helper.from_array(arr, biggest.name))
    onnx.save(proto, tmp_path / "tampered.onnx")
    report = check_parity(load_student(student_dir), tmp_path / "tampered.onnx", exported.tokenizer, default_parity_pairs().select(range(50)))
    assert not report.passed and report.max_abs_diff > 1e-4 and len(report.worst) == 5


def test_truncation_matches_serving_length(student_dir, tmp_path):
    res = export_student(student_dir, tmp_path, max_length=16)
    spec = json.loads(Path(res.tokenizer).read_text())
    assert spec["truncation"] == {"direction": "Right", "max_length": 16, "strategy": "LongestFirst", "stride": 0}
    assert spec["padding"] is None
    assert res.parity.passed


def test_blend_settings_go_into_the_model_card(student_dir, tmp_path):
    from distilrank.plugin.blend import BlendSettings
    from distilrank.plugin.model_package import inspect_model_zip

    with pytest.raises(DistilRankError, match="bad blend settings"):
        export_student(student_dir, tmp_path / "bad", blend={"normalization": "softmax"})
    assert not (tmp_path / "bad").exists(), "refused before anything is written"
    res = export_student(student_dir, tmp_path / "ok", name="toy-blend", parity_pairs=sentiment_pairs(20),
                         blend=BlendSettings(0.3, 2.0, "z_score"))
    card = json.loads(Path(res.card_json).read_text())
    assert card["blend"] == {"query_weight": 0.3, "model_weight": 2.0, "normalization": "z_score"}
    assert "0.3 * z_score(first pass) + 2.0 * z_score(logit)" in Path(res.card_markdown).read_text()
    assert inspect_model_zip(res.zip).blend == BlendSettings(0.3, 2.0, "z_score")


def test_export_cli_json(student_dir, tmp_path, capsys):
    assert main(["export", "--student", str(student_dir), "--out", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["parity"]["passed"] and out["sha256"] == hashlib.sha256(Path(out["zip"]).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def quantized(student_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export-int8")
    return export_student(student_dir, out, name="toy-int8", quantize=True, quality_pairs=sentiment_pairs(300, seed=5))


def test_int8_quantization_gate(quantized):
    q = quantized.quantization
    assert q["n"] == 300 and q["int8_bytes"] < q["fp32_bytes"] / 2
    expected_kept = q["loss_points"] < 0.2 and q["int8_ms_per_pair"] < q["fp32_ms_per_pair"]
    assert q["kept"] == expected_kept
    assert quantized.precision == ("int8" if expected_kept else "fp32")
    with zipfile.ZipFile(quantized.zip) as zf:
        shipped = zf.read("model.onnx")
    source = Path(quantized.out_dir) / ("int8/model.onnx" if q["kept"] else "model.onnx")
    assert shipped == source.read_bytes()
    info = describe_interface(Path(quantized.out_dir) / "int8" / "model.onnx")
    assert interface_problems(info) == [] and "MatMulInteger" in info["operators"]


def test_quantization_requires_labeled_quality_data(student_dir, tmp_path):
    with pytest.raises(DistilRankError, match="needs labeled quality data"):
        export_student(student_dir, tmp_path, quantize=True)


def _compat_pythons() -> list[str]:
    return [p for p in os.environ.get("DISTILRANK_COMPAT_PYTHONS", "").split(os.pathsep) if p]


@pytest.mark.skipif(not _compat_pythons(), reason="set DISTILRANK_COMPAT_PYTHONS (make test does) to interpreters with the cluster's tokenizers/onnxruntime")
def test_cluster_runtimes_parse_tokenizer_and_run_graph(exported, quantized, student_dir, tmp_path):
    """ML Commons ships tokenizers 0.19-0.20 and ONNX Runtime 1.16.3: same ids, same scores (fp32 and int8 graphs)."""
    from tokenizers import Tokenizer

    sample = default_parity_pairs()
    sample.to_jsonl(tmp_path / "pairs.jsonl")
    tok = Tokenizer.from_file(exported.tokenizer)
    expected_ids = [tok.encode(q, t).ids for q, t in sample]
    reference = load_student(student_dir).score(sample)
    runtimes = []
    for python in _compat_pythons():
        run = subprocess.run([python, str(COMPAT_SCRIPT), exported.onnx, exported.tokenizer, str(tmp_path / "pairs.jsonl")],
                             capture_output=True, text=True, check=True)
        got = json.loads(run.stdout)
        runtimes.append((got["tokenizers"], got["onnxruntime"]))
        assert got["ids"] == expected_ids, f"tokenizers {got['tokenizers']} tokenises differently"
        if got["scores"] is not None:
            assert np.max(np.abs(np.array(got["scores"]) - reference)) < 1e-4
            int8 = subprocess.run([python, str(COMPAT_SCRIPT), str(Path(quantized.out_dir) / "int8" / "model.onnx"), quantized.tokenizer,
                                   str(tmp_path / "pairs.jsonl")], capture_output=True, text=True, check=True)
            from distilrank.plugin.serving_contract import onnx_session, score_like_ml_commons

            here = score_like_ml_commons(onnx_session(Path(quantized.out_dir) / "int8" / "model.onnx"), tok, sample)
            assert np.max(np.abs(np.array(json.loads(int8.stdout)["scores"]) - here)) < 1e-3
    assert any(v.startswith(("0.19", "0.20")) for v, _ in runtimes)
    assert any(o == "1.16.3" for _, o in runtimes)


def test_trigram_student_exports_with_parity(tmp_path):
    sample = default_parity_pairs()
    train = Pairs.concat([sentiment_pairs(200), sample.with_labels(np.full(len(sample), 0.5, np.float32))])
    tok = build_student_tokenizer(train.queries + train.texts, min_count=1, max_length=64)
    cfg = StudentConfig(vocab_size=tok.get_vocab_size(), bigram_buckets=1009, embedding_dim=16, hidden=[16], trigrams=True)
    fit_student(train, train.labels, tok, tmp_path / "s", model_config=cfg, config=StudentSection(epochs=1, batch_size=64),
                  progress=False)
    res = export_student(tmp_path / "s", tmp_path / "export", name="trigram-student")
    assert res.parity.passed and res.parity.max_abs_diff < 1e-4 and not interface_problems(describe_interface(res.onnx))


@pytest.mark.skipif(not _compat_pythons(), reason="set DISTILRANK_COMPAT_PYTHONS (make test does) to interpreters with the cluster's tokenizers/onnxruntime")
def test_match_feature_student_exports_with_parity_on_every_runtime(tmp_path):
    """The lexical-match features are computed inside the graph: same interface, parity here and on ML Commons' runtime."""
    sample = default_parity_pairs()
    train = Pairs.concat([sentiment_pairs(200), sample.with_labels(np.full(len(sample), 0.5, np.float32))])
    tok = build_student_tokenizer(train.queries + train.texts, min_count=1, max_length=64)
    cfg = StudentConfig(vocab_size=tok.get_vocab_size(), bigram_buckets=1009, embedding_dim=16, hidden=[16], interactions=True,
                        match_features=True)
    fit_student(train, train.labels, tok, tmp_path / "s", model_config=cfg, config=StudentSection(epochs=1, batch_size=64),
                  progress=False)
    res = export_student(tmp_path / "s", tmp_path / "export", name="match-student")
    assert res.parity.passed and res.parity.max_abs_diff < 1e-4 and not interface_problems(describe_interface(res.onnx))
    sample.to_jsonl(tmp_path / "pairs.jsonl")
    reference = load_student(tmp_path / "s").score(sample)
    checked = 0
    for python in _compat_pythons():
        run = subprocess.run([python, str(COMPAT_SCRIPT), res.onnx, res.tokenizer, str(tmp_path / "pairs.jsonl")],
                             capture_output=True, text=True, check=True)
        got = json.loads(run.stdout)
        if got["scores"] is not None:
            assert np.max(np.abs(np.array(got["scores"]) - reference)) < 1e-4
            checked += 1
    assert checked >= 1
