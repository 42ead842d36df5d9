"""distilrank.distill: distil BERT-family cross-encoders into a tiny n-gram student.

The stage API (:mod:`distilrank.distill.api`) and the settings (:mod:`distilrank.distill.config`) are importable from here; they load
on first use (PEP 562), so ``import distilrank.distill`` itself imports neither torch nor numpy::

    import distilrank.distill as distill
    pairs = distill.read_source("train.tsv", query_field="", text_field="sentence")
"""

from __future__ import annotations

import importlib
from typing import Any

from distilrank import __version__ as __version__  # one version, from the package metadata

_EXPORTS = {
    **{name: "distilrank.distill.api" for name in (
        "build_transfer_set", "AugmentedTransfer", "train_teacher", "score_with_teachers", "TeacherScores",
        "load_teacher_scores", "combine_teachers", "soft_targets", "student_tokenizer", "train_student", "training_report",
        "evaluate_student", "export_student")},
    **{name: "distilrank.distill.config" for name in (
        "RunConfig", "DataConfig", "AugmentConfig", "TeacherConfig", "DistillConfig", "StudentSection",
        "load_config")},
    "run": "distilrank.distill.run",
    "load_run_config": "distilrank.distill.run",
    "run_pipeline": "distilrank.distill.pipeline",
    "run_ranking": "distilrank.distill.ranking.pipeline",
    "RankingRunConfig": "distilrank.distill.ranking.config",
    "load_ranking_config": "distilrank.distill.ranking.config",
    "Pairs": "distilrank.pairs",
    "read_source": "distilrank.sources",
    "DataSource": "distilrank.sources",
    "Student": "distilrank.distill.student.store",
    "load_student": "distilrank.distill.student.store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'distilrank.distill' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
