"""Click-derived judgments: clicks over expected clicks (COEC), graded 0-3, and their agreement with human grades.

Definition (per query-document pair, over the searches of a log; positions are 1-based, only ``<= max_rank``):

* an *impression* is one search showing the doc: its ``impression`` events (one per doc and search, at the doc's
  first logged position), or, for a search that logged no impression event, its first ``max_rank`` ``hit_ids``;
  a clicked doc without an impression in that search gets one at the click's position (a click implies it was
  seen);
* a *click* is one search with >= 1 click event on the doc (a doc clicked twice in a search counts once), counted
  at the doc's impression position; the clicked doc is the event's ``object_id``, else ``hit_ids[position - 1]``;
* ``ctr(p) = clicks at position p / impressions at position p`` over the whole log (all queries): the click rate
  an average result gets at ``p``, i.e. the position bias;
* ``expected clicks = sum over the pair's impressions of ctr(position of that impression)``;
* ``COEC = clicks / expected clicks`` (0 when expected is 0: nobody clicks where it was shown).  1 = clicked as
  often as an average result at the same positions, 2 = twice as often.  Raw ``CTR = clicks / impressions``.

SRW's definition, read in ``opensearch-project/search-relevance``
``src/main/java/org/opensearch/searchrelevance/judgments/clickmodel/coec/CoecClickModel.java`` (snapshot at commit
d8be5d1, June 2025, version 3.1.0-SNAPSHOT, and the index's later copy at commit 1134d566; the COEC arithmetic is
the same in both) with ``model/ClickthroughRate.java``: ``getRankAggregatedClickThrough`` computes the per-rank
CTR over all ``ubi_events`` with ``event_attributes.position.ordinal < maxRank`` (clicks / impressions by ordinal,
0 without impressions); ``getClickthroughRate`` counts every click and impression *event* per (``user_query``,
``object_id``) and keeps the pair's *lowest* ordinal seen; ``calculateCoecJudgments`` sets
``rating = clicks / (ctr(lowest rank) * impressions)``, 0 when that is 0, formatted ``"%.3f"``, for *every* pair
(no minimum), with ``maxRank`` the only parameter (``UBI_JUDGMENT`` requests: ``clickModel = "coec"``,
``maxRank``).  Where this module differs, and why:

1. expected clicks sum the CTR of *each* impression's own position (Cheng & Cantu-Paz's COEC), not
   ``impressions * ctr(best position)``: SRW's form takes a doc shown once at rank 1 and 99 times at rank 10 to
   have been expected at rank 1 every time, so docs that moved down score far too low;
2. impressions and clicks are counted once per search and doc (SRW counts events: a repeated click or a repeated
   impression event inflates them; here CTR <= 1), and a click implies an impression;
3. a search without impression events falls back to its top ``max_rank`` hits (SRW needs impression events);
4. only pairs with ``>= min_impressions`` impressions are judged (SRW rates every pair, even one impression);
5. ratings are the 0-3 grades of :func:`grade` (SRW stores the raw COEC); the raw COEC is in :class:`PairStats`.

``min_impressions`` (default :data:`MIN_IMPRESSIONS` = 20): clicks on a pair are about binomial, so the relative
error of its COEC is about ``1 / sqrt(expected clicks)``.  With 20 impressions in the top ranks (position CTR
about 0.1-0.5) a pair has 2-10 expected clicks, and the 95% interval of a CTR of 0.5 over 20 impressions is
[0.30, 0.70] (Wilson), i.e. COEC +-40%: enough to tell the grade bands below apart (each a factor 2 wide), not
with 5 impressions ([0.15, 0.85]).  It is also the issue's agreement cut-off, so judgments and agreement use the
same pairs by default.

Grades (:data:`THRESHOLDS` = (0.5, 1.0, 2.0), log-symmetric around 1): COEC < 0.5 (clicked under half as often as
an average result at its positions) -> 0; [0.5, 1) -> 1; [1, 2) -> 2 (at least average); >= 2 (twice average or
more) -> 3.  An average shown result is neither irrelevant nor exact, so 1.0 splits the scale in the middle.

Agreement (:func:`agreement`): per query, Kendall's tau-b (:func:`kendall_tau_b`, ties handled) between a
click-derived score and the human grade over the query's judged docs with ``>= min_impressions`` impressions;
the mean over the queries where both taus are defined (>= 2 docs, no side all tied), for COEC and for raw CTR,
so the two means are over the same queries.

Writers: :func:`srw_import_body` / :func:`write_srw` (SRW ``IMPORT_JUDGMENT``) and :func:`write_csv`
(``query,docid,rating``), both read back by :func:`distilrank.judgments.load_judgments`.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distilrank.atomic import atomic_open, write_json
from distilrank.errors import DistilRankError
from distilrank.plugin.ubi.records import CLICK, IMPRESSION, LoggedSearch

MAX_RANK = 10
MIN_IMPRESSIONS = 20
THRESHOLDS = (0.5, 1.0, 2.0)


@dataclass(frozen=True)
class PairStats:
    """One (query, doc) pair: ``impressions``, ``clicks``, ``expected_clicks``, ``best_position`` (1-based)."""

    query: str
    doc: str
    impressions: int
    clicks: int
    expected_clicks: float
    best_position: int

    @property
    def coec(self) -> float:
        """``clicks / expected_clicks`` (0 when nothing is expected)."""
        return self.clicks / self.expected_clicks if self.expected_clicks > 0 else 0.0

    @property
    def ctr(self) -> float:
        """``clicks / impressions``."""
        return self.clicks / self.impressions if self.impressions else 0.0


@dataclass(frozen=True)
class CoecResult:
    """``position_ctr[p - 1]`` the log's CTR at position ``p`` (``position_impressions`` its denominator), every
    pair's :class:`PairStats`, and ``searches`` / ``searches_without_impressions`` (top hits used instead)."""

    position_ctr: list[float]
    position_impressions: list[int]
    pairs: list[PairStats]
    searches: int
    searches_without_impressions: int


