"""distilrank.judgments: judged query sets from the vendored Icecat / ESCI samples, generic CSV/TSV/JSON/JSONL,
nested JSONL (one judged query per line, the ESCI ``judgments-dev.jsonl`` form) and its SRW equivalent; bad-input
errors naming the file and line."""

import json
import re
from pathlib import Path

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
from tests.paths import TESTS_DATA, needs_data

DATA = TESTS_DATA / "abtest"
SAMPLE = TESTS_DATA / "esci-sample"
SRW_RATING = {3: "100.000", 2: "10.000", 1: "1.000", 0: "0.000"}
QUERIES = ["dremel cleaning tool", "jura grinder", "apple earbuds"]


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


def test_full_shared_files():
    ice = load_judgments(needs_data("icecat/judgments.csv"))
    assert sorted(ice) == ["laptop", "notebook"] and ice.n_judgments == 207
    d = needs_data("esci-shopping")
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


def test_undecodable_byte_names_its_line(tmp_path):
    for name, content in (("j.csv", b"query,docid,rating\nq,a,1\ncaf\xe9,b,1\n"),
                          ("j.jsonl", b'{"query": "q", "doc_id": "a", "grade": 1}\n{"query": "caf\xe9"}\n'),
                          ("qs.txt", b"q\ncaf\xe9\n")):
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(DataError, match=re.escape(f"{p}:") + r"\d+: not utf-8 text") as err:
            (load_queryset if name == "qs.txt" else load_judgments)(p)
        assert err.value.line == (3 if name == "j.csv" else 2)


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


# --- nested JSONL judgments and the SRW equivalent ------------------------------


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


def test_shared_dev_nested_equals_shared_srw():
    shared = needs_data("esci-shopping")
    nested = load_judgments(shared / "judgments-dev.jsonl")
    srw = load_judgments(shared / "judgments-dev.srw.json", grade_map="esci")
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
