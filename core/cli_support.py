"""What every ``distilrank`` subcommand shares: flags generated from the settings dataclasses, reading a data
file from them, and output (``--json`` prints one JSON object on stdout, logs go to stderr)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, get_type_hints

from distilrank.settings import optional_inner
from distilrank.sources import DataSource, read_source

#: the columns of a data file a command reads (``--query-field`` ...); ``--limit`` and ``--format`` too
DATA_FIELDS = ("query_field", "text_field", "label_field", "format", "limit", "sentences")


def _list_of(kind: type) -> Callable[[str], list]:
    def parse(text: str) -> list:
        try:
            return [kind(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {text!r}") from None

    parse.__name__ = f"comma-separated {kind.__name__} list"
    return parse


def _default_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "none"
    return repr(value) if value == "" else str(value)


def add_settings(p: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *, only: Iterable[str] | None = None,
                 exclude: Iterable[str] = (), prefix: str = "", flags: Mapping[str, str] | None = None,
                 defaults: Mapping[str, Any] | None = None) -> list[str]:
    """Add one ``--field-name`` flag per field of the settings dataclass ``cls`` (the one definition of the setting):
    type, default, choices and help come from the field (``metadata["help"]``); a list is comma-separated, a bool is
    ``--x/--no-x``, ``int | None`` defaults to none.  ``flags`` renames a field's flag, ``defaults`` overrides a
    default.  Returns the destinations added (read them back with :func:`settings_from_args`)."""
    hints = get_type_hints(cls)
    names = list(only) if only is not None else [f.name for f in dataclasses.fields(cls)]
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    dests = []
    for name in names:
        if name in exclude:
            continue
        f = by_name[name]
        default = (defaults or {}).get(name, f.default if f.default is not dataclasses.MISSING else f.default_factory())
        flag = (flags or {}).get(name, f"--{prefix}{name.replace('_', '-')}")
        dest = f"{prefix.replace('-', '_')}{name}"
        kind = optional_inner(hints[name])
        help_ = f"{f.metadata['help']} (default: {_default_text(default)})"
        kw: dict[str, Any] = {"dest": dest, "default": default, "help": help_}
        if kind is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif getattr(kind, "__origin__", None) is list:
            kw["type"] = _list_of(kind.__args__[0])
            kw["metavar"] = "A,B,..."
        else:
            kw["type"] = kind
        if f.metadata.get("choices"):
            kw["choices"] = list(f.metadata["choices"])
        p.add_argument(flag, **kw)
        dests.append(dest)
    return dests


def settings_from_args(args: argparse.Namespace, cls: type, *, prefix: str = "", **fixed: Any) -> Any:
    """An instance of ``cls`` from the flags :func:`add_settings` added (fields without a flag keep their default;
    ``fixed`` sets fields the command decides itself)."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        dest = f"{prefix.replace('-', '_')}{f.name}"
        if hasattr(args, dest):
            kwargs[f.name] = getattr(args, dest)
    return cls(**{**kwargs, **fixed})


def add_data_args(p: argparse.ArgumentParser, prefix: str = "", *, labels: bool = True) -> None:
    """Column mapping flags of a :class:`distilrank.sources.DataSource`, shared by every command that reads pairs."""
    add_settings(p, DataSource, only=DATA_FIELDS, exclude=() if labels else ("label_field",), prefix=prefix)


def read_source_arg(args: argparse.Namespace, path: str, prefix: str = "", *, require_labels: bool = False):
    """The pairs in ``path``, read with the column flags of :func:`add_data_args` (``prefix`` for a second file)."""
    src = settings_from_args(args, DataSource, prefix=prefix, path=path)
    if not hasattr(args, f"{prefix.replace('-', '_')}label_field"):
        src.label_field = ""
    return read_source(src, require_labels=require_labels)


def emit(args: argparse.Namespace, result: dict, human: str) -> None:
    """``result`` as JSON with ``--json``, else the ``human`` line."""
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(human)


def log_for(args: argparse.Namespace) -> Callable[[str], None]:
    """Progress lines: stdout, or stderr with ``--json`` (stdout then holds only the JSON)."""
    return (lambda m: print(m, file=sys.stderr)) if args.json else print
