"""Teacher logits keyed by row id, in Parquet part files; checked (count and row ids) before they are accepted.

Layout of a scores directory written by an engine that scores rows in any order (:mod:`distilrank.distill.teacher.ray_scoring`)::

    parts/meta.json          fingerprint (data digest, teacher digest, max_length) and n_rows of the job
    parts/part-*.parquet     row_id int64, logit float32: rows scored so far (each file written atomically)
    logits.parquet           row_id 0..N-1 in order, logit: the accepted result (row groups of 65,536 rows)
    logits.npy, meta.json    the same logits float32 [N] and fingerprint, as the single-process engine writes
                             them (so :func:`distilrank.distill.teacher.scoring.load_logits` reads either engine's output)

A killed job leaves complete part files only; a re-run scores the rows no part holds.  Accepting refuses a
row id outside ``0..N-1``, a row scored twice and a missing row, naming how many and the first few.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from distilrank.atomic import atomic_path, write_json
from distilrank.errors import DistilRankError

PARTS = "parts"
ACCEPTED_ROW_GROUP = 65_536


def _read_meta(path: Path) -> dict | None:
    import json

    return json.loads(path.read_text()) if path.exists() else None


def open_parts(out_dir: str | Path, fingerprint: dict, n_rows: int) -> Path:
    """The ``parts`` folder of ``out_dir`` for this job; :class:`DistilRankError` when it (or the accepted
    result) belongs to other rows, another teacher or another max_length."""
    out = Path(out_dir)
    for meta_path in (out / "meta.json", out / PARTS / "meta.json"):
        meta = _read_meta(meta_path)
        if meta is not None and (meta.get("fingerprint") != fingerprint or meta.get("n_rows") != n_rows):
            raise DistilRankError(f"{meta_path}: existing scores belong to other data, another teacher or max_length "
                                  f"({meta.get('fingerprint')}, {meta.get('n_rows')} rows); use a fresh output directory or delete {out}")
    parts = out / PARTS
    parts.mkdir(parents=True, exist_ok=True)
    if not (parts / "meta.json").exists():
        write_json(parts / "meta.json", {"fingerprint": fingerprint, "n_rows": n_rows})
    return parts


def is_accepted(out_dir: str | Path, fingerprint: dict, n_rows: int) -> bool:
    """True when ``out_dir`` already holds the accepted logits of this job."""
    out = Path(out_dir)
    meta = _read_meta(out / "meta.json")
    return bool(meta and meta.get("fingerprint") == fingerprint and meta.get("n_rows") == n_rows
                and (out / "logits.npy").exists() and (out / "logits.parquet").exists())


class PartWriter:
    """Buffers ``(row_id, logit)`` and writes a part file each ``part_rows`` rows (and at :meth:`close`)."""

    def __init__(self, parts: Path, part_rows: int):
        self.parts, self.part_rows = parts, part_rows
        self._prefix = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        self._ids: list[np.ndarray] = []
        self._logits: list[np.ndarray] = []
        self._buffered, self._seq, self.rows_written = 0, 0, 0

    def add(self, row_ids: np.ndarray, logits: np.ndarray) -> None:
        self._ids.append(np.asarray(row_ids, np.int64))
        self._logits.append(np.asarray(logits, np.float32))
        self._buffered += len(row_ids)
        if self._buffered >= self.part_rows:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._buffered:
            return
        table = pa.table({"row_id": np.concatenate(self._ids), "logit": np.concatenate(self._logits)})
        with atomic_path(self.parts / f"{self._prefix}-{self._seq:06d}.parquet") as tmp:
            pq.write_table(table, tmp)
        self._seq += 1
        self.rows_written += self._buffered
        self._ids, self._logits, self._buffered = [], [], 0

    def close(self) -> None:
        self.flush()


def _part_files(parts: Path) -> list[Path]:
    return sorted(p for p in parts.glob("part-*.parquet"))


def _iter_parts(parts: Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(row ids int64, logits float32)`` of each part file, one file at a time (memory: one part)."""
    import pyarrow.parquet as pq

    for f in _part_files(parts):
        t = pq.read_table(f, columns=["row_id", "logit"])
        yield t.column("row_id").to_numpy(), t.column("logit").to_numpy()


def scored_mask(parts: Path, n_rows: int) -> np.ndarray:
    """bool ``[n_rows]``: rows some part file holds (what a resumed job need not score again)."""
    done = np.zeros(n_rows, dtype=bool)
    for ids, _ in _iter_parts(parts):
        done[ids[(ids >= 0) & (ids < n_rows)]] = True
    return done


def _first(rows: np.ndarray) -> str:
    return ", ".join(map(str, rows[:5].tolist())) + (" ..." if len(rows) > 5 else "")


def accept_parts(out_dir: str | Path, fingerprint: dict, n_rows: int, extra_meta: dict | None = None) -> np.ndarray:
    """Check the parts (every row id in ``0..n_rows-1`` exactly once), then write ``logits.parquet``,
    ``logits.npy`` and ``meta.json``; returns the logits float32 ``[n_rows]`` in row order, memory-mapped.

    Out of core: the parts are read one at a time into the memory-mapped ``logits.npy`` being written, with a
    bool ``[n_rows]`` of rows seen; ``logits.parquet`` is then written a row group at a time from it. Memory:
    one part file plus 1 byte per row (plus the pages of the mapped file the kernel keeps). On a refusal
    nothing is written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    parts = out / PARTS
    seen = np.zeros(n_rows, dtype=bool)
    twice: list[np.ndarray] = []
    with atomic_path(out / "logits.npy") as npy_tmp:
        logits = np.lib.format.open_memmap(npy_tmp, mode="w+", dtype=np.float32, shape=(n_rows,))
        for ids, z in _iter_parts(parts):
            bad = ids[(ids < 0) | (ids >= n_rows)]
            if len(bad):
                raise DistilRankError(f"{parts}: {len(bad)} row ids outside 0..{n_rows - 1} (first: {_first(bad)})")
            unique, counts = np.unique(ids, return_counts=True)
            twice += [unique[counts > 1], unique[seen[unique]]]
            seen[unique] = True
            logits[ids] = z
        twice_rows = np.unique(np.concatenate([np.empty(0, np.int64), *twice]))
        if len(twice_rows):
            raise DistilRankError(f"{parts}: {len(twice_rows)} rows scored more than once (rows {_first(twice_rows)}); "
                                  f"delete {parts} and re-score")
        if not seen.all():
            missing = np.flatnonzero(~seen)
            raise DistilRankError(f"{parts}: scores incomplete, {len(missing)} of {n_rows} rows missing (rows {_first(missing)}); "
                                  f"run the same command again to score them")
        logits.flush()
        schema = pa.schema([("row_id", pa.int64()), ("logit", pa.float32())])
        with atomic_path(out / "logits.parquet") as pq_tmp, pq.ParquetWriter(str(pq_tmp), schema) as writer:
            for start in range(0, n_rows, ACCEPTED_ROW_GROUP):
                stop = min(n_rows, start + ACCEPTED_ROW_GROUP)
                writer.write_table(pa.table({"row_id": np.arange(start, stop, dtype=np.int64), "logit": np.asarray(logits[start:stop])},
                                            schema=schema), row_group_size=ACCEPTED_ROW_GROUP)
        del logits
    write_json(out / "meta.json", {"fingerprint": fingerprint, "n_rows": n_rows, **(extra_meta or {})})
    return np.load(out / "logits.npy", mmap_mode="r")
