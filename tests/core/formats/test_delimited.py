"""distilrank.formats.delimited: CSV/TSV records at the line they start on, header tables, and writing."""

import pytest

from distilrank.errors import DataError
from distilrank.formats.delimited import DelimitedTable, records, write_delimited
from distilrank.formats.lines import read_lines
from tests.core.formats.error_match import error_at


def test_records_start_lines_and_blank_lines(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text('a,b\n"two\nlines",x\n\nlast,"q ""quoted"""\n')
    assert list(records(p, read_lines(p), ",")) == [
        (1, ["a", "b"]), (2, ["two\nlines", "x"]), (4, []), (5, ["last", 'q "quoted"'])]


def test_unquoted_records_read_quotes_literally(tmp_path):
    p = tmp_path / "r.tsv"
    p.write_text('sentence\tlabel\n"a " b\t1\n')
    assert list(records(p, read_lines(p), "\t", quoted=False))[1] == (2, ['"a " b', "1"])


def test_table_columns_rows_and_errors(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(' query , text\nq,"multi\nline"\nr,s\n\n')
    table = DelimitedTable(p, ",")
    assert table.columns == ["query", "text"]
    assert list(table) == [(2, {"query": "q", "text": "multi\nline"}), (4, {"query": "r", "text": "s"})]
    cases = [("", 1, "empty file"), ("a,a\n", 1, "duplicate column names ['a']"), ("a,b\n1,2\n3\n", 3, "expected 2 fields"),
             ("a,b\n1,2\n\n3,4\n", 3, "empty row"), ("a,b\n , \n", 2, "empty row")]
    for content, line, message in cases:
        p.write_text(content)
        with pytest.raises(DataError, match=error_at(p, line, message)):
            list(DelimitedTable(p, ","))


def test_write_csv_quotes_and_tsv_refuses_tabs(tmp_path):
    c = tmp_path / "w.csv"
    write_delimited(c, ["a", "b"], [["x,y", 'say "hi"'], ["1", "2"]], ",")
    assert c.read_bytes().decode() == 'a,b\r\n"x,y","say ""hi"""\r\n1,2\r\n'
    t = tmp_path / "w.tsv"
    write_delimited(t, ["a", "b"], [["x", "y"]], "\t")
    assert t.read_text() == "a\tb\nx\ty\n"
    with pytest.raises(DataError, match=error_at(t, 3, "a tab or newline inside a field")):
        write_delimited(t, ["a", "b"], [["x", "y"], ["new\nline", "z"]], "\t")
    assert t.read_text() == "a\tb\nx\ty\n"  # left as it was
