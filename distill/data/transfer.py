"""Out-of-core transfer sets: a directory of Parquet shards read with Arrow in batches.

Layout of a transfer-set directory::

    shard-00000.parquet ...   columns row_id int64, query string, text string[, label float32];
                              row ids are 0..N-1, consecutive across the shards in shard order
    manifest.json             n_rows, shards [{file, rows, first_row}], single_text, labeled, digest

``digest`` is :meth:`distilrank.pairs.Pairs.digest` of the same rows (so the single-process scoring path
and the Ray path share one fingerprint).  Every shard and the manifest are written atomically, the manifest
last: a directory without ``manifest.json`` is not a transfer set.  Memory while writing or reading is one
batch of rows, whatever ``N`` is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distilrank.atomic import atomic_path, write_json
from distilrank.errors import DataError
from distilrank.pairs import Pairs, RowDigest

MANIFEST = "manifest.json"
ROW_ID, QUERY, TEXT, LABEL = "row_id", "query", "text", "label"


@dataclass
class RowBatch:
    """Consecutive rows of a transfer set: ``row_ids`` int64 ``[B]`` and the pairs themselves."""

    row_ids: np.ndarray
    pairs: Pairs


def _shard_table(pairs: Pairs, first_row: int):
    import pyarrow as pa

    cols = {ROW_ID: pa.array(np.arange(first_row, first_row + len(pairs), dtype=np.int64)),
            QUERY: pa.array(pairs.queries, pa.string()), TEXT: pa.array(pairs.texts, pa.string())}
    if pairs.labels is not None:
        cols[LABEL] = pa.array(pairs.labels, pa.float32())
    return pa.table(cols)


class _ShardWriter:
    """Appends row batches to Parquet shards of at most ``rows_per_shard`` rows, each shard written to a temporary
    file and renamed into place when full (so memory is one batch, not one shard)."""

    def __init__(self, out: Path, rows_per_shard: int, row_group_rows: int):
        self.out, self.rows_per_shard, self.row_group_rows = out, rows_per_shard, row_group_rows
        self.shards: list[dict] = []
        self.n_rows, self._in_shard = 0, 0
        self._writer = self._ctx = None

    def _open(self, table) -> None:
        import pyarrow.parquet as pq

        name = f"shard-{len(self.shards):05d}.parquet"
        self._ctx = atomic_path(self.out / name)
        self._writer = pq.ParquetWriter(self._ctx.__enter__(), table.schema)
        self.shards.append({"file": name, "rows": 0, "first_row": self.n_rows})

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._ctx.__exit__(None, None, None)
            self._writer = self._ctx = None
            self._in_shard = 0

    def add(self, pairs: Pairs) -> None:
        start = 0
        while start < len(pairs):
            if self._in_shard >= self.rows_per_shard:
                self._close()
            take = min(len(pairs) - start, self.rows_per_shard - self._in_shard)
            piece = pairs if take == len(pairs) else pairs.select(np.arange(start, start + take))
            table = _shard_table(piece, self.n_rows)
            if self._writer is None:
                self._open(table)
            self._writer.write_table(table, row_group_size=self.row_group_rows)
            self.shards[-1]["rows"] += take
            self._in_shard += take
            self.n_rows += take
            start += take

    def finish(self) -> list[dict]:
        self._close()
        return self.shards

    def abort(self, exc: BaseException) -> None:
        """Drop the shard being written (its temporary file is removed)."""
        if self._writer is not None:
            self._writer.close()
            self._ctx.__exit__(type(exc), exc, exc.__traceback__)
            self._writer = self._ctx = None


def write_transfer_set(batches: Iterable[Pairs], out_dir: str | Path, *, rows_per_shard: int = 1_000_000,
                       row_group_rows: int = 65_536) -> "TransferSet":
    """Write ``batches`` (in order) as a transfer set in ``out_dir``; returns it opened.

    Each batch is appended to the current shard as it comes (memory: one batch); a shard holds at most
    ``rows_per_shard`` rows.  Either every batch is labeled or none is.  The digest is computed from the
    written shards at the end (one more streaming pass).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    writer = _ShardWriter(out, rows_per_shard, row_group_rows)
    labeled, single = None, True
    try:
        for batch in batches:
            if labeled is None:
                labeled = batch.labels is not None
            elif labeled != (batch.labels is not None):
                raise DataError(out, None, "transfer-set batches must all be labeled or all unlabeled")
            single = single and batch.single_text
            writer.add(batch)
    except BaseException as exc:
        writer.abort(exc)
        raise
    shards = writer.finish()
    ts = TransferSet(out, {"n_rows": writer.n_rows, "shards": shards, "single_text": bool(single and writer.n_rows),
                           "labeled": bool(labeled), "digest": ""})
    ts.manifest["digest"] = ts.compute_digest()
    write_json(out / MANIFEST, ts.manifest)
    return ts


