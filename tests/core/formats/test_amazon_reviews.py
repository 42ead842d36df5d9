"""distilrank.formats.amazon_reviews: Blitzer ``*.review`` files as documents or sentences, labels from file names,
encodings, and malformed files."""

import pytest

from distilrank.errors import DataError
from distilrank.formats.amazon_reviews import read_amazon_reviews
from tests.core.formats.error_match import error_at
from tests.paths import TESTS_DATA

DATA = TESTS_DATA


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
    with pytest.raises(DataError, match=error_at(f, 6, "not utf-8 text")):
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
        with pytest.raises(DataError, match=error_at(f, line, message)):
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
