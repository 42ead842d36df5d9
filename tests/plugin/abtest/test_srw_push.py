"""``ab export-srw --push`` against an in-process server that answers like SRW's handlers (the id fields of
:mod:`distilrank.plugin.abtest.srw_schema`) or like a cluster without SRW, with it disabled, or with security."""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler

import pytest

from distilrank.errors import DistilRankError
from distilrank.plugin.abtest import srw_schema as srw
from distilrank.plugin.abtest.report import write_report
from distilrank.plugin.abtest.srw_export import export_srw
from distilrank.plugin.abtest.srw_push import SrwPushError, fill, push
from distilrank.plugin.cli import ab_srw
from distilrank.plugin.connection import load_connection
from distilrank.plugin.transport import Transport
from tests.plugin.abtest.srw_report import ARMS, make_report
from tests.plugin.json_http import reply_json, serving, transport_to


class Srw(BaseHTTPRequestHandler):
    """Answers SRW creates with new ids, or ``fail`` = (status, body) from the ``fail_at``-th request on."""

    seen: list[tuple[str, str, object]] = []
    fail: tuple[int, object] | None = None
    fail_at = 0

    def _handle(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        cls = type(self)
        cls.seen.append((self.command, self.path, json.loads(raw) if raw else None))
        if cls.fail and len(cls.seen) > cls.fail_at:
            status, body = cls.fail
            if isinstance(body, str):
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            reply_json(self, status, body)
            return
        kind = next(k for k, ep in srw.ENDPOINTS.items() if self.path == f"/{ep.full_path}" and self.command == ep.method)
        reply_json(self, 200, {srw.ENDPOINTS[kind].id_field: f"{kind}-{len(cls.seen)}", "result": "created"})

    do_PUT = do_POST = _handle

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def report_json(tmp_path_factory):
    return write_report(make_report(), tmp_path_factory.mktemp("report"), title="A/B")["json"]


@pytest.fixture()
def export_dir(tmp_path, report_json):
    export_srw(report_json, tmp_path / "srw")
    Srw.seen, Srw.fail, Srw.fail_at = [], None, 0
    return tmp_path / "srw"


def test_push_creates_everything_in_order_and_fills_the_ids(export_dir):
    with transport_to(Srw) as t:
        res = push(t, export_dir)
    methods = [(m, p) for m, p, _ in Srw.seen]
    assert methods == [("PUT", "/_plugins/_search_relevance/query_sets"),
                       *[("PUT", "/_plugins/_search_relevance/search_configurations")] * 3,
                       ("PUT", "/_plugins/_search_relevance/judgments"),
                       *[("POST", "/_plugins/_search_relevance/experiments")] * 3]
    experiments = [b for m, _, b in Srw.seen if m == "POST"]
    assert [e["querySetId"] for e in experiments] == ["query_set-1"] * 3
    assert [e["searchConfigurationList"] for e in experiments] == [["search_configuration-2"], ["search_configuration-3"],
                                                                   ["search_configuration-4"]]
    assert all(e["judgmentList"] == ["judgment-5"] for e in experiments)
    assert res["experiments"] == dict(zip(ARMS, ["experiment-6", "experiment-7", "experiment-8"]))
    assert json.loads((export_dir / "pushed.json").read_text()) == res
    assert Srw.seen[1][2] == json.loads((export_dir / "search_configurations/bm25.json").read_text())


@pytest.mark.parametrize("status, body, words", [
    (400, {"error": "no handler found for uri [/_plugins/_search_relevance/query_sets] and method [PUT]"},
     ["no Search Relevance Workbench", "opensearch-plugin install opensearch-search-relevance", "workbench_enabled"]),
    (404, {"error": {"type": "resource_not_found_exception"}, "status": 404}, ["no Search Relevance Workbench"]),
    (403, "Search Relevance Workbench is disabled", ["plain-text answer, SRW's own refusal", "installed but disabled",
                                                     '"plugins.search_relevance.workbench_enabled": true']),
    (403, {"error": {"type": "security_exception", "reason": "no permissions for [cluster:admin/opensearch/search_relevance/queryset/put]"},
           "status": 403}, ["lacks the permission cluster:admin/opensearch/search_relevance/queryset/put", "search_relevance_full_access"]),
    (403, "Query Set Limit Exceeded.", ["plugins.search_relevance.query_set.maximum (default 1000)"]),
    (403, {"error": "Search Relevance Workbench is disabled"}, ["turn it on"]),
    (409, {"error": {"type": "version_conflict_engine_exception", "reason": "exists"}, "status": 409},
     ["exists already (HTTP 409", "another --name"]),
])
def test_refusals_say_what_to_do(export_dir, status, body, words):
    Srw.fail = (status, body)
    with transport_to(Srw) as t, pytest.raises(SrwPushError) as err:
        push(t, export_dir)
    msg = str(err.value)
    assert msg.startswith("PUT _plugins/_search_relevance/query_sets (query_set.json): ")
    for w in words:
        assert w in msg
    assert len(Srw.seen) == 1 and err.value.created == {}  # sent once, never retried: a create is not idempotent
    assert not (export_dir / "pushed.json").exists()


def test_a_failure_half_way_names_what_was_created(export_dir):
    Srw.fail, Srw.fail_at = (400, {"error": {"type": "illegal_argument_exception", "reason": "Invalid queryText"}, "status": 400}), 4
    with transport_to(Srw) as t, pytest.raises(SrwPushError, match=r"judgments.json\): SRW refused it \(HTTP 400.*Invalid queryText") as err:
        push(t, export_dir)
    assert err.value.created == {"${query_set_id}": "query_set-1", **{f"${{search_configuration_id:{a}}}": f"search_configuration-{i}"
                                                                     for i, a in enumerate(ARMS, 2)}}
    assert "Already created in SRW: ${query_set_id} = query_set-1" in str(err.value)


def test_dry_run_sends_nothing_and_shows_the_filled_bodies(export_dir):
    with serving(Srw) as url:
        t = Transport(load_connection(env={}, url=url, retries=0), dry_run=True)
        res = push(t, export_dir)
    assert Srw.seen == [] and not (export_dir / "pushed.json").exists()
    assert [r.method for r in t.planned] == ["PUT"] * 5 + ["POST"] * 3
    assert t.planned[-1].body["querySetId"] == "<dry-run:query_set_id>"
    assert res["experiments"]["bm25"] == "<dry-run:experiment_id:bm25>"


def test_push_needs_a_complete_export(tmp_path):
    with transport_to(Srw) as t, pytest.raises(DistilRankError, match="manifest.json: missing: export the report first"):
        push(t, tmp_path)
    with pytest.raises(DistilRankError, match=r"placeholder \$\{judgment_id\} has no id"):
        fill({"judgmentList": ["${judgment_id}"]}, {})


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--json", action="store_true")
    ab_srw.add_commands(p.add_subparsers(dest="cmd"))
    return p


def test_cli_exports_and_pushes(tmp_path, capsys, report_json):
    report = report_json
    args = _parser().parse_args(["--json", "export-srw", str(report), "--out", str(tmp_path / "srw")])
    args.func(args)
    out = json.loads(capsys.readouterr().out)
    assert out["round_trip"]["identical"] and out["counts"]["arms"] == 3 and (tmp_path / "srw/manifest.json").is_file()
    Srw.seen, Srw.fail = [], None
    with serving(Srw) as url:
        args = _parser().parse_args(["export-srw", str(report), "--out", str(tmp_path / "srw"), "--push", "--url", url,
                                     "--retries", "0"])
        args.func(args)
    human = capsys.readouterr().out
    assert "round trip: judgments.json read back reproduces all" in human and "note: a rescore.distilrank" in human
    assert "pushed: 8 requests; experiments bm25 = experiment-6" in human and len(Srw.seen) == 8
    help_text = _parser().parse_args(["export-srw", "r", "--out", "o"]).func.__doc__
    assert "export_srw" in help_text
