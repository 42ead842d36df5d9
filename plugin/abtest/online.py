"""Per-arm online metrics of a UBI click log, compared between users (the unit the router randomises).

Metrics of one arm, each a ratio over the arm's searches (:data:`METRICS`):

* ``ctr``: searches with >= 1 click event / searches;
* ``mrr``: mean over searches of ``1 / position`` of the search's *first* click in time (events are in timestamp
  order) whose position is known: the 1-based position in the shown list from the event or, when the event has
  none, the clicked id's place in ``hit_ids``; a search without such a click counts 0;
* ``abandonment``: searches with neither a click nor an ``add_to_cart`` / searches;
* ``add_to_cart_rate``: searches with >= 1 ``add_to_cart`` / searches; only computed when the analysed searches
  hold at least one ``add_to_cart`` event (a front end that never logs carts would otherwise read as 0).

Arms are assigned per user, so the unit of every statistic is a *user* of an arm: a ``(client_id, arm)`` pair
(a client seen in two arms, e.g. after a re-salt, is two units; :attr:`OnlineTable.clients_in_several_arms`
counts them).  A metric is ``sum over units of the unit's numerator / sum of its searches``:

* CIs: cluster bootstrap.  Each resample draws the arm's units with replacement (as many as it has) and
  recomputes the ratio over all their searches; percentile interval.  The difference vs the control arm draws
  both arms independently (they are independent samples of users) and takes percentiles of the differences.
* p-values: randomization test of "the arm label does not matter".  The two arms' units are pooled, the arm
  labels are permuted between *units* (a user keeps all their searches), the difference of the ratio
  metrics is recomputed; two-sided ``p = (1 + #{|d_perm| >= |d_obs|}) / (1 + permutations)``.
* Holm-Bonferroni over every (arm, metric) comparison vs the control (one family), reject at ``alpha``.

``cluster_by="search"`` treats every search as its own unit instead; it exists to show (and test) how much
narrower the naive search-level intervals are, never to report.

Everything is numpy: per-unit sums ``S [units, 5]``; bootstrap weights from ``bincount`` of drawn indices and
``W @ S``; permutations as boolean label matrices and ``M @ S``, in chunks of bounded memory.  Randomness is
seeded from ``(seed, arm index, purpose)`` and deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from distilrank.errors import DistilRankError
from distilrank.plugin.abtest.stats import holm
from distilrank.plugin.ubi.records import ADD_TO_CART, CLICK, LoggedSearch, UbiEvent

METRICS = ("ctr", "mrr", "abandonment", "add_to_cart_rate")
#: columns of the per-unit sums: searches, then one numerator per metric of :data:`METRICS`
_N = 0
_CHUNK_CELLS = 4_000_000  # bootstrap weights / permutation labels held at once (rows x units)
_REL_TOL = 1e-9


def click_position(search: LoggedSearch, event: UbiEvent) -> int | None:
    """The 1-based position an event acted on: its logged position, else its object id's place in ``hit_ids``,
    else ``None``."""
    if event.position is not None and event.position >= 1:
        return event.position
    if event.object_id is not None and event.object_id in search.hit_ids:
        return search.hit_ids.index(event.object_id) + 1
    return None


def search_outcome(search: LoggedSearch) -> tuple[float, float, float, float]:
    """``(clicked, reciprocal rank of the first click, abandoned, added to cart)`` of one search: 0/1 floats and the
    reciprocal rank in [0, 1] (of the first click in time whose position is known, see :func:`click_position`)."""
    clicks = [e for e in search.events if e.action == CLICK]
    atc = any(e.action == ADD_TO_CART for e in search.events)
    rr = 0.0
    for e in clicks:
        pos = click_position(search, e)
        if pos is not None:
            rr = 1.0 / pos
            break
    return float(bool(clicks)), rr, float(not clicks and not atc), float(atc)


@dataclass(frozen=True)
class OnlineTable:
    """The per-unit sums of a set of searches.  ``arm_names[unit_arm[u]]`` is unit ``u``'s arm, ``unit_client[u]``
    its client id; ``sums[u] = (searches, clicked, sum of first-click reciprocal ranks, abandoned, carted)``;
    ``has_add_to_cart``: any search has an ``add_to_cart`` event."""

    arm_names: list[str]
    unit_arm: np.ndarray
    unit_client: list[str]
    sums: np.ndarray
    has_add_to_cart: bool
    clients_in_several_arms: int

    def metrics(self) -> list[str]:
        """The metrics this table reports (``add_to_cart_rate`` only with carts in the log)."""
        return list(METRICS if self.has_add_to_cart else METRICS[:3])

    def arm_sums(self, arm: str) -> np.ndarray:
        """``sums`` rows of the units of ``arm``."""
        return self.sums[self.unit_arm == self.arm_names.index(arm)]


def build_table(searches: Sequence[LoggedSearch], arm_names: Sequence[str], *, cluster_by: str = "client") -> OnlineTable:
    """Per-unit sums of ``searches`` (each must have an arm in ``arm_names``); units are ``(client_id, arm)``
    pairs, or single searches with ``cluster_by="search"``."""
    if cluster_by not in ("client", "search"):
        raise DistilRankError(f"cluster_by must be 'client' or 'search', got {cluster_by!r}")
    index = {a: i for i, a in enumerate(arm_names)}
    units: dict[tuple[str, int], int] = {}
    rows = np.zeros((len(searches), 5), dtype=np.float64)
    unit_of = np.zeros(len(searches), dtype=np.int64)
    arms_of_client: dict[str, set[int]] = {}
    for i, s in enumerate(searches):
        a = s.arm
        if a not in index:
            raise DistilRankError(f"search {s.query_id!r}: arm {a!r} is not one of {list(arm_names)}")
        key = (s.client_id if cluster_by == "client" else f"{s.client_id}\x00{i}", index[a])
        unit_of[i] = units.setdefault(key, len(units))
        arms_of_client.setdefault(s.client_id, set()).add(index[a])
        rows[i, 0] = 1.0
        rows[i, 1:] = search_outcome(s)
    sums = np.zeros((len(units), 5), dtype=np.float64)
    np.add.at(sums, unit_of, rows)
    keys = list(units)
    return OnlineTable(list(arm_names), np.array([k[1] for k in keys], dtype=np.int64),
                       [k[0].split("\x00")[0] for k in keys], sums, bool(rows[:, 4].any()),
                       sum(1 for v in arms_of_client.values() if len(v) > 1))


def ratio(sums: np.ndarray) -> np.ndarray:
    """The metrics ``[..., 4]`` of summed rows ``[..., 5]`` (numerators over searches; nan without searches)."""
    n = sums[..., _N:_N + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums[..., 1:] / n


def bootstrap_draws(sums: np.ndarray, *, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``[resamples, 4]`` metric values of cluster-bootstrap resamples of the units ``sums [m, 5]`` (each resample
    draws ``m`` units with replacement)."""
    m = sums.shape[0]
    if m == 0:
        return np.full((resamples, 4), np.nan)
    out = np.empty((resamples, 4), dtype=np.float64)
    chunk = max(1, _CHUNK_CELLS // m)
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        idx = rng.integers(0, m, size=(rows, m)) + (np.arange(rows) * m)[:, None]
        weights = np.bincount(idx.ravel(), minlength=rows * m).reshape(rows, m).astype(np.float64)
        out[start:start + rows] = ratio(weights @ sums)
    return out


def permutation_p(sums_arm: np.ndarray, sums_control: np.ndarray, *, permutations: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Two-sided randomization p-values ``[4]`` of ``metric(arm) - metric(control)``, permuting arm labels between
    the pooled units (see the module docstring); nan where the observed difference is undefined."""
    if permutations < 1:
        raise DistilRankError(f"permutations must be >= 1, got {permutations}")
    pooled = np.concatenate([sums_arm, sums_control])
    total = pooled.sum(axis=0)
    observed = ratio(sums_arm.sum(axis=0)) - ratio(sums_control.sum(axis=0))
    cut = np.abs(observed) - _REL_TOL * np.maximum(1.0, np.abs(observed))
    labels = np.zeros(pooled.shape[0], dtype=np.float64)
    labels[:sums_arm.shape[0]] = 1.0
    hits = np.zeros(4, dtype=np.int64)
    chunk = max(1, _CHUNK_CELLS // max(1, pooled.shape[0]))
    for start in range(0, permutations, chunk):
        rows = min(chunk, permutations - start)
        mask = rng.permuted(np.broadcast_to(labels, (rows, labels.size)), axis=1)
        in_arm = mask @ pooled
        diff = ratio(in_arm) - ratio(total - in_arm)
        with np.errstate(invalid="ignore"):
            hits += np.count_nonzero(np.abs(diff) >= cut, axis=0)
    p = (1.0 + hits) / (1.0 + permutations)
    return np.where(np.isfinite(observed), p, np.nan)


def _ci(draws: np.ndarray, alpha: float) -> list[tuple[float, float] | None]:
    out: list[tuple[float, float] | None] = []
    for col in draws.T:
        col = col[np.isfinite(col)]
        out.append((float(np.quantile(col, alpha / 2)), float(np.quantile(col, 1 - alpha / 2))) if col.size else None)
    return out


def _value(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def compare_arms(table: OnlineTable, control: str, *, alpha: float = 0.05, resamples: int = 2000,
                 permutations: int = 2000, seed: int = 0) -> dict:
    """Per-arm metrics with cluster-bootstrap CIs and every other arm vs ``control`` (difference, its CI, the
    unit-permutation p-value, Holm-adjusted p, ``significant`` = Holm p <= ``alpha``).

    Returns ``{"metrics": [...], "arms": {arm: {"searches", "users", "metrics": {m: {"value", "ci95"}}}},
    "comparisons": [{"arm", "control", "metric", "value_arm", "value_control", "diff", "ci95", "p_value",
    "p_holm", "significant", "users_arm", "users_control"}]}``; undefined numbers are ``None``."""
    if control not in table.arm_names:
        raise DistilRankError(f"control arm {control!r} is not one of the arms {table.arm_names}")
    if not 0.0 < alpha < 1.0:
        raise DistilRankError(f"alpha must be in (0, 1), got {alpha}")
    metrics = table.metrics()
    arms: dict[str, dict] = {}
    draws: dict[str, np.ndarray] = {}
    for i, a in enumerate(table.arm_names):
        s = table.arm_sums(a)
        draws[a] = bootstrap_draws(s, resamples=resamples, rng=np.random.default_rng([seed, i, 1]))
        values, cis = ratio(s.sum(axis=0)), _ci(draws[a], alpha)
        arms[a] = {"searches": int(s[:, _N].sum()), "users": len({table.unit_client[u] for u in np.flatnonzero(
                   table.unit_arm == i)}), "units": int(s.shape[0]),
                   "metrics": {m: {"value": _value(values[j]), "ci95": cis[j]} for j, m in enumerate(metrics)}}
    comparisons = []
    for i, a in enumerate(table.arm_names):
        if a == control:
            continue
        sa, sc = table.arm_sums(a), table.arm_sums(control)
        diff = ratio(sa.sum(axis=0)) - ratio(sc.sum(axis=0))
        if sa.shape[0] and sc.shape[0]:
            p = permutation_p(sa, sc, permutations=permutations, rng=np.random.default_rng([seed, i, 2]))
        else:
            p = np.full(4, np.nan)
        cis = _ci(draws[a] - draws[control], alpha)
        for j, m in enumerate(metrics):
            comparisons.append({"arm": a, "control": control, "metric": m, "value_arm": arms[a]["metrics"][m]["value"],
                                "value_control": arms[control]["metrics"][m]["value"], "diff": _value(diff[j]),
                                "ci95": cis[j], "p_value": _value(p[j]), "users_arm": arms[a]["users"],
                                "users_control": arms[control]["users"]})
    for c, adj in zip(comparisons, holm([c["p_value"] for c in comparisons])):
        c["p_holm"] = adj
        c["significant"] = adj is not None and adj <= alpha
    return {"metrics": metrics, "arms": arms, "comparisons": comparisons}
