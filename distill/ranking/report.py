"""Pool per-query results over folds and write the ranking report (Markdown + self-contained HTML + JSON).

The report opens with the answer a relevance engineer needs: does BM25 + student, blended as the rescorer serves it,
beat BM25, by how much and how sure (paired permutation p, bootstrap 95% CI over queries), and how much of the
teacher's gain the student keeps.  Then nDCG@10 per system and setting as a chart with CIs, the tables, the per-query
differences to BM25, the scale curve, the seed spread and every recipe tried with its inner-fold score.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np

from distilrank.atomic import atomic_open, write_json
from distilrank.distill.ranking.config import RankingRunConfig
from distilrank.distill.ranking.evaluate import compare, paired
from distilrank.reporting import agg_pyplot, figure_png, figures_html, html_page, table_html, table_md

SETTINGS = {"judged": "Rank the judged products",
            "rerank": "Rerank BM25's top {depth} from the whole catalogue (unjudged = not relevant)",
            "condensed": "Rerank BM25's top {depth} with unjudged products removed (condensed lists)"}
SHIPPED, TEACHER_BLEND, STUDENT, TEACHER, BASELINE, GOLD = ("student + BM25", "teacher stacked + BM25", "student", "teacher stacked",
                                                           "BM25", "gold-only student")
COLUMNS = {"system": "system", "queries": "queries", "ndcg_esci": "nDCG@10 (ESCI gains)", "ndcg_graded": "nDCG@10 (2^g-1)",
           "mrr": "MRR@10 (Exact)", "unjudged": "unjudged share of top 10", "delta_ndcg_esci": "- BM25", "ci_low": "CI low",
           "ci_high": "CI high", "p_value": "p", "wins": "wins", "losses": "losses", "ties": "ties"}


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


def gain_kept(per_system: dict, *, resamples: int = 10_000, seed: int = 0) -> dict:
    """``(student blend - BM25) / (teacher blend - BM25)`` over queries with a paired bootstrap 95% CI (``nan`` when the
    teacher blend does not beat BM25 on average)."""
    if not all(s in per_system for s in (SHIPPED, TEACHER_BLEND, BASELINE)):
        return {}
    qs = sorted(per_system[BASELINE])
    base = np.array([per_system[BASELINE][q]["ndcg_esci"] for q in qs])
    a = np.array([per_system[SHIPPED][q]["ndcg_esci"] for q in qs]) - base
    b = np.array([per_system[TEACHER_BLEND][q]["ndcg_esci"] for q in qs]) - base
    ratio = float(a.mean() / b.mean()) if b.mean() > 0 else float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(qs), size=(resamples, len(qs)))
    ma, mb = a[idx].mean(axis=1), b[idx].mean(axis=1)
    boot = np.where(mb > 0, ma / np.where(mb > 0, mb, 1.0), np.nan)
    lo, hi = np.nanpercentile(boot, [2.5, 97.5]) if np.isfinite(boot).any() else (float("nan"), float("nan"))
    return {"gain_kept": ratio, "ci_low": float(lo), "ci_high": float(hi), "student_blend_minus_bm25": float(a.mean()),
            "teacher_blend_minus_bm25": float(b.mean())}


def pairwise(per_system: dict, *, seed: int = 0) -> list[dict]:
    """The comparisons the claims rest on, paired over queries on nDCG (ESCI gains)."""
    checks = [(SHIPPED, TEACHER_BLEND), (STUDENT, GOLD), (SHIPPED, GOLD + " + BM25"), (STUDENT, TEACHER)]
    checks += [(TEACHER, s) for s in per_system if s.startswith("teacher ") and s not in (TEACHER, TEACHER_BLEND)]
    return [{"a": a, "b": b, **paired(per_system[a], per_system[b], seed=seed)} for a, b in checks if a in per_system and b in per_system]


def _verdict(row: dict) -> str:
    if row["p_value"] is not None and row["p_value"] < 0.05:
        return "beats BM25" if row["delta_ndcg_esci"] > 0 else "is WORSE than BM25"
    return "is not significantly different from BM25"


def _headline(tables: dict, kept: dict, k: int) -> list[str]:
    lines = []
    for setting in ("judged", "rerank"):
        by = {r["system"]: r for r in tables[setting]}
        if SHIPPED not in by:
            continue
        s, b = by[SHIPPED], by[BASELINE]
        t = by.get(TEACHER_BLEND, {})
        lines.append(f"{setting}: BM25 + student {_verdict(s)}: nDCG@{k} (ESCI gains) {s['ndcg_esci']:.4f} vs BM25 {b['ndcg_esci']:.4f}, "
                     f"{s['delta_ndcg_esci']:+.4f} (95% CI {s['ci_low']:+.4f}..{s['ci_high']:+.4f}, p = {s['p_value']:.3f}); "
                     f"teacher + BM25 {t.get('ndcg_esci', float('nan')):.4f}; student alone {by[STUDENT]['ndcg_esci']:.4f}")
        g = kept.get(setting, {})
        if g:
            kept_txt = "n/a (the teacher blend does not beat BM25)" if not math.isfinite(g["gain_kept"]) else (
                f"{100 * g['gain_kept']:.0f}% (95% CI {100 * g['ci_low']:.0f}..{100 * g['ci_high']:.0f}%)")
            lines.append(f"{setting}: gain over BM25 kept by the student blend: {kept_txt}")
    return lines


def _variants(fold_results: list[dict], final: dict | None, out_dir: Path) -> list[dict]:
    rows = []
    dirs = [(f"fold {i}", out_dir / "folds" / f"fold-{i}") for i in range(len(fold_results))] + ([("final", out_dir / "final")] if final else [])
    for name, d in dirs:
        path = d / "choice.json"
        if path.exists():
            choice = json.loads(path.read_text())
            for v in choice["variants"]:
                rows.append({"choice on": name, "recipe": _recipe_label(v["recipe"]), "inner-fold nDCG@10 (blend)": v.get("inner_score"),
                             "student alone": v.get("student_alone"), "chosen": v["recipe"] == choice["chosen"]})
    return rows


def _recipe_label(r: dict) -> str:
    return f"{r['targets']} / {r['loss']} / {'match features' if r['match_features'] else 'n-grams only'} / T={r['temperature']:g}"


def summarize(cfg: RankingRunConfig, protocol: str, fold_results: list[dict], final: dict | None, data, *, seconds: float,
              seeds: dict | None = None) -> dict:
    """The run summary: per setting the comparison table vs BM25, pairwise checks and gain kept; headline lines;
    ``seeds`` is :func:`distilrank.distill.ranking.pipeline.seed_spread`'s result."""
    tables, pairs, kept, per_query = {}, {}, {}, {}
    for setting in SETTINGS:
        per_system = pooled(fold_results, setting)
        tables[setting] = compare(per_system, BASELINE, seed=cfg.seed)
        pairs[setting] = pairwise(per_system, seed=cfg.seed)
        kept[setting] = gain_kept(per_system, seed=cfg.seed)
        if SHIPPED in per_system:
            per_query[setting] = sorted(({"query": q, "BM25": per_system[BASELINE][q]["ndcg_esci"], "BM25 + student": m["ndcg_esci"],
                                          "delta": m["ndcg_esci"] - per_system[BASELINE][q]["ndcg_esci"]}
                                         for q, m in per_system[SHIPPED].items()), key=lambda r: r["delta"])
    headline = [f"protocol: {protocol}", *_headline(tables, kept, cfg.eval.k)]
    return {"config": cfg.source, "protocol": protocol, "k": cfg.eval.k, "rerank_depth": cfg.eval.rerank_depth,
            "data": {"products": len(data.catalogue), "judged_queries": len(data.queries), "transfer_pairs": len(data.tables["transfer"]),
                     "transfer_queries": len(data.transfer_pool), "document": {"fields": data.doc.fields, "max_chars": data.doc.max_chars,
                                                                              "index_field": data.doc.index_field},
                     "index": data.index_info},
            "tables": tables, "pairwise": pairs, "gain_kept": kept, "per_query": per_query, "seed_spread": seeds or {},
            "variants": _variants(fold_results, final, Path(cfg.out_dir)), "headline": headline,
            "folds": [{k: fr[k] for k in ("recipe", "blend", "stacker", "student")} for fr in fold_results], "final": final,
            "seconds": seconds}


