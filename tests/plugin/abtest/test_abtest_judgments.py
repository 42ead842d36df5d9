"""Loading judged query sets: vendored Icecat / ESCI samples, generic CSV/TSV/JSON/JSONL, bad-input errors."""

import json

import pytest

from distilrank.errors import DataError, DistilRankError
from distilrank.judgments import (
    ESCI_GRADE_MAP,
    Judgments,
    from_pairs,
    load_judgments,
    load_queryset,
    model_source,
)
from tests.paths import SHARED_DATA, TESTS_DATA

DATA = TESTS_DATA / "abtest"
SHARED = SHARED_DATA


def test_icecat_sample_csv():
    j = load_judgments(DATA / "icecat_judgments_sample.csv")
    assert isinstance(j, Judgments) and j.source == "human"
    assert list(j) == ["notebook", "laptop"]
    assert j.n_judgments == 15
    assert j["notebook"]["1325549"] == 1.0 and j["notebook"]["1776827"] == 3.0
    assert set(j["laptop"].values()) == {1.0, 3.0}
    assert j.unjudged_queries() == []


def test_esci_sample_srw_json_raw_and_mapped():
    raw = load_judgments(DATA / "esci_judgments_sample.json")
    assert list(raw) == ["t towels kitchen", "table top bandsaw for metal", "tan strappy heels for women"]
    assert raw["t towels kitchen"]["B07NCQWCQS"] == 100.0
    assert raw["t towels kitchen"]["B07QLRTGVQ"] == 10.0
    assert raw["table top bandsaw for metal"] and 0.0 in raw["table top bandsaw for metal"].values()
    mapped = load_judgments(DATA / "esci_judgments_sample.json", grade_map="esci")
    assert mapped["t towels kitchen"]["B07NCQWCQS"] == 3.0 and mapped["t towels kitchen"]["B07QLRTGVQ"] == 2.0
    assert set(ESCI_GRADE_MAP) == {100.0, 10.0, 1.0, 0.0}


def test_esci_queryset_keeps_unjudged_query():
    qs = load_queryset(DATA / "esci_queryset_sample.json")
    assert qs[-1] == "tank top plus size women" and len(qs) == 4
    j = load_judgments(DATA / "esci_judgments_sample.json", queryset=DATA / "esci_queryset_sample.json")
    assert list(j) == qs
    assert j["tank top plus size women"] == {}
    assert j.unjudged_queries() == ["tank top plus size women"]


@pytest.mark.skipif(not (SHARED / "esci-shopping").is_dir(), reason="../shared/data not present")
def test_full_shared_files():
    ice = load_judgments(SHARED / "icecat" / "judgments.csv")
    assert sorted(ice) == ["laptop", "notebook"] and ice.n_judgments == 207
    d = SHARED / "esci-shopping"
    jsonl = load_judgments(d / "judgments-dev.jsonl")
    srw = load_judgments(d / "judgments-dev.srw.json", grade_map="esci", queryset=d / "queryset-dev.srw.json")
    assert len(jsonl) == len(srw) == 100 and jsonl.n_judgments == srw.n_judgments == 4487 and srw.unjudged_queries() == []
    assert {q: dict(jsonl[q]) for q in jsonl} == {q: dict(srw[q]) for q in srw}
    assert {g for d in jsonl.grades.values() for g in d.values()} == {0.0, 1.0, 2.0, 3.0}


def test_generic_formats_agree(tmp_path):
    want = {"red shoes": {"d1": 2.0, "d2": 0.0}, "lamp": {"d9": 1.5}}
    (tmp_path / "a.tsv").write_text("Query\tDoc_ID\tGrade\tqid\nred shoes\td1\t2\tq1\nred shoes\td2\t0\tq1\nlamp\td9\t1.5\tq2\n")
    (tmp_path / "b.csv").write_text('query,doc_id,relevance\n"red shoes",d1,2\nred shoes,d2,0\nlamp,d9,1.5\n')
    recs = [{"query": "red shoes", "doc_id": "d1", "grade": 2}, {"query": "red shoes", "docid": "d2", "rating": "0"},
            {"query": "lamp", "doc_id": "d9", "grade": 1.5}]
    (tmp_path / "c.json").write_text(json.dumps(recs, indent=1))
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    (tmp_path / "e.txt").write_text("\n".join(json.dumps(r) for r in recs) + "\n")  # JSONL sniffed from content
    for name in ("a.tsv", "b.csv", "c.json", "d.jsonl", "e.txt"):
        j = load_judgments(tmp_path / name)
        assert dict(j.grades) == want, name
        assert list(j) == ["red shoes", "lamp"]
    assert load_judgments(tmp_path / "a.tsv").query_ids == {"red shoes": "q1", "lamp": "q2"}


def test_same_grade_duplicate_ok_and_queryset_text(tmp_path):
    (tmp_path / "j.csv").write_text("query,docid,rating\nq,a,1\nq,a,1\n")
    assert load_judgments(tmp_path / "j.csv")["q"] == {"a": 1.0}
    (tmp_path / "qs.txt").write_text("q\n\nother\nq\n")
    assert load_queryset(tmp_path / "qs.txt") == ["q", "other"]
    j = load_judgments(tmp_path / "j.csv", queryset=tmp_path / "qs.txt")
    assert list(j) == ["q", "other"] and j["other"] == {} and "other" in j


