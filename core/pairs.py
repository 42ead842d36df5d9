"""The one in-memory data type every stage exchanges: a column table of pairs.

A *pair* is ``(query, text)``; ``text`` is the product title (or, in
single-text mode such as SST-2, the sentence, with ``query == ""``).
``labels`` are optional gold labels: binary {0, 1} or graded (any float >= 0;
stages that need a probability rescale graded labels by ``max_label``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from distilrank.atomic import atomic_open


@dataclass
class Pairs:
    """Column table of pairs.

    Attributes:
        queries: ``N`` query strings (``""`` in single-text mode).
        texts: ``N`` document strings (titles / sentences).
        labels: float32 array ``[N]`` of gold labels, or ``None`` when unlabeled.
        source: where the rows came from (file path or description), for messages.
    """

    queries: list[str]
    texts: list[str]
    labels: np.ndarray | None = None
    source: str = "<memory>"
    extra: dict[str, list] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.queries) != len(self.texts):
            raise ValueError(f"{self.source}: {len(self.queries)} queries but {len(self.texts)} texts")
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.float32)
            if self.labels.shape != (len(self.texts),):
                raise ValueError(f"{self.source}: labels shape {self.labels.shape} != ({len(self.texts)},)")

    def __len__(self) -> int:
        return len(self.texts)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(zip(self.queries, self.texts))

    @property
    def single_text(self) -> bool:
        """True when every query is empty (sentence classification mode)."""
        return all(q == "" for q in self.queries)

    def select(self, index: Sequence[int] | np.ndarray) -> "Pairs":
        """Rows at ``index`` (in that order) as a new table."""
        idx = np.asarray(index, dtype=np.int64)
        return Pairs(
            queries=[self.queries[i] for i in idx],
            texts=[self.texts[i] for i in idx],
            labels=None if self.labels is None else self.labels[idx],
            source=self.source,
            extra={k: [v[i] for i in idx] for k, v in self.extra.items()},
        )

    def without_labels(self) -> "Pairs":
        """Same rows, labels dropped (to use a labeled set as transfer data)."""
        return Pairs(list(self.queries), list(self.texts), None, self.source)

    def with_labels(self, labels: np.ndarray) -> "Pairs":
        """Same rows with ``labels`` ``[N]`` attached (e.g. soft targets)."""
        return Pairs(self.queries, self.texts, np.asarray(labels, np.float32), self.source, self.extra)

    @staticmethod
    def concat(parts: Sequence["Pairs"], source: str = "<concat>") -> "Pairs":
        """Concatenate tables; the result is labeled only if every part is."""
        labeled = all(p.labels is not None for p in parts)
        return Pairs(
            queries=[q for p in parts for q in p.queries],
            texts=[t for p in parts for t in p.texts],
            labels=np.concatenate([p.labels for p in parts]) if labeled and parts else None,
            source=source,
        )

    def digest(self, *, labels: bool = False) -> str:
        """SHA-256 hex over the row count and every ``(query, text)`` in order (and the float32 labels with
        ``labels``): which data a set of scores or a training state belongs to (see :class:`RowDigest`)."""
        h = RowDigest(len(self))
        h.update(self.queries, self.texts)
        if labels and self.labels is not None:
            h.update_labels(self.labels)
        return h.hexdigest()

    def to_jsonl(self, path: str | Path) -> None:
        """Atomically write one ``{"query", "text"[, "label"]}`` object per line."""
        with atomic_open(path) as fh:
            for i in range(len(self)):
                row: dict = {"query": self.queries[i], "text": self.texts[i]}
                if self.labels is not None:
                    row["label"] = float(self.labels[i])
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")


class RowDigest:
    """Incremental form of :meth:`Pairs.digest`: feed the rows batch by batch (an out-of-core transfer set
    gets the same digest as the same rows in memory).  The row count is hashed first, so it is given up front."""

    def __init__(self, n_rows: int):
        self._h = hashlib.sha256(f"{n_rows}".encode())

    def update(self, queries: Sequence[str], texts: Sequence[str]) -> None:
        """Hash the next rows ``(queries[i], texts[i])`` in order."""
        for q, t in zip(queries, texts):
            self._h.update(q.encode("utf-8", "surrogatepass") + b"\x1f" + t.encode("utf-8", "surrogatepass") + b"\x1e")

    def update_labels(self, labels: np.ndarray) -> None:
        """Hash the float32 labels (after every row)."""
        self._h.update(np.ascontiguousarray(labels, dtype=np.float32).tobytes())

    def hexdigest(self) -> str:
        return self._h.hexdigest()
