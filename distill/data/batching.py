"""The one length-bucketed batcher: rows of similar token length go into the same batch (less padding).

Used by student training (:mod:`distilrank.distill.student.train`), teacher fine-tuning and teacher scoring
(:mod:`distilrank.distill.teacher.encoding`).  Row indices are int64; lengths are token counts indexed by row.
"""

from __future__ import annotations

import numpy as np


def bucketed_batches(order: np.ndarray, lengths: np.ndarray, batch_size: int, window: int, *,
                     descending: bool = False) -> list[np.ndarray]:
    """Cut ``order`` (row indices, in the order to visit them) into windows of ``window`` rows, sort each
    window by ``lengths[row]`` (stable; longest first with ``descending``) and cut it into batches of
    ``batch_size`` rows.

    Returns the batches (int64 index arrays) window after window; shuffling them is the caller's choice.
    ``window >= len(order)`` sorts everything at once (inference: the first batch is the peak memory).
    """
    if batch_size < 1 or window < 1:
        raise ValueError(f"batch_size and window must be >= 1 (got {batch_size}, {window})")
    order = np.asarray(order, dtype=np.int64)
    lengths = np.asarray(lengths)
    batches: list[np.ndarray] = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        key = -lengths[chunk] if descending else lengths[chunk]
        chunk = chunk[np.argsort(key, kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return batches


def shuffled_bucketed_batches(index: np.ndarray, lengths: np.ndarray, batch_size: int, window: int,
                              rng: np.random.Generator) -> list[np.ndarray]:
    """One training epoch's batches: shuffle ``index``, bucket by length inside windows of ``window`` rows
    (:func:`bucketed_batches`), then shuffle the batches; deterministic in the state of ``rng``."""
    batches = bucketed_batches(rng.permutation(index), lengths, batch_size, window)
    return [batches[i] for i in rng.permutation(len(batches))]
