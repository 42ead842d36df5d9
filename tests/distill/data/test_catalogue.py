"""Product catalogues: JSONL / Parquet reading, errors naming file:line, product text rendering, judged pairs."""

import json
from pathlib import Path

import numpy as np
import pytest

from distilrank.catalogue import (
    Catalogue,
    DocumentText,
    check_fields,
    field_text,
    id_pairs,
    judged_pairs,
    read_catalogue,
)
from distilrank.errors import ConfigError, DataError
from distilrank.judgments import load_judgments
from tests.paths import TESTS_DATA

SAMPLE = TESTS_DATA / "esci-sample"

PRODUCTS = [
    {"asin": "A1", "title": "Red cotton socks", "brand": "Acme", "color": "Red", "bullet_points": "Soft\nWarm", "category": ["Clothing", "Socks"]},
    {"asin": "A2", "title": "Blue wool socks", "brand": None, "color": "Blue", "bullet_points": "", "category": []},
    {"asin": "A3", "title": "Desk lamp", "brand": "Lumo", "category": ["Home", "Lighting"]},
]


def _write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _write_parquet(path: Path, rows) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# --- reading ------------------------------------------------------------------------------


def test_read_jsonl_keeps_file_order_and_records(tmp_path):
    p = _write_jsonl(tmp_path / "p.jsonl", [PRODUCTS[0], "", PRODUCTS[1], "   ", PRODUCTS[2]])  # blank lines skipped
    cat = read_catalogue(p)
    assert isinstance(cat, Catalogue)
    assert cat.ids == ["A1", "A2", "A3"] and len(cat) == 3
    assert cat.records[1]["title"] == "Blue wool socks"
    assert cat.source == str(p)
    assert "A2" in cat and "Z9" not in cat
    assert cat.position("A3") == 2
    with pytest.raises(KeyError):
        cat.position("Z9")


def test_read_parquet_equals_jsonl(tmp_path):
    j = read_catalogue(_write_jsonl(tmp_path / "p.jsonl", PRODUCTS))
    q = read_catalogue(_write_parquet(tmp_path / "p.parquet", PRODUCTS))
    assert q.ids == j.ids
    doc = DocumentText(fields=["title", "brand", "color", "bullet_points", "category"])
    assert q.texts(doc) == j.texts(doc)
    assert q.records[0]["category"] == ["Clothing", "Socks"]


def test_numeric_ids_and_custom_id_field(tmp_path):
    p = _write_jsonl(tmp_path / "p.jsonl", [{"sku": 17, "title": "a"}, {"sku": " 18 ", "title": "b"}])
    assert read_catalogue(p, id_field="sku").ids == ["17", "18"]


def test_limit_keeps_first_products(tmp_path):
    p = _write_jsonl(tmp_path / "p.jsonl", PRODUCTS)
    assert read_catalogue(p, limit=2).ids == ["A1", "A2"]
    assert read_catalogue(p, limit=None).ids == ["A1", "A2", "A3"]
    assert read_catalogue(_write_parquet(tmp_path / "p.parquet", PRODUCTS), limit=1).ids == ["A1"]
    # rows past the limit are not even validated
    bad = _write_jsonl(tmp_path / "bad.jsonl", [PRODUCTS[0], PRODUCTS[1], "{not json"])
    assert read_catalogue(bad, limit=2).ids == ["A1", "A2"]
    with pytest.raises(ValueError, match="limit must be >= 1 or None"):
        read_catalogue(p, limit=0)  # 0 is not "every product"


def test_invalid_json_names_file_and_line(tmp_path):
    p = _write_jsonl(tmp_path / "p.jsonl", [PRODUCTS[0], PRODUCTS[1], '{"asin": "A3", "title": '])
    with pytest.raises(DataError) as e:
        read_catalogue(p)
    assert e.value.line == 3
    assert f"{p}:3:" in str(e.value) and "invalid JSON" in str(e.value)


