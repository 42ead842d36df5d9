"""``distilrank ab ...``: A/B testing in staging (``run``: offline comparison with significance; ``promote``: point an
alias at the winner; ``assign``: sticky routing of user/session ids to arms)."""

from __future__ import annotations

import argparse
from pathlib import Path

from distilrank.plugin.cli.cluster import add_connection_args, finish, log, transport


def cmd_ab_run(args: argparse.Namespace) -> None:
    """``distilrank ab run CONFIG``: :func:`distilrank.plugin.abtest.runner.run_ab` with the parser's ``checkpoint_scorer``
    (the teacher-checkpoint loader :mod:`distilrank.cli` sets as a default; ``None`` without it)."""
    from distilrank.plugin.abtest.config import load_ab_config
    from distilrank.plugin.abtest.report import comparison_rows, summary_rows
    from distilrank.plugin.abtest.runner import run_ab

    cfg = load_ab_config(args.config)
    if args.out:
        cfg.out = str(Path(args.out).resolve())
    args.connection_config = args.connection_config or str(cfg.path)
    t = transport(args)
    res = run_ab(t, cfg, log=log, checkpoint_scorer=getattr(args, "checkpoint_scorer", None))
    lines = [f"A/B {cfg.name}: {len(res['arms'][res['baseline']]['queries'])} queries, k={res['k']}, judgments: "
             f"{res['judgment_source']}"]
    for row in summary_rows(res) + comparison_rows(res):
        lines.append("  " + "  ".join(f"{k} {v}" for k, v in row.items()))
    if res["queries_without_judgments"]:
        lines.append(f"  queries without judgments ({len(res['queries_without_judgments'])}): "
                     + ", ".join(res["queries_without_judgments"][:10]))
    lines.append(f"report: {res['report']['html']} (and {res['report']['json']})")
    finish(args, t, {"report": res["report"], "comparisons": res["comparisons"], "baseline": res["baseline"]}, "\n".join(lines))


def cmd_ab_promote(args: argparse.Namespace) -> None:
    """``distilrank ab promote``: :func:`distilrank.plugin.abtest.runner.promote_winner`."""
    from distilrank.plugin.abtest.runner import promote_winner

    t = transport(args)
    res = promote_winner(t, args.report, args.alias, arm=args.arm)
    finish(args, t, res, f"alias {args.alias} -> {res['model_id']} (arm {res['arm']}: {res['reason']}) "
                         f"via pipeline {res['promoted']['pipeline']}")


def cmd_ab_assign(args: argparse.Namespace) -> None:
    """``distilrank ab assign``: the arm of each id under :class:`distilrank.plugin.abtest.router.Experiment` (no cluster)."""
    from distilrank.cli_support import emit
    from distilrank.errors import DistilRankError
    from distilrank.plugin.abtest.router import Arm, Experiment

    arms = []
    for spec in args.arm:
        try:
            name, pipeline, weight = spec.rsplit(":", 2)
            arms.append(Arm(name, pipeline or None, float(weight)))
        except ValueError:
            raise DistilRankError(f"--arm {spec!r}: expected NAME:PIPELINE:PERCENT (PIPELINE may be empty)") from None
    exp = Experiment(args.experiment, args.salt, arms)
    rows = [exp.assign(i) for i in args.ids]
    emit(args, {"assignments": [r.__dict__ for r in rows]},
         "\n".join(f"{i}: {r.arm} (search_pipeline={r.search_pipeline}, tag {r.variant_tag})" for i, r in zip(args.ids, rows)))


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``ab`` and its subcommands on the main ``distilrank`` parser."""
    ab = sub.add_parser("ab", help="A/B testing in staging: offline comparison with significance, interleaving, routing")
    cmds = ab.add_subparsers(dest="ab_command", required=True, metavar="COMMAND")
    p = cmds.add_parser("run", help="run a judged query set through every arm; write report.json + report.html")
    p.add_argument("config", help="TOML experiment config (see configs/ab-icecat.toml)")
    p.add_argument("--out", help="override experiment.out")
    add_connection_args(p)
    p.set_defaults(func=cmd_ab_run)
    p = cmds.add_parser("promote", help="point an alias (prod) at the winning arm's model of a report")
    p.add_argument("--report", required=True, help="report.json from 'ab run'")
    p.add_argument("--alias", default="prod", help="alias to point at the winner (default: prod)")
    p.add_argument("--arm", help="promote this arm even without a significant win")
    add_connection_args(p)
    p.set_defaults(func=cmd_ab_promote)
    p = cmds.add_parser("assign", help="which arm (and search pipeline) each user/session id gets: sticky hashing")
    p.add_argument("--experiment", required=True, help="experiment name (part of the hash)")
    p.add_argument("--salt", required=True, help="salt of the hash: a new salt reshuffles every id")
    p.add_argument("--arm", action="append", required=True, help="NAME:PIPELINE:PERCENT, e.g. control::90 student:distilrank-staging:10")
    p.add_argument("ids", nargs="+", help="user or session ids to assign")
    p.set_defaults(func=cmd_ab_assign)
    from distilrank.plugin.cli import ab_online, ab_srw, ubi

    ab_online.add_commands(cmds)
    ab_srw.add_commands(cmds)
    ubi.add_ab_commands(cmds)