def _rows_for_table(rows: list[dict]) -> list[dict]:
    return [{COLUMNS[k]: r[k] for k in COLUMNS if k in r} for r in rows]


def _chart(summary: dict) -> bytes:
    """nDCG@10 (ESCI gains) per system with 95% CIs (BM25's value + the paired CI of the difference), one panel per setting."""
    plt = agg_pyplot()
    fig, axes = plt.subplots(1, len(SETTINGS), figsize=(5 * len(SETTINGS), 0.45 * len(summary["tables"]["rerank"]) + 1.5), sharey=True)
    for ax, setting in zip(axes, SETTINGS):
        rows = [r for r in summary["tables"][setting] if "pairs)" not in r["system"]][::-1]
        base = next(r["ndcg_esci"] for r in rows if r["system"] == BASELINE)
        y = np.arange(len(rows))
        vals = [r["ndcg_esci"] for r in rows]
        lo = [r["ndcg_esci"] - (base + r["ci_low"]) if r.get("ci_low") is not None else 0 for r in rows]
        hi = [(base + r["ci_high"]) - r["ndcg_esci"] if r.get("ci_high") is not None else 0 for r in rows]
        colours = ["#2a7" if r["system"] == SHIPPED else "#888" if r["system"] == BASELINE else "#59c" for r in rows]
        ax.barh(y, vals, xerr=[lo, hi], color=colours, capsize=3)
        ax.axvline(base, color="#444", lw=0.8, ls="--")
        ax.set_yticks(y, [r["system"] for r in rows])
        ax.set_xlim(max(0.0, min(vals) - 0.1), min(1.0, max(vals) + 0.08))
        ax.set_title(setting)
        ax.set_xlabel("nDCG@10 (ESCI gains)")
    fig.tight_layout()
    return figure_png(fig)


