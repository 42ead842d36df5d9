"""Best-of-N wall-clock timing, the one helper every latency figure in the project is measured with.

The minimum over repeats is the least noisy estimate of what a piece of code costs on a shared machine
(other processes only ever add time).  Units are seconds; callers convert to ms per pair themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of_seconds(fn: Callable[[], object], repeats: int = 5, *, warmup: int = 0) -> float:
    """Fewest wall-clock seconds (``time.perf_counter``) one call of ``fn()`` took over ``repeats`` calls.

    ``warmup`` untimed calls run first (caches, lazy session initialisation).  ``repeats`` must be >= 1.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
