"""Teacher export: a tiny fine-tuned BERT cross-encoder -> ML Commons TEXT_SIMILARITY ONNX package."""

import hashlib
import json
import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from distilrank.cli import main
from distilrank.distill.config import TeacherConfig
from distilrank.distill.export.teacher_export import default_teacher_parity_pairs, export_cross_encoder_teacher
from distilrank.distill.teacher.finetune import finetune_teacher
from distilrank.distill.teacher.model import load_teacher
from distilrank.errors import DistilRankError
from distilrank.pairs import Pairs
from distilrank.plugin.model_package import inspect_model_zip
from distilrank.plugin.serving_contract import INPUT_NAMES, interface_problems, onnx_session, score_like_ml_commons
from tests.paths import TESTS_DIR

COMPAT_SCRIPT = TESTS_DIR / "compat" / "score_with_runtime.py"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _query_pairs(n: int, seed: int = 0) -> Pairs:
    """(query, product text) pairs over the tiny vocabulary; relevant when the query word is in the text."""
    rng = np.random.default_rng(seed)
    items = ["red", "blue", "shoes", "socks", "lamp", "mug", "cotton", "wool"]
    queries, texts, labels = [], [], []
    for _ in range(n):
        q = str(rng.choice(items))
        words = list(rng.choice(items, size=int(rng.integers(2, 5))))
        queries.append(q)
        texts.append(" ".join(words))
        labels.append(3.0 if q in words else 0.0)
    return Pairs(queries, texts, np.array(labels, np.float32), source=f"query pairs({n})")


@pytest.fixture(scope="module")
def teacher_ckpt(tiny_bert, tmp_path_factory) -> Path:
    """A checkpoint exactly as distilrank.distill.teacher.finetune saves it (best/ with distilrank_teacher.json, max_length 24)."""
    out = tmp_path_factory.mktemp("teacher-ce")
    cfg = TeacherConfig(epochs=1, max_steps=4, batch_size=16, lr=1e-3, max_length=24, label_mode="graded", max_label=3.0,
                             mixed_precision="no", device="cpu")
    finetune_teacher(tiny_bert, _query_pairs(64), None, out, config=cfg, progress=False)
    assert json.loads((out / "best" / "distilrank_teacher.json").read_text())["max_length"] == 24
    return out / "best"


@pytest.fixture(scope="module")
def exported(teacher_ckpt, tmp_path_factory) -> dict:
    return export_cross_encoder_teacher(teacher_ckpt, tmp_path_factory.mktemp("teacher-export"), name="tiny-teacher")


