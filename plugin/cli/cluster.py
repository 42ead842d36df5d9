"""What every cluster command of ``distilrank plugin ...`` and ``distilrank ab ...`` shares: the connection flags, the
transport they build, and how a result is printed (with the write requests a dry run did not send)."""

from __future__ import annotations

import argparse
import sys


def add_connection_args(p: argparse.ArgumentParser) -> None:
    """Add the ``cluster connection`` flag group and ``--dry-run`` to ``p``."""
    g = p.add_argument_group("cluster connection (flags > OPENSEARCH_* env vars > --connection-config)")
    g.add_argument("--url", help="cluster URL, e.g. https://localhost:9200, or several nodes comma-separated (env OPENSEARCH_URL)")
    g.add_argument("--user", help="basic auth user (env OPENSEARCH_USER)")
    g.add_argument("--password", help="basic auth password; prefer env OPENSEARCH_PASSWORD (flags show up in ps)")
    g.add_argument("--ca-certs", help="CA bundle (PEM) to verify the cluster's TLS certificate (env OPENSEARCH_CA_CERT)")
    g.add_argument("--no-verify-certs", action="store_true", help="turn TLS verification off (development clusters only)")
    g.add_argument("--timeout", type=float, help="per-request timeout in seconds (default 60)")
    g.add_argument("--retries", type=int, help="retries on 429/5xx/connection errors, with backoff (default 3)")
    g.add_argument("--connection-config", help="TOML file with an [opensearch] table (url, user, password_env, ca_certs, ...)")
    p.add_argument("--dry-run", action="store_true", help="send only read requests; print the write requests instead of sending them")


def transport(args: argparse.Namespace):
    """The :class:`distilrank.plugin.transport.Transport` the flags of :func:`add_connection_args` describe; its log
    lines go to stderr."""
    import logging

    from distilrank.plugin.api import connect

    logging.getLogger("opensearch").setLevel(logging.ERROR)  # expected 404s are answers here, not warnings
    return connect(args.connection_config, dry_run=args.dry_run, log=log, url=args.url, user=args.user, password=args.password,
                   ca_certs=args.ca_certs, verify_certs=False if args.no_verify_certs else None, timeout=args.timeout,
                   retries=args.retries)


def finish(args: argparse.Namespace, t, result: dict, human: str) -> None:
    """Print ``result`` (with ``--json``) or ``human``, plus the write requests a dry run did not send."""
    from distilrank.cli_support import emit

    emit(args, *t.with_planned(result, human))


def log(m: str) -> None:
    """Progress lines of a command: stderr, so that stdout holds only the result."""
    print(m, file=sys.stderr)
