"""``distilrank ab export-srw REPORT --out DIR [--push]``: an ``ab run`` report as Search Relevance Workbench request
bodies (:mod:`distilrank.plugin.abtest.srw_export`), optionally sent to a cluster with SRW
(:mod:`distilrank.plugin.abtest.srw_push`). ``add_commands`` registers it on the ``ab`` subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from distilrank.plugin.cli.cluster import add_connection_args, finish, log, transport


def _human(res: dict) -> str:
    """The lines ``export-srw`` prints without ``--json``."""
    rt, counts = res["round_trip"], res["counts"]
    lines = [f"SRW export in {res['out']}: {counts['queries']} queries, {counts['judgments']} judgments on "
             f"{counts['judged_queries']} queries (0-3 scale), {counts['arms']} arms",
             f"  round trip: judgments.json read back reproduces all {rt['values']} per-query metric values"]
    lines += [f"  {r['method']} {r['path']} < {r['file']}" for r in res["requests"]]
    lines += [f"  note: {n}" for n in res["notes"]]
    if res["skipped_queries"]:
        n = len(res["skipped_queries"])
        lines.append(f"  left out ({n} quer{'y' if n == 1 else 'ies'} SRW refuses): "
                     + "; ".join(f"{q!r}: {why}" for q, why in list(res["skipped_queries"].items())[:5]))
    pushed = res.get("pushed")
    if pushed:
        lines.append(f"  pushed: {pushed['requests']} requests; experiments "
                     + ", ".join(f"{arm} = {i}" for arm, i in pushed["experiments"].items()))
    return "\n".join(lines)


def cmd_ab_export_srw(args: argparse.Namespace) -> None:
    """``distilrank ab export-srw``: :func:`distilrank.plugin.abtest.srw_export.export_srw`, then with ``--push``
    :func:`distilrank.plugin.abtest.srw_push.push` (connection from the flags, else the report's config file)."""
    from distilrank.cli_support import emit
    from distilrank.plugin.abtest.srw_export import export_srw

    res = {"out": str(Path(args.out).resolve()), **export_srw(args.report, args.out, name=args.name)}
    if not args.push:
        emit(args, res, _human(res))
        return
    from distilrank.plugin.abtest.srw_push import push

    config = (res.get("report") and _report_config(res["report"])) or None
    args.connection_config = args.connection_config or config
    t = transport(args)
    res["pushed"] = push(t, args.out, log=log)
    finish(args, t, res, _human(res))


def _report_config(report_path: str) -> str | None:
    """The ``ab run`` config named in the report, when it still exists (its ``[opensearch]`` table connects)."""
    import json

    try:
        config = json.loads(Path(report_path).read_text(encoding="utf-8")).get("experiment", {}).get("config")
    except (OSError, ValueError, AttributeError):
        return None
    return config if config and Path(config).is_file() else None


def add_commands(cmds: argparse._SubParsersAction) -> None:
    """Register ``export-srw`` on the ``ab`` subcommands ``cmds``."""
    p = cmds.add_parser("export-srw", help="write an ab run report as Search Relevance Workbench bodies (query set, "
                                           "search configurations, judgments, experiment imports); --push sends them")
    p.add_argument("report", help="report.json written by 'distilrank ab run'")
    p.add_argument("--out", required=True, help="folder for the bodies and manifest.json (created; files replaced)")
    p.add_argument("--name", help="base of the SRW names (at most 50 characters with the arm; default: the experiment's name)")
    p.add_argument("--push", action="store_true",
                   help="also create them in the cluster's SRW (plugin opensearch-search-relevance, workbench enabled); "
                        "connection from the flags, else the report's config file")
    add_connection_args(p)
    p.set_defaults(func=cmd_ab_export_srw)
