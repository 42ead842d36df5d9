"""A resumable on-disk store of bi-encoder embeddings, one row per distinct string.

A bi-encoder teacher scores ``Q`` queries against ``D`` products with ``Q + D`` encoder passes; at millions of
(query, product) pairs the encoder passes are the whole cost (all-mpnet-base-v2: ~16 product texts/s on 2 CPU
cores), so every string is embedded once and kept.  Layout of ``directory``::

    meta.json           {"model": <checkpoint path>, "max_length": 64, "dim": 768}
    part-00000.npy      float32 [n, dim] unit vectors
    part-00000.json     the n strings of that part, in row order (written last: a part without it is ignored)

New strings are embedded in parts of ``part_size`` and each part is written atomically, so an interrupted run
keeps every finished part and resumes with the rest.  The encoder is only loaded when a string is missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from distilrank.atomic import write_json, write_npy
from distilrank.errors import ConfigError
from distilrank.pairs import Pairs


class EmbeddingStore:
    """Unit embeddings of strings by one encoder, persisted in ``directory``.

    Args:
        directory: the store (created when missing).
        encoder: a zero-argument factory returning an object with ``encode(texts, progress=...) -> float32 [n, dim]``
            and ``dim`` (e.g. ``lambda: BiEncoder(path, max_length=64)``); called at most once, on the first miss.
        identity: what the vectors depend on (model path, max_length); a store written with another identity raises
            :class:`ConfigError` instead of mixing embeddings of two models.
        part_size: strings per resumable part.
    """

    def __init__(self, directory: str | Path, encoder: Callable[[], object], *, identity: dict, part_size: int = 4096) -> None:
        self.dir = Path(directory)
        self._factory = encoder
        self._encoder = None
        self.identity = identity
        self.part_size = part_size
        self._rows: dict[str, np.ndarray] = {}
        self._parts = 0
        self._load()

    def _load(self) -> None:
        meta = self.dir / "meta.json"
        if meta.exists():
            old = json.loads(meta.read_text())
            mine = {k: old.get(k) for k in self.identity}
            if mine != self.identity:
                raise ConfigError(meta, "model", f"embeddings in {self.dir} were made with {mine}, not {self.identity}: "
                                  "use another directory or delete this one")
        for names in sorted(self.dir.glob("part-*.json")):
            vecs = np.load(names.with_suffix(".npy"))
            texts = json.loads(names.read_text(encoding="utf-8"))
            if len(texts) != len(vecs):
                raise ConfigError(names, "rows", f"{len(texts)} strings but {len(vecs)} vectors: delete this part to re-embed it")
            self._rows.update(zip(texts, vecs))
            self._parts += 1

    def _next_part(self) -> int:
        """One past the highest part number on disk (an orphaned ``.npy`` of an interrupted part is overwritten)."""
        taken = [int(p.stem.split("-")[1]) for p in self.dir.glob("part-*.json")]
        return max(taken) + 1 if taken else 0

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = self._factory()
        return self._encoder

    def ensure(self, texts: Sequence[str], *, progress: bool | None = None, log: Callable[[str], None] | None = None) -> int:
        """Embed every string of ``texts`` not stored yet (parts written as they finish); returns how many were new."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._rows]
        if not missing:
            return 0
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / "meta.json").exists():
            write_json(self.dir / "meta.json", {**self.identity, "dim": int(self.encoder.dim)})
        for s in range(0, len(missing), self.part_size):
            chunk = missing[s : s + self.part_size]
            vecs = np.asarray(self.encoder.encode(chunk, progress=progress), dtype=np.float32)
            stem = self.dir / f"part-{self._next_part():05d}"
            write_npy(stem.with_suffix(".npy"), vecs)
            write_json(stem.with_suffix(".json"), chunk)
            self._parts += 1
            self._rows.update(zip(chunk, vecs))
            if log:
                log(f"embeddings {self.dir.name}: {min(s + self.part_size, len(missing))}/{len(missing)} new strings")
        return len(missing)

    def vectors(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        """float32 ``[len(texts), dim]`` unit vectors (missing strings are embedded first)."""
        self.ensure(texts, progress=progress)
        if not texts:
            return np.zeros((0, int(self.encoder.dim)), np.float32)
        return np.stack([self._rows[t] for t in texts])

    def cosine(self, queries: Sequence[str], texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        """Row-wise ``cos(query_i, text_i)`` float32 ``[N]``; each distinct string is looked up once."""
        from distilrank.distill.teacher.biencoder import paired_dot

        if len(queries) != len(texts):
            raise ValueError(f"{len(queries)} queries but {len(texts)} texts")
        uq, ut = list(dict.fromkeys(queries)), list(dict.fromkeys(texts))
        eq, et = self.vectors(uq, progress=progress), self.vectors(ut, progress=progress)
        qi = {q: i for i, q in enumerate(uq)}
        ti = {t: i for i, t in enumerate(ut)}
        a = np.fromiter((qi[q] for q in queries), np.int64, len(queries))
        b = np.fromiter((ti[t] for t in texts), np.int64, len(texts))
        return paired_dot(eq, a, et, b)

    def pair_cosine(self, pairs: Pairs, *, progress: bool | None = None) -> np.ndarray:
        """:meth:`cosine` of a table's rows."""
        return self.cosine(pairs.queries, pairs.texts, progress=progress)


__all__ = ["EmbeddingStore"]
