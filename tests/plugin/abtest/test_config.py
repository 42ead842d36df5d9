"""The A/B experiment config: paths resolved, the arms' query templates, bad fields named."""

from __future__ import annotations

import pytest

from distilrank.errors import ConfigError

AB_OK = """
[experiment]
name = "e"
index = "products"
judgments = "j.csv"
[[arm]]
name = "bm25"
query = { match = { title = "{{query}}" } }
[[arm]]
name = "student"
alias = "staging"
query = { match = { title = "{{query}}" } }
"""


def test_ab_config(tmp_path):
    from distilrank.plugin.abtest.config import load_ab_config

    p = tmp_path / "ab.toml"
    p.write_text(AB_OK)
    cfg = load_ab_config(p)
    assert cfg.judgments == str(tmp_path / "j.csv") and [a.name for a in cfg.arms] == ["bm25", "student"]
    assert cfg.arms[0].body('a "quoted" query', 10) == {"size": 10, "query": {"match": {"title": 'a "quoted" query'}}}
    for broken, field in ((AB_OK.replace('index = "products"\n', ""), "experiment.index"),
                          (AB_OK.replace('"{{query}}" } }\n[[arm]]', '"fixed" } }\n[[arm]]'), "arm[0].query"),
                          (AB_OK.replace('alias = "staging"', 'alias = "staging"\npipline = "x"'), "arm[1].pipline"),
                          (AB_OK.replace('judgments = "j.csv"', 'judgments = "j.csv"\nbaseline = "nope"'), "experiment.baseline")):
        p.write_text(broken)
        with pytest.raises(ConfigError, match=f"field '{field}'".replace("[", r"\[").replace("]", r"\]")):
            load_ab_config(p)
