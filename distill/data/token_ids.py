"""Token ids of a transfer set, written once per tokenizer as memory-mappable ragged arrays.

Layout of ``<cache_root>/<key>/`` (``key`` = the first 24 hex digits of SHA-256 over the transfer set's
row digest and the tokenizer's JSON, so a re-run with the same rows and tokenizer reuses the arrays)::

    offsets.i64   int64 [N + 1]  row r's tokens are ids[offsets[r]:offsets[r + 1]]
    ids.i32       int32 [T]      token ids (the student tokenizer's ``encode(query, text)``, as ML Commons)
    segments.i8   int8  [T]      token type ids (0 query segment, 1 text segment)
    meta.json     n_rows, n_tokens, data digest, tokenizer digest; written last (its presence = complete)

The files are raw little-endian arrays (``np.memmap`` opens them).  :meth:`TokenIds.block` reads a row range
with positioned reads into a padded :class:`~distilrank.distill.student.tokenizer.EncodedPairs`, so a reader's memory
is one block whatever ``N`` is (the page cache, not the process, holds the files).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from distilrank.atomic import write_json
from distilrank.distill.data.transfer import TransferSet
from distilrank.distill.student.tokenizer import EncodedPairs

META = "meta.json"
_FILES = {"offsets": ("offsets.i64", np.int64), "ids": ("ids.i32", np.int32), "segments": ("segments.i8", np.int8)}


def tokenizer_digest(tokenizer: Tokenizer) -> str:
    """SHA-256 hex of the tokenizer's JSON (vocabulary, normaliser, template, truncation)."""
    return hashlib.sha256(tokenizer.to_str().encode()).hexdigest()


def cache_key(data_digest: str, tokenizer: Tokenizer) -> str:
    """Directory name of the token ids of rows ``data_digest`` under ``tokenizer``."""
    return hashlib.sha256(f"{data_digest}\0{tokenizer_digest(tokenizer)}".encode()).hexdigest()[:24]


def _read_range(path: Path, dtype: type, start: int, stop: int) -> np.ndarray:
    item = np.dtype(dtype).itemsize
    with open(path, "rb") as fh:
        return np.fromfile(fh, dtype=dtype, count=max(0, stop - start), offset=start * item)


class TokenIds:
    """An opened token-id cache directory (see the module doc)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / META).exists():
            raise FileNotFoundError(f"{self.path}: no {META} (token ids incomplete; rebuild with build_token_ids)")
        self.meta = json.loads((self.path / META).read_text())

    def __len__(self) -> int:
        return int(self.meta["n_rows"])

    def memmap(self, name: str) -> np.ndarray:
        """``offsets`` | ``ids`` | ``segments`` as a read-only memory map."""
        file, dtype = _FILES[name]
        return np.memmap(self.path / file, dtype=dtype, mode="r")

    def lengths(self, start: int, stop: int) -> np.ndarray:
        """int32 token counts of rows ``[start, stop)``."""
        off = _read_range(self.path / _FILES["offsets"][0], np.int64, start, stop + 1)
        return np.diff(off).astype(np.int32)

    def block(self, start: int, stop: int) -> EncodedPairs:
        """Rows ``[start, stop)`` right-padded to their longest row (``EncodedPairs``, row 0 = row ``start``)."""
        off = _read_range(self.path / _FILES["offsets"][0], np.int64, start, stop + 1)
        ids = _read_range(self.path / _FILES["ids"][0], np.int32, int(off[0]), int(off[-1]))
        seg = _read_range(self.path / _FILES["segments"][0], np.int8, int(off[0]), int(off[-1]))
        lengths = np.diff(off).astype(np.int32)
        width = int(lengths.max()) if len(lengths) else 1
        local = (off[:-1] - off[0])
        cols = np.arange(width)
        mask = cols[None, :] < lengths[:, None]
        flat = (local[:, None] + cols[None, :])[mask]
        padded_ids = np.zeros((len(lengths), width), dtype=np.int32)
        padded_seg = np.zeros((len(lengths), width), dtype=np.int8)
        padded_ids[mask], padded_seg[mask] = ids[flat], seg[flat]
        return EncodedPairs(padded_ids, padded_seg, lengths)


def build_token_ids(transfer: TransferSet, tokenizer: Tokenizer, cache_root: str | Path, *, batch_rows: int = 65_536) -> TokenIds:
    """The token ids of ``transfer`` under ``tokenizer`` in ``cache_root/<key>``: reused when complete, else
    (re)written from the shards one batch at a time.  ``encode_batch`` of ``(query, text)`` per row, exactly
    as :func:`distilrank.distill.student.tokenizer.encode_pairs`."""
    out = Path(cache_root) / cache_key(transfer.digest, tokenizer)
    if (out / META).exists():
        return TokenIds(out)
    shutil.rmtree(out, ignore_errors=True)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n_rows, n_tokens = 0, 0
    with open(tmp / _FILES["offsets"][0], "wb") as f_off, open(tmp / _FILES["ids"][0], "wb") as f_ids, \
            open(tmp / _FILES["segments"][0], "wb") as f_seg:
        f_off.write(np.zeros(1, np.int64).tobytes())
        for batch in transfer.iter_batches(batch_rows):
            encs = tokenizer.encode_batch(list(zip(batch.pairs.queries, batch.pairs.texts)))
            lengths = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))
            f_off.write((n_tokens + np.cumsum(lengths)).tobytes())
            f_ids.write(np.fromiter((i for e in encs for i in e.ids), dtype=np.int32, count=int(lengths.sum())).tobytes())
            f_seg.write(np.fromiter((t for e in encs for t in e.type_ids), dtype=np.int8, count=int(lengths.sum())).tobytes())
            n_rows, n_tokens = n_rows + len(encs), n_tokens + int(lengths.sum())
    write_json(tmp / META, {"n_rows": n_rows, "n_tokens": n_tokens, "data_digest": transfer.digest,
                            "tokenizer_digest": tokenizer_digest(tokenizer)})
    tmp.rename(out)
    return TokenIds(out)
