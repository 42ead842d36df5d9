"""Sticky live-traffic router for staging A/B experiments (stdlib only, no numpy, no opensearch import).

Each user (or session) id is hashed with the experiment's salt,
``u = int(sha256(salt + "\\x00" + id)[:8 bytes]) / 2^64`` (uniform in ``[0, 1)``),
and lands in the arm whose cumulative share interval ``[c_{i-1}, c_i)`` (shares
``weight_percent / 100`` in the configured arm order) holds ``u``.  So the same
id always gets the same arm for the same salt and weights, a new salt reshuffles
everyone, and each arm receives its configured share of a large population.

The arm's ``search_pipeline`` is the OpenSearch search pipeline to run (e.g.
the distilled-student rerank pipeline); ``None`` means "the index default",
i.e. no ``search_pipeline`` parameter is sent.  Log ``Assignment.variant_tag``
(``"<experiment>:<arm>"``) with every query so clicks and latencies can be
attributed to arms later.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from distilrank.errors import DistilRankError

_TOTAL = 100.0
_TOL = 1e-6  # weights must sum to 100 within this


@dataclass(frozen=True)
class Arm:
    """One variant: ``name`` (unique, no ``':'``), ``search_pipeline`` (``None`` = index default)
    and ``weight_percent`` (share of traffic in percent, ``>= 0``)."""

    name: str
    search_pipeline: str | None
    weight_percent: float


@dataclass(frozen=True)
class Assignment:
    """The arm chosen for one id.  ``bucket`` is the id's hash position ``u`` in ``[0, 1)``."""

    experiment: str
    arm: str
    search_pipeline: str | None
    variant_tag: str
    bucket: float


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DistilRankError(f"{what} must be a non-empty string, got {value!r}")
    if ":" in value:
        raise DistilRankError(f"{what} {value!r} must not contain ':' (it separates experiment and arm in variant tags)")
    return value


class Experiment:
    """An experiment ``name`` with a ``salt`` and ``arms`` whose ``weight_percent`` sum to 100.

    Raises :class:`DistilRankError` naming the experiment and the arm for: no arms, empty or
    duplicate arm names, a name containing ``':'``, a negative / non-finite weight, weights not
    summing to 100, an empty salt, or a search pipeline that is not ``None`` or a non-empty string.
    """

    def __init__(self, name: str, salt: str, arms: Sequence[Arm]):
        self.name = _name(name, "experiment name")
        if not isinstance(salt, str) or not salt:
            raise DistilRankError(f"experiment {name!r}: salt must be a non-empty string, got {salt!r}")
        self.salt = salt
        arms = list(arms)
        if not arms:
            raise DistilRankError(f"experiment {name!r}: needs at least one arm")
        seen: set[str] = set()
        for i, arm in enumerate(arms):
            if not isinstance(arm, Arm):
                raise DistilRankError(f"experiment {name!r}: arm #{i} is {type(arm).__name__}, expected Arm")
            _name(arm.name, f"experiment {name!r}: arm #{i} name")
            if arm.name in seen:
                raise DistilRankError(f"experiment {name!r}: duplicate arm name {arm.name!r}")
            seen.add(arm.name)
            w = arm.weight_percent
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                raise DistilRankError(f"experiment {name!r}: arm {arm.name!r} weight_percent must be a finite number >= 0, got {w!r}")
            if arm.search_pipeline is not None and (not isinstance(arm.search_pipeline, str) or not arm.search_pipeline.strip()):
                raise DistilRankError(f"experiment {name!r}: arm {arm.name!r} search_pipeline must be None or a non-empty string")
        total = math.fsum(a.weight_percent for a in arms)
        if abs(total - _TOTAL) > _TOL:
            raise DistilRankError(f"experiment {name!r}: arm weight_percent values sum to {total:g}, expected 100 "
                                  f"({', '.join(f'{a.name}={a.weight_percent:g}' for a in arms)})")
        self.arms = tuple(arms)
        cum, acc = [], 0.0
        for a in arms:
            acc += a.weight_percent
            cum.append(acc / _TOTAL)
        self._cumulative = cum

    def __repr__(self) -> str:
        return f"Experiment({self.name!r}, salt={self.salt!r}, arms={list(self.arms)!r})"

    def bucket(self, unit_id: str | int) -> float:
        """The id's hash position ``u`` in ``[0, 1)``: first 8 bytes of ``sha256(salt + NUL + id)`` / 2^64."""
        if isinstance(unit_id, bool) or not isinstance(unit_id, (str, int)) or unit_id == "":
            raise DistilRankError(f"experiment {self.name!r}: user/session id must be a non-empty string or an int, got {unit_id!r}")
        digest = hashlib.sha256(f"{self.salt}\x00{unit_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0 ** 64

    def assign(self, unit_id: str | int) -> Assignment:
        """The sticky arm of a user/session id (same salt + weights + id -> same arm)."""
        u = self.bucket(unit_id)
        for arm, c in zip(self.arms, self._cumulative):
            if u < c and arm.weight_percent > 0:
                chosen = arm
                break
        else:  # float rounding left u above the last boundary: last arm with a positive weight
            chosen = next(a for a in reversed(self.arms) if a.weight_percent > 0)
        return Assignment(self.name, chosen.name, chosen.search_pipeline, f"{self.name}:{chosen.name}", u)


def search_with_assignment(client: Any, index: str, body: Any, assignment: Assignment, *, opaque_id: bool = True,
                           **params: Any) -> tuple[Any, Assignment]:
    """Run ``client.search`` (an ``opensearchpy.OpenSearch``) for the assigned arm; return ``(response, assignment)``.

    Calls ``client.search(index=index, body=body, params=params)`` where ``params`` are the
    extra URL parameters given here plus ``search_pipeline=<arm pipeline>``; when the arm's
    pipeline is ``None`` no ``search_pipeline`` parameter is sent (the index default applies).
    With ``opaque_id`` the variant tag is sent as the ``X-Opaque-Id`` header, which OpenSearch
    copies into slow logs and the tasks API.  Passing ``search_pipeline`` yourself is an error:
    the assignment decides it.  Booleans are sent as ``true``/``false`` and lists comma-joined,
    as opensearch-py does for its keyword parameters.
    """
    if "search_pipeline" in params:
        raise DistilRankError("search_with_assignment: do not pass search_pipeline, the assignment decides it "
                              f"(arm {assignment.arm!r} -> {assignment.search_pipeline!r})")
    query = {k: _url_value(v) for k, v in params.items()}
    if assignment.search_pipeline is not None:
        query["search_pipeline"] = assignment.search_pipeline
    kwargs: dict[str, Any] = {"index": index, "body": body, "params": query}
    if opaque_id:
        kwargs["headers"] = {"X-Opaque-Id": assignment.variant_tag}
    return client.search(**kwargs), assignment


def _url_value(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return v
