"""The ranking config: the shipped configs load, and each bad field is named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.errors import ConfigError
from distill.ranking.config import load_ranking_config

ROOT = Path(__file__).resolve().parents[1]
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
    assert cfg.document.fields == ["title"] and cfg.eval.rerank_depth == 100 and cfg.distill.combine == "stack"


@pytest.mark.parametrize("extra, field", [
    ('[[teachers]]\nname = "x"\nkind = "cross-enc"\n', "teachers[1].kind"),
    ('[[teachers]]\nname = "bi"\nkind = "bm25"\n', "teachers"),
    ('[judgments.x]\n', "judgments.x"),
    ('[distill]\ncombine = "nobody"\n', "distill.combine"),
    ('[distill]\ntemperature = 0\n', "distill.temperature"),
    ('[document]\nfields = []\n', "fields"),
    ('[transfer.more]\n', "transfer.more"),
    ('[serve]\nenabled = true\n', "serve.enabled"),
])
def test_bad_field_is_named(tmp_path, extra, field):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, extra)
    assert f"'{field}'" in str(err.value) and "run.toml" in str(err.value)


def test_bad_folds_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="judgments.folds"):
        _load(tmp_path, base=BASE.replace('[judgments]\n', '[judgments]\nfolds = 1\n'))
    with pytest.raises(ConfigError, match=r"catalogue\.path.*does not exist"):
        _load(tmp_path, base=BASE.replace(str(SAMPLE / "products.jsonl"), str(tmp_path / "nope.jsonl")))


def test_resuming_with_another_data_recipe_is_refused(tmp_path):
    from distill.ranking.pipeline import _check_recipe

    cfg = _load(tmp_path)
    recipe = tmp_path / "out" / "pools" / "recipe.json"
    _check_recipe(cfg, recipe)
    _check_recipe(cfg, recipe)  # same settings: resumes
    cfg.distill.temperature = 3.0  # students only: still the same pools and folds
    _check_recipe(cfg, recipe)
    cfg.transfer.bm25_k = 7
    with pytest.raises(ConfigError, match=r"'transfer'.*another out_dir"):
        _check_recipe(cfg, recipe)
