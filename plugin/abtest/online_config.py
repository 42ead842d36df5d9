"""The TOML file of ``distilrank ab online CONFIG`` (and ``ab coec CONFIG``): which UBI log to read, which arms to
compare, the statistics options, and the click-derived judgments.

Example (``tests/plugin/abtest/test_online_config.py`` loads it)::

    [online]
    name = "esci-bm25-vs-student"        # report title; also the experiment filter unless `experiment` is given
    experiment = "esci-ab"               # only searches whose query_attributes.experiment is this ("*": all)
    control = "bm25"                     # the arm every other arm is compared with
    arms = ["bm25", "student"]           # optional: default every arm of the selected searches
    start = "2025-06-01T00:00:00Z"       # time range of ubi_queries (ISO-8601; no zone = UTC), start inclusive
    end = "2025-06-02T00:00:00Z"         # end exclusive
    queries_index = "ubi_queries"
    events_index = "ubi_events"
    ordinal_base = 0                     # optional: what the first position is numbered in the events (UBI: 0)
    alpha = 0.05
    resamples = 2000                     # cluster-bootstrap resamples (users drawn with replacement)
    permutations = 2000                  # user-label permutations of the randomization test
    seed = 0
    out = "runs/ab-online/esci"          # report.json + report.html (+ the COEC judgments)

    [coec]                               # optional; defaults shown
    enabled = true
    max_rank = 10                        # positions 1..max_rank count
    min_impressions = 20                 # pairs judged; see distilrank.plugin.abtest.coec
    thresholds = [0.5, 1.0, 2.0]         # COEC -> grade 0 / 1 / 2 / 3
    judgments = "../examples/esci-small/judgments.jsonl"   # optional human grades: agreement (Kendall tau-b)
    grade_map = "esci"                   # optional, as in ab run
    agreement_min_impressions = 20
    srw_name = "esci-bm25-vs-student COEC"  # name of the SRW judgment (default: "<name> COEC")

    [opensearch]                         # optional connection, as in ab run
    url = "http://127.0.0.1:9200"

Relative paths are resolved against the config file's folder.  Every problem is a :class:`ConfigError` naming the
file and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from distilrank.data_root import config_path
from distilrank.errors import ConfigError
from distilrank.settings import build_settings, read_toml, setting

ALL_EXPERIMENTS = "*"


@dataclass
class OnlineSettings:
    """The ``[online]`` table."""

    name: str = setting("", help="experiment name: the report's title, and the experiment filter unless 'experiment' is set")
    control: str = setting("", help="the control arm every other arm is compared with")
    start: str = setting("", help="start of the time range of ubi_queries, ISO-8601 (no zone: UTC), inclusive")
    end: str = setting("", help="end of the time range, ISO-8601 (no zone: UTC), exclusive")
    experiment: str | None = setting(None, help="only searches whose query_attributes.experiment is this ('*': all; default: name)")
    arms: list[str] | None = setting(None, help="arms to report (default: every arm of the selected searches)")
    queries_index: str = setting("ubi_queries", help="the UBI queries index")
    events_index: str = setting("ubi_events", help="the UBI events index")
    ordinal_base: int | None = setting(None, help="number of the first position in event ordinals (default: UBI's 0; 1 for a "
                                                  "front end that logs 1-based)")
    alpha: float = setting(0.05, help="significance level (Holm-adjusted p <= alpha)")
    resamples: int = setting(2000, help="cluster-bootstrap resamples (users drawn with replacement)")
    permutations: int = setting(2000, help="user-label permutations of the randomization test")
    seed: int = setting(0, help="seed of the bootstrap and the permutations")
    out: str = setting("runs/ab-online", help="output folder: report.json, report.html, COEC judgments")


@dataclass
class CoecSettings:
    """The ``[coec]`` table."""

    enabled: bool = setting(True, help="compute click-derived (COEC) judgments")
    max_rank: int = setting(10, help="only positions 1..max_rank count")
    min_impressions: int = setting(20, help="judge only query-doc pairs with at least this many impressions")
    thresholds: list[float] = setting(factory=lambda: [0.5, 1.0, 2.0], help="COEC cut-offs of grades 1, 2, 3 (increasing)")
    judgments: str | None = setting(None, help="human judgments to measure agreement with (any format ab run reads)")
    grade_map: str | None = setting(None, help="grade map of the human judgments (e.g. 'esci')")
    agreement_min_impressions: int = setting(20, help="agreement over docs with at least this many impressions")
    srw_name: str | None = setting(None, help="name of the SRW IMPORT_JUDGMENT (default: '<name> COEC')")


@dataclass
class OnlineConfig:
    """A validated config: the two tables, the parsed time range (UTC), the connection table, the file."""

    path: Path
    online: OnlineSettings
    coec: CoecSettings
    start: datetime
    end: datetime
    connection: dict = field(default_factory=dict)

    @property
    def experiment_filter(self) -> str | None:
        """The experiment name searches must carry, ``None`` for all."""
        e = self.online.experiment if self.online.experiment is not None else self.online.name
        return None if e == ALL_EXPERIMENTS else e


def parse_time(path: Path, where: str, text: str) -> datetime:
    """An ISO-8601 instant as an aware UTC datetime (no zone: UTC); :class:`ConfigError` naming ``where``."""
    try:
        t = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ConfigError(path, where, f"not an ISO-8601 time: {text!r} (e.g. 2025-06-01T00:00:00Z)") from None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def _check(path: Path, o: OnlineSettings, c: CoecSettings) -> None:
    for key in ("name", "control", "start", "end"):
        if not getattr(o, key):
            raise ConfigError(path, f"online.{key}", "required, a non-empty string")
    if o.arms is not None and (len(o.arms) < 2 or o.control not in o.arms or len(set(o.arms)) != len(o.arms)):
        raise ConfigError(path, "online.arms", f"at least two distinct arms including the control {o.control!r}")
    if o.ordinal_base not in (None, 0, 1):
        raise ConfigError(path, "online.ordinal_base", "must be 0 (UBI) or 1")
    if not 0.0 < o.alpha < 1.0:
        raise ConfigError(path, "online.alpha", "must be in (0, 1)")
    for key in ("resamples", "permutations"):
        if getattr(o, key) < 100:
            raise ConfigError(path, f"online.{key}", "must be >= 100 (2,000 or more for reporting)")
    for key in ("max_rank", "min_impressions", "agreement_min_impressions"):
        if getattr(c, key) < 1:
            raise ConfigError(path, f"coec.{key}", "must be >= 1")
    t = c.thresholds
    if len(t) != 3 or t[0] <= 0 or any(b <= a for a, b in zip(t, t[1:])):
        raise ConfigError(path, "coec.thresholds", f"three increasing numbers > 0, got {t}")


def load_online_config(path: str | Path) -> OnlineConfig:
    """Read and validate an ``ab online`` config (see the module docstring); :class:`ConfigError` names the file and
    the field of every problem."""
    path = Path(path)
    raw: dict[str, Any] = read_toml(path)
    unknown = sorted(set(raw) - {"online", "coec", "opensearch"})
    if unknown:
        raise ConfigError(path, unknown[0], "unknown table (known: online, coec, opensearch)")
    if not isinstance(raw.get("online"), dict):
        raise ConfigError(path, "online", "missing [online] table")
    online = build_settings(OnlineSettings, raw["online"], str(path), "online")
    coec = build_settings(CoecSettings, raw.get("coec", {}), str(path), "coec")
    _check(path, online, coec)
    start, end = parse_time(path, "online.start", online.start), parse_time(path, "online.end", online.end)
    if end <= start:
        raise ConfigError(path, "online.end", f"must be after online.start ({online.start})")
    base = path.resolve().parent
    online.out = str(config_path(base, online.out))
    if coec.judgments:
        coec.judgments = str(config_path(base, coec.judgments))
    conn = raw.get("opensearch", {})
    if not isinstance(conn, dict):
        raise ConfigError(path, "opensearch", "must be a table")
    return OnlineConfig(path, online, coec, start, end, dict(conn))
