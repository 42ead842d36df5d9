"""Readers and writers for JSONL / CSV / TSV / Parquet / Amazon reviews / Icecat, and their error messages."""

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from distilrank.errors import DataError
from distilrank.pairs import Pairs
from distilrank.readers import (
    detect_format,
    read_amazon_reviews,
    read_icecat_products,
    read_pairs,
    split_sentences,
    write_pairs,
)
from tests.paths import TESTS_DATA

DATA = TESTS_DATA
FORMATS = [".jsonl", ".csv", ".tsv", ".parquet"]


def _err(path: Path, line, text: str) -> str:
    """Regex for a DataError message at ``path:line`` containing ``text``."""
    where = re.escape(str(path)) + (f":{line}" if line is not None else "")
    return where + ": .*" + re.escape(text)


# ---------------------------------------------------------------- round trips and column mapping


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


# ---------------------------------------------------------------- malformed input: file + line + field


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
        with pytest.raises(DataError, match=_err(f, line, message)) as info:
            read_pairs(f)
        assert info.value.line == line and info.value.path == str(f)


def test_jsonl_require_labels_and_empty(tmp_path):
    f = tmp_path / "nolabel.jsonl"
    f.write_text('\n{"query": "a", "text": "b"}\n')
    with pytest.raises(DataError, match=_err(f, 2, "missing label field 'label'")):
        read_pairs(f, require_labels=True)
    e = tmp_path / "empty.jsonl"
    e.write_text("\n  \n")
    with pytest.raises(DataError, match=_err(e, None, "empty file")):
        read_pairs(e)


def test_jsonl_encoding_error_has_line(tmp_path):
    f = tmp_path / "enc.jsonl"
    f.write_bytes(b'{"query": "a", "text": "ok"}\n{"query": "a", "text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=_err(f, 2, "not utf-8 text")):
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
        with pytest.raises(DataError, match=_err(c, line, message)):
            read_pairs(c, **kwargs)
    c.write_text("query,text,label\nshoes,red,1\n\n\n")  # trailing blank lines are fine
    assert len(read_pairs(c)) == 1
    e = tmp_path / "empty.tsv"
    e.write_text("")
    with pytest.raises(DataError, match=_err(e, 1, "empty file")):
        read_pairs(e)
    t = tmp_path / "enc.tsv"
    t.write_bytes(b"sentence\tlabel\ngood\t1\nbad \xff\t0\n")
    with pytest.raises(DataError, match=_err(t, 3, "not utf-8 text")):
        read_pairs(t, query_field=None, text_field="sentence")


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


# ---------------------------------------------------------------- writing


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


# ---------------------------------------------------------------- sentences and Amazon reviews


def test_split_sentences():
    assert split_sentences("Great pan. Heats evenly! Would buy again?\n\nYes") == ["Great pan.", "Heats evenly!", "Would buy again?", "Yes"]
    assert split_sentences("Version 2.5 is fine.") == ["Version 2.5 is fine."]
    assert split_sentences('He said "stop." Then   it\nbroke.') == ['He said "stop."', "Then it broke."]
    assert split_sentences("Ask Mr. Smith. Or Dr. C. Jones.") == ["Ask Mr. Smith.", "Or Dr. C. Jones."]
    assert split_sentences("Pros:\n1) sharp\n2) light") == ["Pros:", "1) sharp", "2) light"]
    assert split_sentences("  \n ") == []


def test_amazon_reviews_documents_labels_and_entities():
    docs = read_amazon_reviews(DATA)
    assert len(docs) == 5 and docs.single_text and docs.labels is None
    assert docs.texts[0].startswith("He just looks away from where the spray emits--and barks again! It also")
    assert all("<" not in t and "\n" not in t and "  " not in t for t in docs.texts)
    assert 'kitchen "gizmo" I have ever had' in docs.texts[-1]  # &quot; decoded
    labeled = read_amazon_reviews(DATA, with_labels=True)
    assert labeled.labels.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]  # negative file sorts first
    one = read_amazon_reviews([DATA / "kitchen.positive.review"], with_labels=True)
    assert len(one) == 3 and one.labels.tolist() == [1.0, 1.0, 1.0]


