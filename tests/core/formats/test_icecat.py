"""distilrank.formats.icecat: Open Icecat ``products-*.json.zip`` files and their error messages."""

import json
import re
import zipfile
from pathlib import Path

import pytest

from distilrank.errors import DataError
from distilrank.formats.icecat import read_icecat_products


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
