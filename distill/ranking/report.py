"""Pool per-query results over folds and write the ranking report (Markdown + self-contained HTML + JSON).

The headline a relevance engineer reads first: BM25 / teacher / student nDCG@10 (ESCI gains)
in both settings, the student's paired gain over BM25 with its p-value and CI, the recovery
(student / teacher) and the share of the teacher's gain over BM25 that the student keeps.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from distilrank.distill.atomic import atomic_open, write_json
from distilrank.distill.ranking.config import RankingRunConfig
from distilrank.distill.ranking.evaluate import compare, paired, recovery
from distilrank.distill.reporting import html_page, table_html, table_md

SETTINGS = {"judged": "Rank the judged products", "rerank": "Rerank BM25's top {depth} from the whole catalogue"}
STUDENT, TEACHER, BASELINE = "student distilled", "teacher stacked", "BM25"


def pooled(fold_results: list[dict], setting: str) -> dict[str, dict[str, dict[str, float]]]:
    """``{system: {query: metrics}}`` over every fold's test queries (each query is in exactly one fold)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for fr in fold_results:
        for system, per_q in fr["eval"][setting].items():
            dup = set(per_q) & set(out.get(system, {}))
            if dup:
                raise AssertionError(f"queries evaluated in two folds: {sorted(dup)[:3]}")
            out.setdefault(system, {}).update(per_q)
    return out


def pairwise(per_system: dict[str, dict[str, dict[str, float]]], *, seed: int = 0) -> list[dict]:
    """The comparisons the method's claims rest on, each paired over queries on nDCG (ESCI gains): distilled vs
    gold-only student, stacked teacher vs each single teacher, distilled student vs stacked teacher."""
    checks = [(STUDENT, "student gold-only")] + [(TEACHER, s) for s in per_system if s.startswith("teacher ") and s != TEACHER]
    checks += [(STUDENT, TEACHER)] + [(STUDENT, s) for s in per_system if s.startswith("student distilled (")]
    return [{"a": a, "b": b, **paired(per_system[a], per_system[b], seed=seed)} for a, b in checks
            if a in per_system and b in per_system]


def summarize(cfg: RankingRunConfig, protocol: str, fold_results: list[dict], final: dict, data, *, seconds: float) -> dict:
    """The run summary: comparison tables per setting, recovery, headline lines."""
    tables, headline = {}, [f"protocol: {protocol}"]
    recov, pairs = {}, {}
    for setting in SETTINGS:
        per_system = pooled(fold_results, setting)
        rows = compare(per_system, BASELINE, seed=cfg.seed)
        tables[setting] = rows
        pairs[setting] = pairwise(per_system, seed=cfg.seed)
        by = {r["system"]: r for r in rows}
        if STUDENT in by and TEACHER in by:
            rec = recovery(by[STUDENT]["ndcg_esci"], by[TEACHER]["ndcg_esci"], by[BASELINE]["ndcg_esci"])
            recov[setting] = rec
            s = by[STUDENT]
            kept = (f"gain kept {100 * rec['gain_kept']:.0f}%" if math.isfinite(rec["gain_kept"])
                    else "gain kept n/a (the teacher does not beat BM25)")
            headline.append(
                f"{setting}: nDCG@{cfg.eval.k} (ESCI gains) BM25 {by[BASELINE]['ndcg_esci']:.4f}, teacher (stacked) "
                f"{by[TEACHER]['ndcg_esci']:.4f}, student {s['ndcg_esci']:.4f}; student - BM25 {s['delta_ndcg_esci']:+.4f} "
                f"(95% CI {s['ci_low']:+.4f}..{s['ci_high']:+.4f}, p = {s['p_value']:.3f}); recovery {100 * rec['recovery']:.1f}%, {kept}")
    return {"config": cfg.source, "protocol": protocol, "k": cfg.eval.k, "rerank_depth": cfg.eval.rerank_depth,
            "data": {"products": len(data.catalogue), "judged_queries": len(data.queries), "transfer_pairs": len(data.transfer),
                     "transfer_queries": len(data.transfer_pool), "document": {"fields": data.doc.fields, "max_chars": data.doc.max_chars,
                                                                              "index_field": data.doc.index_field},
                     "index": data.index_info},
            "tables": tables, "pairwise": pairs, "recovery": recov, "headline": headline,
            "stackers": [fr["stacker"] for fr in fold_results], "final": final, "seconds": seconds}


def _rows_for_table(rows: list[dict]) -> list[dict]:
    keep = ("system", "queries", "ndcg_esci", "ndcg_graded", "mrr", "unjudged", "delta_ndcg_esci", "ci_low", "ci_high", "p_value",
            "wins", "losses", "ties")
    return [{k: r[k] for k in keep if k in r} for r in rows]


def _share(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}% of queries"


