"""UBI commands: ``distilrank plugin ubi-init`` (create ``ubi_queries`` / ``ubi_events`` with UBI's mappings) and
``distilrank ab simulate-ubi CONFIG`` (simulated users search the arms of an ``ab run`` config and click by its
judgments; their searches and events are written in UBI format, labelled simulated).

``ab simulate-ubi`` reads from the config: ``[opensearch]`` (connection), ``experiment.index``, ``experiment.k``
(hits shown per search), ``experiment.judgments`` (+ ``grade_map``, ``queryset``), ``experiment.id_field`` (the id
the judgments use and the events log), ``experiment.seed`` and the ``[[arm]]`` tables (template, pipeline / alias,
``rescore``), resolved on the cluster as ``ab run`` does. Users are split over the arms by ``--weights`` (default
equal) with the sticky router hash salted by ``--salt`` (default: the experiment name).
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta

from distilrank.plugin.cli.cluster import add_connection_args, finish, log, transport


def _index_args(p: argparse.ArgumentParser) -> None:
    from distilrank.plugin.ubi import schema

    p.add_argument("--queries-index", default=schema.QUERIES_INDEX,
                   help=f"index of the logged searches (default {schema.QUERIES_INDEX}, as the UBI plugin writes)")
    p.add_argument("--events-index", default=schema.EVENTS_INDEX,
                   help=f"index of the front end's events (default {schema.EVENTS_INDEX})")


def cmd_ubi_init(args: argparse.Namespace) -> None:
    """``distilrank plugin ubi-init``: :func:`distilrank.plugin.ubi.indices.ubi_init`, and whether the plugin is there."""
    from distilrank.plugin.ubi.indices import ubi_init, ubi_plugin_installed

    t = transport(args)
    res = ubi_init(t, queries_index=args.queries_index, events_index=args.events_index)
    res["ubi_plugin"] = ubi_plugin_installed(t)
    lines = [f"created: {', '.join(res['created']) or 'none'}; already there (left as is): {', '.join(res['existing']) or 'none'}"]
    lines += [f"warning: {w}" for w in res["warnings"]]
    lines.append("UBI plugin: installed (searches with ext.ubi are logged by the cluster)" if res["ubi_plugin"] else
                 "UBI plugin: absent (a search with ext.ubi is refused): the front end writes ubi_queries itself "
                 "(distilrank.plugin.ubi.search_log, mode='frontend')")
    finish(args, t, res, "\n".join(lines))


def add_plugin_commands(cmds: argparse._SubParsersAction) -> None:
    """Register ``ubi-init`` on the ``distilrank plugin`` subcommands."""
    p = cmds.add_parser("ubi-init", help="create the UBI indices (ubi_queries, ubi_events) with UBI's 3.6 mappings where missing")
    _index_args(p)
    add_connection_args(p)
    p.set_defaults(func=cmd_ubi_init)


def _parse_start(text: str | None) -> datetime | None:
    from distilrank.errors import DistilRankError
    from distilrank.plugin.ubi.schema import parse_timestamp

    if text is None:
        return None
    ts = parse_timestamp(text)
    if ts is None:
        raise DistilRankError(f"--start {text!r}: expected an ISO-8601 time, e.g. 2026-03-01T12:00:00Z (UTC)")
    return ts


def _weights(text: str | None) -> list[float] | None:
    from distilrank.errors import DistilRankError

    if not text:
        return None
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise DistilRankError(f"--weights {text!r}: expected comma-separated percentages, e.g. 50,50") from None


def cmd_simulate_ubi(args: argparse.Namespace) -> None:
    """``distilrank ab simulate-ubi CONFIG``: :func:`distilrank.plugin.ubi.simulate.simulate_ubi` over the config's arms."""
    from distilrank.errors import DistilRankError
    from distilrank.plugin.abtest.config import load_ab_config
    from distilrank.plugin.abtest.router import Experiment
    from distilrank.plugin.abtest.runner import load_query_judgments
    from distilrank.plugin.ubi.arms import router_arms
    from distilrank.plugin.ubi.indices import ubi_init
    from distilrank.plugin.ubi.simulate import SessionModel, simulate_ubi

    cfg = load_ab_config(args.config)
    args.connection_config = args.connection_config or str(cfg.path)
    t = transport(args)
    if not t.live("simulate UBI searches and write their logs"):
        raise DistilRankError("ab simulate-ubi writes simulated logs; --dry-run has nothing to show but the bulk writes")
    interleave = tuple(args.interleave.split(",")) if args.interleave else None
    if interleave is not None and len(interleave) != 2:
        raise DistilRankError(f"--interleave {args.interleave!r}: expected two arm names, e.g. bm25,student")
    experiment = Experiment(cfg.name, args.salt or cfg.name, router_arms(t, cfg, weights=_weights(args.weights), k=cfg.k))
    init = ubi_init(t, queries_index=args.queries_index, events_index=args.events_index)
    sim = simulate_ubi(t, cfg.index, experiment, load_query_judgments(cfg), searches=args.searches, users=args.users,
                       seed=cfg.seed if args.seed is None else args.seed, k=cfg.k, start=_parse_start(args.start),
                       spacing=timedelta(milliseconds=args.spacing_ms), interleave=interleave,
                       model=SessionModel(eta=args.eta), object_id_field=args.object_id_field or cfg.id_field,
                       queries_index=args.queries_index, events_index=args.events_index, log=log)
    res = {**sim.to_dict(), "created_indices": init["created"]}
    human = (f"simulated {sim.searches} searches by {sim.users} users ({', '.join(f'{k}: {v}' for k, v in sim.per_arm.items())}) "
             f"in {sim.seconds:.1f} s; events {dict(sim.events)}; {sim.node_searches} distinct searches run on {cfg.index}\n"
             f"time range [{res['start']}, {res['end']}) in {sim.queries_index} / {sim.events_index} (all labelled simulated)")
    finish(args, t, res, human)


def add_ab_commands(cmds: argparse._SubParsersAction) -> None:
    """Register ``simulate-ubi`` on the ``distilrank ab`` subcommands."""
    p = cmds.add_parser("simulate-ubi", help="simulated users search the config's arms and click by its judgments; "
                                             "writes UBI queries and events (labelled simulated)")
    p.add_argument("config", help="the 'ab run' TOML config (index, k, judgments, id_field, seed, [[arm]] tables)")
    p.add_argument("--searches", type=int, default=2000, help="simulated searches to write (default 2000)")
    p.add_argument("--users", type=int, default=500, help="simulated users (client ids), each sticky to one arm (default 500)")
    p.add_argument("--seed", type=int, help="random seed of users, queries and clicks (default: experiment.seed)")
    p.add_argument("--salt", help="salt of the arm assignment hash (default: the experiment name)")
    p.add_argument("--weights", help="percent of users per arm, in config order, e.g. 50,50 (default: equal)")
    p.add_argument("--interleave", metavar="ARM_A,ARM_B",
                   help="show every search the team-draft interleaving of these two arms (teams logged in query_attributes)")
    p.add_argument("--start", help="UTC time of the first search, ISO-8601 (default: now); search i is at start + i * spacing")
    p.add_argument("--spacing-ms", type=int, default=1000, help="milliseconds between consecutive searches (default 1000)")
    p.add_argument("--eta", type=float, default=1.0, help="examination exponent: P(examine rank r) = (1/r)**eta (default 1)")
    p.add_argument("--object-id-field", help="hit id logged and matched to the judgments (default: experiment.id_field)")
    _index_args(p)
    add_connection_args(p)
    p.set_defaults(func=cmd_simulate_ubi)
