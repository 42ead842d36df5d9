"""Bi-encoder teacher on a tiny random BERT (real WordPiece tokenizer): embeddings, cosine scores, on-disk cache."""

import numpy as np
import pytest

from distilrank.distill.teacher.biencoder import BiEncoder, cosine_scores
from distilrank.distill.teacher.embedding_store import EmbeddingStore
from distilrank.errors import ConfigError
from distilrank.pairs import Pairs

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


def _store(directory, encoder, part_size=2, identity=None):
    return EmbeddingStore(directory, lambda: encoder, identity=identity or {"model": "tiny", "max_length": 32}, part_size=part_size)


def test_embedding_store_equals_score_and_resumes_from_its_parts(encoder, tiny_bert, tmp_path):
    pairs = _pairs()
    encoder.calls.clear()
    store = _store(tmp_path / "emb", encoder)
    z = store.pair_cosine(pairs)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z, encoder.score(pairs), atol=1e-6)
    parts = sorted((tmp_path / "emb").glob("part-*.npy"))
    assert len(parts) == 4 and len(store) == 6  # 3 distinct queries, then 3 distinct texts, 2 strings per part
    n_calls = len(encoder.calls)
    np.testing.assert_array_equal(store.pair_cosine(pairs), z)  # from memory: no new embedding
    assert len(encoder.calls) == n_calls

    # a fresh store over the same directory reads the parts and never builds its encoder
    built = []
    again = EmbeddingStore(tmp_path / "emb", lambda: built.append(1), identity={"model": "tiny", "max_length": 32})
    np.testing.assert_array_equal(again.pair_cosine(pairs), z)
    assert built == []

    # an interrupted part (vectors written, string list not yet) is ignored and embedded again
    fresh = CountingBiEncoder(tiny_bert, max_length=32, batch_size=2, device="cpu")
    (tmp_path / "emb" / "part-00003.json").unlink()  # the part holding "a lamp"
    resumed = _store(tmp_path / "emb", fresh)
    assert len(resumed) == 5
    more = Pairs(["red socks", "new query"], ["a lamp", "good shoes"], None)
    got = resumed.pair_cosine(more)
    assert sorted(s for call in fresh.calls for s in call) == ["a lamp", "good shoes", "new query"]
    np.testing.assert_allclose(got, encoder.score(more), atol=1e-5)


def test_embedding_store_refuses_another_model(encoder, tmp_path):
    _store(tmp_path / "emb", encoder).ensure(["a lamp"])
    with pytest.raises(ConfigError) as e:
        _store(tmp_path / "emb", encoder, identity={"model": "other", "max_length": 32})
    assert "meta.json" in str(e.value) and "other" in str(e.value)


def test_word_init_is_the_encoders_view_of_each_word_on_its_principal_components(encoder, tmp_path):
    """``[student] init = "teacher"`` in a ranking run: the student's word rows start from the bi-encoder's unit
    embedding of each word alone, projected to ``embedding_dim`` (specials keep a random start); cached on disk."""
    from distilrank.distill.api import student_tokenizer
    from distilrank.distill.config import StudentSection
    from distilrank.distill.ranking.students import word_init
    from distilrank.distill.student.embedding_init import principal_components
    from distilrank.distill.student.tokenizer import SPECIAL_TOKENS

    tok = student_tokenizer(TEXTS, StudentSection(vocab_size=100), path=tmp_path / "tokenizer.json")
    vocab = [w for w, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])]
    words = [i for i, w in enumerate(vocab) if w not in SPECIAL_TOKENS]
    store = _store(tmp_path / "emb", encoder)
    rows = word_init(store, tok, 4, tmp_path / "init.npy", seed=0)
    assert rows.shape == (len(vocab), 4) and rows.dtype == np.float32
    expected = principal_components(store.vectors([vocab[i] for i in words]), 4)
    np.testing.assert_allclose(rows[words], expected, atol=1e-5)
    assert np.sqrt(np.mean(rows[words] ** 2)) == pytest.approx(0.05, rel=1e-3)
    encoder.calls.clear()
    np.testing.assert_array_equal(word_init(store, tok, 4, tmp_path / "init.npy", seed=0), rows)
    assert encoder.calls == []  # read from init.npy
