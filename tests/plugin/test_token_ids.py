"""Index-time token ids: the version-1 encoding, the document tokenizer of a model zip, and the model text the
indexer tokenizes (the same join the rescorer reads from ``_source``)."""

from __future__ import annotations

import base64
import json
import zipfile

import pytest
from tokenizers import Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer

from distilrank.errors import DistilRankError
from distilrank.plugin.rescore import rescore_clause
from distilrank.plugin.token_ids import (
    DocumentTokenizer,
    decode_ids,
    encode_ids,
    tokenizer_fingerprint,
)
from distilrank.plugin.tokenize_index import model_text

TITLES = ["Crest Pro-Health toothpaste, 4.6 oz", "Colgate Total Whitening Toothpaste (Pack of 2)", "wine glass set of 4",
          "Sensodyne Pronamel sans sucre", "蓝牙耳机 无线", "", "a " * 300]


@pytest.fixture(scope="module")
def tokenizer_json() -> bytes:
    tok = BertWordPieceTokenizer(lowercase=True)
    tok.train_from_iterator(TITLES * 5, vocab_size=200, min_frequency=1)
    tok.enable_truncation(16)  # the pair truncation of the model: index-time ids must ignore it
    return tok._tokenizer.to_str().encode("utf-8")


@pytest.fixture()
def model_zip(tmp_path, tokenizer_json):
    path = tmp_path / "m.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.onnx", b"not needed here")
        zf.writestr("tokenizer.json", tokenizer_json)
    return path


def test_encoding_round_trips_every_id_size():
    fp = bytes(range(8))
    ids = [0, 1, 127, 128, 300, 16383, 16384, 2**21, 2**31 - 1]
    data = encode_ids(ids, fp)
    assert data[:3] == b"DR\x01" and data[3:11] == fp
    assert decode_ids(data, fp) == ids
    assert decode_ids(encode_ids([], fp)) == []
    with pytest.raises(DistilRankError, match="another tokenizer"):
        decode_ids(data, bytes(8))
    with pytest.raises(DistilRankError, match="truncated"):
        decode_ids(data[:-1], fp)
    with pytest.raises(DistilRankError, match="header"):
        decode_ids(b"XX" + data[2:], fp)
    with pytest.raises(DistilRankError, match="8 bytes"):
        encode_ids([1], b"short")


def test_ids_are_the_untruncated_document_encoding(model_zip, tokenizer_json):
    doc = DocumentTokenizer.from_zip(model_zip)
    assert doc.fingerprint == tokenizer_fingerprint(tokenizer_json) and len(doc.fingerprint) == 8
    reference = Tokenizer.from_str(tokenizer_json.decode("utf-8"))
    reference.no_truncation()
    ids = doc.ids(TITLES)
    assert ids == [reference.encode(t, add_special_tokens=False).ids for t in TITLES]
    assert len(ids[-1]) == 300  # not cut at the model's max_length: the rescorer truncates the pair
    assert ids[5] == []
    for text, value in zip(TITLES, doc.encoded(TITLES)):
        assert decode_ids(base64.b64decode(value), doc.fingerprint) == reference.encode(text, add_special_tokens=False).ids


def test_a_zip_without_tokenizer_is_named(tmp_path):
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.onnx", b"")
    with pytest.raises(DistilRankError, match=r"bad\.zip: cannot read tokenizer\.json"):
        DocumentTokenizer.from_zip(path)


def test_model_text_joins_fields_like_the_rescorer():
    src = {"title": "Crest toothpaste", "brand": ["Crest", "P&G"], "color": None, "meta": {"size": "4.6 oz"}, "n": 3}
    assert model_text(src, ["title", "brand", "color", "meta.size", "n"]) == "Crest toothpaste Crest P&G 4.6 oz 3"
    assert model_text({}, ["title"]) == ""


def test_rescore_clause_carries_the_token_ids_field():
    clause = rescore_clause("q", model="prod", fields=["title"], token_ids_field="distilrank_token_ids")
    assert clause["distilrank"]["token_ids_field"] == "distilrank_token_ids"
    assert "token_ids_field" not in rescore_clause("q", model="prod", fields=["title"])["distilrank"]
    with pytest.raises(DistilRankError, match="token_ids_field"):
        rescore_clause("q", model="prod", fields=["title"], token_ids_field=" ")
    json.dumps(clause)
