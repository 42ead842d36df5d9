"""Out-of-core transfer sets: Parquet shards, the row digest, token ids on disk, the shared batcher, streamed training."""

from __future__ import annotations

import numpy as np
import pytest

from distilrank.distill.config import StudentSection
from distilrank.distill.data.batching import bucketed_batches, shuffled_bucketed_batches
from distilrank.distill.data.token_ids import TokenIds, build_token_ids
from distilrank.distill.data.transfer import TransferSet, transfer_set_from_pairs, write_transfer_set
from distilrank.distill.student.stream import ParquetColumn, StreamedRows, mapped_targets, train_student_streamed
from distilrank.distill.student.tokenizer import build_student_tokenizer, encode_pairs
from distilrank.distill.student.train import fit_student
from distilrank.errors import DataError
from distilrank.pairs import Pairs
from tests.conftest import sentiment_pairs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pairs(n: int, seed: int = 0) -> Pairs:
    p = sentiment_pairs(n, seed)
    return Pairs([f"q{i % 7}" if i % 3 else "" for i in range(n)], p.texts, p.labels)


def test_shards_round_trip_with_the_in_memory_digest(tmp_path):
    pairs = _pairs(250)
    ts = write_transfer_set([pairs.select(np.arange(0, 100)), pairs.select(np.arange(100, 250))], tmp_path / "ts", rows_per_shard=60)
    assert len(ts) == 250 and len(ts.shard_paths()) == 5
    assert ts.digest == pairs.digest() == TransferSet.open(tmp_path / "ts").compute_digest()
    back = TransferSet.open(tmp_path / "ts")
    batches = list(back.iter_batches(batch_rows=32))
    np.testing.assert_array_equal(np.concatenate([b.row_ids for b in batches]), np.arange(250))
    whole = back.to_pairs()
    assert whole.queries == pairs.queries and whole.texts == pairs.texts
    np.testing.assert_array_equal(whole.labels, pairs.labels)
    assert back.labeled and not back.single_text


def test_a_damaged_transfer_set_is_refused_by_name(tmp_path):
    ts = transfer_set_from_pairs(_pairs(90), tmp_path / "ts", rows_per_shard=40)
    with pytest.raises(DataError, match="not a transfer set"):
        TransferSet.open(tmp_path)
    ts.shard_paths()[1].unlink()
    with pytest.raises(DataError, match="shard-00001.parquet.*missing"):
        TransferSet.open(tmp_path / "ts")
    with pytest.raises(DataError, match="all be labeled or all unlabeled"):
        write_transfer_set([_pairs(5), _pairs(5).without_labels()], tmp_path / "mixed")
    assert not list((tmp_path / "mixed").glob("*.parquet*")) and not list((tmp_path / "mixed").glob(".*"))  # nothing half-written


def test_token_ids_equal_the_in_memory_encoding_and_are_reused(tmp_path):
    pairs = _pairs(300)
    tok = build_student_tokenizer(pairs.queries + pairs.texts)
    ts = transfer_set_from_pairs(pairs, tmp_path / "ts", rows_per_shard=128)
    ids = build_token_ids(ts, tok, tmp_path / "cache", batch_rows=50)
    enc = encode_pairs(tok, pairs.queries, pairs.texts)
    block = ids.block(0, len(pairs))
    np.testing.assert_array_equal(block.lengths, enc.lengths)
    np.testing.assert_array_equal(block.input_ids, enc.input_ids)
    np.testing.assert_array_equal(block.token_type_ids, enc.token_type_ids)
    part = ids.block(37, 90)
    np.testing.assert_array_equal(part.input_ids[:, : enc.input_ids.shape[1]][:, : part.input_ids.shape[1]],
                                  enc.input_ids[37:90, : part.input_ids.shape[1]])
    assert ids.memmap("offsets")[-1] == ids.meta["n_tokens"]
    mtime = (ids.path / "ids.i32").stat().st_mtime_ns
    again = build_token_ids(TransferSet.open(tmp_path / "ts"), tok, tmp_path / "cache")
    assert again.path == ids.path and (again.path / "ids.i32").stat().st_mtime_ns == mtime  # reused, not rewritten
    other = build_token_ids(ts, build_student_tokenizer(pairs.texts, vocab_size=12), tmp_path / "cache")
    assert other.path != ids.path and isinstance(other, TokenIds)


def test_one_batcher_buckets_by_length_and_shuffles_deterministically():
    lengths = np.array([5, 1, 4, 2, 3, 9, 7, 8])
    assert [b.tolist() for b in bucketed_batches(np.arange(8), lengths, 2, 4)] == [[1, 3], [2, 0], [4, 6], [7, 5]]
    assert [b.tolist() for b in bucketed_batches(np.arange(8), lengths, 3, 8, descending=True)] == [[5, 7, 6], [0, 2, 4], [3, 1]]
    a = shuffled_bucketed_batches(np.arange(8), lengths, 2, 4, np.random.default_rng(3))
    b = shuffled_bucketed_batches(np.arange(8), lengths, 2, 4, np.random.default_rng(3))
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    assert sorted(np.concatenate(a).tolist()) == list(range(8))


def test_streamed_training_learns_and_matches_the_in_memory_path_on_one_block(tmp_path):
    pairs = _pairs(600)
    tok = build_student_tokenizer(pairs.queries + pairs.texts)
    ts = transfer_set_from_pairs(pairs, tmp_path / "ts", rows_per_shard=256)
    ids = build_token_ids(ts, tok, tmp_path / "cache")
    import pyarrow as pa
    import pyarrow.parquet as pq

    logits = np.where(pairs.labels > 0, 3.0, -3.0).astype(np.float32)
    pq.write_table(pa.table({"row_id": np.arange(600), "logit": logits}), tmp_path / "logits.parquet", row_group_size=100)
    col = ParquetColumn(tmp_path / "logits.parquet")
    np.testing.assert_array_equal(col(150, 420), logits[150:420])
    targets = mapped_targets(col, lambda z: 1 / (1 + np.exp(-z)))
    cfg = StudentSection(epochs=3, batch_size=32, val_fraction=0.1)
    res = train_student_streamed(ids, targets, tok, tmp_path / "s", config=cfg, block_rows=128, progress=False)
    assert res.epochs_run == 3 and res.best_val_loss < 0.45  # 0.69 = knowing nothing, 0.19 = the targets' entropy
    rows = StreamedRows(ids, targets, cfg, block_rows=128)
    seen = np.concatenate([t.numpy() for _, t in rows.batches(np.random.default_rng(0))])
    assert len(seen) == rows.n_train == 540
    resumed = train_student_streamed(ids, targets, tok, tmp_path / "s", config=StudentSection(epochs=4, batch_size=32, val_fraction=0.1),
                                     block_rows=128, progress=False)
    assert resumed.epochs_run == 4 and [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="probabilities"):
        train_student_streamed(ids, col, tok, tmp_path / "bad", config=cfg, progress=False)
    # in memory, same rows: a comparable loss
    mem = fit_student(pairs, 1 / (1 + np.exp(-logits)), tok, tmp_path / "m", config=cfg, progress=False)
    assert mem.best_val_loss < 0.45
