"""``plugin ubi-init`` and ``ab simulate-ubi`` (:mod:`distilrank.plugin.cli.ubi`) parse on a fresh parser, every flag
has help, and bad flag values are refused before anything is sent."""

from __future__ import annotations

import argparse

import pytest

from distilrank.errors import DistilRankError
from distilrank.plugin.cli import ubi as cli


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="distilrank")
    sub = parser.add_subparsers(dest="group", required=True)
    plugin_cmds = sub.add_parser("plugin").add_subparsers(dest="command", required=True)
    ab_cmds = sub.add_parser("ab").add_subparsers(dest="command", required=True)
    cli.add_plugin_commands(plugin_cmds)
    cli.add_ab_commands(ab_cmds)
    return parser, {**plugin_cmds.choices, **ab_cmds.choices}


def test_commands_parse_with_defaults_and_every_flag_has_help():
    parser, commands = _parser()
    assert set(commands) == {"ubi-init", "simulate-ubi"}
    for name, p in commands.items():
        for action in p._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    args = parser.parse_args(["plugin", "ubi-init"])
    assert (args.queries_index, args.events_index, args.func) == ("ubi_queries", "ubi_events", cli.cmd_ubi_init)
    args = parser.parse_args(["ab", "simulate-ubi", "ab.toml", "--searches", "20000", "--interleave", "bm25,student",
                              "--queries-index", "t-q"])
    assert (args.config, args.searches, args.users, args.interleave, args.queries_index, args.spacing_ms, args.eta) == (
        "ab.toml", 20000, 500, "bm25,student", "t-q", 1000, 1.0)


def test_flag_values_are_checked():
    assert cli._weights("30,70") == [30.0, 70.0] and cli._weights(None) is None
    with pytest.raises(DistilRankError, match="--weights"):
        cli._weights("half,half")
    assert cli._parse_start("2026-03-01T12:00:00Z").isoformat() == "2026-03-01T12:00:00+00:00"
    with pytest.raises(DistilRankError, match="--start"):
        cli._parse_start("noon")
