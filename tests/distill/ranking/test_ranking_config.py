"""The ranking config: the shipped configs load, and each bad field is named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest

from distilrank.distill.ranking.config import load_ranking_config
from distilrank.errors import ConfigError
from tests.paths import REPO_ROOT

ROOT = REPO_ROOT
SAMPLE = ROOT / "tests" / "data" / "esci-sample"

BASE = f"""
task = "ranking"
out_dir = "out"
[catalogue]
path = "{SAMPLE / 'products.jsonl'}"
[judgments]
path = "{SAMPLE / 'judgments.jsonl'}"
[transfer]
queries = "{ROOT / 'integration' / 'data' / 'esci-sample' / 'queries-unlabeled.tsv'}"
[[teachers]]
name = "bi"
kind = "bi-encoder"
"""


def _load(tmp_path: Path, extra: str = "", base: str = BASE):
    p = tmp_path / "run.toml"
    p.write_text(base + extra)
    return load_ranking_config(p)


def test_demo_config_loads():
    cfg = load_ranking_config(ROOT / "configs" / "demo.toml")
    assert cfg.task == "ranking" and cfg.judgments.folds == 3 and not cfg.distill.final_student
    assert [t.kind for t in cfg.teachers] == ["bi-encoder", "bm25"]
    assert Path(cfg.catalogue.path).is_file() and Path(cfg.out_dir).is_absolute()


def test_minimal_config_defaults(tmp_path):
    cfg = _load(tmp_path)
    assert cfg.out_dir == str((tmp_path / "out").resolve())
    assert cfg.document.fields == ["title"] and cfg.eval.rerank_depth == 100
    assert cfg.distill.targets == ["stack-equal"] and cfg.distill.losses == ["listwise"] and cfg.distill.match_features == [True]


@pytest.mark.parametrize("extra, field", [
    ('[[teachers]]\nname = "x"\nkind = "cross-enc"\n', "teachers[1].kind"),
    ('[[teachers]]\nname = "bi"\nkind = "bm25"\n', "teachers"),
    ('[judgments.x]\n', "judgments.x"),
    ('[distill]\ntargets = ["nobody"]\n', "distill.targets[0]"),
    ('[distill]\nlosses = ["hinge"]\n', "distill.losses[0]"),
    ('[distill]\nmatch_features = []\n', "distill.match_features"),
    ('[distill]\ninner_folds = 1\n', "distill.inner_folds"),
    ('[distill]\ntemperature = 0\n', "distill.temperature"),
    ('[document]\nfields = []\n', "fields"),
    ('[transfer.more]\n', "transfer.more"),
    ('[serve]\nenabled = true\n', "serve.enabled"),
    # [student] settings a ranking run chooses elsewhere
    ('[student]\nloss = "bce"\n', "student.loss"),
    ('[student]\nmatch_features = true\n', "student.match_features"),
])
def test_bad_field_is_named(tmp_path, extra, field):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, extra)
    assert f"'{field}'" in str(err.value) and "run.toml" in str(err.value)


def test_teacher_init_needs_a_bi_encoder_teacher(tmp_path):
    assert _load(tmp_path, '[student]\ninit = "teacher"\n').student.init == "teacher"
    with pytest.raises(ConfigError, match="'student.init'.*bi-encoder"):
        _load(tmp_path, '[student]\ninit = "teacher"\n', base=BASE.replace('kind = "bi-encoder"', 'kind = "bm25"'))


def test_dense_k_needs_a_bi_encoder_teacher_and_a_count(tmp_path):
    def with_dense(k: int, base: str = BASE):
        return _load(tmp_path, base=base.replace("[transfer]\n", f"[transfer]\ndense_k = {k}\n"))

    assert with_dense(20).transfer.dense_k == 20 and _load(tmp_path).transfer.dense_k == 0
    with pytest.raises(ConfigError, match="'transfer.dense_k'.*>= 0"):
        with_dense(-1)
    with pytest.raises(ConfigError, match="'transfer.dense_k'.*first bi-encoder teacher"):
        with_dense(5, BASE.replace('kind = "bi-encoder"', 'kind = "bm25"'))


def test_soup_is_a_count_of_members(tmp_path):
    assert _load(tmp_path, "[student]\nsoup = 3\n").student.soup == 3 and _load(tmp_path).student.soup == 1
    with pytest.raises(ConfigError, match="'student.soup'.*>= 1"):
        _load(tmp_path, "[student]\nsoup = 0\n")


def test_counts_that_may_be_none_are_none_when_omitted(tmp_path):
    cfg = _load(tmp_path, base=BASE.replace('kind = "bi-encoder"\n', 'kind = "bi-encoder"\n[[teachers]]\nname = "ce"\n'))
    assert cfg.catalogue.limit is None and cfg.judgments.limit_queries is None
    assert cfg.transfer.max_queries is None and cfg.transfer.scored_pairs is None
    assert [t.num_layers for t in cfg.teachers] == [None, None]
    given = _load(tmp_path, base=BASE.replace("[transfer]\n", "[transfer]\nmax_queries = 40\nscored_pairs = 900\n")
                  .replace('[catalogue]\n', '[catalogue]\nlimit = 50\n'))
    assert (given.catalogue.limit, given.transfer.max_queries, given.transfer.scored_pairs) == (50, 40, 900)


@pytest.mark.parametrize("section, key, field", [
    ("[catalogue]", "limit", "catalogue.limit"),
    ("[judgments]", "limit_queries", "judgments.limit_queries"),
    ("[transfer]", "max_queries", "transfer.max_queries"),
    ("[transfer]", "scored_pairs", "transfer.scored_pairs"),
    ("[[teachers]]", "num_layers", "teachers[0].num_layers"),
])
@pytest.mark.parametrize("value", [0, -3])
def test_zero_is_not_none(tmp_path, section, key, field, value):
    """``0`` once meant "no cap" here; now the field is omitted for none and ``0`` is an error naming it."""
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, base=BASE.replace(f"{section}\n", f"{section}\n{key} = {value}\n"))
    assert f"'{field}'" in str(err.value) and "omit the field for none" in str(err.value) and "run.toml" in str(err.value)


def test_bad_folds_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="judgments.folds"):
        _load(tmp_path, base=BASE.replace('[judgments]\n', '[judgments]\nfolds = 1\n'))
    with pytest.raises(ConfigError, match=r"catalogue\.path.*does not exist"):
        _load(tmp_path, base=BASE.replace(str(SAMPLE / "products.jsonl"), str(tmp_path / "nope.jsonl")))


def test_resuming_with_another_data_recipe_is_refused(tmp_path):
    from distilrank.distill.ranking.data import check_recipe as _check_recipe

    cfg = _load(tmp_path)
    recipe = tmp_path / "out" / "pools" / "recipe.json"
    _check_recipe(cfg, recipe)
    _check_recipe(cfg, recipe)  # same settings: resumes
    cfg.distill.temperature = 3.0  # students only: still the same pools and folds
    _check_recipe(cfg, recipe)
    cfg.transfer.bm25_k = 7
    with pytest.raises(ConfigError, match=r"'transfer'.*another out_dir"):
        _check_recipe(cfg, recipe)

