"""A session simulator: simulated users search a real index through A/B arms and click by human judgments; the
searches and events are written into the cluster in UBI format (everything labelled simulated).

Users: ``users`` client ids (``sim-<seed>-<n>``), each assigned to an arm by the experiment's sticky hash
(:meth:`distilrank.plugin.abtest.router.Experiment.assign`: per user, the same arm for all their searches). Each
search picks a user and a judged query uniformly at random (seeded), runs the user's arm, shows its top ``k`` hits and
simulates one user on them with the position-based click model of :class:`SessionModel`:

* P(examine rank r) = (1 / r) ** eta (r 1-based, eta = 1 by default), independently per rank;
* P(click | examined, grade) from :data:`CLICK_PROB` (the row of the largest grade <= the hit's grade):

  =====  ==========================  ====================================
  grade  P(click | examined)         P(add_to_cart | clicked)
  =====  ==========================  ====================================
  0      0.03                        0.00
  1      0.10                        0.02
  2      0.25                        0.10
  3      0.60                        0.30
  none   0.02 (unjudged hit)         0.00 (unjudged hit)
  =====  ==========================  ====================================

  Each grade step multiplies P(click) by 2.4-3.3, so clicks over expected clicks order documents like their grades;
  0.60 rather than ~0.9 at the top keeps click-through below saturation, so rankings can differ in it. Grades are on
  the 0-3 scale of the bundled ``examples/esci-small`` judgments (E=3, S=2, C=1, I=0);
* every shown hit gets an ``impression`` event, each click a ``click`` event, and a click an ``add_to_cart`` event
  with P(add_to_cart | clicked, grade) from :data:`CART_PROB`.

Interleaved mode (``interleave=(arm_a, arm_b)``): every search shows the team-draft interleaving of the two arms'
rankings as a front end would (:func:`distilrank.plugin.abtest.click_interleaving.interleaved_list`, coin flips seeded
by ``seed`` and the query id), and ``query_attributes.teams`` records each shown hit's arm (``"shared"`` for the
common prefix).

Searches are real searches on the node, but cached per (arm, query): an arm's results for a query do not change while
the index does not (same body, same pipeline, deterministic scoring), so each distinct pair is searched once and the
result reused for every simulated user. ``ubi_queries`` documents are written by the front-end path
(:func:`distilrank.plugin.ubi.search_log.ubi_query_doc`), events as :func:`~distilrank.plugin.ubi.search_log.ubi_event_doc`,
both with ``_bulk`` in batches. Labels: ``application`` = ``distilrank-simulator``, ``query_attributes.simulated`` =
``"true"``, ``event_attributes.simulated`` = ``true``.

Reproducible: the same ``seed``, ``start``, arms, judgments and index give the same documents (query ids are drawn
from the seeded generator; document ids are the query id and ``<query id>-<n>``, so a rerun overwrites rather than
duplicates). Search ``i`` (0-based) is at ``start + i * spacing`` (UTC); its events follow within seconds.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from distilrank.errors import DistilRankError
from distilrank.plugin import index_api
from distilrank.plugin.abtest.click_interleaving import interleaved_list
from distilrank.plugin.abtest.interleaving import ClickModel
from distilrank.plugin.abtest.router import Arm, Assignment, Experiment
from distilrank.plugin.transport import Transport
from distilrank.plugin.ubi import schema
from distilrank.plugin.ubi.records import ADD_TO_CART, CLICK, IMPRESSION
from distilrank.plugin.ubi.search_log import hit_ids, new_query_id, ubi_event_doc, ubi_query_doc

APPLICATION = "distilrank-simulator"
#: P(click | examined, grade): the row of the largest grade <= the hit's grade
CLICK_PROB: dict[float, float] = {0: 0.03, 1: 0.10, 2: 0.25, 3: 0.60}
#: P(add_to_cart | clicked, grade)
CART_PROB: dict[float, float] = {0: 0.0, 1: 0.02, 2: 0.10, 3: 0.30}
_UNJUDGED = -1.0  # the grade key unjudged hits get in the click model


def _row(table: Mapping[float, float], grade: float, below: float) -> float:
    p = below
    for key in sorted(table):
        if key <= grade:
            p = table[key]
    return p


@dataclass(frozen=True)
class SessionModel:
    """The simulated user (see the module docstring): examination ``(1/r)**eta``, ``click_prob`` /
    ``cart_prob`` by grade, ``unjudged_click`` / ``unjudged_cart`` for hits without a judgment."""

    eta: float = 1.0
    click_prob: Mapping[float, float] = field(default_factory=lambda: dict(CLICK_PROB))
    unjudged_click: float = 0.02
    cart_prob: Mapping[float, float] = field(default_factory=lambda: dict(CART_PROB))
    unjudged_cart: float = 0.0

    def __post_init__(self) -> None:
        probs = {"unjudged_click": self.unjudged_click, "unjudged_cart": self.unjudged_cart,
                 **{f"click_prob[{g}]": p for g, p in self.click_prob.items()},
                 **{f"cart_prob[{g}]": p for g, p in self.cart_prob.items()}}
        for name, p in probs.items():
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
                raise DistilRankError(f"session model {name} = {p!r} is not a probability in [0, 1]")
        if not self.click_prob or min(self.click_prob) < 0:
            raise DistilRankError("session model click_prob needs grades >= 0 (e.g. {0: 0.05, 1: 0.15, 2: 0.4, 3: 0.85})")
        self.click_model()  # validates eta

    def click_model(self) -> ClickModel:
        """The position-based :class:`ClickModel` of the clicks (unjudged hits get grade -1, i.e. ``unjudged_click``)."""
        return ClickModel(model="pbm", click_prob={_UNJUDGED: self.unjudged_click, **self.click_prob},
                          min_click=self.unjudged_click, unjudged_grade=_UNJUDGED, eta=self.eta)

    def p_click(self, grade: float | None) -> float:
        """P(click | examined) of a hit with ``grade`` (``None``: unjudged)."""
        return self.unjudged_click if grade is None else _row(self.click_prob, grade, self.unjudged_click)

    def p_cart(self, grade: float | None) -> float:
        """P(add_to_cart | clicked) of a hit with ``grade`` (``None``: unjudged)."""
        return self.unjudged_cart if grade is None else _row(self.cart_prob, grade, 0.0)

    def describe(self) -> dict:
        """The model as a JSON-able dict (for reports)."""
        return {"examination": f"(1/rank)**{self.eta:g}", "eta": self.eta,
                "click_prob": {str(g): p for g, p in sorted(self.click_prob.items())}, "unjudged_click": self.unjudged_click,
                "cart_prob": {str(g): p for g, p in sorted(self.cart_prob.items())}, "unjudged_cart": self.unjudged_cart}


@dataclass
class Simulation:
    """What :func:`simulate_ubi` wrote: counts, the time range ``[start, end)`` of its searches (UTC), searches per
    arm (or per interleaved pair), distinct searches sent to the node, wall seconds and the session model."""

    searches: int
    events: Counter
    start: datetime
    end: datetime
    queries_index: str
    events_index: str
    per_arm: Counter
    users: int
    node_searches: int
    seconds: float
    interleave: tuple[str, str] | None
    model: dict

    def to_dict(self) -> dict:
        return {"searches": self.searches, "events": dict(self.events), "start": schema.format_timestamp(self.start),
                "end": schema.format_timestamp(self.end), "queries_index": self.queries_index,
                "events_index": self.events_index, "per_arm": dict(self.per_arm), "users": self.users,
                "node_searches": self.node_searches, "seconds": round(self.seconds, 3),
                "interleave": list(self.interleave) if self.interleave else None, "model": self.model}


def fetch_results(t: Transport, index: str, arms: Sequence[Arm], queries: Sequence[str], *, size: int,
                  object_id_field: str = "_id", experiment: str = "simulation") -> dict[tuple[str, str], list[str]]:
    """Each arm's hit ids (best first, at most ``size``) for each query: one real search per (arm, query), with the
    arm's template and pipeline. Raises :class:`DistilRankError` for an arm without a template."""
    out: dict[tuple[str, str], list[str]] = {}
    for arm in arms:
        if arm.template is None:
            raise DistilRankError(f"arm {arm.name!r} has no search body template: the simulator needs one per arm")
        a = Assignment(experiment, arm.name, arm.search_pipeline, f"{experiment}:{arm.name}", 0.0, arm.template)
        for q in dict.fromkeys(queries):
            resp = index_api.search(t, index, a.search_body(q, size=size), params=a.search_params() or None)
            out[(arm.name, q)] = hit_ids(resp, object_id_field)
    return out


