"""``ab online`` from a :class:`~distilrank.plugin.ubi.records.UbiLog` to the results dict its report is written from.

Which searches feed what:

* per-arm metrics (:mod:`.online`): the searches of the configured experiment (``query_attributes.experiment``;
  see :attr:`OnlineConfig.experiment_filter`) that have an arm (of ``arms`` when configured) and are *not*
  interleaved (an interleaved list is neither arm's ranking).  Every other search is counted in ``excluded``
  by reason, and each non-zero reason becomes a note;
* interleaving credit (:mod:`.click_interleaving`): the experiment's searches with ``teams``;
* COEC judgments (:mod:`.coec`): every search read (all experiments and arms of the time range): a judgment is
  about a query and a document, whichever arm showed it, and the position CTR needs every impression.

The results (schema :data:`SCHEMA`) are plain JSON-able data; :mod:`.online_report` validates and writes them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping

from distilrank.errors import DistilRankError
from distilrank.plugin.abtest import coec
from distilrank.plugin.abtest.click_interleaving import TEAMS, interleaving_results
from distilrank.plugin.abtest.online import build_table, compare_arms
from distilrank.plugin.abtest.online_config import OnlineConfig
from distilrank.plugin.ubi.records import LoggedSearch, UbiLog

SCHEMA = "distilrank.ab_online/1"
EXCLUDED = {
    "other_experiment": "searches of another experiment (query_attributes.experiment)",
    "no_arm": "searches without an arm in query_attributes (not in an experiment)",
    "arm_not_configured": "searches of an arm not listed in online.arms",
    "interleaved": "interleaved searches (teams logged): used for interleaving credit only",
}


def is_simulated(search: LoggedSearch) -> bool:
    """``query_attributes.simulated`` is ``true`` (a JSON boolean, or the string ``"true"`` the UBI plugin stores)."""
    v = search.attributes.get("simulated")
    return v is True or (isinstance(v, str) and v.strip().lower() == "true")


def select(log: UbiLog, cfg: OnlineConfig) -> tuple[list[LoggedSearch], list[LoggedSearch], Counter[str]]:
    """``(A/B searches, interleaved searches, excluded counts by EXCLUDED key)`` of the configured experiment."""
    want = cfg.experiment_filter
    arms = set(cfg.online.arms) if cfg.online.arms else None
    ab: list[LoggedSearch] = []
    inter: list[LoggedSearch] = []
    excluded: Counter[str] = Counter()
    for s in log.searches:
        if want is not None and str(s.attributes.get("experiment")) != want:
            excluded["other_experiment"] += 1
        elif TEAMS in s.attributes:
            inter.append(s)
            excluded["interleaved"] += 1
        elif s.arm is None:
            excluded["no_arm"] += 1
        elif arms is not None and s.arm not in arms:
            excluded["arm_not_configured"] += 1
        else:
            ab.append(s)
    return ab, inter, excluded


def _arm_names(cfg: OnlineConfig, ab: list[LoggedSearch], log: UbiLog) -> list[str]:
    """The configured arms, or the arms seen (control first, then in first-seen order)."""
    seen = list(dict.fromkeys(str(s.arm) for s in ab))
    names = list(cfg.online.arms) if cfg.online.arms else seen
    if cfg.online.control not in seen:
        experiments = sorted({str(s.attributes.get("experiment")) for s in log.searches})[:10]
        raise DistilRankError(f"{cfg.path}: field 'online.control': arm {cfg.online.control!r} has no search in the "
                              f"selected log (arms seen: {seen or 'none'}; experiments seen: {experiments}; "
                              f"{len(log.searches)} searches read): check online.experiment, the time range and the arm name")
    return [cfg.online.control] + [a for a in names if a != cfg.online.control]


def coec_section(log: UbiLog, cfg: OnlineConfig, human: Mapping[str, Mapping[str, float]] | None) -> tuple[dict, dict]:
    """``(report section, {query: {doc: grade}})`` of the COEC judgments over every search of ``log``."""
    c = cfg.coec
    res = coec.coec_stats(log.searches, max_rank=c.max_rank)
    grades = coec.judgments(res, min_impressions=c.min_impressions, thresholds=c.thresholds)
    counts = Counter(g for docs in grades.values() for g in docs.values())
    section = {"max_rank": c.max_rank, "min_impressions": c.min_impressions, "thresholds": list(c.thresholds),
               "position_ctr": res.position_ctr, "position_impressions": res.position_impressions,
               "searches": res.searches, "searches_without_impressions": res.searches_without_impressions,
               "pairs": len(res.pairs), "pairs_judged": sum(len(d) for d in grades.values()),
               "queries_judged": len(grades), "grade_counts": {f"{g:g}": counts.get(g, 0) for g in (0.0, 1.0, 2.0, 3.0)},
               "agreement": None if human is None else coec.agreement(res, human, min_impressions=c.agreement_min_impressions)}
    return section, grades


def _notes(log: UbiLog, excluded: Counter[str], clients_several: int, simulated: int) -> list[str]:
    notes = []
    if simulated:
        notes.append(f"SIMULATED: {simulated} of {len(log.searches)} searches are labelled simulated "
                     "(query_attributes.simulated); these are not real users' clicks.")
    for key, n in excluded.items():
        if n:
            notes.append(f"Excluded from the per-arm metrics: {n} {EXCLUDED[key]}.")
    if clients_several:
        notes.append(f"{clients_several} client ids appear in more than one arm; each (client, arm) is its own unit.")
    if log.malformed:
        notes.append(f"{sum(log.malformed.values())} UBI documents or events could not be used (see 'Malformed data').")
    return notes


def analyse(log: UbiLog, cfg: OnlineConfig, *, human: Mapping[str, Mapping[str, float]] | None = None) -> tuple[dict, dict]:
    """The ``ab online`` results (schema :data:`SCHEMA`) of ``log`` and the COEC grades ``{query: {doc: grade}}``
    (empty with ``coec.enabled = false``).  ``human``: grades to measure the COEC agreement with."""
    t0 = time.perf_counter()
    o = cfg.online
    ab, inter, excluded = select(log, cfg)
    arm_names = _arm_names(cfg, ab, log)
    table = build_table(ab, arm_names)
    stats = compare_arms(table, o.control, alpha=o.alpha, resamples=o.resamples, permutations=o.permutations, seed=o.seed)
    t_ab = time.perf_counter()
    inter_res = interleaving_results(inter, control=o.control, alpha=o.alpha)
    coec_res, grades = coec_section(log, cfg, human) if cfg.coec.enabled else (None, {})
    simulated = sum(1 for s in log.searches if is_simulated(s))
    results = {
        "schema": SCHEMA, "name": o.name, "experiment": cfg.experiment_filter, "control": o.control,
        "time_range": {"start": cfg.start.isoformat(), "end": cfg.end.isoformat()},
        "indexes": {"queries": o.queries_index, "events": o.events_index},
        "searches_read": len(log.searches), "searches_analysed": len(ab), "excluded": dict(excluded),
        "arm_names": arm_names, **stats, "clients_in_several_arms": table.clients_in_several_arms,
        "interleaving": inter_res, "coec": coec_res,
        "malformed": {r: {"count": n, "examples": list(log.examples.get(r, []))} for r, n in log.malformed.most_common()},
        "simulated": {"searches": simulated, "of": len(log.searches)},
        "settings": {"alpha": o.alpha, "resamples": o.resamples, "permutations": o.permutations, "seed": o.seed,
                     "unit": "user (client_id, arm)", "holm_family": "every (arm, metric) comparison vs the control"},
        "notes": _notes(log, excluded, table.clients_in_several_arms, simulated),
        "timing_s": {"ab": round(t_ab - t0, 3), "total": round(time.perf_counter() - t0, 3)},
    }
    return results, grades
