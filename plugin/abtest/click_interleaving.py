"""Team-draft interleaving from *logged* clicks (:mod:`.interleaving` simulates them), and the interleaved list a
front end shows.

Logging contract (what :func:`interleaved_list` returns for the front end to put in ``query_attributes``, the
same keys as :func:`distilrank.plugin.ubi.search_log.interleaving_attributes`): an interleaved search has
``attributes["teams"]``, one team per hit of ``hit_ids``: an arm name, or ``"shared"``
(:data:`distilrank.plugin.abtest.interleaving.SHARED`) for the two rankings' common prefix, whose clicks credit
nobody.  Searches without ``teams`` are not interleaved and are ignored here.

Credit of one search (Radlinski, Kurup & Joachims 2008): every *distinct* hit clicked (a hit clicked twice counts
once) credits its team.  The clicked hit is the click event's ``object_id`` when it is one of ``hit_ids``, else
the hit at the event's 1-based ``position``.  The team with more credited clicks wins the search; equal counts
(including none) tie.  The arm pair of a search is the two team names it holds; a search showing one arm's picks
only (a short list) gets its logged ``arm_a`` / ``arm_b``, else the log's arm pair when all interleaved searches
share one.

Summary per arm pair (oriented ``arm`` vs ``control`` when the control is in the pair): wins of each, ties, the
arm's share of the decided searches with a Wilson CI and a two-sided sign test over searches.  Searches of one user
are not independent, so a second sign test counts *users*: a user's outcome is the sign of their wins minus
losses over all their interleaved searches.  Problems (teams not matching the hits, a click on no known hit,
more than two teams, no arm pair) are counted under :data:`PROBLEMS` keys, never raised.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from distilrank.errors import DistilRankError
from distilrank.plugin.abtest.interleaving import SHARED, A, query_rng, team_draft
from distilrank.plugin.abtest.stats import holm, sign_test, wilson_ci
from distilrank.plugin.ubi.records import CLICK, LoggedSearch
from distilrank.plugin.ubi.search_log import interleaving_attributes

TEAMS = "teams"
#: problem keys counted by :func:`credit_searches`
PROBLEMS = {
    "teams_mismatch": "interleaving: 'teams' is not a list with one team per hit",
    "unknown_click": "interleaving: click names no hit of the list (id not in hit_ids, position out of range)",
    "too_many_teams": "interleaving: more than two arms in one list",
    "no_pair": "interleaving: cannot tell the arm pair (one arm's picks only, and several pairs in the log)",
}


def interleaved_list(list_a: Sequence[str], list_b: Sequence[str], *, experiment: str, arm_a: str, arm_b: str, key: str,
                     seed: int = 0, length: int | None = 10) -> dict:
    """The team-draft interleaving of two arms' rankings for one search, ready to show and to log:
    ``{"hit_ids": [...], "query_attributes": {...}}``, the attributes from
    :func:`distilrank.plugin.ubi.search_log.interleaving_attributes` (``experiment``, ``interleaving``, ``arm_a``,
    ``arm_b``, ``teams``) with ``teams[i]`` the arm that contributed ``hit_ids[i]`` (or ``"shared"``).  ``key``
    (e.g. the query id) seeds the coin flips with ``seed`` (see
    :func:`distilrank.plugin.abtest.interleaving.query_rng`), so every search gets fresh flips and a key always
    gets the same list; :func:`distilrank.plugin.abtest.interleaving.team_draft` does the drafting."""
    if not arm_a or not arm_b or arm_a == arm_b or SHARED in (arm_a, arm_b):
        raise DistilRankError(f"interleaving needs two different arm names other than {SHARED!r}, got {arm_a!r}, {arm_b!r}")
    il = team_draft(list_a, list_b, query_rng(seed, key), length=length)
    names = {A: arm_a, SHARED: SHARED}
    teams = [names.get(t, arm_b) for t in il.teams]
    return {"hit_ids": il.docs, "query_attributes": interleaving_attributes(experiment, arm_a, arm_b, teams)}


@dataclass(frozen=True)
class SearchCredit:
    """One interleaved search: ``credit[arm]`` distinct clicked hits of each arm of ``pair`` (sorted names)."""

    query_id: str
    client_id: str
    pair: tuple[str, str] | None
    credit: dict[str, int]

    def winner(self) -> str | None:
        """The arm with more credit, ``None`` for a tie."""
        a, b = (self.credit.get(t, 0) for t in self.pair or ("", ""))
        return None if a == b or self.pair is None else (self.pair[0] if a > b else self.pair[1])


def credit_search(search: LoggedSearch, problems: Counter[str]) -> SearchCredit | None:
    """The credit of one search (``None`` when it is not interleaved or its teams are unusable: counted in
    ``problems``)."""
    teams = search.attributes.get(TEAMS)
    if teams is None:
        return None
    if not isinstance(teams, list) or len(teams) != len(search.hit_ids):
        problems[PROBLEMS["teams_mismatch"]] += 1
        return None
    arms = sorted({str(t) for t in teams} - {SHARED})
    logged = sorted(str(search.attributes.get(k)) for k in ("arm_a", "arm_b") if search.attributes.get(k) is not None)
    if len(arms) < 2 and len(logged) == 2 and set(arms) <= set(logged) and logged[0] != logged[1]:
        arms = logged
    if len(arms) > 2:
        problems[PROBLEMS["too_many_teams"]] += 1
        return None
    clicked: set[int] = set()
    for e in search.events:
        if e.action != CLICK:
            continue
        if e.object_id is not None and e.object_id in search.hit_ids:
            clicked.add(search.hit_ids.index(e.object_id))
        elif e.position is not None and 1 <= e.position <= len(teams):
            clicked.add(e.position - 1)
        else:
            problems[PROBLEMS["unknown_click"]] += 1
    credit = Counter(str(teams[i]) for i in clicked if teams[i] != SHARED)
    pair = (arms[0], arms[1]) if len(arms) == 2 else None
    return SearchCredit(search.query_id, search.client_id, pair, dict(credit))


def credit_searches(searches: Sequence[LoggedSearch]) -> tuple[list[SearchCredit], Counter[str]]:
    """Credits of the interleaved searches among ``searches``, each with its arm pair (a search with one arm's
    picks gets the log's only pair; with several pairs it is counted as ``no_pair``), and the problem counts."""
    problems: Counter[str] = Counter()
    credits = [c for c in (credit_search(s, problems) for s in searches) if c is not None]
    pairs = {c.pair for c in credits if c.pair is not None}
    out = []
    for c in credits:
        if c.pair is None:
            teams = set(c.credit)
            fits = [p for p in pairs if teams <= set(p)]
            if len(pairs) != 1 or not fits:
                problems[PROBLEMS["no_pair"]] += 1
                continue
            c = SearchCredit(c.query_id, c.client_id, fits[0], c.credit)
        out.append(c)
    return out, problems


def _oriented(pair: tuple[str, str], control: str | None) -> tuple[str, str]:
    """``(arm, baseline)``: the control is the baseline when it is in the pair, else the first name."""
    if control in pair:
        return (pair[1] if pair[0] == control else pair[0]), control  # type: ignore[return-value]
    return pair[1], pair[0]


def summarize_credits(credits: Sequence[SearchCredit], *, control: str | None = None, alpha: float = 0.05) -> list[dict]:
    """One row per arm pair: ``{"arm", "baseline", "searches", "wins_arm", "wins_baseline", "ties", "win_rate_arm",
    "ci95", "p_value", "p_holm", "users", "user_wins_arm", "user_wins_baseline", "user_ties", "p_value_users"}``
    (win rate = arm wins / decided searches, Wilson CI; sign tests over searches and over users; Holm across the
    pairs' search-level p-values)."""
    by_pair: dict[tuple[str, str], list[SearchCredit]] = {}
    for c in credits:
        if c.pair is not None:
            by_pair.setdefault(c.pair, []).append(c)
    rows = []
    for pair in sorted(by_pair):
        arm, base = _oriented(pair, control)
        cs = by_pair[pair]
        winners = [c.winner() for c in cs]
        wa, wb = winners.count(arm), winners.count(base)
        per_user: Counter[str] = Counter()
        for c, w in zip(cs, winners):
            per_user[c.client_id] += (w == arm) - (w == base)
        ua = sum(1 for v in per_user.values() if v > 0)
        ub = sum(1 for v in per_user.values() if v < 0)
        rows.append({"arm": arm, "baseline": base, "searches": len(cs), "wins_arm": wa, "wins_baseline": wb,
                     "ties": len(cs) - wa - wb, "win_rate_arm": wa / (wa + wb) if wa + wb else None,
                     "ci95": wilson_ci(wa, wa + wb, alpha=alpha), "p_value": sign_test(wa, wb), "users": len(per_user),
                     "user_wins_arm": ua, "user_wins_baseline": ub, "user_ties": len(per_user) - ua - ub,
                     "p_value_users": sign_test(ua, ub)})
    for r, adj in zip(rows, holm([r["p_value"] for r in rows])):
        r["p_holm"] = adj
        r["significant"] = adj is not None and adj <= alpha
    return rows


def interleaving_results(searches: Sequence[LoggedSearch], *, control: str | None = None, alpha: float = 0.05) -> dict:
    """``{"pairs": summarize_credits(...), "interleaved_searches": n, "problems": {reason: count}}`` of a log."""
    credits, problems = credit_searches(searches)
    n = sum(1 for s in searches if TEAMS in s.attributes)
    return {"pairs": summarize_credits(credits, control=control, alpha=alpha), "interleaved_searches": n,
            "problems": dict(problems)}
