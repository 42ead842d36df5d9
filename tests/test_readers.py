"""Readers for JSONL / CSV / TSV / Parquet / Amazon reviews, and their error messages."""

import json
from pathlib import Path

import numpy as np
import pytest

from distill.data.pairs import Pairs
from distill.data.readers import read_amazon_reviews, read_pairs, split_sentences, write_pairs
from distill.errors import DataError

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv", ".parquet"])
def test_round_trip_every_format(tmp_path, suffix):
    pairs = Pairs(["usb cable", "", "café"], ['3 m "braided" cable, black', "empty query", "crème brûlée 😀"], np.array([1, 0, 2.5]))
    path = tmp_path / f"pairs{suffix}"
    write_pairs(pairs, path)
    back = read_pairs(path)
    assert back.queries == pairs.queries and back.texts == pairs.texts
    np.testing.assert_array_equal(back.labels, pairs.labels)
    unlabeled = read_pairs(path, label_field=None)
    assert unlabeled.labels is None


def test_sst2_single_text_mode_with_column_mapping():
    p = read_pairs(DATA / "sst2-sample.tsv", query_field=None, text_field="sentence", label_field="label")
    assert len(p) == 40 and p.single_text
    assert p.texts[0] == "it 's a charming and often affecting journey ."
    assert set(p.labels.tolist()) == {0.0, 1.0}
    assert len(read_pairs(DATA / "sst2-sample.tsv", query_field=None, text_field="sentence", limit=5)) == 5


def test_error_names_file_line_and_field(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"query": "a", "text": "b", "label": 1}\n\n{"query": "a", "text": "b", "label": "high"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:3: field 'label': label 'high' is not a number"):
        read_pairs(f)
    f.write_text('{"query": "a", "text": "b"}\n{"query": "a" "text": "b"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: invalid JSON"):
        read_pairs(f)
    f.write_text('[1, 2]\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: expected a JSON object"):
        read_pairs(f)
    f.write_text('{"q": "a", "text": "b"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: missing field 'query'.*query_field=None"):
        read_pairs(f)
    c = tmp_path / "bad.csv"
    c.write_text("query,text,label\nshoes,red shoes,1\nshoes,blue shoes\n")
    with pytest.raises(DataError, match=r"bad.csv:3: expected 3 columns"):
        read_pairs(c)
    c.write_text("query,title\nshoes,red shoes\n")
    with pytest.raises(DataError, match=r"bad.csv:2: missing label field 'label'"):
        read_pairs(c, text_field="title", require_labels=True)
    c.write_text("query,text,label\nshoes,red,-1\n")
    with pytest.raises(DataError, match=r"bad.csv:2: .*must be a finite number >= 0"):
        read_pairs(c)
    e = tmp_path / "empty.tsv"
    e.write_text("")
    with pytest.raises(DataError, match=r"empty.tsv:1: empty file"):
        read_pairs(e)
    with pytest.raises(DataError, match="cannot tell the format"):
        read_pairs(tmp_path / "x.txt") if (tmp_path / "x.txt").write_text("a") else None
    p = tmp_path / "bad.parquet"
    p.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="bad.parquet: cannot read Parquet"):
        read_pairs(p)


def test_amazon_reviews_latin1_documents_sentences_and_labels():
    docs = read_amazon_reviews(DATA)
    assert len(docs) == 4 and docs.single_text and docs.labels is None
    labeled = read_amazon_reviews(DATA, with_labels=True)
    assert labeled.labels.tolist() == [0.0, 0.0, 1.0, 1.0]  # negative file sorts first
    sents = read_amazon_reviews(DATA, sentences=True)
    assert len(sents) > len(docs)
    assert all(len(s.split()) >= 3 for s in sents.texts)
    assert all("<" not in s for s in sents.texts)


def test_amazon_reader_rejects_non_review_file(tmp_path):
    f = tmp_path / "x.positive.review"
    f.write_text("hello")
    with pytest.raises(DataError, match="no <review> elements"):
        read_amazon_reviews(f)


def test_split_sentences():
    assert split_sentences("Great pan. Heats evenly! Would buy again?\n\nYes") == ["Great pan.", "Heats evenly!", "Would buy again?", "Yes"]
    assert split_sentences("Version 2.5 is fine.") == ["Version 2.5 is fine."]


def test_failed_write_leaves_previous_file_intact(tmp_path):
    path = tmp_path / "out.tsv"
    write_pairs(Pairs(["q"], ["old"], None), path)
    with pytest.raises(DataError, match="tab or newline inside a field"):
        write_pairs(Pairs(["q", "q"], ["fine", "has\ttab"], None), path)
    assert read_pairs(path, label_field=None).texts == ["old"]
    assert [p.name for p in tmp_path.iterdir()] == ["out.tsv"]


def test_jsonl_written_by_pairs_is_readable(tmp_path):
    p = Pairs(["a"], ["b"], np.array([1.0]))
    p.to_jsonl(tmp_path / "x.jsonl")
    assert json.loads((tmp_path / "x.jsonl").read_text()) == {"query": "a", "text": "b", "label": 1.0}
