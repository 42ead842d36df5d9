"""distilrank.formats.pairs: read_pairs / write_pairs over JSONL, CSV, TSV, Parquet and Amazon reviews; column
mapping, labels, and error messages naming the file and line (or Parquet row)."""

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from distilrank.errors import DataError
from distilrank.formats.amazon_reviews import read_amazon_reviews
from distilrank.formats.pairs import detect_format, read_pairs, write_pairs
from distilrank.pairs import Pairs
from tests.core.formats.error_match import error_at
from tests.paths import TESTS_DATA

DATA = TESTS_DATA
# Parquet needs pyarrow (the [train] extra): skipped in the serving-only install (make test-serving)
NEEDS_PYARROW = pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow is not installed (serving-only install)")
FORMATS = [".jsonl", ".csv", ".tsv", pytest.param(".parquet", marks=NEEDS_PYARROW)]


@pytest.mark.parametrize("suffix", FORMATS)
def test_round_trip_every_format(tmp_path, suffix):
    pairs = Pairs(["usb cable", "", "café"], ['3 m "braided" cable, black', "empty query", "crème brûlée 😀"], np.array([1, 0, 2.5]))
    path = tmp_path / f"pairs{suffix}"
    write_pairs(pairs, path)
    back = read_pairs(path)
    assert back.queries == pairs.queries and back.texts == pairs.texts
    np.testing.assert_array_equal(back.labels, pairs.labels)
    assert back.labels.dtype == np.float32 and back.source == str(path)
    assert read_pairs(path, label_field=None).labels is None


@pytest.mark.parametrize("suffix", FORMATS)
def test_unlabeled_round_trip_and_require_labels(tmp_path, suffix):
    path = tmp_path / f"u{suffix}"
    write_pairs(Pairs(["q1", "q2"], ["t1", "t2"], None), path)
    back = read_pairs(path)
    assert back.labels is None and back.texts == ["t1", "t2"]
    with pytest.raises(DataError, match="label"):
        read_pairs(path, require_labels=True)


def test_column_mapping_csv_and_jsonl(tmp_path):
    c = tmp_path / "m.csv"
    c.write_text('search,title,grade,other\nshoes,"red shoes, size 9",3,x\nsocks,wool socks,0.5,y\n')
    p = read_pairs(c, query_field="search", text_field="title", label_field="grade")
    assert p.queries == ["shoes", "socks"] and p.texts == ["red shoes, size 9", "wool socks"]
    assert p.labels.tolist() == [3.0, 0.5]  # graded labels kept as given
    j = tmp_path / "m.jsonl"
    j.write_text('{"q": "a", "doc": "b", "rel": 2}\n{"q": "c", "doc": "d", "rel": "1.5"}\n')
    p = read_pairs(j, query_field="q", text_field="doc", label_field="rel")
    assert list(p) == [("a", "b"), ("c", "d")] and p.labels.tolist() == [2.0, 1.5]


def test_single_text_mode_and_absent_label_column(tmp_path):
    j = tmp_path / "s.jsonl"
    j.write_text('{"sentence": "  good film  "}\n{"sentence": ""}\n')
    p = read_pairs(j, query_field=None, text_field="sentence")
    assert p.single_text and p.texts == ["good film", ""] and p.labels is None  # empty text allowed, whitespace stripped
    assert read_pairs(j, query_field="", text_field="sentence").queries == ["", ""]


def test_sst2_vendored_sample():
    p = read_pairs(DATA / "sst2-sample.tsv", query_field=None, text_field="sentence", label_field="label")
    assert len(p) == 40 and p.single_text
    assert p.texts[0] == "it 's a charming and often affecting journey ."
    assert set(p.labels.tolist()) == {0.0, 1.0}
    assert len(read_pairs(DATA / "sst2-sample.tsv", query_field=None, text_field="sentence", limit=5)) == 5


def test_tsv_bare_quotes_are_literal(tmp_path):
    t = tmp_path / "q.tsv"
    t.write_text('sentence\tlabel\n"the " movie \'s fine\t1\n')
    assert read_pairs(t, query_field=None, text_field="sentence").texts == ['"the " movie \'s fine']


