"""The ab online TOML config: defaults, paths, times, and errors naming the file and the field."""

from datetime import datetime, timezone

import pytest

from distilrank.errors import ConfigError
from distilrank.plugin.abtest.online_config import load_online_config, parse_time

BASE = '[online]\nname = "exp"\ncontrol = "bm25"\nstart = "2025-06-01T00:00:00Z"\nend = "2025-06-02T12:00:00+02:00"\n'


def _write(tmp_path, text):
    p = tmp_path / "online.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_paths_and_times(tmp_path):
    cfg = load_online_config(_write(tmp_path, BASE + 'out = "reports/x"\n[coec]\njudgments = "j.csv"\n[opensearch]\nurl = "http://h:9200"\n'))
    o = cfg.online
    assert (o.queries_index, o.events_index, o.alpha, o.resamples, o.permutations, o.seed) == ("ubi_queries", "ubi_events", 0.05, 2000, 2000, 0)
    assert o.out == str((tmp_path / "reports/x").resolve()) and cfg.coec.judgments == str((tmp_path / "j.csv").resolve())
    assert cfg.start == datetime(2025, 6, 1, tzinfo=timezone.utc)
    assert cfg.end == datetime(2025, 6, 2, 10, tzinfo=timezone.utc)  # +02:00 converted to UTC
    assert cfg.coec.min_impressions == 20 and cfg.coec.thresholds == [0.5, 1.0, 2.0] and cfg.coec.enabled
    assert cfg.connection == {"url": "http://h:9200"}
    assert cfg.experiment_filter == "exp"  # the name, by default


def test_the_documented_example_loads(tmp_path):
    import textwrap

    from distilrank.plugin.abtest import online_config

    doc = online_config.__doc__
    example = textwrap.dedent(doc[doc.index("::") + 3:doc.index("Relative paths")])
    cfg = load_online_config(_write(tmp_path, example))
    assert (cfg.online.control, cfg.online.arms, cfg.experiment_filter, cfg.online.ordinal_base) == ("bm25", ["bm25", "student"], "esci-ab", 0)
    assert cfg.coec.grade_map == "esci" and cfg.connection["url"] == "http://127.0.0.1:9200"


def test_experiment_filter(tmp_path):
    assert load_online_config(_write(tmp_path, BASE + 'experiment = "*"\n')).experiment_filter is None
    assert load_online_config(_write(tmp_path, BASE + 'experiment = "other"\n')).experiment_filter == "other"


def test_naive_time_is_utc():
    assert parse_time("f", "online.start", "2025-06-01") == datetime(2025, 6, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("extra, field", [
    ('alpha = 1.5\n', "online.alpha"),
    ('resamples = 10\n', "online.resamples"),
    ('permutations = "many"\n', "online.permutations"),
    ('arms = ["bm25"]\n', "online.arms"),
    ('arms = ["a", "b"]\n', "online.arms"),
    ('colour = "red"\n', "online.colour"),
    ('[coec]\nthresholds = [1.0, 0.5, 2.0]\n', "coec.thresholds"),
    ('[coec]\nmin_impressions = 0\n', "coec.min_impressions"),
    ('[coec]\nmax_rank = "ten"\n', "coec.max_rank"),
    ('[extra]\nx = 1\n', "extra"),
])
def test_errors_name_file_and_field(tmp_path, extra, field):
    path = _write(tmp_path, BASE + extra)
    with pytest.raises(ConfigError) as err:
        load_online_config(path)
    assert err.value.field == field and str(path) in str(err.value)


@pytest.mark.parametrize("text, field", [
    ('[online]\nname = "x"\nstart = "2025-06-01"\nend = "2025-06-02"\n', "online.control"),
    ('[online]\nname = "x"\ncontrol = "c"\nstart = "yesterday"\nend = "2025-06-02"\n', "online.start"),
    ('[online]\nname = "x"\ncontrol = "c"\nstart = "2025-06-02"\nend = "2025-06-01"\n', "online.end"),
    ('[coec]\nenabled = false\n', "online"),
    ('[online\n', "<syntax>"),
])
def test_missing_and_bad_fields(tmp_path, text, field):
    with pytest.raises(ConfigError) as err:
        load_online_config(_write(tmp_path, text))
    assert err.value.field == field


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_online_config(tmp_path / "nope.toml")
