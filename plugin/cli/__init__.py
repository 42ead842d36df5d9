"""The serving half's command groups of ``distilrank``, one module each: :mod:`.models` (``plugin ...``: register,
deploy and serve models through aliases) and :mod:`.ab` (``ab ...``: A/B testing); :mod:`.cluster` holds what their
cluster commands share (connection flags, transport, printing a result)."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the plugin's subcommands on the main ``distilrank`` parser."""
    from distilrank.plugin.cli import ab, models

    models.add_commands(sub)
    ab.add_commands(sub)
