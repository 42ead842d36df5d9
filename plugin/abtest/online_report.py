"""Write ``ab online`` results (schema of :mod:`distilrank.plugin.abtest.online_run`) as ``report.json`` +
``report.html``, in the style of ``ab run``'s report (:mod:`distilrank.plugin.abtest.report`).

``report.json`` is strict JSON (non-finite numbers become ``null``; dumped with ``allow_nan=False``).
``report.html`` is self-contained, every text from the results HTML-escaped, in this order: a SIMULATED banner when
any search is labelled simulated; the per-arm table (searches, users, each metric with its 95% cluster-bootstrap
CI); the comparisons vs the control (difference, CI, permutation p, Holm p, verdict); the interleaving table
(searches and users, sign tests) with its problem counts; the COEC judgments (position CTR, grade counts,
agreement with human grades); the malformed-data table (reason, count, examples); notes on the methods; and,
when matplotlib is installed, a figure of the metrics with their CIs and the position CTR (base64 PNG).  Both
files go through :mod:`distilrank.atomic`; ``report.json`` is written last.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from distilrank.atomic import atomic_open
from distilrank.errors import DistilRankError
from distilrank.plugin.abtest.online_run import SCHEMA
from distilrank.reporting import agg_pyplot, figure_png, figures_html, html_page, json_clean, require_fields, table_html

REQUIRED = ("schema", "name", "control", "arm_names", "metrics", "arms", "comparisons", "interleaving", "coec",
            "malformed", "simulated", "settings", "notes", "excluded", "searches_read", "searches_analysed")
CAPTIONS = {"metrics.png": "Each metric per arm with its 95% cluster-bootstrap CI (users resampled); right: the "
                           "log's click-through rate by position (the position bias COEC divides out)."}


def validate_results(results: Any) -> None:
    """Raise :class:`DistilRankError` naming the first missing field or wrong schema of a results dict."""
    require_fields(results, REQUIRED, SCHEMA)
    for a in results["arm_names"]:
        if not isinstance(results["arms"].get(a), dict) or "metrics" not in results["arms"][a]:
            raise DistilRankError(f"results: field 'arms.{a}.metrics' missing")


def _num(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else f"{float(v):.{digits}f}"


def _ci(ci: Any, digits: int = 4) -> str:
    return "n/a" if not ci else f"[{_num(ci[0], digits)}, {_num(ci[1], digits)}]"


def _p(p: Any) -> str:
    return "n/a" if p is None else "<0.0001" if p < 1e-4 else f"{p:.4f}"


def arm_rows(results: dict) -> list[dict]:
    """One row per arm: searches, users, each metric ``value [lo, hi]``."""
    rows = []
    for a in results["arm_names"]:
        arm = results["arms"][a]
        row = {"arm": a + (" (control)" if a == results["control"] else ""), "searches": str(arm["searches"]),
               "users": str(arm["users"])}
        for m in results["metrics"]:
            s = arm["metrics"][m]
            row[m] = f"{_num(s['value'])} {_ci(s['ci95'])}"
        rows.append(row)
    return rows


def comparison_rows(results: dict) -> list[dict]:
    """One row per (arm, metric) vs the control, with the Holm-adjusted verdict."""
    alpha = results["settings"].get("alpha", 0.05)
    return [{"arm vs control": f"{c['arm']} vs {c['control']}", "metric": c["metric"], "arm": _num(c["value_arm"]),
             "control": _num(c["value_control"]), "diff": _num(c["diff"]), "95% CI": _ci(c["ci95"]),
             "p": _p(c["p_value"]), "p (Holm)": _p(c["p_holm"]), "users": f"{c['users_arm']} / {c['users_control']}",
             f"significant (alpha={alpha:g})": "YES" if c["significant"] else "no"} for c in results["comparisons"]]


def interleaving_rows(results: dict) -> list[dict]:
    """One row per interleaved arm pair: searches and users won, win rate with Wilson CI, sign tests."""
    return [{"arm vs baseline": f"{r['arm']} vs {r['baseline']}", "searches": str(r["searches"]),
             "wins arm": str(r["wins_arm"]), "wins baseline": str(r["wins_baseline"]), "ties": str(r["ties"]),
             "win rate arm": f"{_num(r['win_rate_arm'], 3)} {_ci(r['ci95'], 3)}", "p (searches)": _p(r["p_value"]),
             "p (Holm)": _p(r["p_holm"]), "users won arm/baseline/tie": f"{r['user_wins_arm']}/{r['user_wins_baseline']}/"
             f"{r['user_ties']}", "p (users)": _p(r["p_value_users"])} for r in results["interleaving"]["pairs"]]


def malformed_rows(results: dict) -> list[dict]:
    """One row per reason a UBI document or event could not be used: count and examples."""
    return [{"reason": r, "count": str(v["count"]), "examples": "; ".join(str(x) for x in v["examples"])}
            for r, v in results["malformed"].items()]


def _coec_html(c: dict | None) -> str:
    if c is None:
        return "<h2>Click-derived judgments (COEC)</h2><p>(disabled: coec.enabled = false)</p>"
    e = html.escape
    pos = [{"position": str(i + 1), "impressions": str(n), "CTR": _num(ctr)}
           for i, (n, ctr) in enumerate(zip(c["position_impressions"], c["position_ctr"]))]
    summary = [{"pairs": str(c["pairs"]), f"judged (>= {c['min_impressions']} impressions)": str(c["pairs_judged"]),
                "queries judged": str(c["queries_judged"]),
                **{f"grade {g}": str(n) for g, n in c["grade_counts"].items()}}]
    ag = c.get("agreement")
    agree = "<p>(no human judgments configured: coec.judgments)</p>" if ag is None else table_html(
        [{"score": k.upper() if k == "ctr" else "COEC", "mean Kendall tau-b": _num(ag[k]["mean_tau"], 3),
          "queries": str(ag["queries"]), "docs": str(ag["docs"]), "min impressions": str(ag["min_impressions"])}
         for k in ("coec", "ctr")])
    files = "".join(f"<li>{e(k)}: {e(str(v))}</li>" for k, v in (c.get("files") or {}).items())
    return (f"<h2>Click-derived judgments (COEC)</h2>"
            f"<p class='note'>COEC = clicks / expected clicks, expected = sum over impressions of the log's CTR at that "
            f"position (positions 1..{c['max_rank']}); grades 0-3 at COEC thresholds {e(str(c['thresholds']))}; "
            f"{c['searches_without_impressions']} of {c['searches']} searches had no impression events (their top "
            f"hits count as shown).</p>{table_html(summary)}<h3>Agreement with human grades</h3>{agree}"
            f"<h3>Click-through rate by position</h3>{table_html(pos)}" + (f"<ul>{files}</ul>" if files else ""))


def render_plots(results: dict) -> dict[str, bytes]:
    """``{"metrics.png": PNG}`` (see :data:`CAPTIONS`); empty without matplotlib."""
    try:
        plt = agg_pyplot()
    except ImportError:
        return {}
    ms = results["metrics"]
    fig, axes = plt.subplots(1, len(ms) + 1, figsize=(3.0 * (len(ms) + 1), 3.0))
    for ax, m in zip(axes, ms):
        for i, a in enumerate(results["arm_names"]):
            s = results["arms"][a]["metrics"][m]
            if s["value"] is not None and s["ci95"]:
                ax.errorbar([i], [s["value"]], yerr=[[s["value"] - s["ci95"][0]], [s["ci95"][1] - s["value"]]], fmt="o", capsize=4)
        ax.set_xticks(range(len(results["arm_names"])), results["arm_names"], rotation=20, fontsize=8)
        ax.set_xlim(-0.6, len(results["arm_names"]) - 0.4)
        ax.set_title(m, fontsize=9)
    c = results.get("coec")
    if c:
        axes[-1].bar(range(1, len(c["position_ctr"]) + 1), c["position_ctr"], color="tab:blue")
        axes[-1].set_xlabel("position")
    axes[-1].set_title("CTR by position", fontsize=9)
    fig.tight_layout()
    return {"metrics.png": figure_png(fig, dpi=80)}


def _methods(results: dict) -> list[str]:
    st = results["settings"]
    return [f"Unit: {st.get('unit')}. Metrics are ratios over an arm's searches: CTR = searches with >= 1 click / "
            "searches; MRR = mean 1/position of the first click (0 without); abandonment = searches with neither a "
            "click nor an add_to_cart / searches.",
            f"95% CIs: cluster bootstrap ({st.get('resamples')} resamples of users with replacement, seed "
            f"{st.get('seed')}); p-values: randomization test permuting arm labels between users "
            f"({st.get('permutations')} permutations); Holm-Bonferroni over {st.get('holm_family')}; significant = "
            f"Holm p <= {st.get('alpha')}.",
            "Interleaving: team-draft credit of the distinct clicked hits per search; ties left out of the win rate "
            "(Wilson CI); sign tests over searches and over users (a user's outcome: sign of wins - losses)."]


def render_html(results: dict, figures: dict[str, bytes], *, title: str) -> str:
    """The self-contained HTML page of a (json-cleaned) results dict."""
    e = html.escape
    sim = results["simulated"]
    banner = (f"<p style='background:#fee;border:1px solid #c00;padding:6px'><b>SIMULATED:</b> {sim['searches']} of "
              f"{sim['of']} searches are labelled simulated.</p>" if sim["searches"] else "")
    tr = results.get("time_range") or {}
    inter = results["interleaving"]
    problems = [{"problem": k, "count": str(v)} for k, v in inter.get("problems", {}).items()]
    notes = [*_methods(results), *(str(n) for n in results["notes"])]
    imgs = figures_html(figures, CAPTIONS)
    return html_page(title, f"<h1>{e(title)}</h1>{banner}"
                     f"<p>Experiment {e(str(results.get('experiment')))}, {e(str(tr.get('start')))} to "
                     f"{e(str(tr.get('end')))}: {results['searches_read']} searches read, {results['searches_analysed']} "
                     f"in the per-arm metrics; control {e(results['control'])}.</p>"
                     f"<h2>Arms</h2>{table_html(arm_rows(results))}"
                     f"<h2>Differences vs control {e(results['control'])}</h2>{table_html(comparison_rows(results))}"
                     f"<h2>Interleaving ({inter['interleaved_searches']} interleaved searches)</h2>"
                     f"{table_html(interleaving_rows(results))}" + (table_html(problems) if problems else "")
                     + _coec_html(results["coec"])
                     + f"<h2>Malformed data</h2>{table_html(malformed_rows(results))}"
                     f"<h2>Notes</h2><ul class='note'>{''.join(f'<li>{e(n)}</li>' for n in notes)}</ul>"
                     + (f"<h2>Plots</h2>{imgs}" if imgs else ""))


def write_report(results: dict, out_dir: str | Path, *, title: str | None = None) -> dict[str, Path]:
    """Write ``report.html`` then ``report.json`` into ``out_dir`` (atomically); return ``{"html", "json"}`` -> path."""
    validate_results(results)
    out = Path(out_dir)
    clean = json_clean(results)
    text = json.dumps(clean, indent=2, ensure_ascii=False, allow_nan=False)
    page = render_html(clean, render_plots(clean), title=title or f"Online A/B: {results['name']}")
    with atomic_open(out / "report.html") as fh:
        fh.write(page)
    with atomic_open(out / "report.json") as fh:
        fh.write(text + "\n")
    return {"html": out / "report.html", "json": out / "report.json"}
