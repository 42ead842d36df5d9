"""UBI on the real node (no UBI plugin there): ``plugin ubi-init``, plugin detection and the ``ext.ubi`` error,
front-end logging of an assigned search, the session simulator over BM25 vs BM25 + a distilrank rescorer arm on the
bundled ESCI sample, and ``read_ubi_log`` reading it all back (point in time + ``search_after``, more than 10,000
events) with malformed documents counted.

Every index is ``t24u-<pid>-...`` and deleted at the end; the student is registered for the rescorer only (not
deployed in ML Commons) and deleted too.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import skip_or_fail

from distilrank.catalogue import DocumentText, read_catalogue
from distilrank.errors import DistilRankError
from distilrank.plugin import api, index_api
from distilrank.plugin.abtest.config import load_ab_config
from distilrank.plugin.abtest.router import Experiment
from distilrank.plugin.catalogue_index import index_catalogue
from distilrank.plugin.transport import ClusterError
from distilrank.plugin.ubi import schema
from distilrank.plugin.ubi.arms import router_arms
from distilrank.plugin.ubi.indices import ubi_ext, ubi_init, ubi_plugin_installed
from distilrank.plugin.ubi.reader import read_ubi_log
from distilrank.plugin.ubi.search_log import log_search, ubi_event_doc, ubi_query_doc

PID = os.getpid()
PREFIX = f"t24u-{PID}"
INDEX, QUERIES, EVENTS = f"{PREFIX}-esci", f"{PREFIX}-ubi-queries", f"{PREFIX}-ubi-events"
SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "esci-small"
DOC = DocumentText(fields=["title", "brand", "color"])
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)  # the main simulation's first search
T_BAD = T0 + timedelta(days=1)  # the window of the hand-written malformed log
T_IL = T0 + timedelta(days=2)  # the interleaved simulation
SEARCHES, USERS, K = 1500, 300, 10


def _student_zip(work: Path) -> Path:
    """A small real student trained on the sample's titles (query words vs own / random title), exported as a zip."""
    import icecat_student

    from distilrank.distill.config import StudentSection
    from distilrank.distill.export import export_student
    from distilrank.distill.student.model import StudentConfig
    from distilrank.distill.student.tokenizer import build_student_tokenizer
    from distilrank.distill.student.train import fit_student

    titles = [{"title": json.loads(line)["title"]} for line in (SAMPLE / "products.jsonl").read_text().splitlines()]
    pairs = icecat_student.training_pairs(titles, seed=0)
    tok = build_student_tokenizer(pairs.queries + pairs.texts, min_count=1, max_length=64)
    cfg = StudentConfig(vocab_size=tok.get_vocab_size(), bigram_buckets=4093, embedding_dim=16, hidden=[64, 32])
    fit_student(pairs, pairs.labels, tok, work / "student", model_config=cfg,
                config=StudentSection(epochs=2, batch_size=128, seed=0), progress=False)
    return Path(export_student(work / "student", work / "export", name="t24u-esci-student",
                               metrics={"student": {"accuracy": 0.0}, "note": "UBI integration-test student"}).zip)


@pytest.fixture(scope="module")
def setup(cluster, t, tmp_path_factory):
    if "distilrank" not in cluster.plugins:
        skip_or_fail("the UBI simulation's rescorer arm needs the distilrank rescorer plugin on the node")
    work = tmp_path_factory.mktemp("ubi")
    index_catalogue(t, INDEX, read_catalogue(SAMPLE / "products.jsonl", id_field="asin"), DOC, recreate=True)
    reg = api.register(t, _student_zip(work), group=f"{PREFIX}-group", deploy=False, progress=False)
    assert reg.get("rescorer"), "register should upload the student to the distilrank rescorer"
    config = work / "ab.toml"
    config.write_text(f"""
[opensearch]
url = "{cluster.url}"

[experiment]
name = "t24u-live"
index = "{INDEX}"
k = {K}
judgments = "{SAMPLE / 'judgments.jsonl'}"
id_field = "_id"
seed = 3
out = "{work / 'out'}"

[[arm]]
name = "bm25"
query = {{ multi_match = {{ query = "{{{{query}}}}", fields = ["title^2", "brand", "color"] }} }}

[[arm]]
name = "student"
query = {{ multi_match = {{ query = "{{{{query}}}}", fields = ["title^2", "brand", "color"] }} }}
rescore = {{ model = "{reg['model_id']}", fields = ["{DOC.index_field}"], window_size = 50, score_mode = "blend", query_weight = 0.1, model_weight = 1.0 }}
""")
    yield {"config": config, "model_id": reg["model_id"], "work": work}
    for name in (INDEX, QUERIES, EVENTS, f"{PREFIX}-init-q", f"{PREFIX}-init-e", f"{PREFIX}-handmade"):
        t.request("DELETE", f"/{name}", ok_statuses=(404,))
    api.delete(t, reg["model_id"], force=True)


