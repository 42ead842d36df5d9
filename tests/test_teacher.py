"""Teacher fine-tuning (tiny random BERT, real tokenizer) and resumable, sharded scoring."""

import json
import os

import numpy as np
import pytest

from distill.data.pairs import Pairs
from distill.errors import DistilRankError
from distill.teacher.finetune import TeacherTrainConfig, finetune_teacher
from distill.teacher.model import load_teacher, tokenize_batch
from distill.teacher.scoring import merge_chunks, parse_shard, score_transfer_set

from .conftest import sentiment_pairs


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    cfg = TeacherTrainConfig(epochs=3, batch_size=16, lr=3e-3, max_length=16, warmup_ratio=0.0, save_every_steps=10)
    res = finetune_teacher(tiny_bert, sentiment_pairs(320), sentiment_pairs(100, seed=1), out, config=cfg, progress=False)
    return out, res


def test_finetune_learns_and_keeps_best_checkpoint(trained):
    out, res = trained
    assert res.steps == 60
    assert [h["epoch"] for h in res.history] == [1, 2, 3]
    assert res.best["accuracy"] > 0.9
    assert res.best["accuracy"] == max(h["accuracy"] for h in res.history)
    teacher = load_teacher(out / "best", device="cpu")
    dev = sentiment_pairs(100, seed=1)
    acc = np.mean((teacher.score(dev) > 0) == (dev.labels > 0.5))
    assert acc == pytest.approx(res.best["accuracy"])
    assert json.loads((out / "result.json").read_text())["steps"] == 60


def test_interrupted_then_resumed_run_equals_uninterrupted_run(tiny_bert, tmp_path):
    cfg = TeacherTrainConfig(epochs=2, batch_size=16, lr=1e-3, max_length=16, save_every_steps=7)
    train = sentiment_pairs(160)
    part = finetune_teacher(tiny_bert, train, None, tmp_path / "t", config=cfg, progress=False, stop_after=13)
    assert part.steps == 13 and not (tmp_path / "t" / "result.json").exists()
    resumed = finetune_teacher(tiny_bert, train, None, tmp_path / "t", config=cfg, progress=False)
    straight = finetune_teacher(tiny_bert, train, None, tmp_path / "u", config=cfg, progress=False)
    assert resumed.steps == straight.steps == 20
    a = load_teacher(tmp_path / "t" / "best", device="cpu").score(train)
    b = load_teacher(tmp_path / "u" / "best", device="cpu").score(train)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_single_text_and_pair_encoding(tiny_bert):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    single = tokenize_batch(tok, ["", ""], ["good movie", "bad"], 16)
    assert single["input_ids"][0].tolist()[:4] == tok.convert_tokens_to_ids(["[CLS]", "good", "movie", "[SEP]"])
    assert int(single["token_type_ids"].sum()) == 0
    pair = tokenize_batch(tok, ["red shoes", "mug"], ["red cotton shoes", "blue mug"], 16)
    assert int(pair["token_type_ids"][0].sum()) == 4  # "red cotton shoes [SEP]"


def test_sharded_scoring_equals_unsharded_and_resumes(trained, tmp_path):
    out, _ = trained
    pairs = sentiment_pairs(90, seed=3)
    full = tmp_path / "full"
    rep = score_transfer_set(out / "best", pairs, full, chunk_size=16, batch_size=8, max_length=16, progress=False)
    assert rep["complete"] and rep["chunks_total"] == 6
    reference = np.load(full / "logits.npy")
    assert reference.shape == (90,)
    direct = load_teacher(out / "best", device="cpu").score(pairs)
    np.testing.assert_allclose(reference, direct, atol=1e-5)

    sharded = tmp_path / "sharded"
    r0 = score_transfer_set(out / "best", pairs, sharded, shard=parse_shard("0/2"), chunk_size=16, batch_size=8, max_length=16, progress=False)
    assert not r0["complete"] and r0["chunks_done"] == 3
    with pytest.raises(DistilRankError, match="3 of 6 chunks missing"):
        merge_chunks(sharded)
    r1 = score_transfer_set(out / "best", pairs, sharded, shard=(1, 2), chunk_size=16, batch_size=8, max_length=16, progress=False)
    assert r1["complete"]
    np.testing.assert_allclose(np.load(sharded / "logits.npy"), reference, atol=1e-5)

    # a killed run: one chunk lost -> only that chunk is recomputed
    (full / "chunk-000002.npy").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in full.glob("chunk-*.npy")}
    again = score_transfer_set(out / "best", pairs, full, chunk_size=16, batch_size=8, max_length=16, progress=False)
    assert again["rows_scored"] == 16
    assert all(os.stat(full / n).st_mtime_ns == t for n, t in before.items())
    np.testing.assert_allclose(np.load(full / "logits.npy"), reference, atol=1e-5)


def test_scoring_refuses_different_data_in_same_directory(trained, tmp_path):
    out, _ = trained
    score_transfer_set(out / "best", sentiment_pairs(20), tmp_path / "s", chunk_size=16, max_length=16, progress=False)
    with pytest.raises(DistilRankError, match="different fingerprint"):
        score_transfer_set(out / "best", sentiment_pairs(20, seed=9), tmp_path / "s", chunk_size=16, max_length=16, progress=False)


def test_bad_inputs(tiny_bert, tmp_path):
    with pytest.raises(DistilRankError, match="needs labels"):
        finetune_teacher(tiny_bert, Pairs([""], ["x"], None), None, tmp_path)
    with pytest.raises(DistilRankError, match="i/n"):
        parse_shard("3")
    with pytest.raises(DistilRankError, match="0 <= i < n"):
        parse_shard("2/2")
