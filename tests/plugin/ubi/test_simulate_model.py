"""The simulator's user model (:mod:`distilrank.plugin.ubi.simulate`): the click, cart and impression statistics match
the documented table, the events are UBI-shaped and labelled simulated, and the same seed gives the same events."""

from __future__ import annotations

import math
import random
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from distilrank.errors import DistilRankError
from distilrank.plugin.abtest.router import Arm, Experiment
from distilrank.plugin.ubi import simulate
from distilrank.plugin.ubi.join import join_ubi
from distilrank.plugin.ubi.search_log import ubi_query_doc
from distilrank.plugin.ubi.simulate import CART_PROB, CLICK_PROB, SessionModel, session_events

TS = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
SHOWN = ["g3", "g0", "g2", "unjudged", "g1", "g3b"]
GRADES = {"g3": 3.0, "g0": 0.0, "g2": 2.0, "g1": 1.0, "g3b": 3.0}
BASE = {"query_id": "q", "client_id": "c", "user_query": "shoes", "application": "distilrank-simulator"}


def test_the_documented_table():
    m = SessionModel()
    assert CLICK_PROB == {0: 0.03, 1: 0.10, 2: 0.25, 3: 0.60} and CART_PROB == {0: 0.0, 1: 0.02, 2: 0.10, 3: 0.30}
    assert [m.p_click(g) for g in (0, 1, 2, 3, 2.5, 7, None)] == [0.03, 0.10, 0.25, 0.60, 0.25, 0.60, 0.02]
    assert [m.p_cart(g) for g in (0, 1, 2, 3, None)] == [0.0, 0.02, 0.10, 0.30, 0.0]
    assert m.describe()["examination"] == "(1/rank)**1"
    clicker = m.click_model()  # unjudged hits are grade -1 there, i.e. P(click | examined) = 0.02
    assert clicker.model == "pbm" and clicker.eta == 1.0 and clicker.p_click(-1.0, 3.0) == 0.02
    assert [clicker.p_click(g, 3.0) for g in (0, 1, 2, 3)] == [0.03, 0.10, 0.25, 0.60]


def _rates(model: SessionModel, n: int, seed: int = 0):
    rng, clicker = random.Random(seed), model.click_model()
    clicks, carts, impressions = Counter(), Counter(), Counter()
    for _ in range(n):
        for ev in session_events(SHOWN, GRADES, rng, model=model, base=BASE, timestamp=TS, clicker=clicker):
            pos = ev["event_attributes"]["position"]["ordinal"] + 1
            {"click": clicks, "add_to_cart": carts, "impression": impressions}[ev["action_name"]][pos] += 1
    return clicks, carts, impressions


@pytest.mark.parametrize("eta", [1.0, 0.5])
def test_click_and_cart_rates_follow_the_model(eta):
    n = 12_000
    model = SessionModel(eta=eta)
    clicks, carts, impressions = _rates(model, n)
    assert impressions == Counter({r: n for r in range(1, len(SHOWN) + 1)})  # one impression per shown hit
    for r, doc in enumerate(SHOWN, 1):
        want = (1 / r) ** eta * model.p_click(GRADES.get(doc))
        sigma = math.sqrt(want * (1 - want) / n)
        assert abs(clicks[r] / n - want) < 4.5 * sigma + 1e-9, (r, doc, clicks[r] / n, want)
    for r in (1, 6):  # grade-3 hits: P(cart | click) = 0.30
        share = carts[r] / clicks[r]
        assert abs(share - 0.30) < 4.5 * math.sqrt(0.3 * 0.7 / clicks[r]), (r, share)
    assert carts[2] == 0 and carts[4] == 0  # grade 0 and unjudged: never


def test_events_are_ubi_shaped_labelled_and_reproducible():
    a = session_events(SHOWN, GRADES, random.Random(5), model=SessionModel(), base=BASE, timestamp=TS,
                       object_id_field="asin")
    b = session_events(SHOWN, GRADES, random.Random(5), model=SessionModel(), base=BASE, timestamp=TS,
                       object_id_field="asin")
    assert a == b
    assert all(e["event_attributes"]["simulated"] is True and e["application"] == "distilrank-simulator" for e in a)
    assert all(e["event_attributes"]["object"]["object_id_field"] == "asin" for e in a)
    doc = ubi_query_doc(query_id="q", client_id="c", user_query="shoes", hits=SHOWN, timestamp=TS)
    log = join_ubi([doc], a)
    assert not log.malformed and len(log.searches[0].events) == len(a)
    assert [e.position for e in log.searches[0].events[:len(SHOWN)]] == list(range(1, len(SHOWN) + 1))


def test_bad_models_and_settings_are_refused():
    for kwargs in ({"unjudged_click": 1.5}, {"click_prob": {0: -0.1}}, {"cart_prob": {3: 2}}, {"eta": -1},
                   {"click_prob": {}}):
        with pytest.raises(DistilRankError):
            SessionModel(**kwargs)
    exp = Experiment("e", "s", [Arm("a", None, 50, template={"query": {"match": {"t": "{{query}}"}}}),
                                Arm("b", None, 50, template={"query": {"match": {"t": "{{query}}"}}})])
    with pytest.raises(DistilRankError, match="searches"):
        simulate._check(exp, {"q": {"d": 1}}, 0, 10, 10, None)
    with pytest.raises(DistilRankError, match="no judged query"):
        simulate._check(exp, {"q": {}}, 10, 10, 10, None)
    with pytest.raises(DistilRankError, match="two different arms"):
        simulate._check(exp, {"q": {"d": 1}}, 10, 10, 10, ("a", "a"))
    with pytest.raises(DistilRankError, match="spacing"):
        simulate._check(exp, {"q": {"d": 1}}, 10, 10, 10, None, timedelta(0))
    assert simulate._check(exp, {"q2": {"d": 1}, "q1": {"d": 0}}, 10, 10, 10, ("a", "b")) == ["q1", "q2"]