def _cli(argv: list[str]) -> dict:
    """Run ``distilrank ARGV --json`` (the installed command's entry point, in this process); its JSON answer."""
    from distilrank.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*argv, "--json"]) == 0, out.getvalue()[-2000:]
    return json.loads(out.getvalue())


def test_ubi_init_creates_missing_indices_and_leaves_existing_ones(t, cluster):
    q, e = f"{PREFIX}-init-q", f"{PREFIX}-init-e"
    index_api.create_index(t, e, {"mappings": {"properties": {"note": {"type": "keyword"}}}})  # made by hand, not UBI's
    argv = ["plugin", "ubi-init", "--queries-index", q, "--events-index", e, "--url", cluster.url]
    res = _cli(argv)
    assert res["created"] == [q] and res["existing"] == [e] and res["ubi_plugin"] is False
    assert len(res["warnings"]) == 1 and "action_name" in res["warnings"][0] and e in res["warnings"][0]
    mapping = index_api.get_mapping(t, q)[q]["mappings"]
    assert mapping["dynamic"] == "false" and mapping["properties"]["query_response_hit_ids"] == {"type": "keyword"}
    assert mapping["properties"]["query_attributes"]["type"] == "flat_object"
    assert set(index_api.get_mapping(t, e)[e]["mappings"]["properties"]) == {"note"}  # left alone
    again = _cli(argv)
    assert again["created"] == [] and again["existing"] == [q, e]


def test_node_without_the_ubi_plugin(t, setup, simulated):  # simulated: the UBI indices exist, with their mappings
    assert ubi_plugin_installed(t) is False
    with pytest.raises(DistilRankError, match="no UBI plugin.*log searches from the front end"):
        ubi_ext(t, query_id="q1", client_id="u1", user_query="tool wrap", object_id_field="asin")
    with pytest.raises(ClusterError) as err:  # what the node says to an ext.ubi search: why distilrank checks first
        index_api.search(t, INDEX, {"query": {"match_all": {}}, "ext": {"ubi": {"query_id": "q1"}}})
    assert err.value.status == 400 and "unknown field [ubi]" in str(err.value)
    experiment = Experiment("t24u-live", "t24u", router_arms(t, load_ab_config(setup["config"]), k=K))
    assignment = experiment.assign("u-front")
    logged = log_search(t, INDEX, assignment, "tool wrap", client_id="u-front", queries_index=QUERIES,
                        timestamp=T0 - timedelta(days=1), refresh=True)  # mode auto: no plugin, so the front end logs
    doc = index_api.get_doc(t, QUERIES, logged.query_id)["_source"]
    assert logged.mode == "frontend" and len(logged.hit_ids) == K
    assert doc["query_response_hit_ids"] == logged.hit_ids == [h["_id"] for h in logged.response["hits"]["hits"]]
    want = {"experiment": "t24u-live", "arm": assignment.arm}
    if assignment.arm == "student":
        want["model_id"] = setup["model_id"]
    assert doc["query_attributes"] == want
    assert doc["client_id"] == "u-front" and doc["user_query"] == "tool wrap"
    assert doc["timestamp"] == schema.format_timestamp(T0 - timedelta(days=1))


@pytest.fixture(scope="module")
def simulated(setup, cluster):
    return _cli(["ab", "simulate-ubi", str(setup["config"]), "--url", cluster.url, "--searches", str(SEARCHES),
                 "--users", str(USERS), "--seed", "7", "--start", schema.format_timestamp(T0),
                 "--queries-index", QUERIES, "--events-index", EVENTS])


