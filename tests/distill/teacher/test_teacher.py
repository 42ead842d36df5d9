"""Teachers: fine-tuning a tiny random BERT (real WordPiece tokenizer), resuming after a kill, scoring in shards."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from distilrank.distill.teacher.encoding import tokenize_batch, tokenize_pairs
from distilrank.distill.teacher.finetune import TeacherConfig, evaluate_teacher, finetune_teacher, label_scale, teacher_targets
from distilrank.distill.teacher.model import load_teacher
from distilrank.distill.teacher.scoring import merge_chunks, merge_shards, parse_shard, score_transfer_set
from distilrank.errors import ConfigError, DistilRankError
from distilrank.pairs import Pairs
from tests.conftest import sentiment_pairs
from tests.paths import REPO_ROOT

ROOT = REPO_ROOT


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    cfg = TeacherConfig(epochs=3, batch_size=16, lr=3e-3, max_length=16, warmup_ratio=0.0, save_every_steps=10)
    res = finetune_teacher(tiny_bert, sentiment_pairs(320), sentiment_pairs(100, seed=1), out, config=cfg, progress=False)
    return out, res


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_teacher(path, device="cpu").model.state_dict()


# --- fine-tuning ------------------------------------------------------------------

def test_finetune_learns_and_keeps_best_checkpoint(trained):
    out, res = trained
    assert res.complete and res.steps == res.total_steps == 60 and res.resumed_from_step == 0
    assert [h["step"] for h in res.history] == [20, 40, 60]  # once per epoch
    assert res.initial["accuracy"] < 0.75
    assert res.best["accuracy"] > 0.9
    assert res.best["accuracy"] == max(h["accuracy"] for h in res.history)
    assert res.examples == 960 and res.examples_per_second > 0
    assert res.label_mode == "binary" and res.precision == "fp32"

    # the checkpoint in best/ is exactly the one that was evaluated
    teacher = load_teacher(out / "best", device="cpu")
    assert teacher.max_length == 16  # from distilrank_teacher.json
    again = evaluate_teacher(teacher, sentiment_pairs(100, seed=1))
    assert again["accuracy"] == res.best["accuracy"] and again["auc"] == res.best["auc"]
    assert again["loss"] == pytest.approx(res.best["loss"], abs=1e-6)

    saved = json.loads((out / "result.json").read_text())
    assert saved["steps"] == 60 and saved["best"]["accuracy"] == res.best["accuracy"]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [20, 40, 60] and all(r["train_loss"] > 0 for r in log)
    assert (out / "state" / "training_state.pt").exists()

    # calling again on a finished run returns the stored result without training
    cfg = TeacherConfig(**res.config)
    assert finetune_teacher(out.parent / "unused", sentiment_pairs(320), None, out, config=cfg).steps == 60


_KILL_SCRIPT = """
import sys
from tests.conftest import sentiment_pairs
from distilrank.distill.teacher.finetune import TeacherConfig, finetune_teacher
cfg = TeacherConfig(epochs=30, batch_size=16, lr=1e-3, max_length=16, save_every_steps=5)
finetune_teacher(sys.argv[1], sentiment_pairs(160), None, sys.argv[2], config=cfg, progress=False)
"""


def test_killed_run_resumes_from_saved_step_and_equals_uninterrupted_run(tiny_bert, tmp_path):
    cfg = TeacherConfig(epochs=30, batch_size=16, lr=1e-3, max_length=16, save_every_steps=5)
    train = sentiment_pairs(160)
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(tiny_bert), str(tmp_path / "t")], cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    progress_file = tmp_path / "t" / "state" / "progress.json"
    deadline = time.monotonic() + 60
    while not progress_file.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert not (tmp_path / "t" / "result.json").exists()

    resumed = finetune_teacher(tiny_bert, train, None, tmp_path / "t", config=cfg, progress=False)
    assert 5 <= resumed.resumed_from_step < 300 and resumed.resumed_from_step % 5 == 0
    assert resumed.steps == 300 and resumed.examples == (300 - resumed.resumed_from_step) * 16
    straight = finetune_teacher(tiny_bert, train, None, tmp_path / "u", config=cfg, progress=False)
    assert straight.steps == 300
    a, b = _weights(tmp_path / "t" / "best"), _weights(tmp_path / "u" / "best")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)


def test_stop_after_and_longer_max_steps_continue_the_step_count(tiny_bert, tmp_path):
    train, dev = sentiment_pairs(96), sentiment_pairs(40, seed=1)
    cfg = TeacherConfig(batch_size=16, lr=1e-3, max_length=16, max_steps=8, eval_every_steps=4, save_every_steps=100)
    part = finetune_teacher(tiny_bert, train, dev, tmp_path, config=cfg, progress=False, stop_after=3)
    assert part.steps == 3 and not part.complete and not (tmp_path / "result.json").exists()
    assert json.loads((tmp_path / "state" / "progress.json").read_text())["step"] == 3
    done = finetune_teacher(tiny_bert, train, dev, tmp_path, config=cfg, progress=False)
    assert done.complete and done.resumed_from_step == 3 and done.steps == 8
    assert [h["step"] for h in done.history] == [4, 8]
    longer = finetune_teacher(tiny_bert, train, dev, tmp_path, progress=False,
                              config=TeacherConfig(**{**done.config, "max_steps": 14}))
    assert longer.resumed_from_step == 8 and longer.steps == 14
    assert [h["step"] for h in longer.history] == [4, 8, 12, 14]
    assert json.loads((tmp_path / "state" / "progress.json").read_text())["step"] == 14

    with pytest.raises(ConfigError, match="'lr'"):
        finetune_teacher(tiny_bert, train, dev, tmp_path, progress=False,
                         config=TeacherConfig(**{**done.config, "max_steps": 20, "lr": 5e-4}))
    with pytest.raises(ConfigError, match="different rows"):
        finetune_teacher(tiny_bert, sentiment_pairs(96, seed=5), dev, tmp_path, progress=False,
                         config=TeacherConfig(**{**done.config, "max_steps": 20}))
    restarted = finetune_teacher(tiny_bert, train, dev, tmp_path, config=TeacherConfig(**{**done.config, "lr": 5e-4}),
                                 resume=False, progress=False)
    assert restarted.resumed_from_step == 0 and restarted.steps == 8


def test_truncated_teacher_grad_accum_and_graded_labels(tiny_bert, tmp_path):
    base = sentiment_pairs(80)
    graded = base.with_labels(base.labels * 3.0)  # grades 0 / 3
    cfg = TeacherConfig(batch_size=8, grad_accum=2, lr=1e-3, max_length=16, num_layers=1, eval_initial=False)
    res = finetune_teacher(tiny_bert, graded, graded, tmp_path, config=cfg, progress=False)
    assert res.total_steps == 5 and res.examples == 80  # 10 batches of 8, two per optimizer step
    assert res.label_mode == "graded" and res.max_label == 3.0
    teacher = load_teacher(tmp_path / "best", device="cpu")
    assert teacher.model.config.num_hidden_layers == 1 and len(teacher.model.base_model.encoder.layer) == 1
    with pytest.raises(ConfigError, match="num_layers"):
        finetune_teacher(tiny_bert, base, None, tmp_path / "x", config=TeacherConfig(num_layers=3))


def test_label_modes():
    y = np.array([0, 1, 2, 3], np.float32)
    assert label_scale(np.array([0, 1, 1], np.float32)) == ("binary", 1.0)
    assert label_scale(y) == ("graded", 3.0)
    np.testing.assert_allclose(teacher_targets(y, "graded", 3.0), [0, 1 / 3, 2 / 3, 1], rtol=1e-6)
    np.testing.assert_array_equal(teacher_targets(y, "binary", 3.0), [0, 0, 1, 1])
    np.testing.assert_allclose(teacher_targets(y, "graded", 2.0), [0, 0.5, 1, 1])  # fixed scale, clipped


def test_bad_inputs(tiny_bert, tmp_path):
    with pytest.raises(DistilRankError, match="needs labels"):
        finetune_teacher(tiny_bert, Pairs([""], ["x"], None), None, tmp_path)
    with pytest.raises(ConfigError, match="mixed_precision"):
        finetune_teacher(tiny_bert, sentiment_pairs(8), None, tmp_path, config=TeacherConfig(mixed_precision="fp8"))
    with pytest.raises(ConfigError, match="label_mode"):
        finetune_teacher(tiny_bert, sentiment_pairs(8), None, tmp_path, config=TeacherConfig(label_mode="soft"))
    with pytest.raises(DistilRankError, match="i/n"):
        parse_shard("3")
    with pytest.raises(DistilRankError, match="0 <= i < n"):
        parse_shard("2/2")


# --- encoding and scoring -----------------------------------------------------------

def test_single_text_and_pair_encoding(tiny_bert):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    single = tokenize_batch(tok, ["", ""], ["good movie", "bad"], 16)
    assert single["input_ids"][0].tolist() == tok.convert_tokens_to_ids(["[CLS]", "good", "movie", "[SEP]"])
    assert single["input_ids"][1].tolist() == tok.convert_tokens_to_ids(["[CLS]", "bad", "[SEP]", "[PAD]"])
    assert single["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert int(single["token_type_ids"].sum()) == 0
    pair = tokenize_batch(tok, ["red shoes", "mug"], ["red cotton shoes", "blue mug"], 16)
    assert int(pair["token_type_ids"][0].sum()) == 4  # "red cotton shoes [SEP]"
    # a subset of a pair table whose queries happen to be empty stays in pair mode when told so
    as_pair = tokenize_pairs(tok, Pairs(["", ""], ["good movie", "bad"]), 16, single_text=False)
    assert as_pair.features["input_ids"][1] == tok.convert_tokens_to_ids(["[CLS]", "[SEP]", "bad", "[SEP]"])


def test_batched_scoring_matches_row_by_row(trained):
    out, _ = trained
    teacher = load_teacher(out / "best", device="cpu")
    pairs = sentiment_pairs(30, seed=4)
    batched = teacher.score(pairs, batch_size=8)
    one_by_one = np.array([teacher.score(pairs.select([i]), batch_size=1)[0] for i in range(len(pairs))])
    assert batched.dtype == np.float32 and batched.shape == (30,)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    # pair mode gives different logits than single-text mode for the same texts
    pair_mode = teacher.score(Pairs(["movie"] * 30, pairs.texts), batch_size=8)
    assert not np.allclose(pair_mode, batched, atol=1e-3)


def test_sharded_scoring_equals_unsharded_and_resumes(trained, tmp_path):
    out, _ = trained
    best = out / "best"
    pairs = sentiment_pairs(90, seed=3)
    kw = dict(chunk_size=16, batch_size=8, max_length=16, device="cpu", progress=False)
    full = tmp_path / "full"
    rep = score_transfer_set(best, pairs, full, **kw)
    assert rep["complete"] and rep["chunks_total"] == 6 and rep["rows_scored"] == 90
    reference = np.load(full / "logits.npy")
    assert reference.dtype == np.float32 and reference.shape == (90,)
    np.testing.assert_allclose(reference, load_teacher(best, device="cpu").score(pairs), atol=1e-5)
    meta = json.loads((full / "shard-0-of-1" / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["n_rows"] == 90 and meta["rows_per_second"] > 0

    sharded = tmp_path / "sharded"
    r0 = score_transfer_set(best, pairs, sharded, shard=parse_shard("0/2"), **kw)
    assert not r0["complete"] and r0["chunks_total"] == 3 and r0["rows_scored"] == 45
    np.testing.assert_array_equal(np.load(sharded / "shard-0-of-2" / "indices.npy"), np.arange(0, 90, 2))
    with pytest.raises(DistilRankError, match=r"45 of 90 rows missing: shard 1/2 not scored .*rows 1, 3, 5"):
        merge_shards(sharded, 90)
    r1 = score_transfer_set(best, pairs, sharded, shard=(1, 2), **kw)
    assert r1["complete"]
    np.testing.assert_allclose(np.load(sharded / "logits.npy"), reference, atol=1e-5)
    np.testing.assert_allclose(merge_chunks(sharded), reference, atol=1e-5)
    with pytest.raises(DistilRankError, match="expected 91"):
        merge_shards(sharded, 91)

    # a killed run: one chunk lost -> only that chunk is recomputed, the others are left untouched
    sdir = full / "shard-0-of-1"
    (sdir / "chunk-000002.npy").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in sdir.glob("chunk-*.npy")}
    again = score_transfer_set(best, pairs, full, **kw)
    assert again["rows_scored"] == 16 and again["complete"]
    assert {p.name: p.stat().st_mtime_ns for p in sdir.glob("chunk-*.npy") if p.name in before} == before
    assert (sdir / "chunk-000002.npy").exists()
    np.testing.assert_allclose(np.load(full / "logits.npy"), reference, atol=1e-5)
    assert score_transfer_set(best, pairs, full, **kw)["rows_scored"] == 0  # nothing left to do

    # an incomplete shard is named with its missing chunks and rows
    for name in ("logits.npy", "indices.npy", "chunk-000001.npy"):
        (sharded / "shard-1-of-2" / name).unlink()
    with pytest.raises(DistilRankError, match=r"shard 1/2 incomplete: chunks 1 missing \(rows 33, 35,"):
        merge_shards(sharded)


def test_scoring_refuses_different_data_teacher_or_settings(trained, tiny_bert, tmp_path):
    out, _ = trained
    kw = dict(chunk_size=16, max_length=16, device="cpu", progress=False)
    s = tmp_path / "s"
    score_transfer_set(out / "best", sentiment_pairs(20), s, **kw)
    with pytest.raises(DistilRankError, match="different fingerprint: other rows"):
        score_transfer_set(out / "best", sentiment_pairs(20, seed=9), s, **kw)
    with pytest.raises(DistilRankError, match="different fingerprint: other max_length"):
        score_transfer_set(out / "best", sentiment_pairs(20), s, **{**kw, "max_length": 12})
    other = tmp_path / "other-teacher"
    finetune_teacher(tiny_bert, sentiment_pairs(16), None, other, progress=False, config=TeacherConfig(batch_size=16, max_length=16))
    with pytest.raises(DistilRankError, match="different fingerprint: other teacher"):
        score_transfer_set(other / "best", sentiment_pairs(20), s, **kw)
    score_transfer_set(out / "best", sentiment_pairs(20), tmp_path / "s2", shard=(0, 2), **kw)
    with pytest.raises(DistilRankError, match="2-way split"):
        score_transfer_set(out / "best", sentiment_pairs(20), tmp_path / "s2", shard=(0, 1), **kw)
    with pytest.raises(DistilRankError, match="chunk_size 16, now 8"):
        score_transfer_set(out / "best", sentiment_pairs(20), s, **{**kw, "chunk_size": 8})
    # a fresh start is allowed explicitly
    rep = score_transfer_set(out / "best", sentiment_pairs(20, seed=9), s, resume=False, **kw)
    assert rep["complete"] and rep["rows_scored"] == 20
