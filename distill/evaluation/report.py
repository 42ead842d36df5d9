"""Write an evaluation as ``eval.json`` + ``report.md`` + self-contained ``report.html`` with plots."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from distill.atomic import atomic_open, atomic_path, write_json
from distill.evaluation.evaluate import format_summary


def _plots(student: np.ndarray | None, teacher: np.ndarray | None, labels: np.ndarray | None) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures: dict[str, bytes] = {}

    def save(name: str, fig) -> None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        figures[name] = buf.getvalue()

    if student is not None and teacher is not None:
        fig, ax = plt.subplots(figsize=(4.5, 4))
        c = None if labels is None else np.where(labels >= 0.5 * max(1.0, labels.max()), "tab:green", "tab:red")
        ax.scatter(teacher, student, s=4, alpha=0.5, c=c)
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_xlabel("teacher logit")
        ax.set_ylabel("student logit")
        ax.set_title("student vs teacher (green = positive)")
        save("scatter.png", fig)
    if labels is not None:
        fig, ax = plt.subplots(figsize=(4.5, 4))
        pos = labels >= 0.5 * max(1.0, labels.max())
        for name, z in (("student", student), ("teacher", teacher)):
            if z is None:
                continue
            p = 1 / (1 + np.exp(-z))
            bins = np.minimum((p * 10).astype(int), 9)
            xs = [p[bins == b].mean() for b in range(10) if (bins == b).any()]
            ys = [pos[bins == b].mean() for b in range(10) if (bins == b).any()]
            ax.plot(xs, ys, marker="o", label=name)
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8)
        ax.set_xlabel("predicted probability")
        ax.set_ylabel("fraction positive")
        ax.set_title("reliability")
        ax.legend()
        save("reliability.png", fig)
        if student is not None:
            fig, ax = plt.subplots(figsize=(4.5, 4))
            ax.hist(student[pos], bins=40, alpha=0.6, label="gold positive")
            ax.hist(student[~pos], bins=40, alpha=0.6, label="gold negative")
            ax.set_xlabel("student logit")
            ax.legend()
            ax.set_title("student scores by gold class")
            save("histogram.png", fig)
    return figures


def _fmt(v: object) -> str:
    """Numbers for tables: counts and rates >= 100 without decimals, others to 4 significant decimals."""
    if isinstance(v, bool) or not isinstance(v, float):
        return str(v)
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.4g}" if abs(v) >= 1 else f"{v:.4f}"


def _table_md(rows: list[dict]) -> str:
    if not rows:
        return "(none)\n"
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _table_html(rows: list[dict]) -> str:
    if not rows:
        return "<p>(none)</p>"
    cols = list(rows[0])
    fmt = lambda v: html.escape(_fmt(v))  # noqa: E731
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(
    result: dict,
    out_dir: str | Path,
    *,
    title: str,
    student_logits: np.ndarray | None = None,
    teacher_logits: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    extra_tables: dict[str, list[dict]] | None = None,
) -> dict[str, Path]:
    """Write ``eval.json``, ``report.md`` (+ PNG plots) and a self-contained ``report.html``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    extra_tables = extra_tables or {}
    figures = _plots(student_logits, teacher_logits, labels)
    paths: dict[str, Path] = {}
    for name, data in figures.items():
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(data)
        paths[name] = out / name
    summary = format_summary(result)
    md = [f"# {title}\n", "```", summary, "```\n"]
    for name, rows in extra_tables.items():
        md += [f"## {name}\n", _table_md(rows)]
    md += [f"![{n}]({n})\n" for n in figures]
    with atomic_open(out / "report.md") as fh:
        fh.write("\n".join(md))
    imgs = "".join(f'<img alt="{n}" src="data:image/png;base64,{base64.b64encode(d).decode()}">' for n, d in figures.items())
    tables = "".join(f"<h2>{html.escape(n)}</h2>{_table_html(r)}" for n, r in extra_tables.items())
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}pre{background:#f4f4f4;padding:1em}"
            f"img{{margin:4px}}</style></head><body><h1>{html.escape(title)}</h1><pre>{html.escape(summary)}</pre>"
            f"{tables}<h2>Plots</h2>{imgs}</body></html>")
    with atomic_open(out / "report.html") as fh:
        fh.write(page)
    write_json(out / "eval.json", {"title": title, "result": result, "tables": extra_tables})
    paths.update({"json": out / "eval.json", "markdown": out / "report.md", "html": out / "report.html"})
    return paths
