"""The ``tokenizer.json`` shipped to ML Commons.

ML Commons (DJL's Hugging Face tokenizer, Rust ``tokenizers`` 0.19-0.20 on the
cluster) encodes each ``(query, document)`` pair with special tokens on and no
padding, truncating longest-first at the json's ``truncation.max_length``.  The
student was trained on ids from its own ``tokenizer.json`` with exactly that
call, so the file is shipped as is, after checking it uses only components that
the cluster's tokenizers understand and that it has a truncation block.
"""

from __future__ import annotations

import json
from pathlib import Path

from distilrank.atomic import atomic_open
from distilrank.errors import DistilRankError

# Components this project emits and that tokenizers 0.19 / 0.20 parse (checked in tests/distill/export/test_export.py).
SUPPORTED = {
    "normalizer": {"BertNormalizer", "Sequence", "Lowercase", "NFKC", "NFD", "StripAccents", None},
    "pre_tokenizer": {"BertPreTokenizer", "Whitespace", "WhitespaceSplit", "Sequence", "Punctuation", None},
    "post_processor": {"TemplateProcessing", "BertProcessing"},
    "model": {"WordLevel", "WordPiece"},
}


def serving_tokenizer_json(student_tokenizer: str | Path, *, max_length: int | None = None) -> dict:
    """The student's tokenizer.json as a dict, checked for ML Commons; ``max_length`` overrides truncation."""
    path = Path(student_tokenizer)
    spec = json.loads(path.read_text(encoding="utf-8"))
    for field, allowed in SUPPORTED.items():
        value = spec.get(field)
        kind = value.get("type") if isinstance(value, dict) else None
        if kind not in allowed:
            raise DistilRankError(f"{path}: {field} type {kind!r} is not one ML Commons' tokenizers (0.19-0.20) is known to load; allowed: {sorted(map(str, allowed))}")
    if spec.get("padding") is not None:
        spec["padding"] = None  # ML Commons scores one pair per call; padding would change nothing but cost time
    truncation = spec.get("truncation") or {}
    length = max_length or truncation.get("max_length") or 128
    spec["truncation"] = {"direction": "Right", "max_length": int(length), "strategy": "LongestFirst", "stride": 0}
    return spec


def write_serving_tokenizer(student_tokenizer: str | Path, out_path: str | Path, *, max_length: int | None = None) -> Path:
    """Write the checked tokenizer.json atomically."""
    spec = serving_tokenizer_json(student_tokenizer, max_length=max_length)
    with atomic_open(out_path) as fh:
        json.dump(spec, fh, ensure_ascii=False)
    return Path(out_path)
