"""``run(config)``: one entry point for both tasks of a ``distilrank run`` TOML file.

``task = "pairs"`` (the default) runs the sentence-pair pipeline (:func:`distilrank.distill.pipeline.run_pipeline`);
``task = "ranking"`` the product-search pipeline (:func:`distilrank.distill.ranking.pipeline.run_ranking`), which
also reads the file's ``[opensearch]`` table for the node that holds the BM25 first pass.  Both are thin adapters
(prepare data, evaluate, report) over the stage functions of :mod:`distilrank.distill.api`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from distilrank.distill.config import RunConfig, load_config
from distilrank.distill.ranking.config import RankingRunConfig, load_ranking_config
from distilrank.errors import ConfigError
from distilrank.settings import read_toml

TASKS = ("pairs", "ranking")


def load_run_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig | RankingRunConfig:
    """The validated settings of the run TOML file at ``path``, by its ``task``, with ``overrides``
    (``"dotted.key=VALUE"``, e.g. ``distill.temperature=1.5``; :func:`distilrank.settings.apply_overrides`)."""
    raw = read_toml(path)
    task = raw.get("task", "pairs")
    if task not in TASKS:
        raise ConfigError(path, "task", f"must be one of {list(TASKS)}, got {task!r}")
    return load_ranking_config(path, raw, overrides) if task == "ranking" else load_config(path, overrides)


def run(config: str | Path | RunConfig | RankingRunConfig, *, out_dir: str | Path | None = None, progress: bool | None = None,
        log: Callable[[str], None] = print, overrides: Sequence[str] = ()) -> dict:
    """Run every stage of ``config`` (a TOML path, with ``overrides`` set, or its loaded settings) and return the run's
    summary; each stage is skipped when its outputs exist, so calling it again resumes.  ``out_dir`` overrides the
    config's."""
    if overrides and not isinstance(config, (str, Path)):
        raise ConfigError(getattr(config, "source", "<memory>"), "overrides", "overrides apply to a TOML path; change loaded settings directly")
    cfg = load_run_config(config, overrides) if isinstance(config, (str, Path)) else config
    if out_dir is not None:
        cfg.out_dir = str(Path(out_dir).resolve())
    if isinstance(cfg, RankingRunConfig):
        from distilrank.distill.ranking.pipeline import run_ranking
        from distilrank.plugin.connection import load_connection
        from distilrank.plugin.transport import Transport

        connection = load_connection(cfg.source if Path(cfg.source).is_file() else None)  # [opensearch] of the file, else defaults + env
        return run_ranking(cfg, Transport(connection), progress=progress, log=log)
    from distilrank.distill.pipeline import run_pipeline

    return run_pipeline(cfg, progress=progress, log=log)
