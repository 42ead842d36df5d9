"""ab online from a UbiLog to report.json + report.html: selection and exclusions, malformed data, the simulated label,
interleaving and COEC sections, strict JSON, escaping; and the ab online / ab coec commands on an in-memory log."""

import argparse
import json
import sys
import types

import pytest

from distilrank.errors import DistilRankError
from distilrank.plugin.abtest.online_config import load_online_config
from distilrank.plugin.abtest.online_report import validate_results, write_report
from distilrank.plugin.abtest.online_run import analyse
from tests.plugin.abtest.ubi_gen import Gen, make_grades

GRADES = make_grades(30, 12, seed=9)
CONFIG = ('[online]\nname = "exp"\ncontrol = "bm25"\nstart = "2025-06-01"\nend = "2025-06-02"\nresamples = 300\n'
          'permutations = 300\nout = "out"\n[coec]\nmin_impressions = 10\nagreement_min_impressions = 10\n')


def _log():
    gen = Gen(GRADES, seed=3)
    for u in range(40):
        for arm, kind in (("bm25", "fixed"), ("<b>student</b>", "good")):
            for _ in range(6):
                gen.search(f"{arm}{u}", arm=arm, kind=kind)
        gen.interleaved(f"i{u}", "bm25", "fixed", "<b>student</b>", "good")
    gen.search("x", arm=None)  # no arm
    gen.search("y", arm="bm25", attributes={"experiment": "other"})
    log = gen.log()
    for reason, example in [("event_missing_query_id", "event e1"), ("event_missing_query_id", "event e2"),
                            ("event_unknown_object", "<script>alert(1)</script> in q7"), ("event_bad_timestamp", "event e9: 'yesterday'")]:
        log.skip(reason, example)
    return log


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("online")
    (tmp / "c.toml").write_text(CONFIG)
    cfg = load_online_config(tmp / "c.toml")
    res, grades = analyse(_log(), cfg, human=GRADES)
    paths = write_report(res, cfg.online.out)
    return res, grades, paths


def _strict(text):
    def reject(name):
        raise ValueError(name)
    return json.loads(text, parse_constant=reject)


def test_selection_and_exclusions(done):
    res, _, _ = done
    assert res["arm_names"] == ["bm25", "<b>student</b>"] and res["searches_analysed"] == 480
    assert res["excluded"] == {"interleaved": 40, "no_arm": 1, "other_experiment": 1}
    assert res["searches_read"] == 522 and res["simulated"] == {"searches": 522, "of": 522}
    assert any(n.startswith("SIMULATED: 522 of 522") for n in res["notes"])
    assert any("1 searches without an arm" in n for n in res["notes"])
    by = {c["metric"]: c for c in res["comparisons"]}
    assert by["ctr"]["diff"] > 0 and by["ctr"]["significant"]


def test_malformed_counts_in_json_and_html(done):
    res, _, paths = done
    data = _strict(paths["json"].read_text())
    assert data["malformed"]["event_missing_query_id"] == {"count": 2, "examples": ["event e1", "event e2"]}
    assert data["malformed"]["event_unknown_object"]["count"] == 1
    page = paths["html"].read_text()
    assert "<h2>Malformed data</h2>" in page and "event_bad_timestamp" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; in q7" in page and "<script>alert" not in page
    assert "&lt;b&gt;student&lt;/b&gt;" in page and "<b>student</b>" not in page


def test_report_sections(done):
    res, grades, paths = done
    data = _strict(paths["json"].read_text())
    assert data["schema"] == "distilrank.ab_online/1" and data["arms"]["bm25"]["users"] == 40
    (pair,) = data["interleaving"]["pairs"]
    assert (pair["arm"], pair["baseline"], pair["searches"]) == ("<b>student</b>", "bm25", 40)
    c = data["coec"]
    assert c["pairs_judged"] == sum(len(d) for d in grades.values()) > 0 and len(c["position_ctr"]) == 10
    assert c["agreement"]["coec"]["mean_tau"] > 0.3
    page = paths["html"].read_text()
    assert page.count("SIMULATED") >= 1 and "Click-derived judgments (COEC)" in page and "Interleaving (40 interleaved" in page
    assert "data:image/png;base64," in page and "Kendall tau-b" in page
    assert sorted(p.name for p in paths["html"].parent.iterdir()) == ["report.html", "report.json"]


def test_control_without_searches_is_a_clear_error(tmp_path):
    (tmp_path / "c.toml").write_text(CONFIG.replace('control = "bm25"', 'control = "nope"'))
    with pytest.raises(DistilRankError, match=r"online.control.*'nope' has no search.*arms seen: \['bm25'"):
        analyse(_log(), load_online_config(tmp_path / "c.toml"))


def test_coec_disabled_and_validation(tmp_path):
    (tmp_path / "c.toml").write_text(CONFIG + "enabled = false\n")
    cfg = load_online_config(tmp_path / "c.toml")
    res, grades = analyse(_log(), cfg)
    assert res["coec"] is None and grades == {}
    page = write_report(res, tmp_path / "r")["html"].read_text()
    assert "disabled: coec.enabled = false" in page
    with pytest.raises(DistilRankError, match="missing field 'malformed'"):
        validate_results({k: v for k, v in res.items() if k != "malformed"})


class _FakeTransport:
    dry_run = False

    def with_planned(self, result, human):
        return result, human


def test_ab_online_and_ab_coec_commands(tmp_path, monkeypatch, capsys):
    from distilrank.judgments import load_judgments
    from distilrank.plugin.cli import ab_online

    calls = []

    def read_ubi_log(t, *, start, end, queries_index, events_index):
        calls.append((start, end, queries_index, events_index))
        return _log()

    monkeypatch.setitem(sys.modules, "distilrank.plugin.ubi.reader", types.SimpleNamespace(read_ubi_log=read_ubi_log))
    monkeypatch.setattr(ab_online, "transport", lambda args: _FakeTransport())
    (tmp_path / "c.toml").write_text(CONFIG)
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    ab_online.add_commands(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["--json", "online", str(tmp_path / "c.toml")])
    args.func(args)
    out = json.loads(capsys.readouterr().out)
    assert calls[0][2:] == ("ubi_queries", "ubi_events") and calls[0][0].isoformat() == "2025-06-01T00:00:00+00:00"
    assert out["report"]["html"].endswith("report.html") and out["simulated"]["searches"] == 522
    files = out["coec"]["files"]
    assert load_judgments(files["csv"]).grades == load_judgments(files["srw"]).grades
    args = parser.parse_args(["coec", str(tmp_path / "c.toml"), "--out", str(tmp_path / "j.json"), "--format", "srw"])
    args.func(args)
    human = capsys.readouterr().out
    assert "judgments" in human and json.loads((tmp_path / "j.json").read_text())["type"] == "IMPORT_JUDGMENT"
    assert load_judgments(tmp_path / "j.json").grades == load_judgments(files["csv"]).grades
