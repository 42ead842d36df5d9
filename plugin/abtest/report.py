"""Write an A/B results dict (schema of :mod:`distilrank.plugin.abtest.offline`) as ``report.json`` + ``report.html``.

``report.json`` is strict JSON (non-finite numbers become ``null``; it is
dumped with ``allow_nan=False``).  ``report.html`` is self-contained: a summary
table at the top (each arm's metric means with 95% CI and latency
percentiles), the deltas vs the baseline with raw and Holm-adjusted p-values
marked significant or not at ``alpha``, the interleaving outcome, then plots
embedded as base64 PNG (matplotlib Agg): sorted per-query deltas of the
primary metric, latency distributions per arm, win/loss/tie counts.  Every
text from the results is HTML-escaped.  Optional keys a caller may add to the results: ``notes`` (more
lines for the notes list) and ``latency_vs_baseline`` (``{arm: {p50_ms, p99_ms, p50_added_ms, p99_added_ms, ...}}``,
rendered as a "Latency added vs baseline" table).  Both files go through
:mod:`distilrank.atomic`; ``report.json`` is written last.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from distilrank.atomic import atomic_open
from distilrank.errors import DistilRankError
from distilrank.plugin.abtest.offline import SCHEMA
from distilrank.reporting import agg_pyplot, figure_png, figures_html, html_page, json_clean, require_fields, table_html

REQUIRED = ("schema", "k", "metrics", "judgment_source", "baseline", "arm_names", "arms", "comparisons",
            "interleaving", "queries_without_judgments", "settings")
ARM_REQUIRED = ("summary", "latency_ms", "unjudged", "queries")


def validate_results(results: Any) -> None:
    """Raise :class:`DistilRankError` naming the first missing / mistyped field of a results dict."""
    require_fields(results, REQUIRED, SCHEMA)
    for a in results["arm_names"]:
        arm = results["arms"].get(a)
        if not isinstance(arm, dict):
            raise DistilRankError(f"results: field 'arms.{a}' missing")
        for key in ARM_REQUIRED:
            if key not in arm:
                raise DistilRankError(f"results: missing field 'arms.{a}.{key}'")
    if results["baseline"] not in results["arms"]:
        raise DistilRankError(f"results: baseline {results['baseline']!r} is not in 'arms'")


# --- formatting -----------------------------------------------------------------


def _num(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return f"{float(v):.{digits}f}"


def _ci(ci: Any, digits: int = 4) -> str:
    return "n/a" if not ci else f"[{_num(ci[0], digits)}, {_num(ci[1], digits)}]"


def _p(p: Any) -> str:
    if p is None:
        return "n/a"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _ms(v: Any) -> str:
    return "n/a" if v is None else f"{float(v):.1f}"


def summary_rows(results: dict) -> list[dict]:
    """One row per arm: each metric ``mean [lo, hi]`` (n), latency p50/p95/p99 ms, unjudged share of the top k."""
    rows = []
    for a in results["arm_names"]:
        arm = results["arms"][a]
        row: dict[str, str] = {"arm": a + (" (baseline)" if a == results["baseline"] else "")}
        for m in results["metrics"]:
            s = arm["summary"].get(m, {})
            row[m] = f"{_num(s.get('mean'))} {_ci(s.get('ci95'))} n={s.get('n', 0)}"
        lat = arm["latency_ms"]
        for q in ("p50", "p95", "p99"):
            row[f"{q} ms"] = _ms(lat.get(q))
        u = arm["unjudged"]
        frac = u.get("fraction")
        row[f"unjudged@{results['k']}"] = f"{u.get('at_k', 0)}" + ("" if frac is None else f" ({100 * frac:.1f}%)")
        rows.append(row)
    return rows


def comparison_rows(results: dict) -> list[dict]:
    """One row per (arm, metric) comparison vs the baseline, with the Holm-adjusted verdict."""
    alpha = results["settings"].get("alpha", 0.05)
    rows = []
    for c in results["comparisons"]:
        rows.append({"arm vs baseline": f"{c['arm']} vs {c['baseline']}", "metric": c["metric"], "n": str(c["n"]),
                     "delta": _num(c["delta_mean"]), "95% CI": _ci(c["ci95"]), "p": _p(c["p_value"]),
                     "p (Holm)": _p(c["p_holm"]), "win/loss/tie": f"{c['wins']}/{c['losses']}/{c['ties']}",
                     f"significant (alpha={alpha:g})": "YES" if c["significant"] else "no"})
    return rows


def interleaving_rows(results: dict) -> list[dict]:
    """One row per interleaving comparison: wins, ties, the arm's win rate with 95% CI and sign-test p."""
    return [{"arm vs baseline": f"{r['arm']} vs {r['baseline']}", "queries": str(r["n_queries"]),
             "impressions/query": str(r["impressions_per_query"]), "wins arm": str(r["wins_arm"]),
             "wins baseline": str(r["wins_baseline"]), "ties": str(r["ties"]),
             "win rate arm": _num(r["win_rate_arm"], 3), "95% CI": _ci(r["ci95"], 3), "p (sign test)": _p(r["p_value"])}
            for r in results["interleaving"]]