def test_missing_or_empty_id_names_line(tmp_path):
    p = _write_jsonl(tmp_path / "p.jsonl", [PRODUCTS[0], {"title": "no id here"}])
    with pytest.raises(DataError) as e:
        read_catalogue(p)
    assert f"{p}:2:" in str(e.value) and "'asin'" in str(e.value) and "title" in str(e.value)
    p2 = _write_jsonl(tmp_path / "p2.jsonl", [{"asin": "  ", "title": "x"}])
    with pytest.raises(DataError, match=r"p2\.jsonl:1: missing or empty id"):
        read_catalogue(p2)
    p3 = _write_jsonl(tmp_path / "p3.jsonl", [{"asin": None, "title": "x"}])
    with pytest.raises(DataError, match=r"p3\.jsonl:1: missing or empty id"):
        read_catalogue(p3)


def test_repeated_id_names_both_lines(tmp_path):
    p = _write_jsonl(tmp_path / "p.jsonl", [PRODUCTS[0], PRODUCTS[1], PRODUCTS[2], {"asin": "A2", "title": "again"}])
    with pytest.raises(DataError) as e:
        read_catalogue(p)
    msg = str(e.value)
    assert f"{p}:4:" in msg and "'A2'" in msg and "line 2" in msg


def test_non_object_line_and_missing_file(tmp_path):
    p = _write_jsonl(tmp_path / "p.jsonl", [PRODUCTS[0], "[1, 2]"])
    with pytest.raises(DataError, match=r"p\.jsonl:2: expected a JSON object, got list"):
        read_catalogue(p)
    with pytest.raises(DataError, match="not found"):
        read_catalogue(tmp_path / "missing.jsonl")


def test_parquet_errors_name_the_row(tmp_path):
    rows = [dict(PRODUCTS[0]), dict(PRODUCTS[1]), dict(PRODUCTS[0])]
    p = _write_parquet(tmp_path / "dup.parquet", rows)
    with pytest.raises(DataError) as e:
        read_catalogue(p)
    assert str(p) in str(e.value) and "row 2" in str(e.value) and "repeats row 0" in str(e.value)
    p2 = _write_parquet(tmp_path / "noid.parquet", [{"asin": "A1", "title": "x"}, {"asin": None, "title": "y"}])
    with pytest.raises(DataError, match=r"row 1: missing or empty id"):
        read_catalogue(p2)


# --- product text ------------------------------------------------------------------------


def test_render_title_only_is_the_default():
    assert DocumentText().fields == ["title"]
    assert DocumentText().render(PRODUCTS[0]) == "Red cotton socks"


def test_render_title_brand_color():
    doc = DocumentText(fields=["title", "brand", "color"])
    assert doc.render(PRODUCTS[0]) == "Red cotton socks Acme Red"
    # None brand and missing color give no extra spaces
    assert doc.render(PRODUCTS[1]) == "Blue wool socks Blue"
    assert doc.render(PRODUCTS[2]) == "Desk lamp Lumo"
    assert doc.render({"title": "x"}) == "x"
    assert doc.render({}) == ""


def test_render_newlines_and_whitespace_become_single_spaces():
    doc = DocumentText(fields=["title", "bullet_points"])
    rec = {"title": "  Mug \t big ", "bullet_points": "Holds 12 oz.\nDishwasher safe\n\nMicrowave safe\n"}
    assert doc.render(rec) == "Mug big Holds 12 oz. Dishwasher safe Microwave safe"
    assert "\n" not in doc.render(PRODUCTS[0]) and doc.render(PRODUCTS[0]) == "Red cotton socks Soft Warm"
    assert doc.render(PRODUCTS[1]) == "Blue wool socks"  # empty bullets: no trailing space


