"""Sticky live-traffic router for staging A/B experiments (stdlib only, no numpy, no opensearch import).

Each user (or session) id is hashed with the experiment's salt,
``u = int(sha256(salt + "\\x00" + id)[:8 bytes]) / 2^64`` (uniform in ``[0, 1)``),
and lands in the arm whose cumulative share interval ``[c_{i-1}, c_i)`` (shares
``weight_percent / 100`` in the configured arm order) holds ``u``.  So the same
id always gets the same arm for the same salt and weights, a new salt reshuffles
everyone, and each arm receives its configured share of a large population.

An arm is a search pipeline, a search body template, or both:

* ``search_pipeline`` is the OpenSearch search pipeline to run (e.g. the distilled-student rerank pipeline);
  ``None`` means "the index default", i.e. no ``search_pipeline`` parameter is sent (``"_none"`` switches an index
  default off);
* ``template`` is a whole search body (``query``, a ``rescore`` block such as the distilrank rescorer's, ``ext``,
  ``size`` ...) in which every ``"{{query}}"`` inside a string is replaced by the user's query text
  (JSON-escaped, as ``ab run`` configs do): :meth:`Assignment.search_body` renders it.  ``None`` means the caller
  brings the body;
* ``model_id`` / ``alias``: the student the arm serves (``None`` for a plain BM25 arm), logged with each search.

Log :meth:`Assignment.query_attributes` (experiment, arm, model id, alias) with every query, e.g. as UBI's
``query_attributes``, and ``Assignment.variant_tag`` (``"<experiment>:<arm>"``) as ``X-Opaque-Id``, so clicks and
latencies can be attributed to arms later.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from distilrank.errors import DistilRankError

_TOTAL = 100.0
_TOL = 1e-6  # weights must sum to 100 within this
PLACEHOLDER = "{{query}}"


@dataclass(frozen=True)
class Arm:
    """One variant: ``name`` (unique, no ``':'``), ``search_pipeline`` (``None`` = index default),
    ``weight_percent`` (share of traffic in percent, ``>= 0``), and optionally the search body ``template`` (a
    JSON object with :data:`PLACEHOLDER` where the query text goes), the ``model_id`` and ``alias`` it serves."""

    name: str
    search_pipeline: str | None
    weight_percent: float
    template: dict | None = field(default=None, hash=False)
    model_id: str | None = None
    alias: str | None = None


@dataclass(frozen=True)
class Assignment:
    """The arm chosen for one id.  ``bucket`` is the id's hash position ``u`` in ``[0, 1)``; ``template``,
    ``model_id`` and ``alias`` are the arm's (``None`` where the arm has none)."""

    experiment: str
    arm: str
    search_pipeline: str | None
    variant_tag: str
    bucket: float
    template: dict | None = field(default=None, hash=False)
    model_id: str | None = None
    alias: str | None = None

    def query_attributes(self) -> dict[str, str | None]:
        """What a search log records about the assignment (UBI ``query_attributes``): ``experiment``, ``arm``,
        ``model_id``, ``alias`` (``None`` where not applicable; a writer may drop ``None`` values)."""
        return {"experiment": self.experiment, "arm": self.arm, "model_id": self.model_id, "alias": self.alias}

    def search_params(self) -> dict[str, str]:
        """URL parameters of the arm's search: ``{"search_pipeline": name}``, or ``{}`` for the index default."""
        return {} if self.search_pipeline is None else {"search_pipeline": self.search_pipeline}

    def search_body(self, query_text: str, *, size: int | None = None) -> dict:
        """The arm's ``template`` with every :data:`PLACEHOLDER` replaced by ``query_text`` (JSON-escaped), a new
        dict each call; ``size`` (hits returned) overrides the template's. Raises :class:`DistilRankError` for an arm
        without a template (the caller brings the body) or a query text that is not a non-empty string."""
        if self.template is None:
            raise DistilRankError(f"arm {self.arm!r} of experiment {self.experiment!r} has no search body template: "
                                  "pass the body yourself")
        return render_template(self.template, query_text, size=size)


def render_template(template: dict, query_text: str, *, size: int | None = None) -> dict:
    """``template`` with every :data:`PLACEHOLDER` inside its strings replaced by ``query_text`` (JSON-escaped, so
    quotes and backslashes in the text stay text); ``size`` set when given (``>= 0``)."""
    if not isinstance(query_text, str) or not query_text.strip():
        raise DistilRankError(f"query text must be a non-empty string, got {query_text!r}")
    text = json.dumps(template).replace(PLACEHOLDER, json.dumps(query_text)[1:-1])
    body = json.loads(text)
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise DistilRankError(f"size must be an int >= 0, got {size!r}")
        body["size"] = size
    return body


def _check_template(exp: str, arm: Arm) -> None:
    """A template must be a JSON object with the placeholder; model id and alias non-empty strings or ``None``."""
    where = f"experiment {exp!r}: arm {arm.name!r}"
    if arm.template is not None:
        if not isinstance(arm.template, dict):
            raise DistilRankError(f"{where} template must be a search body (a dict), got {type(arm.template).__name__}")
        try:
            text = json.dumps(arm.template)
        except (TypeError, ValueError) as exc:
            raise DistilRankError(f"{where} template is not JSON: {exc}") from None
        if PLACEHOLDER not in text:
            raise DistilRankError(f"{where} template must contain {PLACEHOLDER} where the query text goes")
    for name in ("model_id", "alias"):
        value = getattr(arm, name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise DistilRankError(f"{where} {name} must be None or a non-empty string, got {value!r}")


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
    summing to 100, an empty salt, a search pipeline that is not ``None`` or a non-empty string, a
    template that is not a JSON object containing ``{{query}}``, or an empty model id / alias.
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
            _check_template(name, arm)
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
        return Assignment(self.name, chosen.name, chosen.search_pipeline, f"{self.name}:{chosen.name}", u,
                          chosen.template, chosen.model_id, chosen.alias)


def search_with_assignment(client: Any, index: str, body: Any, assignment: Assignment, *, opaque_id: bool = True,
                           query_text: str | None = None, **params: Any) -> tuple[Any, Assignment]:
    """Run ``client.search`` (an ``opensearchpy.OpenSearch``) for the assigned arm; return ``(response, assignment)``.

    ``body=None`` renders the arm's template with ``query_text`` (:meth:`Assignment.search_body`).

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
    if body is None:
        if query_text is None:
            raise DistilRankError("search_with_assignment: give a body, or query_text for the arm's template")
        body = assignment.search_body(query_text)
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
