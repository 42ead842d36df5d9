"""distilrank.formats.lines: physical lines numbered from 1, a dropped byte-order mark, decode errors with their line."""

import pytest

from distilrank.errors import DataError
from distilrank.formats.lines import decoded_lines, read_lines
from tests.core.formats.error_match import error_at


def test_lines_keep_terminators_and_numbers(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes("\ufeffone\r\n\ntwo \u2028 still two\nlast".encode("utf-8"))
    assert read_lines(p) == [(1, "one\r\n"), (2, "\n"), (3, "two \u2028 still two\n"), (4, "last")]
    assert read_lines(tmp_path / "a.txt", "latin-1")[0][1] == "ï»¿one\r\n"  # only a decoded U+FEFF is a mark


def test_undecodable_byte_names_its_line(tmp_path):
    p = tmp_path / "b.txt"
    p.write_bytes(b"ok\nalso ok\ncaf\xe9\n")
    lines = decoded_lines(p)
    assert next(lines) == (1, "ok\n") and next(lines) == (2, "also ok\n")  # lines before the bad one come through
    with pytest.raises(DataError, match=error_at(p, 3, "not utf-8 text: invalid continuation byte at byte 3 of the line")):
        next(lines)


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_lines(tmp_path / "nope.txt")
