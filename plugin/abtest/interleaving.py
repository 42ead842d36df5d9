"""Team-draft interleaving (Radlinski, Kurup & Joachims, CIKM 2008) with a simulated click model.

Team draft: two rankings A and B take turns, like captains picking teams; the
team with fewer picks so far picks next, a fair coin breaks equal counts.  A
pick is the picking ranking's highest doc not already shown.  The rankings'
common prefix is shown first and credited to neither team (see
:func:`team_draft`).  Each shown doc remembers its team; clicks on it are credited to that team.  The query's
outcome is the team with more credited clicks (equal counts, including none,
is a tie).

Randomness is seeded *per query*: the generator is seeded from
``sha256(f"{seed}:{query}")``, so a query's coin flips and clicks do not depend
on which other queries were run or in what order.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from distilrank.errors import DistilRankError
from distilrank.plugin.abtest.stats import sign_test, wilson_ci

A, B, TIE = "A", "B", "tie"
SHARED = "shared"  # team of a doc both rankings put at the same rank in their common prefix


def query_rng(seed: int, query: str) -> random.Random:
    """A ``random.Random`` seeded from ``sha256(f"{seed}:{query}")`` (independent of query order)."""
    digest = hashlib.sha256(f"{seed}:{query}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@dataclass(frozen=True)
class Interleaved:
    """An interleaved list: ``docs[i]`` was contributed by team ``teams[i]`` (``"A"``, ``"B"`` or :data:`SHARED`)."""

    docs: list[str]
    teams: list[str]


def team_draft(list_a: Sequence[str], list_b: Sequence[str], rng: random.Random, *, length: int | None = None,
               share_common_prefix: bool = True) -> Interleaved:
    """Team-draft interleaving of two rankings (best first), per Radlinski et al. 2008, Algorithm 2.

    Contract: no doc appears twice (duplicates inside an input list are ignored after
    their first occurrence); every doc comes from the team that picked it and each team's
    docs appear in that team's own order, each pick being its ranking's highest doc not
    yet shown (so every prefix of the output is the team draft of the inputs'
    prefixes: a shorter ``length`` with the same ``rng`` state gives a prefix of the
    output); after every pick the two teams' sizes differ by at most one.  As in the
    paper, drafting stops as soon as either ranking has no unshown doc left, or at
    ``length`` docs.  ``rng`` supplies the coin flips.

    With ``share_common_prefix`` (the default, as in Lerot and Chapelle et al. 2012) the
    longest common prefix of the two rankings (same doc at the same rank in both) is
    shown first with team :data:`SHARED` and its clicks credit nobody; identical rankings
    are then one shared list and always tie.  ``False`` is the paper's algorithm verbatim.
    """
    if length is not None and length < 0:
        raise DistilRankError(f"interleaving length must be >= 0, got {length}")
    a, b = list(dict.fromkeys(map(str, list_a))), list(dict.fromkeys(map(str, list_b)))
    limit = len(a) + len(b) if length is None else length
    docs: list[str] = []
    teams: list[str] = []
    if share_common_prefix:
        while len(docs) < min(len(a), len(b), limit) and a[len(docs)] == b[len(docs)]:
            docs.append(a[len(docs)])
            teams.append(SHARED)
    shown: set[str] = set(docs)
    n_a = n_b = 0
    ia = ib = 0
    while len(docs) < limit:
        while ia < len(a) and a[ia] in shown:
            ia += 1
        while ib < len(b) and b[ib] in shown:
            ib += 1
        if ia >= len(a) or ib >= len(b):
            break
        a_picks = n_a < n_b or (n_a == n_b and rng.random() < 0.5)
        doc = a[ia] if a_picks else b[ib]
        docs.append(doc)
        teams.append(A if a_picks else B)
        shown.add(doc)
        if a_picks:
            n_a += 1
        else:
            n_b += 1
    return Interleaved(docs, teams)


@dataclass(frozen=True)
class ClickModel:
    """Simulated user clicking on a ranked list, from the shown docs' judgment grades.

    ``model="pbm"`` (position-based): the doc at 1-based rank ``r`` is examined with
    probability ``(1 / r) ** eta`` independently of the others, and an examined doc is
    clicked with ``P(click | grade)``.  ``model="cascade"``: the user scans top-down,
    clicks with ``P(click | grade)``, and after a click stops with ``stop_prob``.

    ``P(click | grade)``: with ``click_prob`` (``{grade: prob}``), the probability of the
    largest key ``<= grade`` (a grade below every key gets ``min_click``); without it,
    ``min_click + (max_click - min_click) * grade / max_grade`` (``max_grade``: given, or
    the query's highest judged grade; grades above it are capped).  Unjudged docs have
    grade ``unjudged_grade`` (0 by default, i.e. ``min_click``, a small noise click rate).
    """

    model: str = "pbm"
    click_prob: Mapping[float, float] | None = None
    min_click: float = 0.05
    max_click: float = 0.95
    max_grade: float | None = None
    unjudged_grade: float = 0.0
    eta: float = 1.0
    stop_prob: float = 0.5
    _sorted: list[tuple[float, float]] = field(init=False, repr=False, compare=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.model not in ("pbm", "cascade"):
            raise DistilRankError(f"click model must be 'pbm' or 'cascade', got {self.model!r}")
        probs = {"min_click": self.min_click, "max_click": self.max_click, "stop_prob": self.stop_prob}
        probs.update({f"click_prob[{k}]": v for k, v in (self.click_prob or {}).items()})
        for name, v in probs.items():
            if not 0.0 <= float(v) <= 1.0:
                raise DistilRankError(f"click model {name} = {v!r} is not a probability in [0, 1]")
        if self.eta < 0:
            raise DistilRankError(f"click model eta must be >= 0, got {self.eta}")
        if self.max_grade is not None and self.max_grade <= 0:
            raise DistilRankError(f"click model max_grade must be > 0, got {self.max_grade}")
        object.__setattr__(self, "_sorted", sorted((float(k), float(v)) for k, v in (self.click_prob or {}).items()))

    def describe(self) -> dict:
        """The settings as a JSON-able dict (for reports)."""
        return {"model": self.model, "click_prob": None if self.click_prob is None else
                {str(k): float(v) for k, v in sorted(self.click_prob.items())},
                "min_click": self.min_click, "max_click": self.max_click, "max_grade": self.max_grade,
                "unjudged_grade": self.unjudged_grade, "eta": self.eta, "stop_prob": self.stop_prob}

    def p_click(self, grade: float, max_grade: float) -> float:
        """``P(click | examined, grade)``; ``max_grade`` is the query's top grade (used without ``click_prob``)."""
        if self._sorted:
            p = self.min_click
            for key, prob in self._sorted:
                if key <= grade:
                    p = prob
            return p
        top = self.max_grade if self.max_grade is not None else max_grade
        frac = min(1.0, grade / top) if top > 0 else 0.0
        return self.min_click + (self.max_click - self.min_click) * frac

    def simulate(self, docs: Sequence[str], judged: Mapping[str, float], rng: random.Random) -> list[bool]:
        """Clicks ``[len(docs)]`` of one simulated user on ``docs`` (best first)."""
        top = max(judged.values(), default=0.0)
        clicks = []
        stopped = False
        for r, doc in enumerate(docs, 1):
            p = self.p_click(float(judged.get(doc, self.unjudged_grade)), top)
            if self.model == "pbm":
                clicks.append(rng.random() < (1.0 / r) ** self.eta and rng.random() < p)
                continue
            click = not stopped and rng.random() < p
            clicks.append(click)
            if click and rng.random() < self.stop_prob:
                stopped = True
        return clicks


@dataclass(frozen=True)
class QueryOutcome:
    """One query's interleaving outcome over ``impressions`` simulated users: clicks credited to each team, summed."""

    query: str
    clicks_a: int
    clicks_b: int
    impressions: int

    @property
    def winner(self) -> str:
        """``"A"``, ``"B"`` or ``"tie"`` (more credited clicks wins)."""
        return A if self.clicks_a > self.clicks_b else B if self.clicks_b > self.clicks_a else TIE


def interleave_query(query: str, list_a: Sequence[str], list_b: Sequence[str], judged: Mapping[str, float],
                     click_model: ClickModel, *, seed: int = 0, length: int | None = 10, impressions: int = 10,
                     share_common_prefix: bool = True) -> QueryOutcome:
    """Simulate ``impressions`` users, each shown a fresh team-draft interleaving (new coin flips, see
    :func:`team_draft`) and clicking by ``click_model``; clicks are credited to the team of the clicked
    doc (none for :data:`SHARED` docs).  Deterministic for ``(seed, query)`` (see :func:`query_rng`)."""
    if impressions < 1:
        raise DistilRankError(f"impressions must be >= 1, got {impressions}")
    rng = query_rng(seed, query)
    ca = cb = 0
    for _ in range(impressions):
        il = team_draft(list_a, list_b, rng, length=length, share_common_prefix=share_common_prefix)
        for team, clicked in zip(il.teams, click_model.simulate(il.docs, judged, rng)):
            if clicked:
                ca += team == A
                cb += team == B
    return QueryOutcome(query, ca, cb, impressions)


@dataclass(frozen=True)
class InterleavingSummary:
    """Aggregate over queries.  ``win_rate_b = wins_b / (wins_a + wins_b)`` (ties left out; 0.5 = no
    preference, > 0.5 = B preferred); ``ci95``: Wilson interval of it; ``p_value``: two-sided sign test
    of ``win_rate_b = 0.5``.  Both ``None`` when there is no decided query."""

    wins_a: int
    wins_b: int
    ties: int
    win_rate_b: float | None
    ci95: tuple[float, float] | None
    p_value: float | None


def summarize(outcomes: Sequence[QueryOutcome], *, alpha: float = 0.05) -> InterleavingSummary:
    """Count per-query winners and test them (see :class:`InterleavingSummary`)."""
    wa = sum(1 for o in outcomes if o.winner == A)
    wb = sum(1 for o in outcomes if o.winner == B)
    ties = len(outcomes) - wa - wb
    n = wa + wb
    return InterleavingSummary(wa, wb, ties, wb / n if n else None, wilson_ci(wb, n, alpha=alpha), sign_test(wa, wb))