@pytest.mark.parametrize("name, text, line, words", [
    ("bad.csv", "query,docid,rating\nq,a,1\nq,b,high\n", 3, "not a number"),
    ("neg.csv", "query,docid,rating\nq,a,-1\n", 2, ">= 0"),
    ("nan.csv", "query,docid,rating\nq,a,1\nq,b,nan\n", 3, "finite"),
    ("empty.csv", "query,docid,rating\nq,a,1\n,b,1\n", 3, "query"),
    ("nodoc.csv", "query,docid,rating\nq,,1\n", 2, "doc id"),
    ("short.csv", "query,docid,rating\nq,a,1\nq,b\n", 3, "missing column 'rating'"),
    ("conflict.csv", "query,docid,rating\nq,a,1\nq,b,0\nq,a,3\n", 4, "line 2"),
    ("quoted.csv", 'query,docid,rating\n"multi\nline",a,1\nq,b,x\n', 4, "not a number"),
    ("nohead.csv", "query,doc,score\nq,a,1\n", 1, "grade column"),
    ("bad.jsonl", '{"query": "q", "doc_id": "a", "grade": 1}\n\n{"query": "q", "doc_id": "b"}\n', 3, "grade"),
    ("broken.jsonl", '{"query": "q", "doc_id": "a", "grade": 1}\n{"query": \n', 2, "invalid JSON"),
    ("bad.json", '[\n {"query": "q", "doc_id": "a", "grade": 1},\n {"query": "q",\n  "doc_id": "b", "grade": "x"}\n]\n', 3,
     "not a number"),
    ("broken.json", '[\n {"query": "q", "doc_id": "a", "grade": 1},\n {"query": }\n]\n', 3, "invalid JSON"),
])
def test_bad_rows_name_file_and_line(tmp_path, name, text, line, words):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(DataError) as err:
        load_judgments(p)
    assert err.value.path == str(p) and err.value.line == line, str(err.value)
    assert str(err.value).startswith(f"{p}:{line}: ") and words in str(err.value)


def test_srw_bad_rating_line_and_grade_map_miss(tmp_path):
    doc = {"judgmentRatings": [{"query": "q", "ratings": [{"docId": "a", "rating": "100.000"},
                                                          {"docId": "b", "rating": "5.000"}]}]}
    p = tmp_path / "srw.json"
    p.write_text(json.dumps(doc, indent=2))
    line_b = next(i for i, ln in enumerate(p.read_text().splitlines(), 1) if '"b"' in ln) - 1  # the '{' before it
    assert load_judgments(p)["q"] == {"a": 100.0, "b": 5.0}
    with pytest.raises(DataError) as err:
        load_judgments(p, grade_map="esci")
    assert err.value.line == line_b and "not in grade_map" in str(err.value)
    doc["judgmentRatings"][0]["ratings"][1] = {"rating": "1.000"}
    p.write_text(json.dumps(doc, indent=2))
    with pytest.raises(DataError, match=r"srw\.json:\d+: missing or empty doc id"):
        load_judgments(p)


def test_missing_file_and_unknown_options(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_judgments(tmp_path / "nope.csv")
    (tmp_path / "j.csv").write_text("query,docid,rating\nq,a,1\n")
    with pytest.raises(DistilRankError, match="unknown grade_map"):
        load_judgments(tmp_path / "j.csv", grade_map="trec")
    with pytest.raises(DistilRankError, match="unknown judgment format"):
        load_judgments(tmp_path / "j.csv", fmt="xml")


def test_from_pairs_and_model_source():
    j = from_pairs({"q": {"a": 2, "b": 0}}, source=model_source("ms-marco-MiniLM"))
    assert j.source == "model (teacher cross-encoder ms-marco-MiniLM)" and j["q"] == {"a": 2.0, "b": 0.0}
    with pytest.raises(DataError):
        from_pairs({"q": {"a": "x"}})
    kept = from_pairs({"q": {"a": 1}, "empty": {}})
    assert list(kept) == ["q", "empty"] and kept.unjudged_queries() == ["empty"]


def test_queryset_formats_and_errors(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(["red shoes", "lamp", "red shoes"]))
    (tmp_path / "b.jsonl").write_text('{"queryText": "red shoes"}\n{"query": "lamp"}\n')
    (tmp_path / "c.json").write_text(json.dumps({"querySetQueries": [{"queryText": "red shoes"}, {"queryText": " lamp "}]}))
    for name in ("a.json", "b.jsonl", "c.json"):
        assert load_queryset(tmp_path / name) == ["red shoes", "lamp"], name
    (tmp_path / "bad.json").write_text('{"querySetQueries": [\n  {"queryText": "ok"},\n  {"text": "no"}\n]}\n')
    with pytest.raises(DataError) as err:
        load_queryset(tmp_path / "bad.json")
    assert err.value.line == 3 and "no query text" in str(err.value)
    (tmp_path / "broken.json").write_text('{\n  "querySetQueries": [\n    {"queryText": "ok"},,\n  ]\n}\n')
    with pytest.raises(DataError, match=r"broken\.json:3: invalid JSON"):
        load_queryset(tmp_path / "broken.json")
    with pytest.raises(DataError, match="not found"):
        load_queryset(tmp_path / "nope.json")


def test_broken_pretty_json_without_suffix_names_its_line(tmp_path):
    p = tmp_path / "judgments"
    p.write_text('{\n  "judgmentRatings": [\n    {"query": "q", "ratings": [}\n  ]\n}\n')
    with pytest.raises(DataError, match=r"judgments:3: invalid JSON"):
        load_judgments(p)
