"""Stream a (large) pair table through a teacher: resumable, shardable logits.

Sharding: shard ``i`` of ``n`` owns the rows whose index ``r`` has
``r % n == i`` (strided, so every shard gets a similar mix of lengths even if
the table is sorted).  Inside a shard, its rows (in increasing index order)
are cut into chunks of ``chunk_size``; chunk ``k`` holds the shard's rows
``[k * chunk_size, (k + 1) * chunk_size)``.

Layout of ``out_dir``::

    shard-{i}-of-{n}/meta.json          fingerprint, teacher, n_rows, settings; status running|complete,
                                        time and rows/s once complete
    shard-{i}-of-{n}/chunk-{k:06d}.npy  one finished chunk: structured array of (index int64, logit float32)
    shard-{i}-of-{n}/logits.npy         float32 [rows of the shard], once every chunk exists
    shard-{i}-of-{n}/indices.npy        int64, the row index of each of those logits
    logits.npy                          float32 [n_rows] in row order, written by merge_shards
    meta.json                           fingerprint and n_rows of the merged logits

Every file is written atomically, so a run killed at any moment (even
``kill -9``) restarts at its first missing chunk.  ``n`` machines can each run
one shard into copies of the same directory; copy the ``shard-*`` folders
together and call :func:`merge_shards`.  A fingerprint (SHA-256 of every
(query, text), of the teacher's files, and the max_length) is stored in each
meta.json: resuming or merging with different rows, another teacher or
another max_length is refused.  Logits are raw teacher logits (float32).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from distilrank.atomic import write_json, write_npy
from distilrank.distill.config import TeacherConfig
from distilrank.errors import DistilRankError
from distilrank.pairs import Pairs
from distilrank.progress import bar_disabled

CHUNK_DTYPE = np.dtype([("index", "<i8"), ("logit", "<f4")])
_SHARD_RE = re.compile(r"^shard-(\d+)-of-(\d+)$")


# --- identity ---------------------------------------------------------------------

def teacher_digest(teacher_path: str | Path) -> str:
    """SHA-256 over the names and contents of the files in a checkpoint directory (weights, config, tokenizer).

    Identifies the teacher by content, so the same teacher copied to another
    path or machine has the same digest, and a retrained one a different one.
    """
    path = Path(teacher_path)
    if not path.is_dir():
        raise DistilRankError(f"{path}: teacher checkpoint directory not found")
    h = hashlib.sha256()
    for f in sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")):
        h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def fingerprint(pairs: Pairs, teacher_path: str | Path, max_length: int) -> dict[str, str | int]:
    """What a set of logits depends on: ``{"data", "teacher", "max_length"}``."""
    return {"data": pairs.digest(), "teacher": teacher_digest(teacher_path), "max_length": int(max_length)}


def parse_shard(spec: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise DistilRankError(f"--shard must look like i/n (e.g. 0/4), got {spec!r}") from None
    if not 0 <= i < n:
        raise DistilRankError(f"--shard {spec}: need 0 <= i < n")
    return i, n


# --- layout -----------------------------------------------------------------------

def shard_dir(out_dir: str | Path, shard: tuple[int, int]) -> Path:
    """``out_dir/shard-{i}-of-{n}``."""
    return Path(out_dir) / f"shard-{shard[0]}-of-{shard[1]}"


def shard_rows(n_rows: int, shard: tuple[int, int]) -> np.ndarray:
    """Row indices (int64, increasing) owned by ``shard`` ``(i, n)``: those with ``index % n == i``."""
    return np.arange(shard[0], n_rows, shard[1], dtype=np.int64)


def _chunk_path(sdir: Path, k: int) -> Path:
    return sdir / f"chunk-{k:06d}.npy"


def _shard_dirs(out_dir: Path) -> dict[tuple[int, int], Path]:
    found = {}
    if out_dir.is_dir():
        for p in out_dir.iterdir():
            m = _SHARD_RE.match(p.name)
            if m and p.is_dir():
                found[(int(m.group(1)), int(m.group(2)))] = p
    return found


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _compare_fingerprint(where: Path, old: dict, new: dict) -> None:
    for key, what in (("data", "rows (query, text)"), ("teacher", "teacher checkpoint"), ("max_length", "max_length")):
        if old.get(key) != new.get(key):
            raise DistilRankError(
                f"{where}: existing scores have a different fingerprint: other {what} ({str(old.get(key))[:12]} != "
                f"{str(new.get(key))[:12]}); use a fresh output directory or delete {where.parent if where.name == 'meta.json' else where}")


def _check_out_dir(out: Path, fp: dict, shard: tuple[int, int], chunk_size: int) -> None:
    """Refuse to mix these scores with different ones already in ``out``."""
    top = _read_json(out / "meta.json")
    if top is not None:
        _compare_fingerprint(out / "meta.json", top["fingerprint"], fp)
    for key, sdir in _shard_dirs(out).items():
        meta = _read_json(sdir / "meta.json")
        if meta is None:
            continue
        _compare_fingerprint(sdir / "meta.json", meta["fingerprint"], fp)
        if key[1] != shard[1]:
            raise DistilRankError(f"{out}: already holds a {key[1]}-way split ({sdir.name}); score with --shard i/{key[1]} "
                                  f"or use a fresh output directory")
        if key == shard and meta["chunk_size"] != chunk_size:
            raise DistilRankError(f"{sdir}: chunks were written with chunk_size {meta['chunk_size']}, now {chunk_size}; "
                                  f"use chunk_size={meta['chunk_size']} or delete {sdir}")


# --- scoring ----------------------------------------------------------------------

def _score_chunks(teacher_path: str | Path, pairs: Pairs, sdir: Path, rows: np.ndarray, missing: list[int], chunk_size: int,
                  single_text: bool, *, batch_size: int, max_length: int, device: str, precision: str, desc: str,
                  progress: bool | None) -> int:
    """Score chunks ``missing`` of a shard's ``rows``, writing each chunk file atomically; returns the rows scored."""
    from distilrank.distill.teacher.model import load_teacher

    teacher = load_teacher(teacher_path, device=device, max_length=max_length, precision=precision)
    todo = sum(min(chunk_size, len(rows) - k * chunk_size) for k in missing)
    scored = 0
    with tqdm(total=len(rows), initial=len(rows) - todo, desc=desc, unit="row", disable=bar_disabled(progress)) as bar:
        for k in missing:
            idx = rows[k * chunk_size : (k + 1) * chunk_size]
            logits = teacher.score(pairs.select(idx), batch_size=batch_size, max_length=max_length, single_text=single_text,
                                   on_batch=bar.update)
            chunk = np.empty(len(idx), dtype=CHUNK_DTYPE)
            chunk["index"], chunk["logit"] = idx, logits
            write_npy(_chunk_path(sdir, k), chunk)
            scored += len(idx)
    return scored