def latency_rows(results: dict) -> list[dict]:
    """Rows of the optional ``latency_vs_baseline`` section: ``{arm: {"p50_ms", "p99_ms", "p50_added_ms",
    "p99_added_ms", ...}}``; any other key of an arm's entry becomes a column too."""
    rows = []
    for arm, v in (results.get("latency_vs_baseline") or {}).items():
        row = {"arm": arm, "p50 ms": _ms(v.get("p50_ms")), "p99 ms": _ms(v.get("p99_ms")),
               "p50 added ms": _ms(v.get("p50_added_ms")), "p99 added ms": _ms(v.get("p99_added_ms"))}
        for k, x in v.items():
            if k not in ("p50_ms", "p99_ms", "p50_added_ms", "p99_added_ms"):
                row[k.replace("_", " ")] = _num(x, 3) if isinstance(x, float) else str(x)
        rows.append(row)
    return rows


# --- plots ----------------------------------------------------------------------

PLOT_CAPTIONS = {
    "deltas.png": "Per-query delta of the primary metric (arm - baseline), sorted; queries where it is undefined are left out.",
    "latency.png": "Per-query latency distribution by arm (box: quartiles, whiskers 1.5 IQR, dots outliers).",
    "outcomes.png": "Per-query wins / losses / ties of each arm vs the baseline (primary metric), and interleaving outcomes.",
}


def render_plots(results: dict) -> dict[str, bytes]:
    """PNG bytes by file name (see :data:`PLOT_CAPTIONS`)."""
    plt = agg_pyplot()
    figures: dict[str, bytes] = {}

    def save(name: str, fig: Any) -> None:
        figures[name] = figure_png(fig, dpi=80)

    primary = results.get("primary_metric") or (results["metrics"][0] if results["metrics"] else None)
    comps = [c for c in results["comparisons"] if c["metric"] == primary]
    if comps:
        fig, axes = plt.subplots(len(comps), 1, figsize=(7.5, 2.6 * len(comps)), squeeze=False)
        for ax, c in zip(axes[:, 0], comps):
            d = sorted(c["deltas"].values())
            colours = ["tab:green" if v > 0 else "tab:red" if v < 0 else "grey" for v in d]
            if d:
                ax.bar(range(len(d)), d, color=colours, width=1.0)
            else:
                ax.text(0.5, 0.5, "no query with a defined metric", ha="center", va="center", transform=ax.transAxes)
            ax.axhline(0, color="black", lw=0.6)
            ax.set_ylabel(f"delta {primary}")
            ax.set_title(f"{c['arm']} - {c['baseline']}: mean {_num(c['delta_mean'])}, p(Holm) {_p(c['p_holm'])}", fontsize=9)
        axes[-1, 0].set_xlabel("queries (sorted by delta)")
        fig.tight_layout()
        save("deltas.png", fig)

    lat = [[pq["took_ms"] for pq in results["arms"][a]["queries"].values() if pq.get("took_ms") is not None]
           for a in results["arm_names"]]
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(lat), 3.2))
    if any(lat):
        ax.boxplot([v if v else [float("nan")] for v in lat], showfliers=True)
        ax.set_xticks(range(1, len(lat) + 1), results["arm_names"], rotation=20)
    ax.set_ylabel("latency (ms)")
    ax.set_title("latency per query", fontsize=9)
    save("latency.png", fig)

    labels, wins, losses, ties = [], [], [], []
    for c in comps:
        labels.append(f"{c['arm']}\n({primary})")
        wins.append(c["wins"])
        losses.append(c["losses"])
        ties.append(c["ties"])
    for r in results["interleaving"]:
        labels.append(f"{r['arm']}\n(interleaving)")
        wins.append(r["wins_arm"])
        losses.append(r["wins_baseline"])
        ties.append(r["ties"])
    if labels:
        fig, ax = plt.subplots(figsize=(1.6 + 1.6 * len(labels), 3.2))
        x = list(range(len(labels)))
        width = 0.27
        ax.bar([i - width for i in x], wins, width, color="tab:green", label="arm wins")
        ax.bar(x, losses, width, color="tab:red", label="baseline wins")
        ax.bar([i + width for i in x], ties, width, color="grey", label="tie")
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_ylabel("queries")
        ax.set_title(f"vs baseline {results['baseline']}", fontsize=9)
        ax.legend(fontsize=7)
        save("outcomes.png", fig)
    return figures


