"""Bi-encoder teacher on a tiny random BERT (real WordPiece tokenizer): embeddings, cosine scores, on-disk cache."""

import numpy as np
import pytest

from distilrank.distill.data.pairs import Pairs
from distilrank.distill.errors import ConfigError
from distilrank.distill.ranking.teachers import EmbeddingCache
from distilrank.distill.teacher.biencoder import BiEncoder, cosine_scores

TEXTS = ["red cotton socks", "a lamp", "blue wool socks very nice", "mug", "the red mug is not blue", "good shoes"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class CountingBiEncoder(BiEncoder):
    """The real encoder, recording which strings each ``encode`` call was given."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[list[str]] = []

    def encode(self, texts, *, progress=False):
        self.calls.append(list(texts))
        return super().encode(texts, progress=progress)


@pytest.fixture(scope="module")
def encoder(tiny_bert):
    return CountingBiEncoder(tiny_bert, max_length=32, batch_size=2, device="cpu")


def _pairs():
    queries = ["red socks", "mug", "red socks", "lamp", "mug", "red socks"]
    texts = ["red cotton socks", "the red mug is not blue", "a lamp", "a lamp", "the red mug is not blue", "red cotton socks"]
    return Pairs(queries, texts, None, source="test")


def test_encode_unit_norm_float32_in_input_order(encoder):
    emb = encoder.encode(TEXTS)
    assert encoder.dim == 32
    assert emb.dtype == np.float32 and emb.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # batches are sorted by length (batch_size 2 here), but rows come back in input order
    one_by_one = np.stack([encoder.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(emb, one_by_one, atol=1e-5)
    assert not np.allclose(emb[0], emb[1], atol=1e-3)  # different texts, different embeddings
    np.testing.assert_allclose(encoder.encode(TEXTS[::-1]), emb[::-1], atol=1e-5)
    assert encoder.encode([]).shape == (0, 32)


def test_score_is_the_cosine_of_the_encodings(encoder):
    pairs = _pairs()
    z = encoder.score(pairs)
    assert z.dtype == np.float32 and z.shape == (len(pairs),)
    q, t = encoder.encode(pairs.queries), encoder.encode(pairs.texts)
    np.testing.assert_allclose(z, np.sum(q * t, axis=1), atol=1e-5)
    assert np.all(np.abs(z) <= 1.0 + 1e-6)
    np.testing.assert_allclose(encoder.score(pairs, scale=5.0), 5.0 * z, rtol=1e-6)
    # repeated (query, text) rows get identical scores
    assert z[0] == z[5] and z[1] == z[4]


def test_each_distinct_string_is_embedded_once(encoder):
    encoder.calls.clear()
    pairs = _pairs()
    cosine_scores(encoder, pairs.queries, pairs.texts)
    assert len(encoder.calls) == 2  # one pass for the queries, one for the texts
    assert sorted(encoder.calls[0]) == ["lamp", "mug", "red socks"]
    assert sorted(encoder.calls[1]) == ["a lamp", "red cotton socks", "the red mug is not blue"]
    with pytest.raises(ValueError):
        cosine_scores(encoder, ["a"], ["b", "c"])


def test_not_a_checkpoint_directory(tmp_path):
    with pytest.raises(ConfigError) as e:
        BiEncoder(tmp_path)
    assert str(tmp_path) in str(e.value) and "config.json" in str(e.value)


def test_embedding_cache_equals_score_and_reuses_the_disk_cache(encoder, tiny_bert, tmp_path):
    pairs = _pairs()
    encoder.calls.clear()
    cache = EmbeddingCache(encoder, tmp_path / "emb")
    z = cache.cosine(pairs)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z, encoder.score(pairs), atol=1e-6)
    files = sorted((tmp_path / "emb").glob("*.npy"))
    assert len(files) == 2  # distinct queries, distinct texts
    assert all(np.load(f).shape[1] == 32 for f in files)
    n_calls = len(encoder.calls)

    # the same strings again from memory: no new embedding
    np.testing.assert_array_equal(cache.cosine(pairs), z)
    assert len(encoder.calls) == n_calls

    # a fresh cache over the same directory loads the .npy files instead of encoding
    fresh_encoder = CountingBiEncoder(tiny_bert, max_length=32, batch_size=2, device="cpu")
    again = EmbeddingCache(fresh_encoder, tmp_path / "emb")
    np.testing.assert_array_equal(again.cosine(pairs), z)
    assert fresh_encoder.calls == []
    assert sorted((tmp_path / "emb").glob("*.npy")) == files

    # new strings are embedded (only those) and cached in a new file
    more = Pairs(["red socks", "new query"], ["a lamp", "good shoes"], None)
    got = again.cosine(more)
    assert fresh_encoder.calls == [["new query"], ["good shoes"]]
    np.testing.assert_allclose(got, encoder.score(more), atol=1e-5)
    assert len(list((tmp_path / "emb").glob("*.npy"))) == 4
    vec = again.vectors(["mug", "red socks", "mug"])
    assert vec.shape == (3, 32) and np.array_equal(vec[0], vec[2])
    assert again.vectors([]).shape == (0, 32)
