"""A small seeded generator of in-memory UBI logs for the online-analysis tests.

Click model (position-based): the hit at 1-based rank ``r`` is examined with probability ``(1 / r) ** eta``;
an examined hit is clicked with ``ATTRACT[grade] * user propensity`` (capped at 1; unjudged hits ``UNJUDGED``).
A clicked hit is added to the cart with ``add_to_cart * grade / 3``.  Every shown hit (the top ``k``) gets an
impression event.  Arm rankers: ``"good"`` sorts by grade plus Gaussian noise, ``"fixed"`` is one random order per
query (positions unrelated to grades, the same in every search), ``"shuffle"`` a new random order per search.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from distilrank.plugin.abtest.click_interleaving import interleaved_list
from distilrank.plugin.ubi.records import ADD_TO_CART, CLICK, IMPRESSION, LoggedSearch, UbiEvent, UbiLog

BASE = datetime(2025, 6, 1, tzinfo=timezone.utc)
ATTRACT = {0: 0.05, 1: 0.2, 2: 0.5, 3: 0.9}
UNJUDGED = 0.02


def make_grades(n_queries: int, docs_per_query: int, seed: int = 0) -> dict[str, dict[str, float]]:
    """``{q<i>: {q<i>-d<j>: grade 0-3}}`` drawn uniformly."""
    rng = random.Random(seed)
    return {f"q{i}": {f"q{i}-d{j}": float(rng.randint(0, 3)) for j in range(docs_per_query)} for i in range(n_queries)}


def ranking(kind: str, query: str, grades: Mapping[str, float], rng: random.Random) -> list[str]:
    docs = sorted(grades)
    if kind == "good":
        return sorted(docs, key=lambda d: -(grades[d] + rng.gauss(0, 0.8)))
    if kind == "fixed":
        random.Random(f"fixed:{query}").shuffle(docs)
        return docs
    if kind == "shuffle":
        rng.shuffle(docs)
        return docs
    raise ValueError(kind)


def clicks(docs: list[str], grades: Mapping[str, float], rng: random.Random, *, eta: float, propensity: float) -> list[int]:
    """1-based clicked positions."""
    out = []
    for r, d in enumerate(docs, 1):
        p = min(1.0, ATTRACT.get(int(grades[d]), UNJUDGED) * propensity if d in grades else UNJUDGED)
        if rng.random() < (1.0 / r) ** eta and rng.random() < p:
            out.append(r)
    return out


class Gen:
    """Builds one log; :meth:`search` appends a search of a user with its events."""

    def __init__(self, grades: Mapping[str, Mapping[str, float]], *, seed: int = 0, eta: float = 1.0, k: int = 10,
                 add_to_cart: float = 0.0, impressions: bool = True, experiment: str = "exp", simulated: bool = True):
        self.grades, self.rng, self.eta, self.k = grades, random.Random(seed), eta, k
        self.add_to_cart, self.impressions, self.experiment, self.simulated = add_to_cart, impressions, experiment, simulated
        self.searches: list[LoggedSearch] = []

    def search(self, client: str, *, arm: str | None = None, kind: str = "good", propensity: float = 1.0,
               query: str | None = None, hits: list[str] | None = None, attributes: dict | None = None) -> LoggedSearch:
        q = query or self.rng.choice(sorted(self.grades))
        g = self.grades[q]
        docs = hits if hits is not None else ranking(kind, q, g, self.rng)[:self.k]
        t = BASE + timedelta(seconds=len(self.searches))
        attrs = {"experiment": self.experiment, **({"arm": arm} if arm else {}), **(attributes or {})}
        if self.simulated:
            attrs["simulated"] = "true"  # as the UBI plugin stores query_attributes: strings
        events = [UbiEvent(IMPRESSION, d, i + 1, t) for i, d in enumerate(docs)] if self.impressions else []
        for pos in clicks(docs, g, self.rng, eta=self.eta, propensity=propensity):
            events.append(UbiEvent(CLICK, docs[pos - 1], pos, t + timedelta(milliseconds=pos)))
            if self.rng.random() < self.add_to_cart * g.get(docs[pos - 1], 0.0) / 3:
                events.append(UbiEvent(ADD_TO_CART, docs[pos - 1], pos, t + timedelta(milliseconds=pos + 1)))
        s = LoggedSearch(f"s{len(self.searches)}", client, q, t, list(docs), attrs, events)
        self.searches.append(s)
        return s

    def interleaved(self, client: str, arm_a: str, kind_a: str, arm_b: str, kind_b: str) -> LoggedSearch:
        q = self.rng.choice(sorted(self.grades))
        la, lb = ranking(kind_a, q, self.grades[q], self.rng), ranking(kind_b, q, self.grades[q], self.rng)
        il = interleaved_list(la, lb, experiment=self.experiment, arm_a=arm_a, arm_b=arm_b, key=f"s{len(self.searches)}",
                              length=self.k)
        return self.search(client, query=q, hits=il["hit_ids"], attributes=il["query_attributes"])

    def log(self) -> UbiLog:
        return UbiLog(list(self.searches))


def ab_log(grades: Mapping[str, Mapping[str, float]], arms: Mapping[str, str], *, users_per_arm: int, searches_per_user: int,
           seed: int = 0, propensity_sd: float = 0.0, **kw) -> UbiLog:
    """An A/B log: ``users_per_arm`` users per arm (``{arm: ranker kind}``), each with ``searches_per_user`` searches
    and a lognormal click propensity (``propensity_sd`` = sd of its log)."""
    gen = Gen(grades, seed=seed, **kw)
    prng = random.Random(seed + 1)
    for arm, kind in arms.items():
        for u in range(users_per_arm):
            prop = prng.lognormvariate(0.0, propensity_sd) if propensity_sd else 1.0
            for _ in range(searches_per_user):
                gen.search(f"{arm}-u{u}", arm=arm, kind=kind, propensity=prop)
    return gen.log()
