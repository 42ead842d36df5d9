"""``distilrank ab online`` and ``ab coec``: live A/B results and click-derived judgments from a UBI click log.

* ``ab online CONFIG`` reads the config's time range of ``ubi_queries`` + ``ubi_events``
  (:func:`distilrank.plugin.ubi.reader.read_ubi_log`), computes the per-arm metrics with user-level CIs and
  p-values, the interleaving credit and, unless ``coec.enabled = false``, the COEC judgments, and writes into
  ``online.out``: ``report.json``, ``report.html``, ``coec-judgments.csv`` (``query,docid,rating``, what ``ab run``
  and training read) and ``coec-judgments.srw.json`` (SRW ``IMPORT_JUDGMENT`` body).  COEC is folded in because it
  reads the same log and its agreement with human grades belongs in the same report.
* ``ab coec CONFIG --out FILE [--format csv|srw]`` writes only the COEC judgments, for a training or SRW pipeline
  that needs the file and not the A/B statistics.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from distilrank.plugin.cli.cluster import add_connection_args, finish, log, transport

CSV_NAME, SRW_NAME = "coec-judgments.csv", "coec-judgments.srw.json"


def _read(args: argparse.Namespace, cfg):
    """``(transport, UbiLog)`` of the config's time range and indexes."""
    from distilrank.plugin.ubi.reader import read_ubi_log

    args.connection_config = args.connection_config or str(cfg.path)
    t = transport(args)
    t0 = time.perf_counter()
    extra = {} if cfg.online.ordinal_base is None else {"ordinal_base": cfg.online.ordinal_base}
    ubi = read_ubi_log(t, start=cfg.start, end=cfg.end, queries_index=cfg.online.queries_index,
                       events_index=cfg.online.events_index, **extra)
    log(f"read {len(ubi.searches)} searches ({sum(ubi.malformed.values())} malformed documents/events skipped) "
        f"in {time.perf_counter() - t0:.1f} s")
    return t, ubi


def _human(cfg):
    """The human grades ``{query: {doc: grade}}`` of ``coec.judgments``, ``None`` without."""
    if not cfg.coec.judgments:
        return None
    from distilrank.judgments import load_judgments

    return load_judgments(cfg.coec.judgments, grade_map=cfg.coec.grade_map).grades


def _summary_lines(res: dict) -> list[str]:
    from distilrank.plugin.abtest.online_report import arm_rows, comparison_rows, interleaving_rows

    lines = [f"online A/B {res['name']}: {res['searches_analysed']} of {res['searches_read']} searches, "
             f"control {res['control']}" + (" [SIMULATED]" if res["simulated"]["searches"] else "")]
    for row in arm_rows(res) + comparison_rows(res) + interleaving_rows(res):
        lines.append("  " + "  ".join(f"{k} {v}" for k, v in row.items()))
    c = res.get("coec")
    if c:
        ag = c.get("agreement")
        lines.append(f"  COEC: {c['pairs_judged']} pairs judged (>= {c['min_impressions']} impressions) over "
                     f"{c['queries_judged']} queries" + ("" if not ag else
                     f"; Kendall tau-b vs human grades: COEC {ag['coec']['mean_tau']}, CTR {ag['ctr']['mean_tau']} "
                     f"({ag['queries']} queries, >= {ag['min_impressions']} impressions)"))
    if res["malformed"]:
        lines.append("  malformed: " + ", ".join(f"{r} {v['count']}" for r, v in res["malformed"].items()))
    return lines


