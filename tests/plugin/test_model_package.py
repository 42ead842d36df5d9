"""Model zips without a cluster: what inspect_model_zip accepts, how it names a broken zip, and the upload chunks."""

from __future__ import annotations

from pathlib import Path

import pytest

from distilrank.plugin.ml_api import MAX_CHUNK_BYTES
from distilrank.plugin.model_package import PackageError, check_chunk_size, inspect_model_zip
from tests.zips import rezip


def test_inspect_valid_zip(exported):
    pkg = inspect_model_zip(exported.zip, expected_sha256=exported.sha256.upper())
    assert pkg.sha256 == exported.sha256 and pkg.onnx_member == "model.onnx" and pkg.tokenizer_max_length == 64
    assert pkg.card["name"] == "toy" and pkg.name() == "toy"
    chunks = list(pkg.chunks(1000))
    assert b"".join(c for _, c in chunks) == open(exported.zip, "rb").read()
    assert [i for i, _ in chunks] == list(range(pkg.n_chunks(1000))) and all(len(c) <= 1000 for _, c in chunks)


def test_bad_zips_named_precisely(exported, tmp_path):
    with pytest.raises(PackageError, match=r"nozip.zip: model zip not found"):
        inspect_model_zip(tmp_path / "nozip.zip")
    with pytest.raises(PackageError, match=r"notok.zip: tokenizer.json missing"):
        inspect_model_zip(rezip(exported.zip, tmp_path / "notok.zip", drop=("tokenizer.json",)))
    with pytest.raises(PackageError, match=r"badtok.zip: tokenizer.json does not load"):
        inspect_model_zip(rezip(exported.zip, tmp_path / "badtok.zip", drop=("tokenizer.json",),
                                add=(("tokenizer.json", '{"model": {"type": "Nope"}}'),)))
    with pytest.raises(PackageError, match=r"badonnx.zip: model.onnx is not a loadable ONNX model"):
        inspect_model_zip(rezip(exported.zip, tmp_path / "badonnx.zip", drop=("model.onnx",), add=(("model.onnx", b"junk"),)))
    with pytest.raises(PackageError, match=r"sha256 is [0-9a-f]{64}, but abc was expected"):
        inspect_model_zip(exported.zip, expected_sha256="abc")


def test_chunk_size_limits_and_chunks_rebuild_the_zip(exported):
    assert check_chunk_size(MAX_CHUNK_BYTES) == MAX_CHUNK_BYTES
    for bad in (0, MAX_CHUNK_BYTES + 1):
        with pytest.raises(PackageError, match="outside 1..10,000,000"):
            check_chunk_size(bad)
    pkg = inspect_model_zip(exported.zip)
    data = Path(exported.zip).read_bytes()
    for size in (1000, pkg.size - 1, pkg.size, MAX_CHUNK_BYTES):
        chunks = list(pkg.chunks(size))
        assert [i for i, _ in chunks] == list(range(pkg.n_chunks(size)))
        assert all(len(c) <= size for _, c in chunks) and b"".join(c for _, c in chunks) == data
