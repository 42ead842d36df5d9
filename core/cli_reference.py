"""The README's generated list of every ``distilrank`` command and its flags (``python -m
distilrank.cli_reference`` prints it; ``tests/distill/test_settings.py`` checks the README holds it).

Kept apart from :mod:`distilrank.cli_support` (which the commands import) so that walking the whole parser
does not tie the flag helpers to the CLI that uses them.
"""

from __future__ import annotations

import argparse

from distilrank.cli_support import DATA_FIELDS

#: flags listed once in the README instead of with every command
GROUPS = {"DATA FLAGS": set(DATA_FIELDS),
          "CONNECTION FLAGS": {"url", "user", "password", "ca_certs", "no_verify_certs", "timeout", "retries", "connection_config", "dry_run"}}


def flag_reference(parser: argparse.ArgumentParser) -> str:
    """One line per leaf subcommand: ``distilrank <command> <positionals> <flags>`` (the README's generated flag
    list: ``python -m distilrank.cli_reference``; ``tests/distill/test_settings.py`` checks the README holds this text)."""
    lines: list[str] = []

    def walk(p: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        for action in subs:
            for name, sub in action.choices.items():
                walk(sub, (*path, name))
        if subs or not path:
            return
        shown: list[str] = []
        for a in p._actions:
            if isinstance(a, argparse._HelpAction) or a.dest == "json":
                continue
            flag = "/".join(o for o in a.option_strings if o.startswith("--"))
            group = next((g for g, dests in GROUPS.items() if a.dest in dests), None)
            if group:
                if f"[{group}]" not in shown:
                    shown.append(f"[{group}]")
            elif not a.option_strings:
                shown.append(a.dest.upper())
            else:
                shown.append(flag if a.required else f"[{flag}]")
        lines.append(" ".join(["distilrank", *path, *shown]))

    walk(parser, ())
    return "\n".join(lines)


if __name__ == "__main__":
    from distilrank.cli import build_parser

    print(flag_reference(build_parser()))