def test_simulated_log_reads_back_complete(t, setup, simulated):
    assert simulated["searches"] == SEARCHES and simulated["node_searches"] == 60  # 30 judged queries x 2 arms
    assert simulated["events"]["impression"] == SEARCHES * K > 10_000
    log = read_ubi_log(t, start=T0, end=datetime.fromisoformat(simulated["end"]), queries_index=QUERIES,
                       events_index=EVENTS, page_size=4000)
    assert not log.malformed, log.examples
    assert len(log.searches) == SEARCHES
    read_events = Counter(e.action for s in log.searches for e in s.events)
    assert read_events == Counter(simulated["events"]) and sum(read_events.values()) > 10_000
    arms_of = defaultdict(set)
    for s in log.searches:
        arms_of[s.client_id].add(s.arm)
        assert s.attributes["simulated"] == "true" and s.attributes["experiment"] == "t24u-live"
        assert s.attributes.get("model_id") == (setup["model_id"] if s.arm == "student" else None)
        shown = [e for e in s.events if e.action == "impression"]
        assert [(e.object_id, e.position) for e in shown] == [(h, r) for r, h in enumerate(s.hit_ids, 1)]
        for e in s.events:
            assert e.attributes["simulated"] is True and e.timestamp >= s.timestamp
            if e.object_id is not None:
                assert s.hit_ids[e.position - 1] == e.object_id
    assert all(len(arms) == 1 for arms in arms_of.values()), "users are sticky to one arm"
    assert Counter(s.arm for s in log.searches) == Counter(simulated["per_arm"]) and set(simulated["per_arm"]) == {
        "bm25", "student"}
    lists = defaultdict(set)
    for s in log.searches:
        lists[(s.user_query, s.arm)].add(tuple(s.hit_ids))
    assert all(len(v) == 1 for v in lists.values()), "an arm shows the same list for a query every time (cached search)"
    differ = sum(lists[(q, "bm25")] != lists[(q, "student")] for q, arm in lists if arm == "bm25" and (q, "student") in lists)
    assert differ >= 10, "the rescorer arm should reorder BM25's hits for most queries"


def _handmade_log(t) -> None:
    """Two good searches and one of each malformed case at T_BAD, and a search 2 h before with an event inside."""
    good = [ubi_query_doc(query_id=f"good-{i}", client_id="u1", user_query="tool wrap", hits=["a", "b", "c"],
                          timestamp=T_BAD + timedelta(minutes=i)) for i in range(2)]
    early = ubi_query_doc(query_id="early", client_id="u2", user_query="tool wrap", hits=["a"], timestamp=T_BAD - timedelta(hours=2))
    no_client = {**ubi_query_doc(query_id="no-client", client_id="x", user_query="q", hits=["a"], timestamp=T_BAD)}
    no_client.pop("client_id")

    def ev(qid, obj="b", pos=2, ts=T_BAD + timedelta(minutes=5), **kw):
        return ubi_event_doc(action="click", query_id=qid, client_id="u1", user_query="tool wrap", timestamp=ts,
                             object_id=obj, position=pos, **kw)

    missing_qid = ev("good-0")
    missing_qid.pop("query_id")
    bad_time = {**ev("good-1"), "timestamp": "last tuesday"}  # kept by ubi_events' ignore_malformed
    events = [ev("good-0"), ev("good-1", obj="a", pos=1), missing_qid, ev("ghost"), bad_time, ev("good-0", obj="zzz", pos=3),
              ev("no-client"), ev("early", obj="a", pos=1)]
    index_api.bulk_index(t, QUERIES, [(d["query_id"], d) for d in (*good, early, no_client)])
    assert not index_api.bulk_index(t, EVENTS, [(f"bad-{i}", d) for i, d in enumerate(events)])["errors"]
    for name in (QUERIES, EVENTS):
        index_api.refresh(t, name)


def test_malformed_documents_are_counted_not_fatal(t, setup):
    ubi_init(t, queries_index=QUERIES, events_index=EVENTS)
    _handmade_log(t)
    log = read_ubi_log(t, start=T_BAD, end=T_BAD + timedelta(hours=1), queries_index=QUERIES, events_index=EVENTS)
    assert [s.query_id for s in log.searches] == ["good-0", "good-1"]
    assert [s.clicked_positions() for s in log.searches] == [[2], [1]]
    assert log.malformed == {"query_missing_client_id": 1, "event_missing_query_id": 1, "event_unknown_query_id": 1,
                             "event_bad_timestamp": 1, "event_unknown_object": 1, "event_of_malformed_query": 1,
                             "event_query_outside_window": 1}
    assert log.examples["event_unknown_query_id"] == [f"{EVENTS}/bad-3"]


