"""The ML Commons register request built from a model zip."""

from __future__ import annotations

import json

from distilrank.plugin.model_package import inspect_model_zip
from distilrank.plugin.register import register_meta_body


def test_register_meta_body(exported):
    pkg = inspect_model_zip(exported.zip)
    body = register_meta_body(pkg, "g1", "toy", 1000)
    assert body["function_name"] == "TEXT_SIMILARITY" and body["model_format"] == "ONNX"
    assert body["model_content_hash_value"] == pkg.sha256 and body["model_content_size_in_bytes"] == pkg.size
    assert body["total_chunks"] == pkg.n_chunks(1000) and body["model_config"]["embedding_dimension"] == 1  # 2.19 needs it
    assert "accuracy 0.9100" in body["description"]
    assert json.loads(body["model_config"]["all_config"])["distilrank"]["sha256"] == pkg.sha256
