"""Fixtures of the serving tests.

``exported`` trains a toy student and exports it with the training half: in the serving-only install (no torch) the
tests that use it are skipped; the imports stay inside the fixture so that this file loads without torch."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """A toy student (sentiment pairs, 1 epoch) exported as model zip ``toy``: the export's result (``zip``,
    ``sha256``, ``out_dir``; the student itself is ``Path(out_dir).parent / "s"``)."""
    pytest.importorskip("torch", reason="the exported toy student needs the training half (torch)")
    from distilrank.distill.config import StudentSection
    from distilrank.distill.export import export_student
    from distilrank.distill.student.model import StudentConfig
    from distilrank.distill.student.tokenizer import build_student_tokenizer
    from distilrank.distill.student.train import fit_student
    from tests.conftest import sentiment_pairs

    d = tmp_path_factory.mktemp("student")
    train = sentiment_pairs(300)
    tok = build_student_tokenizer(train.queries + train.texts, min_count=1, max_length=64)
    cfg = StudentConfig(vocab_size=tok.get_vocab_size(), bigram_buckets=101, embedding_dim=8, hidden=[16])
    fit_student(train, train.labels, tok, d / "s", model_config=cfg, config=StudentSection(epochs=1, batch_size=64), progress=False)
    return export_student(d / "s", d / "export", name="toy", metrics={"student": {"accuracy": 0.91}})