@dataclass
class _Writer:
    """Buffers ``(id, doc)`` pairs per index and sends them with ``_bulk`` every ``batch`` documents."""

    t: Transport
    batch: int
    pending: dict[str, list[tuple[str, dict]]] = field(default_factory=dict)

    def add(self, index: str, doc_id: str, doc: dict) -> None:
        rows = self.pending.setdefault(index, [])
        rows.append((doc_id, doc))
        if len(rows) >= self.batch:
            self.flush(index)

    def flush(self, index: str | None = None) -> None:
        for name in [index] if index else list(self.pending):
            rows, self.pending[name] = self.pending.get(name, []), []
            if not rows:
                continue
            res = index_api.bulk_index(self.t, name, rows)
            if res.get("errors"):
                bad = next(it["index"] for it in res["items"] if it["index"].get("error"))
                raise DistilRankError(f"writing simulated UBI documents into {name!r} failed for {bad.get('_id')!r}: "
                                      f"{bad['error']}")


def session_events(shown: Sequence[str], grades: Mapping[str, float], rng: random.Random, *, model: SessionModel,
                   base: Mapping[str, Any], timestamp: datetime, object_id_field: str = "_id",
                   clicker: ClickModel | None = None) -> list[dict]:
    """The ``ubi_events`` documents of one simulated user shown ``shown`` (ids, best first) at ``timestamp``: one
    impression per hit (at +0.1 s), then in rank order each click (at +2 s + 3 s per rank) and its add-to-cart (1 s
    later). ``grades``: the query's judgments (a hit missing there is unjudged); ``base``: the ``query_id``,
    ``client_id``, ``user_query`` (and ``application``) every event carries; ``clicker``: ``model.click_model()``,
    passed in to build it once. All events carry ``event_attributes.simulated = true``."""
    clicker = clicker or model.click_model()
    ts = timestamp.astimezone(timezone.utc)
    attrs = {"simulated": True}
    events = [ubi_event_doc(action=IMPRESSION, timestamp=ts + timedelta(milliseconds=100), object_id=doc,
                            object_id_field=object_id_field, position=r, attributes=attrs, **base)
              for r, doc in enumerate(shown, 1)]
    clicks = clicker.simulate(list(shown), grades, rng)
    for r, (doc, clicked) in enumerate(zip(shown, clicks), 1):
        if not clicked:
            continue
        at = ts + timedelta(seconds=2 + 3 * r)
        events.append(ubi_event_doc(action=CLICK, timestamp=at, object_id=doc, object_id_field=object_id_field,
                                    position=r, attributes=attrs, **base))
        if rng.random() < model.p_cart(grades.get(doc)):
            events.append(ubi_event_doc(action=ADD_TO_CART, timestamp=at + timedelta(seconds=1), object_id=doc,
                                        object_id_field=object_id_field, position=r, attributes=attrs, **base))
    return events


