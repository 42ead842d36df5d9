"""distilrank.formats.parquet: reading wanted columns row by row, atomic writes, and the error without pyarrow."""

import builtins
import importlib.util
import re

import pytest

from distilrank.errors import DataError, DistilRankError
from distilrank.formats.parquet import parquet_table, write_parquet

NEEDS_PYARROW = pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow is not installed (serving-only install)")


@NEEDS_PYARROW
def test_write_then_read_wanted_columns(tmp_path):
    p = tmp_path / "t.parquet"
    write_parquet(p, {"query": (["a", "b"], "string"), "text": (["x", "y"], "string"), "label": ([1.0, 0.5], "float32")})
    columns, rows = parquet_table(p, ["text", None, "missing", "text", "label"])
    assert columns == ["query", "text", "label"]
    assert list(rows()) == [(0, {"text": "x", "label": 1.0}), (1, {"text": "y", "label": 0.5})]
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


@NEEDS_PYARROW
def test_unreadable_file(tmp_path):
    p = tmp_path / "bad.parquet"
    p.write_bytes(b"not parquet")
    with pytest.raises(DataError, match=re.escape(f"{p}: cannot read Parquet")):
        parquet_table(p, ["text"])


def test_missing_pyarrow_names_the_extra(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    p = tmp_path / "t.parquet"
    for call in (lambda: parquet_table(p, ["text"]), lambda: write_parquet(p, {"text": (["x"], "string")})):
        with pytest.raises(DistilRankError, match=re.escape("need pyarrow") + ".*" + re.escape("pip install 'distilrank[train]'")):
            call()
    assert not p.exists()