def _search_pairs(s: LoggedSearch, max_rank: int) -> tuple[dict[str, int], set[str], bool]:
    """``({doc: position}, clicked docs, used hit_ids)`` of one search, positions ``<= max_rank``."""
    shown: dict[str, int] = {}
    for e in s.events:
        if e.action == IMPRESSION and e.object_id is not None and e.position is not None and 1 <= e.position <= max_rank:
            shown.setdefault(e.object_id, e.position)
    fallback = not shown
    if fallback:
        shown = {d: i + 1 for i, d in reversed(list(enumerate(s.hit_ids[:max_rank])))}
    clicked: set[str] = set()
    for e in s.events:
        if e.action != CLICK:
            continue
        doc = e.object_id
        if doc is None and e.position is not None and 1 <= e.position <= len(s.hit_ids):
            doc = s.hit_ids[e.position - 1]
        if doc is None:
            continue
        if doc not in shown and e.position is not None and 1 <= e.position <= max_rank:
            shown[doc] = e.position
        if doc in shown:
            clicked.add(doc)
    return shown, clicked, fallback


def coec_stats(searches: Sequence[LoggedSearch], *, max_rank: int = MAX_RANK) -> CoecResult:
    """Count impressions and clicks per (``user_query``, doc) and position, then COEC (see the module docstring)."""
    if max_rank < 1:
        raise DistilRankError(f"coec max_rank must be >= 1, got {max_rank}")
    index: dict[tuple[str, str], int] = {}
    rows: list[int] = []
    cols: list[int] = []
    clicks: list[int] = []
    pos_imp = np.zeros(max_rank, dtype=np.int64)
    pos_clk = np.zeros(max_rank, dtype=np.int64)
    fallbacks = 0
    for s in searches:
        shown, clicked, fallback = _search_pairs(s, max_rank)
        fallbacks += fallback
        for doc, pos in shown.items():
            rows.append(index.setdefault((s.user_query, doc), len(index)))
            cols.append(pos - 1)
            clicks.append(doc in clicked)
            pos_imp[pos - 1] += 1
            pos_clk[pos - 1] += doc in clicked
    ctr = np.divide(pos_clk, pos_imp, out=np.zeros(max_rank), where=pos_imp > 0)
    counts = np.zeros((len(index), max_rank), dtype=np.int64)
    np.add.at(counts, (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)), 1)
    pair_clicks = np.bincount(np.asarray(rows, dtype=np.int64), weights=np.asarray(clicks, dtype=np.float64),
                              minlength=len(index))
    expected = counts @ ctr
    best = np.argmax(counts > 0, axis=1) + 1 if len(index) else np.zeros(0, dtype=np.int64)
    pairs = [PairStats(q, d, int(counts[i].sum()), int(pair_clicks[i]), float(expected[i]), int(best[i]))
             for (q, d), i in index.items()]
    return CoecResult([float(x) for x in ctr], [int(x) for x in pos_imp], pairs, len(searches), fallbacks)


def grade(coec: float, thresholds: Sequence[float] = THRESHOLDS) -> float:
    """The 0-3 grade of a COEC: the number of ``thresholds`` (three, increasing) that are ``<= coec``."""
    t = list(thresholds)
    if len(t) != 3 or any(b <= a for a, b in zip(t, t[1:])) or t[0] <= 0:
        raise DistilRankError(f"coec thresholds must be three increasing numbers > 0, got {t}")
    return float(sum(coec >= x for x in t))


def judgments(result: CoecResult, *, min_impressions: int = MIN_IMPRESSIONS,
              thresholds: Sequence[float] = THRESHOLDS) -> dict[str, dict[str, float]]:
    """``{query: {doc: grade}}`` of the pairs with ``>= min_impressions`` impressions (queries in first-seen order)."""
    if min_impressions < 1:
        raise DistilRankError(f"coec min_impressions must be >= 1, got {min_impressions}")
    out: dict[str, dict[str, float]] = {}
    for p in result.pairs:
        if p.impressions >= min_impressions:
            out.setdefault(p.query, {})[p.doc] = grade(p.coec, thresholds)
    return out


