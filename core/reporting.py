"""The one reporting toolkit every report of the project is written with (torch-free, matplotlib only when drawing).

* Numbers: :func:`fmt_number` (tables), :func:`json_clean` (strict JSON: numpy to Python, non-finite to ``None``).
* Tables: :func:`table_md` / :func:`table_html` from row dicts (columns = union of keys in first-seen order).
* Pages: :data:`STYLE`, the one style sheet, and :func:`html_page`, the self-contained page around a body.
* Figures: :func:`agg_pyplot` (matplotlib on the Agg backend, imported on first use so that matplotlib stays an
  optional extra for code that draws nothing), :func:`figure_png` and :func:`figures_html` (PNGs inlined as base64).

Used by :mod:`distilrank.distill.evaluation.report`, :mod:`distilrank.distill.ranking.report` and :mod:`distilrank.plugin.abtest.report`.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

STYLE = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
         "th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:6px;"
         "vertical-align:top;max-width:620px}figcaption{font-size:0.85em;color:#555}img{max-width:100%}"
         ".note{color:#555;font-size:0.9em}")


def html_page(title: str, body: str) -> str:
    """A self-contained HTML5 page: ``<title>`` (escaped ``title``), :data:`STYLE` inline, ``body`` as given (already HTML)."""
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style></head>"
            f"<body>{body}</body></html>\n")


# --- numbers ------------------------------------------------------------------


def is_number(v: Any) -> bool:
    """True for int / float / numpy numbers (not bools)."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def fmt_number(v: Any) -> str:
    """Numbers for tables: |x| >= 100 without decimals (thousands separated), |x| >= 1 to 4 significant digits, else 4 decimals."""
    if v is None:
        return "-"
    if isinstance(v, (np.integer, int)) and not isinstance(v, bool):
        return str(int(v))
    if not isinstance(v, (float, np.floating)):
        return str(v)
    v = float(v)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.4g}" if abs(v) >= 1 else f"{v:.4f}"


def require_fields(results: Any, required: tuple[str, ...], schema: str) -> None:
    """Raise :class:`DistilRankError` unless ``results`` is a dict with every ``required`` field and ``schema`` equal to
    ``schema`` (the first check of every report writer's ``validate_results``)."""
    from distilrank.errors import DistilRankError

    if not isinstance(results, dict):
        raise DistilRankError(f"results must be a dict, got {type(results).__name__}")
    for key in required:
        if key not in results:
            raise DistilRankError(f"results: missing field {key!r}")
    if results["schema"] != schema:
        raise DistilRankError(f"results: field 'schema' is {results['schema']!r}, expected {schema!r}")


def json_clean(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays turned into Python types and non-finite floats into ``None`` (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_clean(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


# --- tables -------------------------------------------------------------------


def _columns(rows: list[dict]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    return cols


def _md_cell(v: Any) -> str:
    return (v if isinstance(v, str) else fmt_number(v)).replace("|", "\\|").replace("\n", " ")


def table_md(rows: list[dict]) -> str:
    """A Markdown table of row dicts (columns: union of keys in first-seen order; numbers via the report format)."""
    if not rows:
        return "(none)\n"
    cols = _columns(rows)
    out = ["| " + " | ".join(_md_cell(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_md_cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


def table_html(rows: list[dict]) -> str:
    """An HTML ``<table>`` of row dicts, same columns and formatting as :func:`table_md`."""
    if not rows:
        return "<p>(none)</p>"
    cols = _columns(rows)
    cell = lambda v: html.escape(v if isinstance(v, str) else fmt_number(v))  # noqa: E731
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# --- figures ------------------------------------------------------------------

def agg_pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Any, dpi: int = 90) -> bytes:
    """PNG bytes of a matplotlib figure, which is closed afterwards."""
    plt = agg_pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def figures_html(figures: dict[str, bytes], captions: dict[str, str]) -> str:
    """``<figure>`` elements with the PNGs inlined as base64 and their (escaped) captions."""
    return "".join(f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'
                   f"<figcaption>{html.escape(captions.get(name, name))}</figcaption></figure>" for name, data in figures.items())