def test_render_lists_are_joined():
    doc = DocumentText(fields=["title", "category"])
    assert doc.render(PRODUCTS[0]) == "Red cotton socks Clothing Socks"
    assert doc.render(PRODUCTS[1]) == "Blue wool socks"  # empty list adds nothing
    assert field_text(["a", None, "", ["b", "c  d"], 3]) == "a b c d 3"
    assert field_text(None) == "" and field_text(2.5) == "2.5"


def test_max_chars_cuts_later_fields_at_a_word_boundary():
    title = "A very long product title that is never cut"
    bullets = "alpha beta gamma delta epsilon"
    rec = {"title": title, "bullet_points": bullets}
    for cap in range(1, len(bullets) + 3):
        out = DocumentText(fields=["title", "bullet_points"], max_chars=cap).render(rec)
        assert out.startswith(title)  # the first field is never capped
        tail = out[len(title):].strip()
        assert len(tail) <= cap
        if cap < len("alpha"):
            assert tail == bullets[:cap]  # a first word longer than the cap is cut hard
        else:
            # a prefix made of whole words
            assert bullets.startswith(tail) and (len(tail) == len(bullets) or bullets[len(tail)] == " ")
    doc = DocumentText(fields=["title", "bullet_points"], max_chars=12)
    assert doc.render(rec) == f"{title} alpha beta"  # "alpha beta g" -> cut back to the last whole word
    # a cut that falls exactly at the end of a word keeps that word
    assert DocumentText(fields=["title", "bullet_points"], max_chars=10).render(rec) == f"{title} alpha beta"
    assert DocumentText(fields=["title", "bullet_points"], max_chars=11).render(rec) == f"{title} alpha beta"
    assert DocumentText(fields=["title", "bullet_points"], max_chars=9).render(rec) == f"{title} alpha"
    # short enough fields are untouched; no cap when 0
    assert DocumentText(fields=["title", "bullet_points"], max_chars=len(bullets)).render(rec) == f"{title} {bullets}"
    assert DocumentText(fields=["title", "bullet_points"], max_chars=0).render(rec) == f"{title} {bullets}"
    # a single word longer than the cap is cut hard, never exceeding the cap
    long_word = DocumentText(fields=["title", "x"], max_chars=4).render({"title": "t", "x": "abcdefgh"})
    assert long_word == "t abcd"


def test_validate_names_the_bad_field():
    DocumentText(fields=["title", "brand"], max_chars=100).validate()
    with pytest.raises(ConfigError, match=r"cfg\.toml: field 'fields'"):
        DocumentText(fields=[]).validate("cfg.toml")
    with pytest.raises(ConfigError, match="'fields'"):
        DocumentText(fields=["title", ""]).validate()
    with pytest.raises(ConfigError, match="'fields'"):
        DocumentText(fields=["title", 3]).validate()  # type: ignore[list-item]
    with pytest.raises(ConfigError, match=r"'max_chars'.*-1"):
        DocumentText(max_chars=-1).validate()
    with pytest.raises(ConfigError, match="'index_field'"):
        DocumentText(index_field="").validate()


def test_check_fields_names_the_missing_field(tmp_path):
    cat = read_catalogue(_write_jsonl(tmp_path / "p.jsonl", PRODUCTS))
    check_fields(cat, DocumentText(fields=["title", "brand", "color", "bullet_points"]))  # color only in some rows: fine
    with pytest.raises(ConfigError) as e:
        check_fields(cat, DocumentText(fields=["title", "colour"]), "esci.toml")
    msg = str(e.value)
    assert "esci.toml" in msg and "'colour'" in msg and str(tmp_path / "p.jsonl") in msg and "brand" in msg


# --- pairs -------------------------------------------------------------------------------


