"""The shared-data location: ``DISTILRANK_DATA`` or ``shared/data`` beside the checkout, and its config prefix."""

from pathlib import Path

import pytest

from distilrank.data_root import config_path, data_root, expand_data_path, require_data
from distilrank.errors import DataError
from tests.paths import REPO_ROOT


def test_default_is_shared_data_beside_the_checkout(monkeypatch):
    monkeypatch.delenv("DISTILRANK_DATA", raising=False)
    assert data_root() == (REPO_ROOT.parent / "shared" / "data").resolve()
    monkeypatch.setenv("DISTILRANK_DATA", "")
    assert data_root() == (REPO_ROOT.parent / "shared" / "data").resolve()


def test_environment_variable_wins_and_relative_values_follow_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("DISTILRANK_DATA", str(tmp_path))
    assert data_root() == tmp_path.resolve()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISTILRANK_DATA", "data")
    assert data_root() == tmp_path.resolve() / "data"


def test_require_data_returns_what_exists_and_names_the_setting_when_missing(monkeypatch, tmp_path):
    (tmp_path / "icecat").mkdir()
    monkeypatch.setenv("DISTILRANK_DATA", str(tmp_path))
    assert require_data("icecat") == tmp_path.resolve() / "icecat"
    with pytest.raises(DataError) as err:
        require_data("esci-shopping/products.jsonl")
    assert err.value.path == str(tmp_path.resolve() / "esci-shopping" / "products.jsonl")
    assert f"DISTILRANK_DATA is '{tmp_path}'" in str(err.value) and "export DISTILRANK_DATA=" in str(err.value)
    monkeypatch.delenv("DISTILRANK_DATA")
    with pytest.raises(DataError, match=r"DISTILRANK_DATA is unset, so the default was looked at"):
        require_data("no-such-data-set")


def test_only_a_leading_prefix_is_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("DISTILRANK_DATA", str(tmp_path))
    assert expand_data_path("${DISTILRANK_DATA}/sst2/dev.tsv") == f"{tmp_path.resolve()}/sst2/dev.tsv"
    assert expand_data_path("${DISTILRANK_DATA}") == str(tmp_path.resolve())
    for unchanged in ("../data/x.tsv", "a/${DISTILRANK_DATA}/x", "${DISTILRANK_DATA}x", "$DISTILRANK_DATA/x"):
        assert expand_data_path(unchanged) == unchanged


def test_config_path_expands_then_resolves_against_the_config_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("DISTILRANK_DATA", str(tmp_path / "data"))
    base = tmp_path / "configs"
    assert config_path(base, "${DISTILRANK_DATA}/esci/products.jsonl") == tmp_path.resolve() / "data" / "esci" / "products.jsonl"
    assert config_path(base, "../runs/x") == tmp_path.resolve() / "runs" / "x"
    assert config_path(base, "/abs/file.tsv") == Path("/abs/file.tsv")


def test_shipped_configs_follow_the_setting(monkeypatch, tmp_path):
    from distilrank.plugin.abtest.config import load_ab_config

    monkeypatch.setenv("DISTILRANK_DATA", str(tmp_path))
    cfg = load_ab_config(REPO_ROOT / "configs" / "ab-icecat.toml")
    assert cfg.judgments == str(tmp_path.resolve() / "icecat" / "judgments.csv")
    assert cfg.queryset == str(REPO_ROOT / "examples" / "icecat-queries.txt")


def test_shipped_online_config_follows_the_setting(monkeypatch, tmp_path):
    from distilrank.plugin.abtest.online_config import load_online_config

    monkeypatch.setenv("DISTILRANK_DATA", str(tmp_path))
    cfg = load_online_config(REPO_ROOT / "configs" / "ab-online-esci.toml")
    assert cfg.online.control == "bm25" and cfg.coec.min_impressions == 20
    assert cfg.coec.judgments == str(tmp_path.resolve() / "esci-shopping" / "judgments-dev.jsonl")
    assert cfg.online.out == str(REPO_ROOT / "runs" / "ab-online" / "esci")