def cmd_ab_online(args: argparse.Namespace) -> None:
    """``distilrank ab online CONFIG``: :func:`distilrank.plugin.abtest.online_run.analyse` of the log the config
    names, written by :func:`distilrank.plugin.abtest.online_report.write_report`."""
    from distilrank.plugin.abtest.coec import write_csv, write_srw
    from distilrank.plugin.abtest.online_config import load_online_config
    from distilrank.plugin.abtest.online_report import write_report
    from distilrank.plugin.abtest.online_run import analyse
    from distilrank.reporting import json_clean

    cfg = load_online_config(args.config)
    if args.out:
        cfg.online.out = str(Path(args.out).resolve())
    human = _human(cfg)
    t, ubi = _read(args, cfg)
    res, grades = analyse(ubi, cfg, human=human)
    log(f"analysed in {res['timing_s']['total']:.1f} s")
    out = Path(cfg.online.out)
    if res["coec"] is not None:
        name = cfg.coec.srw_name or f"{cfg.online.name} COEC"
        res["coec"]["files"] = {"csv": str(write_csv(out / CSV_NAME, grades)), "srw": str(write_srw(out / SRW_NAME, grades, name=name))}
    paths = write_report(res, out)
    lines = _summary_lines(res) + [f"report: {paths['html']} (and {paths['json']})"]
    brief = {k: res[k] for k in ("name", "control", "arms", "comparisons", "malformed", "simulated", "timing_s")}
    brief["interleaving"] = res["interleaving"]["pairs"]
    brief["coec"] = None if res["coec"] is None else {k: v for k, v in res["coec"].items() if k != "agreement"} | {
        "agreement": None if not res["coec"]["agreement"] else
        {k: res["coec"]["agreement"][k] for k in ("coec", "ctr", "queries", "docs", "min_impressions")}}
    finish(args, t, json_clean({"report": paths, **brief}), "\n".join(lines))


def cmd_ab_coec(args: argparse.Namespace) -> None:
    """``distilrank ab coec CONFIG --out FILE``: only the COEC judgments of the config's log, as CSV or SRW body."""
    from distilrank.plugin.abtest import coec
    from distilrank.plugin.abtest.online_config import load_online_config

    cfg = load_online_config(args.config)
    human = _human(cfg)
    t, ubi = _read(args, cfg)
    c = cfg.coec
    stats = coec.coec_stats(ubi.searches, max_rank=c.max_rank)
    grades = coec.judgments(stats, min_impressions=c.min_impressions, thresholds=c.thresholds)
    if args.format == "srw":
        path = coec.write_srw(args.out, grades, name=args.name or c.srw_name or f"{cfg.online.name} COEC")
    else:
        path = coec.write_csv(args.out, grades)
    n = sum(len(d) for d in grades.values())
    result = {"out": str(path), "format": args.format, "pairs": len(stats.pairs), "pairs_judged": n, "queries": len(grades),
              "min_impressions": c.min_impressions, "position_ctr": stats.position_ctr}
    human_line = ""
    if human is not None:
        ag = coec.agreement(stats, human, min_impressions=c.agreement_min_impressions)
        result["agreement"] = {k: ag[k] for k in ("coec", "ctr", "queries", "docs", "min_impressions")}
        human_line = f"; Kendall tau-b vs human grades: COEC {ag['coec']['mean_tau']}, CTR {ag['ctr']['mean_tau']}"
    finish(args, t, result, f"{n} judgments ({len(grades)} queries, pairs with >= {c.min_impressions} impressions of "
                            f"{len(stats.pairs)}) -> {path} ({args.format}){human_line}")


def add_commands(cmds: argparse._SubParsersAction) -> None:
    """Register ``online`` and ``coec`` on the ``ab`` subcommand parsers ``cmds``."""
    p = cmds.add_parser("online", help="live A/B from a UBI click log: per-arm CTR/MRR/abandonment with user-level CIs "
                                       "and p-values, interleaving credit, COEC judgments; report.json + report.html")
    p.add_argument("config", help="TOML config with an [online] table (see distilrank.plugin.abtest.online_config)")
    p.add_argument("--out", help="override online.out (the folder of the report and the COEC judgment files)")
    add_connection_args(p)
    p.set_defaults(func=cmd_ab_online)
    p = cmds.add_parser("coec", help="only the click-derived (COEC) judgments of a UBI log, as CSV or SRW IMPORT_JUDGMENT")
    p.add_argument("config", help="the same TOML config as 'ab online' (its [online] time range and [coec] table)")
    p.add_argument("--out", required=True, help="file to write (CSV query,docid,rating or SRW JSON body)")
    p.add_argument("--format", choices=("csv", "srw"), default="csv",
                   help="csv: query,docid,rating (ab run, training); srw: the IMPORT_JUDGMENT body (default: csv)")
    p.add_argument("--name", help="name of the SRW judgment (default: coec.srw_name or '<online.name> COEC')")
    add_connection_args(p)
    p.set_defaults(func=cmd_ab_coec)
