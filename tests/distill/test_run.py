"""distilrank.distill.run: one entry point for both tasks, with setting overrides (``distilrank run --set``)."""

from __future__ import annotations

import pytest

from distilrank.distill.config import RunConfig
from distilrank.distill.ranking.config import RankingRunConfig
from distilrank.distill.run import load_run_config
from distilrank.errors import ConfigError
from tests.paths import REPO_ROOT

DEMO_SST2 = REPO_ROOT / "configs" / "demo-sst2.toml"
DEMO = REPO_ROOT / "configs" / "demo.toml"


def test_the_task_picks_the_settings_type():
    assert isinstance(load_run_config(DEMO_SST2), RunConfig)
    assert isinstance(load_run_config(DEMO), RankingRunConfig)


def test_overrides_set_fields_of_both_tasks_with_toml_values():
    pairs = load_run_config(DEMO_SST2, ["distill.temperature=1.5", "teachers[0].epochs=3", "student.hidden=[64, 32]",
                                        "distill.experiments=[]"])
    assert (pairs.distill.temperature, pairs.teachers[0].epochs, pairs.student.hidden, pairs.distill.experiments) == (1.5, 3, [64, 32], [])
    ranking = load_run_config(DEMO, ["distill.losses=['bce']", "eval.rerank_depth=50", "out_dir=runs/other"])
    assert ranking.distill.losses == ["bce"] and ranking.eval.rerank_depth == 50 and ranking.out_dir.endswith("runs/other")


@pytest.mark.parametrize(("override", "field"), [
    ("distill.nonsense=1", "distill.nonsense"),           # unknown field: the file's own check
    ("student.epochs=many", "student.epochs"),             # wrong type
    ("teachers[9].epochs=2", "teachers[9].epochs"),       # no such teacher
    ("distill.combine=stack", "distill.combine"),         # a pairs-task field in a ranking config
    ("temperature", "temperature"),                        # not KEY=VALUE
])
def test_a_bad_override_names_the_setting(override, field):
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        load_run_config(DEMO, [override])


@pytest.mark.parametrize(("override", "field"), [("distill.losses=['bce']", "distill.losses"),
                                                 ("teachers[0].bm25_negatives=3", "teachers[0].bm25_negatives")])
def test_a_ranking_setting_in_a_pairs_config_names_the_setting(override, field):
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]") + ".*applies to task ranking"):
        load_run_config(DEMO_SST2, [override])
