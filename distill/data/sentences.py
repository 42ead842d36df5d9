"""Leak-free held-out sentences from a phrase-level training set (SST-2).

SST-2's train split holds every *phrase* of the treebank's parse trees, not only
whole sentences: 67,349 rows come from about 6,900 sentences, and most rows are
sub-phrases of one of them.  A random row split therefore leaks: the held-out
sentence "a gorgeous , witty , seductive movie" shares its labeled sub-phrases
with the training rows.  Here a *root* is a row that is not a (word-aligned)
substring of any longer row, i.e. a whole sentence; :func:`hold_out_sentences`
holds out whole roots and drops every training row that occurs inside one of
them, so nothing a held-out sentence contains was seen with a label.

Matching is on whitespace-normalised text with word boundaries (`` a b `` is in
`` x a b y ``); it is exact string matching, not case- or accent-insensitive,
as the rows of one treebank share one spelling.
"""

from __future__ import annotations

import numpy as np

from distilrank.pairs import Pairs

_CHUNK_CHARS = 100_000  # searched texts are split into chunks of about this size (substring tests stay fast)


def _padded(text: str) -> str:
    return f" {' '.join(text.split())} "


class _Haystack:
    """Growing set of padded texts; ``contains(t)`` is a word-aligned substring test against all of them."""

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.current = ""

    def add(self, padded: str) -> None:
        self.current += "\n" + padded
        if len(self.current) > _CHUNK_CHARS:
            self.chunks.append(self.current)
            self.current = ""

    def contains(self, padded: str) -> bool:
        return padded in self.current or any(padded in c for c in self.chunks)


def root_rows(texts: list[str]) -> np.ndarray:
    """Indices (ascending) of the rows of ``texts`` that occur inside no longer row (the whole sentences).

    Of identical rows only the first is a root.  O(N * total characters / chunk) substring scans: about 9 s
    for SST-2 train on one core.
    """
    padded = [_padded(t) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: (-len(padded[i]), i))
    found = _Haystack()
    roots = []
    for i in order:
        if not found.contains(padded[i]):
            roots.append(i)
            found.add(padded[i])
    return np.array(sorted(roots), dtype=np.int64)


def hold_out_sentences(pairs: Pairs, n: int, *, seed: int = 0) -> tuple[Pairs, Pairs]:
    """Split ``pairs`` into ``(rest, held_out)`` without leakage (see the module doc).

    ``held_out`` is ``n`` whole sentences (roots) drawn at random with ``seed``, in file order; ``rest`` is every
    row that is not inside one of them (the held-out roots and all their sub-phrases are removed).

    Raises:
        ValueError: ``n`` is not in ``[1, number of roots)``.
    """
    roots = root_rows(pairs.texts)
    if not 1 <= n < len(roots):
        raise ValueError(f"{pairs.source}: cannot hold out {n} sentences: it has {len(roots)} whole sentences")
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(roots, size=n, replace=False))
    haystack = _Haystack()
    for i in held:
        haystack.add(_padded(pairs.texts[i]))
    keep = np.array([i for i, t in enumerate(pairs.texts) if not haystack.contains(_padded(t))], dtype=np.int64)
    return pairs.select(keep), pairs.select(held)
