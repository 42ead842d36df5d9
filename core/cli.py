"""The ``distilrank`` command: one parser that assembles the training half's command groups
(:func:`distilrank.distill.cli.add_commands`) and the serving half's (:func:`distilrank.plugin.cli.add_commands`).

This is the one module of the root package that imports both halves; in the serving-only install the training
commands are listed too and say what to install when they need PyTorch."""

from __future__ import annotations

import argparse
import sys

from distilrank.errors import DistilRankError


def build_parser() -> argparse.ArgumentParser:
    """The ``distilrank`` parser: every subcommand sets ``func`` (argparse's ``set_defaults``), the command it runs."""
    from distilrank.distill.cli import add_commands as add_training_commands
    from distilrank.plugin.cli import add_commands as add_serving_commands

    parser = argparse.ArgumentParser(prog="distilrank", description="Distil BERT cross-encoders into tiny n-gram students and serve them in OpenSearch.")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout (also accepted after the subcommand)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _accept_json_everywhere(sub)
    add_training_commands(sub)
    add_serving_commands(sub)
    parser.set_defaults(checkpoint_scorer=_checkpoint_scorer)  # what `ab run` loads a teacher-checkpoint judge with
    return parser


def _checkpoint_scorer(path: str):
    """The training half's teacher loader (PyTorch), imported only when an A/B judge is a checkpoint."""
    from distilrank.distill.teacher.model import checkpoint_scorer

    return checkpoint_scorer(path)


def _accept_json_everywhere(sub: argparse._SubParsersAction) -> None:
    """Make every (nested) subcommand accept ``--json`` after its name too."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object on stdout")
    original = sub.add_parser

    def add_parser(name: str, **kwargs):
        kwargs["parents"] = [*kwargs.get("parents", []), common]
        parser = original(name, **kwargs)
        real_add_subparsers = parser.add_subparsers

        def add_subparsers(**kw):
            nested = real_add_subparsers(**kw)
            _accept_json_everywhere(nested)
            return nested

        parser.add_subparsers = add_subparsers  # type: ignore[method-assign]
        return parser

    sub.add_parser = add_parser  # type: ignore[method-assign]


ID_FLAGS = ("--model-id",)


def _glue_ids(argv: list[str]) -> list[str]:
    """``--model-id X`` -> ``--model-id=X``: ML Commons ids are base64url and may start with ``-``, which argparse
    would otherwise read as a flag ("expected one argument")."""
    out: list[str] = []
    it = iter(argv)
    for a in it:
        if a in ID_FLAGS:
            nxt = next(it, None)
            out.append(a if nxt is None else f"{a}={nxt}")
        else:
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_glue_ids(sys.argv[1:] if argv is None else list(argv)))
    try:
        args.func(args)
    except DistilRankError as exc:
        print(f"distilrank: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("distilrank: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
