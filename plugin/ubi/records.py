"""The typed form of a UBI log that analyses read: one :class:`LoggedSearch` per ``ubi_queries`` document, its
``ubi_events`` attached.

A reader turns raw ``ubi_queries`` / ``ubi_events`` documents into these records and counts what it could not use
(:class:`UbiLog.malformed`); analyses (per-arm online metrics, interleaving credit, click-derived judgments) take
records only, so they run the same on a log read from a cluster and on one built in memory.

Conventions:

* ``positions`` are 1-based ranks in the list the user was shown (UBI's ``event_attributes.position.ordinal``
  converted by the reader where the log stores 0-based ordinals; the reader's docstring says which it saw).
* ``hit_ids`` are the document ids the search returned, best first (``ubi_queries``' hit-id list).
* ``attributes`` is the search's ``query_attributes`` as logged: distilrank's router writes ``experiment``,
  ``arm``, ``model_id`` and ``alias`` there, and for an interleaved list ``teams`` (one team name per hit).
* Timestamps are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: UBI action names distilrank counts; other actions are kept on the event and ignored by the metrics
IMPRESSION, CLICK, ADD_TO_CART = "impression", "click", "add_to_cart"


@dataclass(frozen=True)
class UbiEvent:
    """One ``ubi_events`` document: ``action`` (e.g. ``"click"``), the ``object_id`` acted on (``None`` when the event
    names no object), its 1-based ``position`` in the shown list (``None`` when not logged), ``timestamp`` (UTC)."""

    action: str
    object_id: str | None
    position: int | None
    timestamp: datetime
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoggedSearch:
    """One ``ubi_queries`` document joined with its events on ``query_id``; ``events`` in timestamp order."""

    query_id: str
    client_id: str
    user_query: str
    timestamp: datetime
    hit_ids: list[str]
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[UbiEvent] = field(default_factory=list)

    @property
    def arm(self) -> str | None:
        """The A/B arm the router logged in ``query_attributes`` (``None`` when the search was not in an experiment)."""
        value = self.attributes.get("arm")
        return str(value) if value is not None else None

    def clicked_positions(self) -> list[int]:
        """1-based positions of the click events on hits of this search, in event order (duplicates kept)."""
        return [e.position for e in self.events if e.action == CLICK and e.position is not None]


@dataclass
class UbiLog:
    """Records a reader produced, and what it had to skip: ``malformed[reason] = count`` with up to a few
    ``examples[reason]`` (document ids or short descriptions) so a report can say what was wrong."""

    searches: list[LoggedSearch]
    malformed: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, example: str, keep: int = 5) -> None:
        """Count one unusable document or event under ``reason``; keep the first ``keep`` examples."""
        self.malformed[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < keep:
            shown.append(example)