def test_judged_pairs_rows_labels_and_doc_ids(tmp_path):
    cat = read_catalogue(_write_jsonl(tmp_path / "p.jsonl", PRODUCTS))
    doc = DocumentText(fields=["title", "color"])
    grades = {"socks": {"A2": 3, "A1": 2}, "lamp": {"A3": 3.0, "A1": 0}}
    pairs = judged_pairs(grades, cat, doc)
    assert pairs.queries == ["socks", "socks", "lamp", "lamp"]
    assert pairs.extra["doc_id"] == ["A2", "A1", "A3", "A1"]
    assert pairs.texts == ["Blue wool socks Blue", "Red cotton socks Red", "Desk lamp", "Red cotton socks Red"]
    assert pairs.labels.dtype == np.float32 and pairs.labels.tolist() == [3.0, 2.0, 3.0, 0.0]
    only = judged_pairs(grades, cat, doc, queries=["lamp", "unjudged"])
    assert only.queries == ["lamp", "lamp"] and only.extra["doc_id"] == ["A3", "A1"]
    # select keeps extra aligned
    assert pairs.select([3, 0]).extra["doc_id"] == ["A1", "A2"]


def test_judged_pairs_unknown_doc_is_a_data_error(tmp_path):
    cat = read_catalogue(_write_jsonl(tmp_path / "p.jsonl", PRODUCTS))
    with pytest.raises(DataError) as e:
        judged_pairs({"socks": {"A1": 3, "B404": 1}}, cat, DocumentText(), origin="judg.jsonl")
    msg = str(e.value)
    assert msg.startswith("judg.jsonl:") and "'B404'" in msg and "'socks'" in msg and str(tmp_path / "p.jsonl") in msg


def test_id_pairs_unlabeled_rows(tmp_path):
    cat = read_catalogue(_write_jsonl(tmp_path / "p.jsonl", PRODUCTS))
    pairs = id_pairs({"q1": ["A3", "A1"], "q2": [], "q3": ["A2"]}, cat, DocumentText(fields=["title", "brand"]))
    assert pairs.labels is None
    assert pairs.queries == ["q1", "q1", "q3"]
    assert pairs.extra["doc_id"] == ["A3", "A1", "A2"]
    assert pairs.texts == ["Desk lamp Lumo", "Red cotton socks Acme", "Blue wool socks"]
    with pytest.raises(KeyError):
        id_pairs({"q": ["nope"]}, cat, DocumentText())


# --- the vendored ESCI sample ------------------------------------------------------------


def test_vendored_esci_sample_catalogue_and_judgments_together():
    cat = read_catalogue(SAMPLE / "products.jsonl")
    assert len(cat) == 38 and len(set(cat.ids)) == 38
    assert all(len(d) == 10 and d.startswith("B0") for d in cat.ids)
    doc = DocumentText(fields=["title", "brand", "color", "bullet_points"], max_chars=200)
    doc.validate()
    check_fields(cat, doc)
    check_fields(cat, DocumentText(fields=["description", "category"]))
    texts = cat.texts(doc)
    assert all(t and "\n" not in t and "  " not in t for t in texts)
    for rec, t in zip(cat.records, texts):
        assert t.startswith(field_text(rec["title"]))

    j = load_judgments(SAMPLE / "judgments.jsonl")
    assert list(j) == ["dremel cleaning tool", "jura grinder", "apple earbuds"]
    pairs = judged_pairs(j, cat, doc, origin=str(SAMPLE / "judgments.jsonl"))
    assert len(pairs) == j.n_judgments == 38
    assert sorted(pairs.extra["doc_id"]) == sorted(cat.ids)  # every vendored product is judged once
    assert set(pairs.labels.tolist()) == {0.0, 1.0, 2.0, 3.0}
    by_id = dict(zip(pairs.extra["doc_id"], pairs.texts))
    dremel = cat.records[cat.position("B079D7XDTN")]
    assert by_id["B079D7XDTN"].startswith(f"{dremel['title']} {dremel['brand']} {dremel['color']}")
    assert j["dremel cleaning tool"]["B079D7XDTN"] == 3.0
    # a product with a null color renders without a gap
    nulls = [r for r in cat.records if r["color"] is None]
    assert nulls and all("None" not in DocumentText(fields=["title", "color", "brand"]).render(r) for r in nulls)