def _scale_rows(summary: dict) -> list[dict]:
    rows = []
    for setting in ("judged", "rerank"):
        for r in summary["tables"][setting]:
            if r["system"].startswith(SHIPPED + " (") and "pairs)" in r["system"] or r["system"] == SHIPPED:
                size = summary["data"]["transfer_pairs"] if r["system"] == SHIPPED else int(r["system"].split("(")[1].split()[0])
                rows.append({"setting": setting, "transfer pairs": size, "nDCG@10 (ESCI gains)": r["ndcg_esci"],
                             "- BM25": r.get("delta_ndcg_esci"), "p": r.get("p_value")})
    return sorted(rows, key=lambda r: (r["setting"], r["transfer pairs"]))


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


def _sections(summary: dict) -> list[tuple[str, list[str], list[dict]]]:
    """``(title, text lines, table rows)`` of the report, in order."""
    depth = summary["rerank_depth"]
    out = [("The answer", summary["headline"], [])]
    for setting, title in SETTINGS.items():
        out.append((title.format(depth=depth), [], _rows_for_table(summary["tables"][setting])))
        prs = summary["pairwise"].get(setting)
        if prs:
            out.append((f"Paired checks ({setting}), a - b", [], [{k: v for k, v in p.items() if k != "queries"} for p in prs]))
    pq = summary["per_query"].get("rerank")
    if pq:
        out.append((f"Per query: BM25 + student - BM25 (rerank top {depth}), worst first", [], pq))
    if (scale := _scale_rows(summary)):
        out.append(("Scale curve: the chosen recipe on more transfer pairs (BM25 + student)", [], scale))
    if summary["seed_spread"]:
        out.append(("Seed spread of the shipped recipe retrained at full size (BM25 + student, same folds)", [],
                    [{"setting": s, "recipe": v["recipe"], "seeds": ", ".join(str(r["seed"]) for r in v["per_seed"]),
                      "nDCG@10 per seed": ", ".join(f"{r['ndcg_esci']:.4f}" for r in v["per_seed"]), "mean": v["mean"], "std": v["std"],
                      "min": v["min"], "max": v["max"]} for s, v in summary["seed_spread"].items()]))
    if summary["variants"]:
        out.append(("Recipes tried (nested inner-fold nDCG@10 of the BM25 blend on the training queries)", [], summary["variants"]))
    if summary.get("serve"):
        title, rows, lines, link = serve_section(summary["serve"], Path(summary["report_dir"]))
        out.append((title, [*lines, f"Full A/B report: {link}"], rows))
    notes = ["nDCG@10 with ESCI gains (E 1.0, S 0.1, C 0.01, I 0); '2^g-1' uses grades 3/2/1/0; MRR: first Exact product.",
             "'- BM25', CI and p: paired over queries (sign-flip permutation test, bootstrap 95% CI); each query is scored by "
             "models and blends fitted without it.",
             "X + BM25: the rescorer's blend, query_weight * norm(BM25) + model_weight * norm(model) within each query's list, "
             "weights and normalisation fitted on the fold's training queries.",
             "Judged setting: a judged product BM25 does not match has BM25 score 0."]
    out.append(("Notes", notes, []))
    return out