def kendall_tau_b(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float | None:
    """Kendall's tau-b of two paired samples: ``(concordant - discordant) / sqrt((n0 - tx) (n0 - ty))`` over the
    ``n0 = n (n - 1) / 2`` pairs, ``tx`` / ``ty`` the pairs tied in ``x`` / ``y``; ``None`` when undefined (fewer
    than 2 items, or one side all tied).  O(n^2) memory: meant for one query's docs."""
    a, b = np.asarray(x, dtype=np.float64).reshape(-1), np.asarray(y, dtype=np.float64).reshape(-1)
    if a.size != b.size:
        raise DistilRankError(f"kendall_tau_b: samples differ in length ({a.size} vs {b.size})")
    iu = np.triu_indices(a.size, k=1)
    sx, sy = np.sign(a[:, None] - a[None, :])[iu], np.sign(b[:, None] - b[None, :])[iu]
    denom = float(np.abs(sx).sum()) * float(np.abs(sy).sum())
    return float((sx * sy).sum() / np.sqrt(denom)) if denom > 0 else None


def agreement(result: CoecResult, human: Mapping[str, Mapping[str, float]], *,
              min_impressions: int = MIN_IMPRESSIONS) -> dict:
    """Mean per-query Kendall tau-b of COEC and of raw CTR against ``human`` grades (``{query: {doc: grade}}``),
    over judged docs with ``>= min_impressions`` impressions, averaged over the queries where both are defined.
    Returns ``{"coec": {"mean_tau", "queries"}, "ctr": {...}, "per_query": {query: {"docs", "coec", "ctr"}},
    "queries", "docs", "queries_undefined", "min_impressions"}``."""
    by_query: dict[str, list[PairStats]] = {}
    for p in result.pairs:
        if p.impressions >= min_impressions and p.doc in human.get(p.query, {}):
            by_query.setdefault(p.query, []).append(p)
    per_query: dict[str, dict] = {}
    for q, ps in by_query.items():
        g = [human[q][p.doc] for p in ps]
        per_query[q] = {"docs": len(ps), "coec": kendall_tau_b([p.coec for p in ps], g),
                        "ctr": kendall_tau_b([p.ctr for p in ps], g)}
    both = [v for v in per_query.values() if v["coec"] is not None and v["ctr"] is not None]
    out: dict = {"min_impressions": min_impressions, "per_query": per_query, "queries": len(both),
                 "docs": sum(v["docs"] for v in both), "queries_undefined": len(per_query) - len(both)}
    for key in ("coec", "ctr"):
        out[key] = {"mean_tau": float(np.mean([v[key] for v in both])) if both else None, "queries": len(both)}
    return out


# --- writers -----------------------------------------------------------------------------------------------------

def srw_import_body(grades: Mapping[str, Mapping[str, float]], *, name: str, description: str | None = None) -> dict:
    """The body of SRW's ``PUT /_plugins/_search_relevance/judgments`` for ``IMPORT_JUDGMENT``:
    ``{"name", "description", "type": "IMPORT_JUDGMENT", "judgmentRatings": [{"query", "ratings": [{"docId",
    "rating"}]}]}``.

    Field names as read in ``RestPutJudgmentAction.java`` (``name``, ``description``, ``type``,
    ``judgmentRatings``) and ``judgments/ImportJudgmentsProcessor.java`` (``query``, ``ratings``, ``docId``,
    ``rating``) of ``opensearch-project/search-relevance`` (commit d8be5d1 and later).  Ratings are written as
    strings (``"2.0"``): the 3.1 processor casts them to ``String`` (a JSON number fails there), later ones take
    ``String.valueOf`` of either.  SRW refuses a name or description that is empty, longer than 2,000 characters or
    holds ``" \\ < >`` (``TextValidationUtil``); so does this function."""
    for what, text in (("name", name), ("description", description)):
        if text is None and what == "description":
            continue
        if not text or len(text) > 2000 or any(c in text for c in '"\\<>'):
            raise DistilRankError(f"SRW judgment {what} {text!r}: must be 1-2000 characters without \" \\ < >")
    body: dict = {"name": name, "type": "IMPORT_JUDGMENT"}
    if description is not None:
        body["description"] = description
    body["judgmentRatings"] = [{"query": q, "ratings": [{"docId": d, "rating": str(float(g))} for d, g in docs.items()]}
                               for q, docs in grades.items() if docs]
    return body


def write_srw(path: str | Path, grades: Mapping[str, Mapping[str, float]], *, name: str,
              description: str | None = None) -> Path:
    """Write :func:`srw_import_body` as JSON to ``path`` (atomically); readable by
    :func:`distilrank.judgments.load_judgments`."""
    write_json(path, srw_import_body(grades, name=name, description=description))
    return Path(path)


def write_csv(path: str | Path, grades: Mapping[str, Mapping[str, float]]) -> Path:
    """Write ``query,docid,rating`` rows (header first, RFC 4180 quoting) to ``path`` (atomically): the CSV that
    ``ab run`` and training read (:func:`distilrank.judgments.load_judgments`)."""
    with atomic_open(path, newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["query", "docid", "rating"])
        for q, docs in grades.items():
            for d, g in docs.items():
                w.writerow([q, d, f"{float(g):g}"])
    return Path(path)