def test_amazon_reviews_title_field_sentences_and_limit():
    titled = read_amazon_reviews(DATA / "kitchen.negative.review", include_title=True)
    assert titled.texts[0].startswith("Doesn't keep my yappy Cairn from barking.... He just looks away")
    titles = read_amazon_reviews(DATA, field="title")
    assert titles.texts[0] == "Doesn't keep my yappy Cairn from barking..." and len(titles) == 5
    sents = read_amazon_reviews(DATA, sentences=True, with_labels=True)
    assert len(sents) > 15
    assert "He just looks away from where the spray emits--and barks again!" in sents.texts
    assert all(len(s.split()) >= 3 for s in sents.texts)
    assert len(read_amazon_reviews(DATA, sentences=True, min_words=12)) < len(sents)
    assert len(read_amazon_reviews(DATA, sentences=True, limit=4)) == 4


def test_amazon_reviews_latin1_fallback(tmp_path):
    f = tmp_path / "x.negative.review"
    f.write_bytes(b"<review>\n<title>\nBad\n</title>\n<review_text>\nW\xfcsthof knife &amp; block broke.\n</review_text>\n</review>\n")
    assert read_amazon_reviews(f).texts == ["Wüsthof knife & block broke."]
    with pytest.raises(DataError, match=_err(f, 6, "not utf-8 text")):
        read_amazon_reviews(f, encoding="utf-8")


def test_amazon_reader_malformed_files(tmp_path):
    f = tmp_path / "x.positive.review"
    cases = [
        ("hello", None, "no <review> elements"),
        ("<review>\n<title>\na\n</title>\n</review>\n", 1, "review without <review_text>"),
        ("<review>\n<review_text>\na\n</review_text>\n</review>\n<review>\n<review_text>\nb\n", 6, "<review> not closed at end of file"),
        ("<review>\n<review_text>\na\n</review_text>\n<review>\n<review_text>\nb\n</review_text>\n</review>\n", 1, "<review> not closed before the next"),
        ("<review_text>\na\n</review_text>\n</review>\n", 4, "</review> without an opening <review>"),
    ]
    for content, line, message in cases:
        f.write_text(content)
        with pytest.raises(DataError, match=_err(f, line, message)):
            read_amazon_reviews(f)
    g = tmp_path / "books.review"
    g.write_text("<review>\n<review_text>\nfine\n</review_text>\n</review>\n")
    assert read_amazon_reviews(g).texts == ["fine"]
    with pytest.raises(DataError, match="cannot tell polarity"):
        read_amazon_reviews(g, with_labels=True)
    (tmp_path / "sub").mkdir()
    with pytest.raises(DataError, match=r"no \*\.review files"):
        read_amazon_reviews(tmp_path / "sub")
    with pytest.raises(DataError, match="file not found"):
        read_amazon_reviews([tmp_path / "missing.review"])


def test_read_pairs_dispatches_review_directory():
    assert read_pairs(DATA, format="amazon-reviews").texts == read_amazon_reviews(DATA).texts


# ---------------------------------------------------------------- Icecat


def _zip(path: Path, member: str, payload: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, payload)
    return path


def test_icecat_products(tmp_path):
    items = [{"id": 3920564, "title": "Xerox toner", "supplier": "Xerox", "price": 4995}, {"id": "7", "title": "HP laptop"}]
    _zip(tmp_path / "products-2.json.zip", "2.json", json.dumps(items[1:]).encode())
    _zip(tmp_path / "products-10.json.zip", "10.json", b"[]")
    _zip(tmp_path / "products-1.json.zip", "1.json", json.dumps(items[:1]).encode())
    products = read_icecat_products(tmp_path)
    assert [p["id"] for p in products] == ["3920564", "7"]  # numeric file order, ids as strings
    assert products[0]["title"] == "Xerox toner" and products[0]["price"] == 4995
    assert read_icecat_products(tmp_path / "products-2.json.zip")[0]["title"] == "HP laptop"


def test_icecat_malformed(tmp_path):
    bad = _zip(tmp_path / "products-1.json.zip", "1.json", b'[{"id": "1"},\n{"title": "no id"}]')
    with pytest.raises(DataError, match=re.escape(f"{bad}!1.json: product 1: expected an object with an 'id'")):
        read_icecat_products(bad)
    _zip(bad, "1.json", b'[{"id": "1"},\n{"id": ]')
    with pytest.raises(DataError, match=re.escape(f"{bad}!1.json:2: invalid JSON")):
        read_icecat_products(bad)
    _zip(bad, "1.json", b'{"id": "1"}')
    with pytest.raises(DataError, match="expected a JSON array of products, got dict"):
        read_icecat_products(bad)
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a zip file"):
        read_icecat_products(bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no products-"):
        read_icecat_products(empty)