def results_record(summary: dict) -> dict:
    """The machine-readable summary committed as ``bench/results/esci.json``: protocol, commit, machine, and per setting
    every system's mean nDCG@10 (ESCI gains) with its paired difference to BM25, 95% CI and p."""
    import os
    import platform
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    keep = ("system", "queries", "ndcg_esci", "ndcg_graded", "mrr", "unjudged", "delta_ndcg_esci", "ci_low", "ci_high", "p_value")
    return {"config": Path(summary["config"]).name, "protocol": summary["protocol"], "metric": "nDCG@10, ESCI gains (E 1, S 0.1, C 0.01, I 0)",
            "commit": commit, "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
            "seconds": summary.get("seconds"), "data": summary["data"], "headline": summary["headline"],
            "settings": {s: [{k: r[k] for k in keep if k in r} for r in rows] for s, rows in summary["tables"].items()},
            "gain_kept": summary["gain_kept"], "pairwise": summary["pairwise"], "seed_spread": summary["seed_spread"],
            "variants": summary["variants"], "folds": summary["folds"], "final": summary.get("final")}


def write_ranking_report(summary: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.html``, ``eval.json`` and ``results.json`` (:func:`results_record`) into ``out_dir``;
    returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = {**summary, "report_dir": str(out)}
    name = Path(summary["config"]).name
    md, body = [f"# distilrank product search: {name}", ""], [f"<h1>distilrank product search: {html.escape(name)}</h1>"]
    for i, (title, lines, rows) in enumerate(_sections(summary)):
        md += [f"## {title}", "", *[f"- {x}" for x in lines], *([table_md(rows)] if rows else []), ""]
        body += [f"<h2>{html.escape(title)}</h2>"]
        if lines:
            body.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in lines) + "</ul>")
        if i == 0:
            try:
                body.append(figures_html({"ndcg": _chart(summary)}, {"ndcg": "nDCG@10 (ESCI gains) per system; bars: 95% CI of the "
                                                                             "paired difference to BM25 (dashed)"}))
            except ImportError:  # matplotlib is the [report] extra
                pass
        if rows:
            body.append(table_html(rows))
    md += ["## Data", "", f"```\n{json.dumps(summary['data'], indent=2)}\n```"]
    body.append(f"<h2>Data</h2><pre>{html.escape(json.dumps(summary['data'], indent=2))}</pre>")
    paths = {"md": out / "report.md", "html": out / "report.html", "json": out / "eval.json"}
    with atomic_open(paths["md"]) as fh:
        fh.write("\n".join(md) + "\n")
    with atomic_open(paths["html"]) as fh:
        fh.write(html_page(f"distilrank product search: {name}", "".join(body)))
    write_json(paths["json"], {k: summary[k] for k in ("tables", "gain_kept", "headline", "seed_spread", "variants", "pairwise")})
    paths["results"] = out / "results.json"
    write_json(paths["results"], results_record(summary))
    return paths