def test_interface_is_what_ml_commons_feeds(exported):
    iface = exported["interface"]
    assert interface_problems(iface) == []
    assert [i["name"] for i in iface["inputs"]] == list(INPUT_NAMES)
    assert all(i["dtype"] == "int64" and i["shape"] == ["batch", "sequence"] for i in iface["inputs"])
    assert iface["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["batch", 1]}]
    assert iface["opsets"] == {"ai.onnx": 17} and iface["ir_version"] <= 8


def test_dynamic_axes_batch_and_sequence(exported):
    """A padded batch of two pairs of different lengths gives the same logits as one pair per call."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(exported["tokenizer"])
    sess = onnx_session(exported["onnx"])
    pairs = Pairs(["red", "wool socks"], ["red shoes", "blue cotton socks lamp mug"])
    single = score_like_ml_commons(sess, tok, pairs)
    encs = [tok.encode(q, t) for q, t in pairs]
    width = max(len(e.ids) for e in encs)
    assert len({len(e.ids) for e in encs}) == 2
    feed = {n: np.zeros((2, width), np.int64) for n in INPUT_NAMES}
    for r, e in enumerate(encs):
        feed["input_ids"][r, : len(e.ids)] = e.ids
        feed["attention_mask"][r, : len(e.ids)] = 1
        feed["token_type_ids"][r, : len(e.ids)] = e.type_ids
    (logits,) = sess.run(None, feed)
    assert logits.shape == (2, 1) and logits.dtype == np.float32
    assert np.max(np.abs(logits[:, 0] - single)) < 1e-4


def test_tokenizer_truncates_like_training_and_does_not_pad(exported, teacher_ckpt):
    spec = json.loads(Path(exported["tokenizer"]).read_text())
    assert spec["truncation"] == {"direction": "Right", "max_length": 24, "strategy": "LongestFirst", "stride": 0}
    assert spec["padding"] is None and exported["max_length"] == 24
    from tokenizers import Tokenizer

    long_text = " ".join(["cotton"] * 80)
    enc = Tokenizer.from_file(exported["tokenizer"]).encode("red wool", long_text)
    hf = load_teacher(teacher_ckpt, device="cpu").tokenizer("red wool", long_text, truncation="longest_first", max_length=24)
    assert len(enc.ids) == 24 and enc.ids == hf["input_ids"] and enc.type_ids == hf["token_type_ids"]


def test_parity_on_real_pairs(exported, teacher_ckpt):
    parity = exported["parity"]
    assert parity["passed"] and parity["n_pairs"] == len(default_teacher_parity_pairs()) >= 40
    assert parity["max_abs_diff"] <= 1e-4
    # independently: the teacher's own scorer vs the shipped graph + tokenizer, one pair per call
    from tokenizers import Tokenizer

    pairs = default_teacher_parity_pairs()
    assert sum(1 for q in pairs.queries if q) >= 40  # real (query, title) pairs, plus edge cases
    torch_scores = load_teacher(teacher_ckpt, device="cpu", precision="no").score(pairs, single_text=False)
    onnx_scores = score_like_ml_commons(onnx_session(exported["onnx"]), Tokenizer.from_file(exported["tokenizer"]), pairs)
    assert np.max(np.abs(torch_scores - onnx_scores)) < 1e-4
    assert np.std(onnx_scores) > 0  # a real model, not a constant


def test_zip_layout_hash_and_package_inspection(exported):
    zpath = Path(exported["zip"])
    assert zpath.name == "tiny-teacher.zip"
    with zipfile.ZipFile(zpath) as zf:
        assert sorted(zf.namelist()) == ["model.onnx", "tokenizer.json"]
    assert exported["sha256"] == hashlib.sha256(zpath.read_bytes()).hexdigest()
    pkg = inspect_model_zip(zpath, expected_sha256=exported["sha256"])
    assert pkg.onnx_member == "model.onnx" and pkg.tokenizer_max_length == 24
    assert pkg.card["name"] == "tiny-teacher" and pkg.card["kind"] == "cross-encoder teacher"
    assert pkg.card["zip"]["sha256"] == exported["sha256"] and pkg.card["function_name"] == "TEXT_SIMILARITY"


def test_parity_failure_aborts_before_zipping(teacher_ckpt, tmp_path, monkeypatch):
    """A graph that does not match the checkpoint is caught and nothing is zipped."""
    import distilrank.distill.export.teacher_export as te

    real = te.export_module_onnx

    def perturbed(module, ids, path, **kw):
        with torch.no_grad():
            module.inner.classifier.bias += 0.5  # the exported graph now differs from the checkpoint by 0.5
        return real(module, ids, path, **kw)

    monkeypatch.setattr(te, "export_module_onnx", perturbed)
    with pytest.raises(DistilRankError, match="parity check failed"):
        export_cross_encoder_teacher(teacher_ckpt, tmp_path, name="bad")
    assert not list(tmp_path.glob("*.zip")) and not (tmp_path / "model-card.json").exists()


def test_max_length_override_and_bad_checkpoint(teacher_ckpt, tmp_path):
    res = export_cross_encoder_teacher(teacher_ckpt, tmp_path / "ml16", max_length=16,
                                       parity_pairs=Pairs(["red"] * 3, ["red shoes", "blue mug " * 20, ""]))
    assert res["max_length"] == 16 and res["parity"]["passed"] and res["parity"]["n_pairs"] == 3
    assert json.loads(Path(res["tokenizer"]).read_text())["truncation"]["max_length"] == 16
    with pytest.raises(DistilRankError, match="no config.json"):
        export_cross_encoder_teacher(tmp_path, tmp_path / "x")


def test_export_teacher_cli_json(teacher_ckpt, tmp_path, capsys):
    assert main(["export", "--teacher", str(teacher_ckpt), "--out", str(tmp_path), "--name", "cli-teacher", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["parity"]["passed"] and Path(out["zip"]).name == "cli-teacher.zip"
    assert out["sha256"] == hashlib.sha256(Path(out["zip"]).read_bytes()).hexdigest()
    # student-only flags are refused with --teacher; --student and --teacher are exclusive
    assert main(["export", "--teacher", str(teacher_ckpt), "--out", str(tmp_path / "q"), "--quantize", "int8"]) == 2
    assert "only apply to a student export" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "--teacher", str(teacher_ckpt), "--student", str(tmp_path), "--out", str(tmp_path)])


def _compat_pythons() -> list[str]:
    return [p for p in os.environ.get("DISTILRANK_COMPAT_PYTHONS", "").split(os.pathsep) if p]


@pytest.mark.skipif(not _compat_pythons(), reason="set DISTILRANK_COMPAT_PYTHONS (make test does) to interpreters with the cluster's tokenizers/onnxruntime")
def test_cluster_runtimes_parse_teacher_tokenizer_and_run_graph(exported, tmp_path):
    """The WordPiece tokenizer.json and the BERT graph load in ML Commons' tokenizers 0.19-0.20 / ONNX Runtime 1.16.3."""
    from tokenizers import Tokenizer

    pairs = default_teacher_parity_pairs()
    pairs.to_jsonl(tmp_path / "pairs.jsonl")
    tok = Tokenizer.from_file(exported["tokenizer"])
    here = score_like_ml_commons(onnx_session(exported["onnx"]), tok, pairs)
    for python in _compat_pythons():
        run = subprocess.run([python, str(COMPAT_SCRIPT), exported["onnx"], exported["tokenizer"], str(tmp_path / "pairs.jsonl")],
                             capture_output=True, text=True, check=True)
        got = json.loads(run.stdout)
        assert got["ids"] == [tok.encode(q, t).ids for q, t in pairs], f"tokenizers {got['tokenizers']} tokenises differently"
        if got["scores"] is not None:
            assert np.max(np.abs(np.array(got["scores"]) - here)) < 1e-4
