"""Index-time token ids: a document's model text tokenized once when it is indexed, so a rescore reads ids from doc
values and runs the model without reading or tokenizing text.

Encoding (version 1; the Java rescorer's ``TokenIds`` reads it), stored base64 in a ``binary`` field with doc values
(:data:`TOKEN_IDS_MAPPING`)::

    b"DR" 0x01 | fingerprint (8 bytes) | varint count | count x varint id      (varints: unsigned LEB128)

``fingerprint`` is the first 8 bytes of the SHA-256 of the model zip's ``tokenizer.json`` (:func:`tokenizer_fingerprint`);
the rescorer uses a document's ids only when it equals its model's fingerprint, and reads the text otherwise (counted
in ``_stats`` as ``token_ids_fallback_tokenizer_mismatch``). The ids are the tokenizer's
``encode(text, add_special_tokens=False)`` with truncation off: the rescorer pairs them with the query and truncates
exactly as it does a text it tokenizes itself, so scores are identical with and without ids.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Sequence
from pathlib import Path

from distilrank.errors import DistilRankError

#: the mapping of the token-ids field: never searched, read column-wise by the rescorer
TOKEN_IDS_MAPPING = {"type": "binary", "doc_values": True}
DEFAULT_FIELD = "distilrank_token_ids"
MAGIC = b"DR\x01"
FINGERPRINT_BYTES = 8


def tokenizer_fingerprint(tokenizer_json: bytes) -> bytes:
    """The first 8 bytes of ``SHA-256(tokenizer_json)`` (the file's bytes as stored in the model zip)."""
    return hashlib.sha256(tokenizer_json).digest()[:FINGERPRINT_BYTES]


def _varint(value: int, out: bytearray) -> None:
    if value < 0:
        raise DistilRankError(f"token id {value} is negative")
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def encode_ids(ids: Sequence[int], fingerprint: bytes) -> bytes:
    """The version-1 encoding of ``ids`` for a tokenizer with ``fingerprint`` (8 bytes)."""
    if len(fingerprint) != FINGERPRINT_BYTES:
        raise DistilRankError(f"fingerprint must be {FINGERPRINT_BYTES} bytes, got {len(fingerprint)}")
    out = bytearray(MAGIC + fingerprint)
    _varint(len(ids), out)
    for i in ids:
        _varint(int(i), out)
    return bytes(out)


def decode_ids(data: bytes, fingerprint: bytes | None = None) -> list[int]:
    """The ids of an encoding; raises :class:`DistilRankError` when it is malformed or (with ``fingerprint``) was written
    by another tokenizer."""
    if data[:3] != MAGIC or len(data) < 3 + FINGERPRINT_BYTES + 1:
        raise DistilRankError("token ids: not a distilrank version-1 encoding (bad header)")
    if fingerprint is not None and data[3:3 + FINGERPRINT_BYTES] != fingerprint:
        raise DistilRankError("token ids were written by another tokenizer (fingerprint differs)")
    values, value, shift = [], 0, 0
    for byte in data[3 + FINGERPRINT_BYTES:]:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            values.append(value)
            value, shift = 0, 0
    if shift or not values or len(values) != values[0] + 1:
        raise DistilRankError("token ids: truncated or inconsistent encoding")
    return values[1:]


class DocumentTokenizer:
    """The document side of a model zip's tokenizer: ``ids(texts)`` and ``encoded(texts)`` (base64 strings for the
    ``binary`` field). Built with :meth:`from_zip`."""

    def __init__(self, tokenizer_json: bytes, source: str = "<memory>"):
        from tokenizers import Tokenizer

        try:
            self.tokenizer = Tokenizer.from_str(tokenizer_json.decode("utf-8"))
        except Exception as exc:  # the tokenizers library raises its own exception types
            raise DistilRankError(f"{source}: tokenizer.json cannot be loaded: {exc}") from None
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.fingerprint = tokenizer_fingerprint(tokenizer_json)
        self.source = source

    @classmethod
    def from_zip(cls, zip_path: str | Path) -> DocumentTokenizer:
        """The tokenizer of an ML Commons model zip (``tokenizer.json`` at its root)."""
        try:
            with zipfile.ZipFile(zip_path) as zf:
                data = zf.read("tokenizer.json")
        except (OSError, zipfile.BadZipFile, KeyError) as exc:
            raise DistilRankError(f"{zip_path}: cannot read tokenizer.json from the model zip ({exc})") from None
        return cls(data, str(zip_path))

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        """``encode(text, add_special_tokens=False).ids`` of each text, untruncated."""
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def encoded(self, texts: Sequence[str]) -> list[str]:
        """Base64 of :func:`encode_ids` for each text: the values of the ``binary`` token-ids field."""
        return [base64.b64encode(encode_ids(ids, self.fingerprint)).decode("ascii") for ids in self.ids(texts)]
