"""What every ``distilrank`` subcommand shares: data-column flags, reading a data file from them, and output
(``--json`` prints one JSON object on stdout, logs go to stderr)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable


def add_data_args(p: argparse.ArgumentParser, prefix: str = "", *, labels: bool = True) -> None:
    """Column mapping flags shared by every command that reads pairs."""
    p.add_argument(f"--{prefix}query-field", default="query", help="query column ('' = single-text mode, query empty)")
    p.add_argument(f"--{prefix}text-field", default="text", help="text/title column")
    if labels:
        p.add_argument(f"--{prefix}label-field", default="label", help="label column ('' = unlabeled)")
    p.add_argument(f"--{prefix}format", default="auto", choices=["auto", "jsonl", "csv", "tsv", "parquet", "amazon-reviews"])
    p.add_argument(f"--{prefix}limit", type=int, default=0, help="read only the first N rows (0 = all)")


def read_source_arg(args: argparse.Namespace, path: str, prefix: str = "", *, require_labels: bool = False):
    """The pairs in ``path``, read with the column flags of :func:`add_data_args` (``prefix`` for a second file)."""
    from distill.config import DataSource
    from distill.pipeline import load_source

    get = lambda name, default="": getattr(args, f"{prefix}{name}", default)  # noqa: E731
    src = DataSource(path=path, format=get("format", "auto"), query_field=get("query_field"), text_field=get("text_field", "text"),
                     label_field=get("label_field", ""), limit=get("limit", 0), sentences=True)
    return load_source(src, require_labels=require_labels)


def emit(args: argparse.Namespace, result: dict, human: str) -> None:
    """``result`` as JSON with ``--json``, else the ``human`` line."""
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(human)


def log_for(args: argparse.Namespace) -> Callable[[str], None]:
    """Progress lines: stdout, or stderr with ``--json`` (stdout then holds only the JSON)."""
    return (lambda m: print(m, file=sys.stderr)) if args.json else print