def is_transfer_set(path: str | Path) -> bool:
    """True when ``path`` is a transfer-set directory (holds a ``manifest.json``)."""
    return (Path(path) / MANIFEST).is_file()


def transfer_set_from_pairs(pairs: Pairs, out_dir: str | Path, **kwargs) -> "TransferSet":
    """``pairs`` (any table the readers return) written as a transfer set (see :func:`write_transfer_set`)."""
    return write_transfer_set([pairs], out_dir, **kwargs)


class TransferSet:
    """An opened transfer-set directory (see the module doc).  ``len()`` is the row count."""

    def __init__(self, path: str | Path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest

    @classmethod
    def open(cls, path: str | Path) -> "TransferSet":
        """Open ``path``; :class:`DataError` when the manifest is missing or a shard does not match it."""
        import json

        import pyarrow.parquet as pq

        path = Path(path)
        if not (path / MANIFEST).exists():
            raise DataError(path, None, f"not a transfer set (no {MANIFEST}; write one with write_transfer_set)")
        manifest = json.loads((path / MANIFEST).read_text())
        first = 0
        for shard in manifest["shards"]:
            f = path / shard["file"]
            if not f.exists():
                raise DataError(f, None, "shard listed in the manifest is missing")
            rows = pq.ParquetFile(f).metadata.num_rows
            if rows != shard["rows"] or shard["first_row"] != first:
                raise DataError(f, None, f"{rows} rows from row {shard['first_row']}, manifest expects {shard['rows']} from row {first}")
            first += rows
        if first != manifest["n_rows"]:
            raise DataError(path / MANIFEST, None, f"shards hold {first} rows, manifest says {manifest['n_rows']}")
        return cls(path, manifest)

    def __len__(self) -> int:
        return int(self.manifest["n_rows"])

    @property
    def digest(self) -> str:
        """:meth:`Pairs.digest` of the rows."""
        return str(self.manifest["digest"])

    @property
    def single_text(self) -> bool:
        return bool(self.manifest["single_text"])

    @property
    def labeled(self) -> bool:
        return bool(self.manifest["labeled"])

    def shard_paths(self) -> list[Path]:
        return [self.path / s["file"] for s in self.manifest["shards"]]

    def iter_batches(self, batch_rows: int = 65_536) -> Iterator[RowBatch]:
        """The rows in row-id order, ``batch_rows`` at a time (the last batch of a shard may be shorter)."""
        import pyarrow.parquet as pq

        columns = [ROW_ID, QUERY, TEXT] + ([LABEL] if self.labeled else [])
        for f in self.shard_paths():
            for rb in pq.ParquetFile(f).iter_batches(batch_size=batch_rows, columns=columns):
                labels = rb.column(LABEL).to_numpy(zero_copy_only=False) if self.labeled else None
                yield RowBatch(rb.column(ROW_ID).to_numpy(),
                               Pairs(rb.column(QUERY).to_pylist(), rb.column(TEXT).to_pylist(), labels, source=str(f)))

    def compute_digest(self) -> str:
        """Recompute the digest from the shards (streaming)."""
        h = RowDigest(len(self))
        for batch in self.iter_batches():
            h.update(batch.pairs.queries, batch.pairs.texts)
        return h.hexdigest()

    def to_pairs(self) -> Pairs:
        """Every row in memory (for the single-process path on small sets)."""
        parts = [b.pairs for b in self.iter_batches()]
        return Pairs.concat(parts, source=str(self.path)) if parts else Pairs([], [], source=str(self.path))
