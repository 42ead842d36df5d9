"""Write an evaluation as ``eval.json`` + ``report.md`` (+ PNG plots) + a self-contained ``report.html``.

Input is the dict of :func:`distilrank.distill.evaluation.evaluate.evaluate_scores`; the
logits and labels it was computed from are optional and only feed the plots.
Every file goes through :mod:`distilrank.atomic`, and ``eval.json`` is written
last: a crash part-way leaves no half-written file, and an ``eval.json`` from an
earlier call stays as it was.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np

from distilrank.atomic import atomic_open, atomic_path, write_json
from distilrank.metrics import calibration_bins, expected_calibration_error, positives
from distilrank.reporting import agg_pyplot, figure_png, figures_html, html_page, json_clean, table_html, table_md
from distilrank.reporting import fmt_number as _fmt
from distilrank.reporting import is_number as _is_num

SCATTER_MAX_POINTS = 20_000  # plotted points are a seeded random subset beyond this

# --- numbers ------------------------------------------------------------------


def _pct(v: Any) -> str:
    return "-" if v is None or not _is_num(v) or math.isnan(float(v)) else f"{100 * float(v):.1f}%"


def _ci(v: Any) -> str:
    return "-" if not v else f"{_fmt(v[0])} - {_fmt(v[1])}"


# --- terminal summary ---------------------------------------------------------


def format_summary(result: dict) -> str:
    """A few lines for the terminal: rows, teacher vs student accuracy (95% CI) and AUC, recovery %, agreement, ranking."""
    lines = [f"{result.get('n', '?')} rows" + (f", {result['labels']} labels" if result.get("labels") else ", no gold labels")]
    for who in ("teacher", "student"):
        b = result.get(who) or {}
        if "accuracy" in b:
            lines.append(f"{who:<8} accuracy {_fmt(b['accuracy'])} (95% CI {_ci(b['accuracy_ci95'])})  AUC {_fmt(b['auc'])}"
                         f"  log-loss {_fmt(b['log_loss'])}")
        elif b:
            lines.append(f"{who:<8} positive rate {_fmt(b['positive_rate'])}")
    rec = result.get("recovery")
    if rec:
        lines.append(f"recovery {_pct(rec['accuracy'])} of teacher accuracy, {_pct(rec['auc'])} of AUC")
    if result.get("agreement") is not None:
        lines.append(f"agreement with teacher {_fmt(result['agreement'])}  pearson {_fmt(result.get('pearson'))}"
                     f"  spearman {_fmt(result.get('spearman'))}")
    for who, r in (result.get("ranking") or {}).items():
        lines.append(f"{who} ranking: " + "  ".join(f"{k} {_fmt(v)}" for k, v in r.items()))
    return "\n".join(lines)


# --- tables -------------------------------------------------------------------


def headline_rows(result: dict) -> list[dict]:
    """Rows ``{"metric", ["teacher"], "student", ["recovery"]}`` (cells already formatted) for the headline table."""
    st, te, rec = result.get("student") or {}, result.get("teacher"), result.get("recovery") or {}
    k = result.get("k", 10)
    metrics = [("accuracy", "accuracy"), ("accuracy_ci95", "accuracy 95% CI"), ("auc", "AUC"), ("log_loss", "log-loss (nats)"),
               ("ece", "calibration error (ECE)"), ("positive_rate", "predicted positive rate")]
    rows = []
    for key, name in metrics:
        if key not in st:
            continue
        fmt = _ci if key == "accuracy_ci95" else _fmt
        row = {"metric": name}
        if te is not None:
            row["teacher"] = fmt(te.get(key))
        row["student"] = fmt(st.get(key))
        if te is not None:
            row["recovery"] = _pct(rec[key]) if key in rec else ""
        rows.append(row)
    ranking = result.get("ranking") or {}
    for key, name in ((f"ndcg@{k}", f"NDCG@{k}"), (f"mrr@{k}", f"MRR@{k}")):
        if "student" not in ranking:
            break
        row = {"metric": name}
        if te is not None:
            row["teacher"] = _fmt(ranking.get("teacher", {}).get(key))
        row["student"] = _fmt(ranking["student"][key])
        if te is not None:
            row["recovery"] = _pct(rec.get(key))
        rows.append(row)
    return rows


def _notes(result: dict) -> list[str]:
    notes = [f"{result.get('n', '?')} rows; gold labels: {result.get('labels') or 'none'}."]
    if result.get("agreement") is not None:
        notes.append(f"Student vs teacher: same decision on {_pct(result['agreement'])} of rows; "
                     f"Pearson r = {_fmt(result.get('pearson'))}, Spearman rho = {_fmt(result.get('spearman'))}.")
    r = (result.get("ranking") or {}).get("student")
    if r:
        notes.append(f"Ranking over {r['n_queries']} queries ({r['n_skipped']} without any relevant document skipped).")
    if result.get("recovery"):
        notes.append("Recovery = student metric / teacher metric.")
    return notes


# --- plots --------------------------------------------------------------------

PLOT_CAPTIONS = {
    "scatter.png": "Student vs teacher logits (each dot a row; colour = gold class).",
    "reliability.png": "Reliability: mean predicted probability vs observed fraction positive per probability bin.",
    "histogram.png": "Logit distributions by gold class.",
}


def _as_array(name: str, v: np.ndarray | None, n: int | None) -> np.ndarray | None:
    if v is None:
        return None
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if n is not None and a.size != n:
        raise ValueError(f"write_report: {name} has {a.size} values, expected {n}")
    return a


def render_plots(student: np.ndarray | None, teacher: np.ndarray | None, labels: np.ndarray | None) -> dict[str, bytes]:
    """PNG bytes by file name: ``scatter.png`` (student and teacher given), ``reliability.png`` (labels and a model),
    ``histogram.png`` (any model).  Arrays are ``[N]``; rows with a non-finite logit are left out of the plots."""
    plt = agg_pyplot()
    figures: dict[str, bytes] = {}

    def save(name: str, fig: Any) -> None:
        figures[name] = figure_png(fig, dpi=90)

    models = [(name, z) for name, z in (("teacher", teacher), ("student", student)) if z is not None]
    finite = np.ones(models[0][1].size if models else 0, dtype=bool)
    for _, z in models:
        finite &= np.isfinite(z)
    pos = None if labels is None else positives(labels)
    if student is not None and teacher is not None:
        idx = np.flatnonzero(finite)
        if idx.size > SCATTER_MAX_POINTS:
            idx = np.sort(np.random.default_rng(0).choice(idx, SCATTER_MAX_POINTS, replace=False))
        fig, ax = plt.subplots(figsize=(4.8, 4.2))
        if pos is None:
            ax.scatter(teacher[idx], student[idx], s=4, alpha=0.4, color="tab:blue", lw=0)
        else:
            for cls, colour, lab in ((False, "tab:red", "gold negative"), (True, "tab:green", "gold positive")):
                j = idx[pos[idx] == cls]
                ax.scatter(teacher[j], student[j], s=4, alpha=0.4, color=colour, lw=0, label=lab)
            ax.legend(loc="upper left", markerscale=3, fontsize=8)
        ax.axhline(0, color="grey", lw=0.6)
        ax.axvline(0, color="grey", lw=0.6)
        ax.set_xlabel("teacher logit")
        ax.set_ylabel("student logit")
        ax.set_title("student vs teacher")
        save("scatter.png", fig)
    if pos is not None and models:
        fig, ax = plt.subplots(figsize=(4.8, 4.2))
        for name, z in models:
            t = calibration_bins(z[finite], labels[finite])
            used = t["count"] > 0
            ece = expected_calibration_error(z[finite], labels[finite])
            ax.plot(t["mean_prob"][used], t["frac_pos"][used], marker="o", label=f"{name} (ECE {ece:.3f})")
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8, label="perfect")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("predicted probability sigmoid(logit)")
        ax.set_ylabel("fraction gold positive")
        ax.set_title("reliability (10 bins)")
        ax.legend(fontsize=8)
        save("reliability.png", fig)
    if models:
        fig, axes = plt.subplots(1, len(models), figsize=(4.8 * len(models), 3.8), squeeze=False)
        for i, (ax, (name, z)) in enumerate(zip(axes[0], models)):
            zf = z[finite]
            bins = np.histogram_bin_edges(zf, bins=40) if zf.size else 10
            if pos is None:
                ax.hist(zf, bins=bins, alpha=0.7, color="tab:blue", label="all rows")
            else:
                ax.hist(zf[pos[finite]], bins=bins, alpha=0.55, color="tab:green", label="gold positive")
                ax.hist(zf[~pos[finite]], bins=bins, alpha=0.55, color="tab:red", label="gold negative")
            ax.axvline(0, color="grey", lw=0.6)
            ax.set_xlabel(f"{name} logit")
            if i == 0:
                ax.set_ylabel("rows")
            ax.set_title(f"{name} scores")
            ax.legend(fontsize=8)
        fig.tight_layout()
        save("histogram.png", fig)
    return figures


# --- report -------------------------------------------------------------------

def write_report(
    result: dict,
    out_dir: str | Path,
    *,
    title: str,
    student_logits: np.ndarray | None = None,
    teacher_logits: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    extra_tables: dict[str, list[dict]] | None = None,
    extra_figures: dict[str, tuple[bytes, str]] | None = None,
) -> dict[str, Path]:
    """Write the report of ``result`` (from ``evaluate_scores``) into ``out_dir``.

    Files: PNG plots (see :func:`render_plots`; only those the given arrays allow),
    ``report.md`` (headline teacher / student / recovery table, notes, ``extra_tables``
    such as a temperature sweep, plots by relative link), ``report.html`` (the same,
    self-contained: plots as base64 ``<img>``), and last ``eval.json`` =
    ``{"title", "result", "tables"}`` as strict JSON (``nan`` stored as ``null``).
    ``student_logits``, ``teacher_logits``, ``labels`` are ``[N]`` arrays of equal length.
    ``extra_figures`` maps a PNG file name to ``(png bytes, caption)`` (e.g. a scale curve).

    Returns ``{"json", "markdown", "html", <plot file name>...}`` -> path.
    """
    out = Path(out_dir)
    extra_tables = extra_tables or {}
    n = None
    for name, v in (("student_logits", student_logits), ("teacher_logits", teacher_logits), ("labels", labels)):
        if v is not None:
            n = np.size(v) if n is None else n
    student, teacher, y = (_as_array("student_logits", student_logits, n), _as_array("teacher_logits", teacher_logits, n),
                           _as_array("labels", labels, n))
    figures = render_plots(student, teacher, y)
    captions = dict(PLOT_CAPTIONS)
    for name, (data, caption) in (extra_figures or {}).items():
        figures[name] = data
        captions[name] = caption

    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, data in figures.items():
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(data)
        paths[name] = out / name

    headline, notes = headline_rows(result), _notes(result)
    md = [f"# {title}\n", table_md(headline)]
    md += [f"- {line}" for line in notes] + [""]
    for name, rows in extra_tables.items():
        md += [f"## {name}\n", table_md(rows)]
    if figures:
        md.append("## Plots\n")
        md += [f"![{name}]({name})\n\n{captions[name]}\n" for name in figures]
    with atomic_open(out / "report.md") as fh:
        fh.write("\n".join(md))

    imgs = figures_html(figures, captions)
    tables = "".join(f"<h2>{html.escape(name)}</h2>{table_html(rows)}" for name, rows in extra_tables.items())
    page = html_page(title, f"<h1>{html.escape(title)}</h1>{table_html(headline)}"
                     f"<ul>{''.join(f'<li>{html.escape(line)}</li>' for line in notes)}</ul>{tables}"
                     + (f"<h2>Plots</h2>{imgs}" if figures else ""))
    with atomic_open(out / "report.html") as fh:
        fh.write(page)

    write_json(out / "eval.json", json_clean({"title": title, "result": result, "tables": extra_tables}))
    paths.update({"json": out / "eval.json", "markdown": out / "report.md", "html": out / "report.html"})
    return paths
