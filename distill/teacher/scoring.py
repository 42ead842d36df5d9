"""Stream a (large) unlabeled set through a teacher: resumable, shardable logits.

Layout of ``out_dir``::

    meta.json              fingerprint of (rows, teacher, max_length), n_rows, chunk_size
    chunk-000000.npy ...   float32 logits of rows [k*chunk_size, (k+1)*chunk_size)
    logits.npy             float32 [n_rows], written by merge_chunks once every chunk exists

Chunk ``k`` belongs to shard ``i`` of ``n`` when ``k % n == i``, so ``n``
machines can each run ``--shard i/n`` into copies of the same directory and
the chunk files are simply copied together before merging.  A killed run
restarts at the first missing chunk; every chunk is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from distill.atomic import write_json, write_npy
from distill.data.pairs import Pairs
from distill.errors import DistilRankError


def fingerprint(pairs: Pairs, teacher_path: str | Path, max_length: int) -> str:
    """SHA-256 over every (query, text) and the teacher/max_length identity."""
    h = hashlib.sha256(f"{Path(teacher_path).resolve()}|{max_length}|{len(pairs)}".encode())
    for q, t in pairs:
        h.update(q.encode("utf-8", "surrogatepass") + b"\x1f" + t.encode("utf-8", "surrogatepass") + b"\x1e")
    return h.hexdigest()


def parse_shard(spec: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise DistilRankError(f"--shard must look like i/n (e.g. 0/4), got {spec!r}") from None
    if not 0 <= i < n:
        raise DistilRankError(f"--shard {spec}: need 0 <= i < n")
    return i, n


def _chunk_path(out_dir: Path, k: int) -> Path:
    return out_dir / f"chunk-{k:06d}.npy"


def _check_meta(out_dir: Path, meta: dict) -> None:
    path = out_dir / "meta.json"
    if path.exists():
        old = json.loads(path.read_text())
        for key in ("fingerprint", "chunk_size", "n_rows"):
            if old.get(key) != meta[key]:
                raise DistilRankError(
                    f"{out_dir}: existing scores were made for different {key.replace('_', ' ')} "
                    f"({old.get(key)!r} != {meta[key]!r}); use a fresh output directory or delete it"
                )
    else:
        write_json(path, meta)


def score_transfer_set(
    teacher_path: str | Path,
    pairs: Pairs,
    out_dir: str | Path,
    *,
    shard: tuple[int, int] = (0, 1),
    chunk_size: int = 4096,
    batch_size: int = 128,
    max_length: int = 128,
    device: str = "auto",
    progress: bool | None = None,
) -> dict:
    """Score this shard's missing chunks; merge to ``logits.npy`` if the set is complete.

    Returns a report ``{"rows_scored", "chunks_done", "chunks_total", "seconds",
    "rows_per_second", "complete"}``.
    """
    from distill.teacher.model import load_teacher

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"fingerprint": fingerprint(pairs, teacher_path, max_length), "chunk_size": chunk_size, "n_rows": len(pairs),
            "teacher": str(teacher_path), "max_length": max_length}
    _check_meta(out, meta)
    n_chunks = max(1, -(-len(pairs) // chunk_size))
    index, total = shard
    mine = [k for k in range(n_chunks) if k % total == index and not _chunk_path(out, k).exists()]
    t0, scored = time.perf_counter(), 0
    if mine:
        teacher = load_teacher(teacher_path, device=device, max_length=max_length)
        for k in tqdm(mine, desc=f"score {out.name} shard {index}/{total}", unit="chunk", disable=progress is False or None):
            rows = np.arange(k * chunk_size, min((k + 1) * chunk_size, len(pairs)))
            write_npy(_chunk_path(out, k), teacher.score(pairs.select(rows), batch_size=batch_size))
            scored += len(rows)
    seconds = time.perf_counter() - t0
    done = sum(_chunk_path(out, k).exists() for k in range(n_chunks))
    if done == n_chunks:
        merge_chunks(out)
    return {"rows_scored": scored, "chunks_done": done, "chunks_total": n_chunks, "seconds": seconds,
            "rows_per_second": scored / seconds if scored else float("nan"), "complete": done == n_chunks}


def merge_chunks(out_dir: str | Path) -> np.ndarray:
    """Concatenate all chunks into ``logits.npy`` ``[n_rows]``; error naming the missing chunks/rows."""
    out = Path(out_dir)
    meta_path = out / "meta.json"
    if not meta_path.exists():
        raise DistilRankError(f"{out}: no meta.json (not a scores directory)")
    meta = json.loads(meta_path.read_text())
    n, size = meta["n_rows"], meta["chunk_size"]
    n_chunks = max(1, -(-n // size))
    missing = [k for k in range(n_chunks) if not _chunk_path(out, k).exists()]
    if missing:
        rows = ", ".join(f"{k * size}-{min((k + 1) * size, n) - 1}" for k in missing[:5])
        raise DistilRankError(f"{out}: {len(missing)} of {n_chunks} chunks missing (rows {rows}{' ...' if len(missing) > 5 else ''}); run the missing shards")
    logits = np.concatenate([np.load(_chunk_path(out, k)) for k in range(n_chunks)])[:n].astype(np.float32)
    if logits.shape != (n,):
        raise DistilRankError(f"{out}: chunks hold {logits.shape[0]} rows, expected {n}")
    write_npy(out / "logits.npy", logits)
    return logits


def load_logits(out_dir: str | Path) -> np.ndarray:
    """``logits.npy`` of a complete scores directory."""
    path = Path(out_dir) / "logits.npy"
    if not path.exists():
        return merge_chunks(out_dir)
    return np.load(path)
