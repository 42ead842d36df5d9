"""report.json is strict JSON; report.html is self-contained, escaped, with the summary tables and embedded plots."""

import base64
import json
import re

import pytest

from distilrank.errors import DistilRankError
from distilrank.judgments import from_pairs
from distilrank.plugin.abtest.offline import run_comparison
from distilrank.plugin.abtest.report import comparison_rows, summary_rows, validate_results, write_report


def _results():
    grades = {f"q{i}": {f"d{i}-{j}": float((i + j) % 4) for j in range(8)} for i in range(12)}
    grades["q0"] = {"d0-0": 0.0, "d0-1": 0.0}  # judged, nothing relevant: NDCG/recall undefined (null in JSON)
    j = from_pairs(grades, queries=[*grades, "<script>alert('x')</script> & co"])

    def search_fn(arm, query, k):
        docs = sorted(j[query], key=lambda d: -j[query][d] if arm == "good <b>" else d[::-1])
        return docs[:k], {"base": 8.0, "good <b>": 14.0}[arm] + len(query) % 3

    return run_comparison(j, ["base", "good <b>"], search_fn, k=5, n_permutations=1000, bootstrap_resamples=300)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    results = _results()
    paths = write_report(results, out, title="Student vs BM25 & friends")
    return results, out, paths


def _strict(text):
    def reject(name):
        raise ValueError(f"non-strict JSON constant {name}")
    return json.loads(text, parse_constant=reject)


def test_json_strict_and_round_trips(written):
    results, out, paths = written
    assert paths == {"html": out / "report.html", "json": out / "report.json"}
    data = _strict(paths["json"].read_text())
    assert data["schema"] == results["schema"] and data["arm_names"] == ["base", "good <b>"]
    assert data["arms"]["base"]["queries"]["q0"]["metrics"]["NDCG@5"] is None
    assert data["queries_without_judgments"] == ["<script>alert('x')</script> & co"]
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json"]  # no temp files left behind


def test_nan_becomes_null(tmp_path):
    results = _results()
    results["arms"]["base"]["latency_ms"]["mean"] = float("nan")
    write_report(results, tmp_path)
    assert _strict((tmp_path / "report.json").read_text())["arms"]["base"]["latency_ms"]["mean"] is None


def test_html_tables_plots_and_escaping(written):
    _, _, paths = written
    page = paths["html"].read_text()
    assert page.startswith("<!doctype html>") and "Student vs BM25 &amp; friends" in page
    head = page[: page.index("<h2>Plots</h2>")]
    assert head.count("<table>") == 3  # arms, deltas vs baseline, interleaving: before any plot
    for heading in ("<h2>Arms</h2>", "<h2>Deltas vs baseline base</h2>", "<h2>Interleaving</h2>"):
        assert heading in head
    for col in ("NDCG@5", "p50 ms", "p95 ms", "p99 ms", "p (Holm)", "significant (alpha=0.05)", "win/loss/tie"):
        assert f"<th>{col}</th>" in head
    assert "<b>Judgment source:</b> human" in page
    imgs = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)
    assert [name for name, _ in imgs] == ["deltas.png", "latency.png", "outcomes.png"]
    for _, data in imgs:
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in page
    assert "good <b>" not in page and "good &lt;b&gt;" in page


def test_summary_rows_mark_significance():
    results = _results()
    rows = summary_rows(results)
    assert [r["arm"] for r in rows] == ["base (baseline)", "good <b>"]
    assert rows[1]["NDCG@5"].startswith("1.0000 [1.0000, 1.0000] n=11")
    comps = comparison_rows(results)
    ndcg = next(r for r in comps if r["metric"] == "NDCG@5")
    c = next(c for c in results["comparisons"] if c["metric"] == "NDCG@5")
    assert ndcg["significant (alpha=0.05)"] == ("YES" if c["p_holm"] <= 0.05 else "no") == "YES"
    assert ndcg["win/loss/tie"] == f"{c['wins']}/{c['losses']}/{c['ties']}"


def test_validate_results_names_the_field(tmp_path):
    results = _results()
    del results["arms"]["base"]["latency_ms"]
    with pytest.raises(DistilRankError, match="arms.base.latency_ms"):
        write_report(results, tmp_path)
    with pytest.raises(DistilRankError, match="'comparisons'"):
        validate_results({k: v for k, v in _results().items() if k != "comparisons"})
    assert not (tmp_path / "report.json").exists()