def test_utf8_bom_and_crlf(tmp_path):
    c = tmp_path / "bom.csv"
    c.write_bytes("\ufeffquery,text,label\r\nq,t,1\r\n".encode("utf-8"))
    p = read_pairs(c)
    assert list(p) == [("q", "t")] and p.labels.tolist() == [1.0]


def test_detect_format():
    assert detect_format(Path("a.JSONL")) == "jsonl" and detect_format(Path("a.tsv")) == "tsv"
    assert detect_format(DATA) == "amazon-reviews"
    with pytest.raises(DataError, match="cannot tell the format"):
        detect_format(Path("x.txt"))


def test_jsonl_errors_name_file_line_and_field(tmp_path):
    f = tmp_path / "bad.jsonl"
    cases = [
        ('{"query": "a", "text": "b", "label": 1}\n\n{"query": "a", "text": "b", "label": "high"}\n', 3, "field 'label': label 'high' is not a finite number"),
        ('{"query": "a", "text": "b"}\n{"query": "a" "text": "b"}\n', 2, "invalid JSON"),
        ('[1, 2]\n', 1, "expected a JSON object, got list"),
        ('{"query": "a", "text": "b"}\n{"query": "a"}\n', 2, "missing field 'text'"),
        ('{"query": "a", "text": null}\n', 1, "field 'text' is null"),
        ('{"query": "a", "text": 5}\n', 1, "field 'text' must be a string"),
        ('{"q": "a", "text": "b"}\n', 1, "missing field 'query' (fields: ['q', 'text']); pass query_field=None"),
        ('{"query": "a", "text": "b", "label": 1}\n{"query": "a", "text": "c"}\n', 2, "missing field 'label' (line 1 has one"),
        ('{"query": "a", "text": "b"}\n{"query": "a", "text": "c", "label": 0}\n', 2, "field 'label' present here but not on line 1"),
        ('{"query": "a", "text": "b", "label": -1}\n', 1, "label -1 is not a finite number >= 0"),
        ('{"query": "a", "text": "b", "label": NaN}\n', 1, "label nan is not a finite number"),
        ('{"query": "a", "text": "b", "label": null}\n', 1, "label None is not a finite number"),
    ]
    for content, line, message in cases:
        f.write_text(content)
        with pytest.raises(DataError, match=error_at(f, line, message)) as info:
            read_pairs(f)
        assert info.value.line == line and info.value.path == str(f)


def test_jsonl_require_labels_and_empty(tmp_path):
    f = tmp_path / "nolabel.jsonl"
    f.write_text('\n{"query": "a", "text": "b"}\n')
    with pytest.raises(DataError, match=error_at(f, 2, "missing label field 'label'")):
        read_pairs(f, require_labels=True)
    e = tmp_path / "empty.jsonl"
    e.write_text("\n  \n")
    with pytest.raises(DataError, match=error_at(e, None, "empty file")):
        read_pairs(e)