def serve_section(serve: dict, report_dir: Path) -> tuple[str, list[dict], list[str], str]:
    """Title, table rows (one per arm), summary lines and the relative link to the A/B report.html of
    :func:`distilrank.distill.ranking.serve.serve_and_compare`'s summary."""
    import os

    k = serve.get("k", 10)
    lat, base = serve.get("latency_ms", {}), serve.get("latency_ms", {}).get("bm25", {})
    rows = []
    for arm in serve.get("arms", []):
        la = lat.get(arm, {})
        rows.append({"arm": arm, f"nDCG@{k} (2^g-1)": serve.get("ndcg", {}).get(arm), f"nDCG@{k} (ESCI gains)": serve.get("ndcg_esci", {}).get(arm),
                     "p50 ms": la.get("p50"), "p99 ms": la.get("p99"),
                     "p50 added vs bm25 ms": None if arm == "bm25" else la.get("p50_added"),
                     "p99 added vs bm25 ms": None if arm == "bm25" else la.get("p99_added"),
                     "top k differs from bm25": _share(serve.get("reranked_share", {}).get(arm))})
    lines = [f"{serve.get('queries')} judged queries over {serve.get('folds')} folds, each searched on the node by the models of the fold "
             f"that held it out: bm25 (first pass), student (BM25 top {serve.get('depth')} reranked by the fold's distilled student), "
             f"teacher (the same, reranked by its cross-encoder teacher).",
             f"Latency: client-side wall time per search (bm25 p50 {base.get('p50', float('nan')):.1f} ms, "
             f"p99 {base.get('p99', float('nan')):.1f} ms); 'added' is the arm's percentile minus bm25's."]
    for c in serve.get("comparisons", []):
        if c.get("metric", "").startswith("ndcg_esci") and c.get("delta_mean") is not None:
            ci = c.get("ci95") or [float("nan"), float("nan")]
            p = "n/a" if c.get("p_holm") is None else f"{c['p_holm']:.3f}"
            lines.append(f"{c['arm']} - bm25 on {c['metric']}: {c['delta_mean']:+.4f} (95% CI {ci[0]:+.4f}..{ci[1]:+.4f}, "
                         f"Holm p = {p}; {c['wins']} wins / {c['losses']} losses / {c['ties']} ties)")
    link = os.path.relpath(serve["report"]["html"], report_dir)
    return "In the cluster (A/B on the real node)", rows, lines, link


def write_ranking_report(summary: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``eval.json`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = [f"# distilrank ranking run: {Path(summary['config']).name}", "", *[f"- {h}" for h in summary["headline"]], ""]
    body = [f"<h1>distilrank ranking run: {html.escape(Path(summary['config']).name)}</h1>",
            "<ul>" + "".join(f"<li>{html.escape(h)}</li>" for h in summary["headline"]) + "</ul>"]
    for setting, title in SETTINGS.items():
        title = title.format(depth=summary["rerank_depth"])
        rows = _rows_for_table(summary["tables"][setting])
        md += [f"## {title}", "", table_md(rows), ""]
        body += [f"<h2>{html.escape(title)}</h2>", table_html(rows)]
        prs = summary.get("pairwise", {}).get(setting)
        if prs:
            md += [f"Paired comparisons ({title.lower()}), a - b:", "", table_md(prs), ""]
            body += [f"<p>Paired comparisons ({html.escape(title.lower())}), a - b:</p>", table_html(prs)]
    serve = summary.get("serve")
    if serve:
        title, rows, lines, link = serve_section(serve, out)
        md += [f"## {title}", "", *[f"- {x}" for x in lines], "", table_md(rows), "", f"Full A/B report: [{link}]({link})", ""]
        body += [f"<h2>{html.escape(title)}</h2>", "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in lines) + "</ul>",
                 table_html(rows), f"<p>Full A/B report: <a href='{html.escape(link, quote=True)}'>{html.escape(link)}</a></p>"]
    notes = ["nDCG@k with ESCI gains (E 1.0, S 0.1, C 0.01, I 0) and with graded gains (2^g - 1, g = 3/2/1/0); MRR: first Exact.",
             "delta, CI and p: paired over queries against BM25 (sign-flip permutation test, bootstrap 95% CI).",
             "In the rerank setting unjudged products count as not relevant; 'unjudged' is their share of the top k."]
    md += ["## Notes", "", *[f"- {n}" for n in notes], "", "## Data", "", f"```\n{json.dumps(summary['data'], indent=2)}\n```"]
    body += ["<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>",
             f"<h2>Data</h2><pre>{html.escape(json.dumps(summary['data'], indent=2))}</pre>"]
    paths = {"md": out / "report.md", "html": out / "report.html", "json": out / "eval.json"}
    with atomic_open(paths["md"]) as fh:
        fh.write("\n".join(md) + "\n")
    with atomic_open(paths["html"]) as fh:
        fh.write(html_page(f"distilrank ranking run: {Path(summary['config']).name}", "".join(body)))
    write_json(paths["json"], {"tables": summary["tables"], "recovery": summary["recovery"], "headline": summary["headline"]})
    return paths
