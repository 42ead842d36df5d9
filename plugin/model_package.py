"""Inspect a model zip before anything is sent: layout, ONNX interface, tokenizer, hash, chunks, model card.

:func:`inspect_model_zip` raises :class:`PackageError` (naming the zip and the member) for every problem ML
Commons would otherwise report late and opaquely ("model content changed", "Input mismatch", a deploy that
fails on one node): a missing ``tokenizer.json``, two ``.onnx`` files, input names or dtypes ML Commons does
not feed, a ``tokenizer.json`` that does not parse, a hash that differs from the one the user expects, a model
card whose ``blend`` settings the rescorer would refuse.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from distilrank.errors import DistilRankError
from distilrank.plugin.blend import BlendSettings
from distilrank.plugin.ml_api import MAX_CHUNK_BYTES
from distilrank.plugin.model_zip import validate_model_zip
from distilrank.plugin.serving_contract import describe_interface, interface_problems, sha256_file


class PackageError(DistilRankError):
    """The model zip cannot be registered as it is."""


@dataclass
class ModelPackage:
    """A validated model zip. ``sha256`` is the lowercase hex digest of the whole file (ML Commons'
    ``model_content_hash_value``); ``card`` the exported ``model-card.json`` found beside the zip, if any; ``blend``
    the card's rescorer blend settings (``card["blend"]``), which ``register`` stores with the model."""

    path: Path
    sha256: str
    size: int
    onnx_member: str
    interface: dict
    tokenizer_max_length: int | None
    card: dict = field(default_factory=dict)
    card_path: Path | None = None
    blend: BlendSettings | None = None

    def chunks(self, chunk_size: int) -> Iterator[tuple[int, bytes]]:
        """``(index, bytes)`` of consecutive chunks of at most ``chunk_size`` bytes."""
        with open(self.path, "rb") as fh:
            i = 0
            while block := fh.read(chunk_size):
                yield i, block
                i += 1

    def n_chunks(self, chunk_size: int) -> int:
        return max(1, -(-self.size // chunk_size))

    def name(self) -> str:
        return str(self.card.get("name") or self.path.stem)


def check_chunk_size(chunk_size: int) -> int:
    """``chunk_size`` if ML Commons accepts it, else :class:`PackageError` (before any request is sent)."""
    if not 1 <= chunk_size <= MAX_CHUNK_BYTES:
        raise PackageError(f"chunk size {chunk_size:,} bytes is outside 1..{MAX_CHUNK_BYTES:,} "
                           "(ML Commons rejects upload_chunk bodies over 10,000,000 bytes)")
    return chunk_size


def _find_card(zip_path: Path) -> Path | None:
    for cand in (zip_path.with_name("model-card.json"), zip_path.with_suffix(".card.json")):
        if cand.is_file():
            return cand
    return None


def inspect_model_zip(zip_path: str | Path, *, expected_sha256: str | None = None) -> ModelPackage:
    """Validate ``zip_path`` completely (layout, ONNX interface, tokenizer) and return what registering needs."""
    path = Path(zip_path)
    if not path.is_file():
        raise PackageError(f"{path}: model zip not found")
    try:
        names = validate_model_zip(path)
    except DistilRankError as exc:
        raise PackageError(str(exc)) from None
    onnx_member = next(n for n in names if n.endswith(".onnx"))
    with zipfile.ZipFile(path) as zf, tempfile.TemporaryDirectory(prefix="distilrank-zip-") as tmp:
        try:
            tok_text = zf.read("tokenizer.json").decode("utf-8")
            spec = json.loads(tok_text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PackageError(f"{path}: tokenizer.json is not valid UTF-8 JSON ({exc})") from None
        try:
            from tokenizers import Tokenizer

            Tokenizer.from_str(tok_text)
        except Exception as exc:  # noqa: BLE001 - the tokenizers error is the message
            raise PackageError(f"{path}: tokenizer.json does not load in the tokenizers library: {exc}") from None
        onnx_path = Path(tmp) / "model.onnx"
        with zf.open(onnx_member) as src, open(onnx_path, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
        try:
            interface = describe_interface(onnx_path)
        except Exception as exc:  # noqa: BLE001
            raise PackageError(f"{path}: {onnx_member} is not a loadable ONNX model: {exc}") from None
    problems = interface_problems(interface)
    if problems:
        raise PackageError(f"{path}: {onnx_member} does not have the interface ML Commons feeds a TEXT_SIMILARITY "
                           f"model: " + "; ".join(problems))
    sha = sha256_file(path)
    if expected_sha256 and expected_sha256.strip().lower() != sha:
        raise PackageError(f"{path}: sha256 is {sha}, but {expected_sha256.strip().lower()} was expected "
                           "(the zip changed after export, or the wrong file was given)")
    card_path = _find_card(path)
    card: dict = {}
    if card_path:
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise PackageError(f"{card_path}: model card is not valid JSON ({exc})") from None
        card_sha = (card.get("zip") or {}).get("sha256")
        if card_sha and card_sha != sha:
            card, card_path = {}, None  # a card for another build of the zip: ignore it rather than mislabel
    trunc = spec.get("truncation") or {}
    return ModelPackage(path, sha, path.stat().st_size, onnx_member, interface, trunc.get("max_length"), card, card_path,
                        card_blend(card, card_path))


def card_blend(card: dict, card_path: Path | None = None) -> BlendSettings | None:
    """The model card's ``blend`` entry as :class:`BlendSettings` (``None`` when absent); :class:`PackageError` naming
    the card when the rescorer would refuse it."""
    raw = card.get("blend")
    if raw is None:
        return None
    try:
        if not isinstance(raw, dict):
            raise ValueError(f"expected an object {{query_weight, model_weight, normalization}}, got {raw!r}")
        return BlendSettings.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise PackageError(f"{card_path or 'model card'}: bad blend settings: {exc}") from None