def _check(experiment: Experiment, judgments: Mapping[str, Mapping[str, float]], searches: int, users: int, k: int,
           interleave: tuple[str, str] | None, spacing: timedelta = timedelta(seconds=1)) -> list[str]:
    """The judged queries to sample from; raises on a bad count or an unknown interleaved arm."""
    for name, value, least in (("searches", searches, 1), ("users", users, 1), ("k", k, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise DistilRankError(f"simulation {name} must be an int >= {least}, got {value!r}")
    queries = sorted(q for q, g in judgments.items() if g)
    if not queries:
        raise DistilRankError("the judgments have no judged query to simulate searches for")
    if not isinstance(spacing, timedelta) or spacing <= timedelta(0):
        raise DistilRankError(f"simulation spacing between searches must be a positive timedelta, got {spacing!r}")
    names = [a.name for a in experiment.arms]
    if interleave is not None:
        if len(interleave) != 2 or interleave[0] == interleave[1] or not set(interleave) <= set(names):
            raise DistilRankError(f"interleave needs two different arms of the experiment ({', '.join(names)}), "
                                  f"got {interleave!r}")
    return queries


def simulate_ubi(t: Transport, index: str, experiment: Experiment, judgments: Mapping[str, Mapping[str, float]], *,
                 searches: int = 1000, users: int = 200, seed: int = 0, k: int = 10, start: datetime | None = None,
                 spacing: timedelta = timedelta(seconds=1), interleave: tuple[str, str] | None = None,
                 model: SessionModel | None = None, object_id_field: str = "_id",
                 queries_index: str = schema.QUERIES_INDEX, events_index: str = schema.EVENTS_INDEX,
                 batch: int = 5000, log: Callable[[str], None] = lambda m: None) -> Simulation:
    """Simulate ``searches`` searches by ``users`` users over ``experiment``'s arms on ``index`` and write them as
    UBI queries and events (see the module docstring). ``judgments``: ``{query: {doc id: grade 0-3}}`` (doc ids as
    ``object_id_field`` gives them, ``_id`` by default). ``start`` (UTC) defaults to now. The indices must exist
    (:func:`distilrank.plugin.ubi.indices.ubi_init`); both are refreshed at the end."""
    t0 = time.perf_counter()
    queries = _check(experiment, judgments, searches, users, k, interleave, spacing)
    model = model or SessionModel()
    clicker = model.click_model()
    start = (start or datetime.now(timezone.utc)).astimezone(timezone.utc)
    arms = [a for a in experiment.arms if interleave is None or a.name in interleave]
    results = fetch_results(t, index, arms, queries, size=2 * k if interleave else k, object_id_field=object_id_field,
                            experiment=experiment.name)
    log(f"simulate: {len(results)} distinct searches run on {index!r}; writing {searches} simulated searches")
    rng = random.Random(seed)
    clients = [f"sim-{seed}-{n:06d}" for n in range(users)]
    assigned: dict[str, Assignment] = {}
    writer = _Writer(t, batch)
    events: Counter = Counter()
    per_arm: Counter = Counter()
    for i in range(searches):
        client, query = clients[rng.randrange(users)], queries[rng.randrange(len(queries))]
        qid, ts = new_query_id(rng), start + i * spacing
        if interleave is None:
            if client not in assigned:  # sticky: the hash gives the same arm every time; computed once per user
                assigned[client] = experiment.assign(client)
            a = assigned[client]
            shown, attrs, label = results[(a.arm, query)][:k], a.query_attributes(), a.arm
        else:
            a_name, b_name = interleave
            drafted = interleaved_list(results[(a_name, query)], results[(b_name, query)], experiment=experiment.name,
                                       arm_a=a_name, arm_b=b_name, key=qid, seed=seed, length=k)
            shown, attrs, label = drafted["hit_ids"], drafted["query_attributes"], f"{a_name} vs {b_name}"
        per_arm[label] += 1
        writer.add(queries_index, qid, ubi_query_doc(query_id=qid, client_id=client, user_query=query, hits=shown,
                                                     timestamp=ts, attributes={**attrs, "simulated": True},
                                                     application=APPLICATION))
        base = {"query_id": qid, "client_id": client, "user_query": query, "application": APPLICATION}
        evs = session_events(shown, judgments[query], rng, model=model, base=base, timestamp=ts,
                             object_id_field=object_id_field, clicker=clicker)
        for n, ev in enumerate(evs):
            events[ev[schema.ACTION_NAME]] += 1
            writer.add(events_index, f"{qid}-{n:03d}", ev)
        if (i + 1) % 5000 == 0:
            log(f"simulate: {i + 1}/{searches} searches")
    writer.flush()
    for name in (queries_index, events_index):
        index_api.refresh(t, name)
    return Simulation(searches, events, start, start + searches * spacing, queries_index, events_index, per_arm, users,
                      len(results), time.perf_counter() - t0, interleave, model.describe())

