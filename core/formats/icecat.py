"""Open Icecat products: ``products-*.json.zip`` files, each member a JSON array of product objects."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from distilrank.errors import DataError


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def read_icecat_products(path: str | Path) -> list[dict]:
    """Products from Open Icecat ``products-*.json.zip`` files, in file then array order.

    ``path`` is one zip or a directory of ``products-*.json.zip`` (numeric order).
    Each zip member is a JSON array of product objects; every product must have an
    ``id`` (returned as a string).  The dicts are otherwise as stored (``title``,
    ``name``, ``short_description``, ``supplier``, ``price``, ``attr_*``, ...).

    Raises:
        DataError: naming ``zip!member`` (and the product index) of the first problem.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("products-*.json.zip"), key=_natural_key)
        if not files:
            raise DataError(path, None, "no products-*.json.zip files in this directory")
    elif path.exists():
        files = [path]
    else:
        raise DataError(path, None, "file not found")
    products: list[dict] = []
    for f in files:
        try:
            with zipfile.ZipFile(f) as zf:
                members = [(name, zf.read(name)) for name in zf.namelist() if not name.endswith("/")]
        except zipfile.BadZipFile as exc:
            raise DataError(f, None, f"not a zip file: {exc}") from None
        for name, raw in members:
            where = f"{f}!{name}"
            try:
                items = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataError(where, exc.lineno, f"invalid JSON: {exc.msg}") from None
            except UnicodeDecodeError as exc:
                raise DataError(where, None, f"not UTF-8 text: {exc.reason}") from None
            if not isinstance(items, list):
                raise DataError(where, None, f"expected a JSON array of products, got {type(items).__name__}")
            for i, item in enumerate(items):
                if not isinstance(item, dict) or item.get("id") in (None, ""):
                    raise DataError(where, None, f"product {i}: expected an object with an 'id', got {str(item)[:80]!r}")
                item["id"] = str(item["id"])
                products.append(item)
    return products