def score_transfer_set(
    teacher_path: str | Path,
    pairs: Pairs,
    out_dir: str | Path,
    *,
    shard: tuple[int, int] = (0, 1),
    chunk_size: int = 4096,
    batch_size: int = TeacherConfig.score_batch_size,
    max_length: int = TeacherConfig.max_length,
    resume: bool = True,
    device: str = "auto",
    precision: str = "auto",
    progress: bool | None = None,
) -> dict:
    """Score the missing chunks of shard ``shard = (i, n)`` of ``pairs``; merge when every shard is complete.

    ``resume=False`` deletes this shard's earlier chunks first.  When this
    shard's chunks are all there, writes its ``logits.npy``/``indices.npy``
    and marks its meta.json complete; when every shard of ``out_dir`` is
    complete, writes ``out_dir/logits.npy`` (:func:`merge_shards`).

    Returns a report: ``shard_dir``, ``rows_scored`` (this call),
    ``chunks_done``/``chunks_total`` (this shard), ``seconds``,
    ``rows_per_second`` (this call; NaN when nothing was scored),
    ``shard_complete``, ``complete`` (all shards merged) and ``logits``
    (path of the merged file, or ``None``).
    """
    index, total = shard
    if not 0 <= index < total:
        raise DistilRankError(f"shard {index}/{total}: need 0 <= i < n")
    if chunk_size < 1 or batch_size < 1:
        raise DistilRankError(f"chunk_size and batch_size must be >= 1 (got {chunk_size}, {batch_size})")
    out = Path(out_dir)
    sdir = shard_dir(out, shard)
    if not resume:
        shutil.rmtree(sdir, ignore_errors=True)
        (out / "logits.npy").unlink(missing_ok=True)
        (out / "meta.json").unlink(missing_ok=True)
    fp = fingerprint(pairs, teacher_path, max_length)
    _check_out_dir(out, fp, shard, chunk_size)

    rows = shard_rows(len(pairs), shard)
    n_chunks = -(-len(rows) // chunk_size)
    meta = _read_json(sdir / "meta.json") or {
        "fingerprint": fp, "teacher": str(teacher_path), "n_rows": len(pairs), "shard": [index, total],
        "rows_in_shard": len(rows), "chunk_size": chunk_size, "chunks": n_chunks, "max_length": max_length,
        "single_text": pairs.single_text, "status": "running"}
    missing = [k for k in range(n_chunks) if not _chunk_path(sdir, k).exists()]
    t0, scored = time.perf_counter(), 0
    if missing or meta["status"] != "complete":
        meta["status"] = "running"
        write_json(sdir / "meta.json", meta)
    if missing:
        scored = _score_chunks(teacher_path, pairs, sdir, rows, missing, chunk_size, meta["single_text"], batch_size=batch_size,
                               max_length=max_length, device=device, precision=precision,
                               desc=f"score {out.name} {sdir.name}", progress=progress)
    seconds = time.perf_counter() - t0
    if meta["status"] != "complete" or not (sdir / "logits.npy").exists():
        logits, indices = _read_chunks(sdir, rows, chunk_size)
        write_npy(sdir / "logits.npy", logits)
        write_npy(sdir / "indices.npy", indices)
        meta.update(status="complete", seconds=seconds, rows_scored=scored,
                    rows_per_second=scored / seconds if scored and seconds > 0 else None)
        write_json(sdir / "meta.json", meta)

    complete = all(_shard_complete(out, (i, total)) for i in range(total))
    merged = None
    if complete:
        merge_shards(out, len(pairs))
        merged = out / "logits.npy"
    return {"shard_dir": str(sdir), "shard": [index, total], "rows_scored": scored, "chunks_done": n_chunks,
            "chunks_total": n_chunks, "seconds": seconds, "rows_per_second": scored / seconds if scored and seconds > 0 else float("nan"),
            "shard_complete": True, "complete": complete, "logits": None if merged is None else str(merged)}


def _read_chunks(sdir: Path, rows: np.ndarray, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate a shard's chunks; check they hold exactly the shard's rows in order."""
    n_chunks = -(-len(rows) // chunk_size)
    parts = [np.load(_chunk_path(sdir, k)) for k in range(n_chunks)]
    data = np.concatenate(parts) if parts else np.empty(0, dtype=CHUNK_DTYPE)
    if data.dtype != CHUNK_DTYPE or not np.array_equal(data["index"], rows):
        raise DistilRankError(f"{sdir}: chunk files do not hold this shard's rows in order; delete {sdir} and score it again")
    return data["logit"].astype(np.float32), data["index"].astype(np.int64)


def _shard_complete(out: Path, shard: tuple[int, int]) -> bool:
    sdir = shard_dir(out, shard)
    meta = _read_json(sdir / "meta.json")
    return bool(meta and meta.get("status") == "complete" and (sdir / "logits.npy").exists() and (sdir / "indices.npy").exists())


# --- merging ----------------------------------------------------------------------

def _row_ranges(rows: np.ndarray, limit: int = 6) -> str:
    """The first few of a sorted set of row indices and their count, for error messages."""
    if len(rows) == 0:
        return "none"
    text = ", ".join(str(r) for r in rows[:limit])
    return text + (f", ... ({len(rows)} rows)" if len(rows) > limit else f" ({len(rows)} rows)")


def merge_shards(out_dir: str | Path, n_rows: int | None = None) -> np.ndarray:
    """Combine every shard of ``out_dir`` into ``out_dir/logits.npy``: float32 raw logits ``[n_rows]`` in row order.

    Uses each shard's ``logits.npy`` when complete, else whatever chunks it
    has.  Raises :class:`DistilRankError` naming the missing shards, chunks and
    rows when the set is incomplete, and when the shards disagree (different
    fingerprints, row counts or shard counts).  ``n_rows=None`` takes the row
    count from the shards' meta.json.
    """
    out = Path(out_dir)
    shards = _shard_dirs(out)
    metas = {k: _read_json(d / "meta.json") for k, d in shards.items()}
    metas = {k: m for k, m in metas.items() if m is not None}
    if not metas:
        raise DistilRankError(f"{out}: no scored shards (no shard-*-of-*/meta.json); run score_transfer_set first")
    ways = sorted({k[1] for k in metas})
    if len(ways) > 1:
        raise DistilRankError(f"{out}: shards of different splits ({', '.join(f'{w}-way' for w in ways)}); keep one split")
    n = ways[0]
    first_key, first = next(iter(sorted(metas.items())))
    for key, meta in metas.items():
        _compare_fingerprint(shard_dir(out, key) / "meta.json", first["fingerprint"], meta["fingerprint"])
        if meta["n_rows"] != first["n_rows"]:
            raise DistilRankError(f"{shard_dir(out, key)}: {meta['n_rows']} rows, but {shard_dir(out, first_key)} has {first['n_rows']}")
    if n_rows is None:
        n_rows = int(first["n_rows"])
    elif n_rows != first["n_rows"]:
        raise DistilRankError(f"{out}: the shards scored {first['n_rows']} rows, expected {n_rows}")

    logits = np.full(n_rows, np.nan, dtype=np.float32)
    covered = np.zeros(n_rows, dtype=bool)
    problems: list[str] = []
    for i in range(n):
        sdir, rows = shard_dir(out, (i, n)), shard_rows(n_rows, (i, n))
        if (i, n) not in metas:
            problems.append(f"shard {i}/{n} not scored ({sdir.name} missing; rows {_row_ranges(rows)})")
            continue
        if _shard_complete(out, (i, n)):
            idx, z = np.load(sdir / "indices.npy"), np.load(sdir / "logits.npy")
        else:
            size = int(metas[(i, n)]["chunk_size"])
            have = [k for k in range(-(-len(rows) // size)) if _chunk_path(sdir, k).exists()]
            lost = sorted(set(range(-(-len(rows) // size))) - set(have))
            lost_rows = np.concatenate([rows[k * size : (k + 1) * size] for k in lost]) if lost else rows[:0]
            problems.append(f"shard {i}/{n} incomplete: chunks {', '.join(map(str, lost[:6]))}{' ...' if len(lost) > 6 else ''} "
                            f"missing (rows {_row_ranges(lost_rows)})")
            parts = [np.load(_chunk_path(sdir, k)) for k in have]
            data = np.concatenate(parts) if parts else np.empty(0, dtype=CHUNK_DTYPE)
            idx, z = data["index"], data["logit"]
        if len(idx) and (idx.min() < 0 or idx.max() >= n_rows or np.any(idx % n != i)):
            raise DistilRankError(f"{sdir}: holds row indices that do not belong to shard {i}/{n} of {n_rows} rows")
        logits[idx], covered[idx] = z, True
    if problems or not covered.all():
        raise DistilRankError(f"{out}: scores incomplete, {int((~covered).sum())} of {n_rows} rows missing: " + "; ".join(problems))
    write_npy(out / "logits.npy", logits)
    write_json(out / "meta.json", {"fingerprint": first["fingerprint"], "n_rows": n_rows, "shards": n, "teacher": first["teacher"],
                                   "max_length": first["max_length"]})
    return logits


def merge_chunks(out_dir: str | Path) -> np.ndarray:
    """:func:`merge_shards` with the row count from the shards' meta.json (``distilrank teacher merge``)."""
    return merge_shards(out_dir)


def load_logits(out_dir: str | Path) -> np.ndarray:
    """Merged float32 logits ``[n_rows]`` of a scores directory (merging the shards first if needed)."""
    out = Path(out_dir)
    path, meta = out / "logits.npy", _read_json(out / "meta.json")
    if path.exists() and meta is not None:
        z = np.load(path)
        if z.shape == (meta["n_rows"],):
            return z
    return merge_shards(out)
