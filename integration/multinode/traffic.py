"""Searching clients for the several-node fault tests: each client searches back to back in its own thread until
stopped, and every search is recorded as failed or answered.

A **failed search** is one that raised after the client's own retries (an HTTP error, or no node answered), or whose
answer has ``_shards.failed > 0`` or ``timed_out``. Each client has its own :class:`Transport` to every node's URL,
starting at a different node (so the coordinators are spread), with the transport's failover on a refused or reset
connection and on 502/503/504.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Outcome:
    """One search: when it started and ended (``time.monotonic()``), its query, the error (``None``: answered) and the
    answer's hits as ``(title, score)``."""

    start: float
    end: float
    query: str
    error: str | None
    hits: list[tuple[str, float]] = field(default_factory=list)


class Traffic:
    """``clients`` threads calling ``search(transport, query) -> response`` over ``queries`` until :meth:`stop`."""

    def __init__(self, urls: list[str], queries: list[str], search: Callable, *, clients: int = 4, retries: int = 3):
        from distilrank.plugin import api

        self.queries = queries
        self.search = search
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        rotated = [urls[i % len(urls):] + urls[:i % len(urls)] for i in range(clients)]
        self._transports = [api.connect(url=",".join(r), retries=retries, timeout=60) for r in rotated]
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def __enter__(self) -> Traffic:
        for th in self._threads:
            th.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(timeout=120)

    def _run(self, i: int) -> None:
        t, k = self._transports[i], 0
        while not self._stop.is_set():
            q = self.queries[(i + k) % len(self.queries)]
            k += 1
            t0 = time.monotonic()
            try:
                resp = self.search(t, q)
                error = None
                if resp["_shards"].get("failed") or resp.get("timed_out"):
                    error = f"partial answer: _shards {json.dumps(resp['_shards'])}, timed_out {resp.get('timed_out')}"
                hits = [(h["_source"]["title"], h["_score"]) for h in resp["hits"]["hits"]]
            except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                error, hits = f"{type(exc).__name__}: {exc}"[:300], []
            with self._lock:
                self.outcomes.append(Outcome(t0, time.monotonic(), q, error, hits))

    def failed(self, since: float | None = None, until: float | None = None) -> list[Outcome]:
        """Failed searches that started in ``[since, until)`` (all when unset)."""
        return [o for o in self.outcomes if o.error and (since is None or o.start >= since) and (until is None or o.start < until)]

    def answered(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.error]


def which_models(outcomes: list[Outcome], scorers: list, scales: tuple[float, ...] | None = None) -> tuple[list[int], list[Outcome]]:
    """For each answered search, which of ``scorers`` (``LocalScorer``), times its ``scales[i]`` (default 1), gave every
    hit's score (within 1e-4): counts per scorer, and the responses no single scorer explains (mixed models, mixed
    weights or wrong scores)."""
    scales = scales or (1.0,) * len(scorers)
    counts, mixed = [0] * len(scorers), []
    for o in outcomes:
        if not o.hits:
            continue
        scores = np.array([s for _, s in o.hits])
        titles = [t for t, _ in o.hits]
        which = [m for m, sc in enumerate(scorers) if np.allclose(scores, scales[m] * sc.score(o.query, titles), atol=2e-4)]
        if which:
            counts[which[0]] += 1
        else:
            mixed.append(o)
    return counts, mixed
