"""Nested JSONL judgments (one judged query per line, the ESCI ``judgments-dev.jsonl`` form) and the SRW equivalent."""

import json
from pathlib import Path

import pytest

from distilrank.errors import DataError
from distilrank.judgments import load_judgments
from tests.paths import SHARED_DATA, TESTS_DATA

SAMPLE = TESTS_DATA / "esci-sample"
SHARED = SHARED_DATA / "esci-shopping"
SRW_RATING = {3: "100.000", 2: "10.000", 1: "1.000", 0: "0.000"}
QUERIES = ["dremel cleaning tool", "jura grinder", "apple earbuds"]


def _nested_lines():
    return [json.loads(line) for line in (SAMPLE / "judgments.jsonl").read_text(encoding="utf-8").splitlines()]


def _write_srw(path: Path, groups) -> Path:
    doc = {"name": "sample", "type": "IMPORT_JUDGMENT", "judgmentRatings": [
        {"query": g["query"], "ratings": [{"docId": r["asin"], "rating": SRW_RATING[r["rating"]]} for r in g["ratings"]]}
        for g in groups]}
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def test_vendored_nested_sample_loads_with_right_counts():
    j = load_judgments(SAMPLE / "judgments.jsonl")
    assert list(j) == QUERIES
    assert [len(j[q]) for q in QUERIES] == [13, 12, 13]
    assert j.n_judgments == 38 and j.unjudged_queries() == []
    assert j.source == "human" and j.origin == str(SAMPLE / "judgments.jsonl")
    counts = {}
    for q in QUERIES:
        for g in j[q].values():
            counts[g] = counts.get(g, 0) + 1
    assert counts == {3.0: 15, 2.0: 8, 1.0: 9, 0.0: 6}
    # grades match the file's "rating" and agree with its E/S/C/I label
    esci = {"E": 3.0, "S": 2.0, "C": 1.0, "I": 0.0}
    for line in _nested_lines():
        for r in line["ratings"]:
            assert j[line["query"]][r["asin"]] == float(r["rating"]) == esci[r["esci"]]


def test_same_queries_in_srw_format_give_identical_grades(tmp_path):
    nested = load_judgments(SAMPLE / "judgments.jsonl")
    srw = load_judgments(_write_srw(tmp_path / "judgments.srw.json", _nested_lines()), grade_map="esci")
    assert list(srw) == list(nested)
    assert {q: dict(srw[q]) for q in srw} == {q: dict(nested[q]) for q in nested}
    raw = load_judgments(tmp_path / "judgments.srw.json")  # without the map: the 100/10/1/0 scale
    assert raw["jura grinder"] and set(raw.grades["apple earbuds"].values()) <= {100.0, 10.0, 1.0, 0.0}


@pytest.mark.skipif(not (SHARED / "judgments-dev.jsonl").exists(), reason="shared ESCI data not present")
def test_shared_dev_nested_equals_shared_srw():
    nested = load_judgments(SHARED / "judgments-dev.jsonl")
    srw = load_judgments(SHARED / "judgments-dev.srw.json", grade_map="esci")
    assert len(nested) == 100 and nested.n_judgments == 4487
    assert list(srw) == list(nested) and srw.grades == nested.grades


def test_nested_and_flat_lines_mix_and_doc_id_aliases(tmp_path):
    p = tmp_path / "j.jsonl"
    p.write_text("\n".join([
        json.dumps({"query": "mug", "query_id": "q7", "ratings": [{"asin": "A1", "rating": 3}, {"doc_id": "A2", "rating": "1"}]}),
        "",
        json.dumps({"query": "mug", "doc_id": "A3", "grade": 2}),
        json.dumps({"query": "lamp", "ratings": []}),  # a judged query with no ratings adds nothing
        json.dumps({"query": "lamp", "ratings": [{"docId": "B1", "rating": 0}]}),
    ]) + "\n", encoding="utf-8")
    j = load_judgments(p)
    assert list(j) == ["mug", "lamp"]
    assert dict(j["mug"]) == {"A1": 3.0, "A2": 1.0, "A3": 2.0} and dict(j["lamp"]) == {"B1": 0.0}
    assert j.query_ids == {"mug": "q7"}


def test_rating_that_is_not_an_object_names_the_line(tmp_path):
    p = tmp_path / "j.jsonl"
    p.write_text(json.dumps({"query": "mug", "ratings": [{"asin": "A1", "rating": 3}]}) + "\n"
                 + json.dumps({"query": "lamp", "ratings": [{"asin": "B1", "rating": 2}, "B2"]}) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        load_judgments(p)
    assert e.value.line == 2 and f"{p}:2:" in str(e.value) and "rating must be an object" in str(e.value)


def test_nested_bad_rows_name_the_line(tmp_path):
    p = tmp_path / "j.jsonl"
    p.write_text(json.dumps({"query": "mug", "ratings": [{"asin": "A1", "rating": 3}]}) + "\n"
                 + json.dumps({"ratings": [{"asin": "B1", "rating": 2}]}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"j\.jsonl:2: missing or empty query"):
        load_judgments(p)
    p.write_text(json.dumps({"query": "mug", "ratings": [{"asin": "A1", "rating": -1}]}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"j\.jsonl:1: .*finite number >= 0"):
        load_judgments(p)
    p.write_text(json.dumps({"query": "mug", "ratings": [{"rating": 1}]}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"j\.jsonl:1: missing or empty doc id"):
        load_judgments(p)
    p.write_text(json.dumps({"query": "mug", "ratings": [{"asin": "A1", "rating": 3}]}) + "\n"
                 + json.dumps({"query": "mug", "ratings": [{"asin": "A1", "rating": 1}]}) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        load_judgments(p)
    assert f"{p}:2:" in str(e.value) and "line 1" in str(e.value) and "conflicting" in str(e.value)
