"""distilrank.formats.jsonl: JSON lines (values and objects), whole documents with the line of each object, and
telling the two apart."""

import json

import pytest

from distilrank.errors import DataError
from distilrank.formats.jsonl import json_document, json_kind, jsonl_rows, jsonl_values
from tests.core.formats.error_match import error_at


def test_values_skip_blank_lines_and_keep_physical_numbers(tmp_path):
    p = tmp_path / "v.jsonl"
    p.write_text('{"a": 1}\n\n  \n[1, 2]\n"text"\n')
    assert list(jsonl_values(p)) == [(1, {"a": 1}), (4, [1, 2]), (5, "text")]
    assert list(jsonl_values(p, lines=[(7, '{"b": 2}\n')])) == [(7, {"b": 2})]  # given lines: p only names the file


def test_invalid_json_names_line_and_column(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"a": 1}\n{"a" 2}\n')
    with pytest.raises(DataError, match=error_at(p, 2, "invalid JSON: Expecting ':' delimiter (column 6)")):
        list(jsonl_values(p))


def test_rows_must_be_objects_and_the_file_not_empty(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text('{"a": 1}\n[1]\n')
    with pytest.raises(DataError, match=error_at(p, 2, "expected a JSON object, got list")):
        list(jsonl_rows(p))
    p.write_text("\n\n")
    with pytest.raises(DataError, match=error_at(p, None, "empty file: no JSON lines")):
        list(jsonl_rows(p))


def test_document_locates_every_object():
    text = json.dumps({"items": [{"id": 1}, {"id": 2, "inner": {"x": 0}}]}, indent=2)
    doc, where = json_document("d.json", text)
    first, second = doc["items"]
    assert [where[id(o)] for o in (doc, first, second, second["inner"])] == [1, 3, 6, 8]  # the line of each '{'
    assert text.splitlines()[7].strip() == '"inner": {'


def test_document_error_names_the_line():
    with pytest.raises(DataError, match=error_at("d.json", 3, "invalid JSON")):
        json_document("d.json", '[\n {"a": 1},\n {"a": }\n]\n')


@pytest.mark.parametrize("name, text, kind", [
    ("x.jsonl", "[1]", "jsonl"),
    ("x.ndjson", '{"a": 1}', "jsonl"),
    ("x.json", '{"a": 1}\n{"a": 2}\n', "json"),
    ("x", "[1,\n 2]", "json"),
    ("x", '{\n  "a": 1\n}\n', "json"),
    ("x", '{"a": 1}\n{"a": 2}\n', "jsonl"),
    ("x", '{\n  "a": [}\n', "json"),  # broken: left to json_document, whose error names the line
])
def test_json_kind(name, text, kind):
    assert json_kind(name, text) == kind
