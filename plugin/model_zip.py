"""The ML Commons model zip: flat, exactly one ``*.onnx`` and ``tokenizer.json``; SHA-256 of the whole file.

ML Commons 3.8+ rejects zips containing ``.jar/.class/.so/.dylib/.dll``;
``model_content_hash_value`` in the register request is the lowercase-hex
SHA-256 of the zip bytes.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from distilrank.atomic import atomic_path
from distilrank.errors import DistilRankError
from distilrank.plugin.serving_contract import sha256_file

FORBIDDEN_SUFFIXES = (".jar", ".class", ".so", ".dylib", ".dll")


def build_model_zip(onnx_path: str | Path, tokenizer_path: str | Path, zip_path: str | Path) -> str:
    """Write the zip atomically (deterministic: fixed timestamps, stored order); return its SHA-256."""
    onnx_path, tokenizer_path = Path(onnx_path), Path(tokenizer_path)
    with atomic_path(zip_path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for arcname, src in ((onnx_path.name, onnx_path), ("tokenizer.json", tokenizer_path)):
                info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                with open(src, "rb") as fh, zf.open(info, "w", force_zip64=True) as dst:
                    while block := fh.read(1 << 20):
                        dst.write(block)
    validate_model_zip(zip_path)
    return sha256_file(zip_path)


def validate_model_zip(zip_path: str | Path) -> list[str]:
    """Check the layout ML Commons expects; return the member names or raise naming the problem."""
    zip_path = Path(zip_path)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile as exc:
        raise DistilRankError(f"{zip_path}: not a zip file ({exc})") from None
    nested = [n for n in names if "/" in n.rstrip("/")]
    if nested:
        raise DistilRankError(f"{zip_path}: must be flat, found {nested[:3]}")
    onnx_files = [n for n in names if n.endswith(".onnx")]
    if len(onnx_files) != 1:
        raise DistilRankError(f"{zip_path}: needs exactly one .onnx file at the root, found {onnx_files or 'none'}")
    if "tokenizer.json" not in names:
        raise DistilRankError(f"{zip_path}: tokenizer.json missing at the root (found {names})")
    bad = [n for n in names if n.lower().endswith(FORBIDDEN_SUFFIXES)]
    if bad:
        raise DistilRankError(f"{zip_path}: ML Commons 3.8+ rejects zips containing {bad}")
    return names