def test_jsonl_encoding_error_has_line(tmp_path):
    f = tmp_path / "enc.jsonl"
    f.write_bytes(b'{"query": "a", "text": "ok"}\n{"query": "a", "text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=error_at(f, 2, "not utf-8 text")):
        read_pairs(f)
    assert read_pairs(f, encoding="latin-1").texts == ["ok", "café"]


def test_csv_tsv_errors_name_file_line_and_field(tmp_path):
    c = tmp_path / "bad.csv"
    cases = [
        ("query,text,label\nshoes,red shoes,1\nshoes,blue shoes\n", {}, 3, "expected 3 fields"),
        ("query,text,label\nshoes,red,-1\n", {}, 2, "field 'label': label '-1' is not a finite number >= 0"),
        ("query,text,label\nshoes,red,\n", {}, 2, "field 'label': label '' is not a finite number"),
        ("query,text,label\nshoes,red,1\n,,\nsocks,wool,0\n", {}, 3, "empty row"),
        ("query,text,label\nshoes,red,1\n\nsocks,wool,0\n", {}, 3, "empty row"),
        ("query,title\nshoes,red shoes\n", {"text_field": "title", "require_labels": True}, 1, "missing label column 'label'"),
        ("q,title\nshoes,red shoes\n", {"text_field": "title"}, 1, "no column 'query' (columns: ['q', 'title']); pass query_field=None"),
        ("query,title\nshoes,red shoes\n", {}, 1, "no column 'text' (columns: ['query', 'title'])"),
        ("query,text,text\na,b,c\n", {}, 1, "duplicate column names ['text']"),
        ("query,text\n", {}, None, "no data rows after the header"),
    ]
    for content, kwargs, line, message in cases:
        c.write_text(content)
        with pytest.raises(DataError, match=error_at(c, line, message)):
            read_pairs(c, **kwargs)
    c.write_text("query,text,label\nshoes,red,1\n\n\n")  # trailing blank lines are fine
    assert len(read_pairs(c)) == 1
    e = tmp_path / "empty.tsv"
    e.write_text("")
    with pytest.raises(DataError, match=error_at(e, 1, "empty file")):
        read_pairs(e)
    t = tmp_path / "enc.tsv"
    t.write_bytes(b"sentence\tlabel\ngood\t1\nbad \xff\t0\n")
    with pytest.raises(DataError, match=error_at(t, 3, "not utf-8 text")):
        read_pairs(t, query_field=None, text_field="sentence")


@NEEDS_PYARROW
def test_parquet_errors_name_file_and_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"query": ["a", "b", "c"], "text": ["x", None, "z"]}), p)
    with pytest.raises(DataError, match=re.escape(f"{p}: row 1: field 'text' is null")):
        read_pairs(p)
    pq.write_table(pa.table({"query": ["a", "b"], "text": ["x", "y"], "label": [1.0, float("nan")]}), p)
    with pytest.raises(DataError, match=re.escape(f"{p}: row 1: field 'label'")):
        read_pairs(p)
    pq.write_table(pa.table({"q": ["a"], "text": ["x"]}), p)
    with pytest.raises(DataError, match=re.escape(f"{p}: no column 'query' (columns: ['q', 'text'])")):
        read_pairs(p)
    assert read_pairs(p, query_field="q").queries == ["a"]
    p.write_bytes(b"not parquet")
    with pytest.raises(DataError, match=re.escape(f"{p}: cannot read Parquet")):
        read_pairs(p)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_pairs(tmp_path / "nope.jsonl")
    x = tmp_path / "x.txt"
    x.write_text("a")
    with pytest.raises(DataError, match="cannot tell the format"):
        read_pairs(x)
    with pytest.raises(DataError, match="unknown format 'xml'"):
        read_pairs(x, format="xml")
    with pytest.raises(DataError, match="no data rows"):
        read_pairs(x, format="csv", query_field=None, text_field="a")


def test_read_pairs_dispatches_review_directory():
    assert read_pairs(DATA, format="amazon-reviews").texts == read_amazon_reviews(DATA).texts


def test_failed_write_leaves_previous_file_intact(tmp_path):
    path = tmp_path / "out.tsv"
    write_pairs(Pairs(["q"], ["old"], None), path)
    with pytest.raises(DataError, match="tab or newline inside a field"):
        write_pairs(Pairs(["q", "q"], ["fine", "has\ttab"], None), path)
    assert read_pairs(path, label_field=None).texts == ["old"]
    assert [p.name for p in tmp_path.iterdir()] == ["out.tsv"]
    with pytest.raises(DataError, match="cannot write '.txt'"):
        write_pairs(Pairs(["q"], ["t"], None), tmp_path / "out.txt")
    assert not (tmp_path / "out.txt").exists()


def test_csv_round_trip_of_awkward_text(tmp_path):
    text = 'he said "hi",\nthen left'
    write_pairs(Pairs(["a,b"], [text], np.array([1.0])), tmp_path / "x.csv")
    back = read_pairs(tmp_path / "x.csv")
    assert back.texts == [text] and back.queries == ["a,b"]


def test_jsonl_written_by_pairs_is_readable(tmp_path):
    p = Pairs(["a"], ["b"], np.array([1.0]))
    p.to_jsonl(tmp_path / "x.jsonl")
    assert json.loads((tmp_path / "x.jsonl").read_text()) == {"query": "a", "text": "b", "label": 1.0}
    assert list(read_pairs(tmp_path / "x.jsonl")) == [("a", "b")]