# --- report ---------------------------------------------------------------------

def render_html(results: dict, figures: dict[str, bytes], *, title: str) -> str:
    """The self-contained HTML page (summary tables first, then plots and the lists of problem queries)."""
    e = html.escape
    st = results["settings"]
    j = results.get("judgments", {})
    notes = [f"Judgments: {results['judgment_source']} ({j.get('origin', '')}); {j.get('n_queries', '?')} queries, "
             f"{j.get('n_judged_queries', '?')} judged, {j.get('n_judgments', '?')} judged docs.",
             f"k = {results['k']}; gain {results.get('gain')}; relevant = grade >= {results.get('relevance_threshold')}; "
             f"unjudged returned docs count as non-relevant.",
             f"Deltas are arm - baseline ({results['baseline']}) per query; p from a two-sided paired randomization "
             f"(sign-flip) test, 95% CI from a paired percentile bootstrap ({st.get('bootstrap_resamples')} resamples, "
             f"seed {st.get('seed')}); Holm-Bonferroni across arms per metric; significant = Holm p <= {st.get('alpha')}.",
             "Latency percentiles: nearest-rank.",
             "Metric names as the Search Relevance Workbench (SRW) writes them (MRR is cut at k too); values at full "
             "precision, where SRW rounds to 2 decimals; where the conventions differ from SRW's: "
             "plugin/abtest/README.md in the distilrank sources."]
    if results["interleaving"]:
        notes.append("Interleaving: team draft with simulated clicks from the judgments; win rate = arm wins / "
                     "(arm wins + baseline wins), Wilson 95% CI, two-sided sign test.")
    imgs = figures_html(figures, PLOT_CAPTIONS)
    missing = results["queries_without_judgments"]
    norel = results.get("queries_without_relevant", [])
    lists = (f"<h2>Queries without judgments ({len(missing)})</h2>"
             + ("<ul>" + "".join(f"<li>{e(q)}</li>" for q in missing) + "</ul>" if missing else "<p>(none)</p>")
             + f"<h2>Judged queries without a relevant document ({len(norel)})</h2>"
             + ("<ul>" + "".join(f"<li>{e(q)}</li>" for q in norel) + "</ul>" if norel else "<p>(none)</p>"))
    notes += [str(n) for n in results.get("notes") or []]
    inter = (f"<h2>Interleaving</h2>{table_html(interleaving_rows(results))}" if results["interleaving"] else "")
    lat = results.get("latency_vs_baseline")
    if lat:  # optional (e.g. distilrank.plugin.abtest.fold_aliases): what each arm adds to the baseline's latency
        inter = (f"<h2>Latency added vs baseline {e(results['baseline'])}</h2>{table_html(latency_rows(results))}") + inter
    return html_page(title, f"<h1>{e(title)}</h1>"
                     f"<p><b>Judgment source:</b> {e(str(results['judgment_source']))}</p>"
                     f"<h2>Arms</h2>{table_html(summary_rows(results))}"
                     f"<h2>Deltas vs baseline {e(results['baseline'])}</h2>{table_html(comparison_rows(results))}"
                     f"{inter}<ul class='note'>{''.join(f'<li>{e(n)}</li>' for n in notes)}</ul>"
                     + (f"<h2>Plots</h2>{imgs}" if imgs else "") + lists)


def write_report(results: dict, out_dir: str | Path, *, title: str = "A/B comparison") -> dict[str, Path]:
    """Write ``report.html`` then ``report.json`` into ``out_dir`` (atomically); return ``{"html", "json"}`` -> path."""
    validate_results(results)
    out = Path(out_dir)
    clean = json_clean(results)
    text = json.dumps(clean, indent=2, ensure_ascii=False, allow_nan=False)
    page = render_html(clean, render_plots(clean), title=title)
    with atomic_open(out / "report.html") as fh:
        fh.write(page)
    with atomic_open(out / "report.json") as fh:
        fh.write(text + "\n")
    return {"html": out / "report.html", "json": out / "report.json"}