def test_interleaved_simulation_logs_teams(t, setup, cluster):
    argv = ["ab", "simulate-ubi", str(setup["config"]), "--url", cluster.url, "--searches", "150", "--users", "40",
            "--seed", "1", "--interleave", "bm25,student", "--start", schema.format_timestamp(T_IL),
            "--queries-index", QUERIES, "--events-index", EVENTS]
    sim = _cli(argv)
    assert sim["per_arm"] == {"bm25 vs student": 150} and sim["interleave"] == ["bm25", "student"]
    log = read_ubi_log(t, start=T_IL, end=datetime.fromisoformat(sim["end"]), queries_index=QUERIES, events_index=EVENTS)
    assert not log.malformed and len(log.searches) == 150
    again = _cli(argv)  # same seed and start: the same documents, overwritten in place
    assert again["events"] == sim["events"]
    reread = read_ubi_log(t, start=T_IL, end=datetime.fromisoformat(sim["end"]), queries_index=QUERIES, events_index=EVENTS)
    assert [(s.query_id, s.hit_ids, s.attributes, s.events) for s in reread.searches] == \
        [(s.query_id, s.hit_ids, s.attributes, s.events) for s in log.searches]
    credited = Counter()
    for s in log.searches:
        teams = s.attributes["teams"]
        assert s.arm is None and s.attributes["interleaving"] == "team_draft" and len(teams) == len(s.hit_ids) == K
        assert set(teams) <= {"bm25", "student", "shared"} and (s.attributes["arm_a"], s.attributes["arm_b"]) == (
            "bm25", "student")
        credited.update(teams[p - 1] for p in s.clicked_positions())
    assert credited["bm25"] > 0 and credited["student"] > 0


def test_ab_online_reads_the_simulated_log_and_reports(setup, simulated, cluster, tmp_path):
    """``ab online`` end to end on the node: the simulated log read back, both arms with user-level CIs, COEC judgments
    written for SRW and as CSV, and their agreement with the grades they were simulated from."""
    config = tmp_path / "online.toml"
    config.write_text(f"""
[online]
name = "t24u-live"
control = "bm25"
start = "{schema.format_timestamp(T0)}"
end = "{schema.format_timestamp(T0 + timedelta(hours=12))}"
queries_index = "{QUERIES}"
events_index = "{EVENTS}"
resamples = 500
permutations = 500
out = "{tmp_path / 'report'}"

[coec]
min_impressions = 20
judgments = "{SAMPLE / 'judgments.jsonl'}"

[opensearch]
url = "{cluster.url}"
""")
    res = _cli(["ab", "online", str(config)])
    assert set(res["arms"]) == {"bm25", "student"} and sum(a["searches"] for a in res["arms"].values()) == SEARCHES
    assert sum(a["users"] for a in res["arms"].values()) == USERS  # sticky: each user in one arm
    for arm in res["arms"].values():
        lo, hi = arm["metrics"]["ctr"]["ci95"]
        assert lo < arm["metrics"]["ctr"]["value"] < hi
    assert {c["metric"] for c in res["comparisons"]} >= {"ctr", "mrr", "abandonment"}
    assert all(c["arm"] == "student" and c["control"] == "bm25" and 0 <= c["p_value"] <= 1 for c in res["comparisons"])
    assert res["simulated"] and not res["malformed"]
    report = json.loads(Path(res["report"]["json"]).read_text())
    assert report["searches_read"] == SEARCHES and Path(res["report"]["html"]).is_file()
    assert res["coec"]["files"]["csv"] and Path(res["coec"]["files"]["srw"]).is_file()
    srw = json.loads(Path(res["coec"]["files"]["srw"]).read_text())
    assert srw["type"] == "IMPORT_JUDGMENT" and srw["judgmentRatings"]
    agreement = res["coec"]["agreement"]
    assert agreement["queries"] > 0 and agreement["coec"]["mean_tau"] > 0, agreement
