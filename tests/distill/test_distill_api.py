"""The ``distill`` stage API: lazy exports, each stage's contract, and the stages chained the way
``run_pipeline`` and the CLI chain them (real tokenizer, real PyTorch student, real report)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import distilrank.distill as distill
from distilrank.distill.config import AugmentConfig, StudentSection
from distilrank.distill.targets import Stacker
from distilrank.errors import DistilRankError
from distilrank.formats.pairs import write_pairs
from distilrank.pairs import Pairs
from tests.conftest import sentiment_pairs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def test_import_distill_is_cheap_and_exports_lazily():
    code = ("import sys; import distilrank.distill as distill; heavy = [m for m in ('torch', 'transformers', 'numpy', 'tokenizers') if m in sys.modules];"
            "assert not heavy, heavy; f = distill.read_source; assert 'distilrank.sources' in sys.modules; print(f.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "read_source"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        distill.nope  # noqa: B018 - the attribute access is the test
    assert set(distill.__all__) <= set(dir(distill))
    assert all(getattr(distill, name) is not None for name in distill.__all__)


def test_read_source_takes_a_path_with_section_fields(tmp_path):
    write_pairs(sentiment_pairs(20), tmp_path / "d.tsv")
    src = distill.DataSource(path=str(tmp_path / "d.tsv"), query_field="", limit=7)
    a = distill.read_source(src, require_labels=True)
    b = distill.read_source(tmp_path / "d.tsv", query_field="", limit=7)
    assert len(a) == 7 and a.texts == b.texts and a.queries == [""] * 7


def test_build_transfer_set_drops_labels_and_appends_augmented_rows():
    train = sentiment_pairs(30)
    ts = distill.build_transfer_set([train, sentiment_pairs(10, seed=3)], AugmentConfig(n_per_example=2), seed=0)
    assert ts.unlabeled == 40 and ts.pairs.labels is None
    assert ts.pairs.texts[:30] == train.texts and len(ts.augmented) == len(ts.pairs) - 40 > 0
    assert len(distill.build_transfer_set([train], AugmentConfig(enabled=False)).pairs) == 30
    assert len(distill.build_transfer_set([train], AugmentConfig(n_per_example=2, max_rows=5)).augmented) == 5


def test_soft_targets_combine_then_soften():
    z = np.array([[2.0, -1.0, 0.0], [0.0, -3.0, 4.0]], np.float32)
    np.testing.assert_allclose(distill.soft_targets(z, temperature=2.0), sigmoid(z.mean(axis=0) / 2.0), rtol=1e-6)
    st = Stacker(weights=[1.5, 0.5], bias=0.25, teachers=["a", "b"], l2=0.01, n_train=10)
    np.testing.assert_allclose(distill.soft_targets(z, st, temperature=1.0), sigmoid(st.apply(z)), rtol=1e-6)
    np.testing.assert_allclose(distill.soft_targets(z[0], temperature=4.0), sigmoid(z[0] / 4.0), rtol=1e-6)
    assert distill.combine_teachers(z).shape == (3,)


def test_stages_chain_to_a_saved_student_and_a_report(tmp_path):
    train, dev = sentiment_pairs(300), sentiment_pairs(80, seed=1)
    teacher_logits = np.where(train.labels > 0, 3.0, -3.0).astype(np.float32)[None, :]  # a perfect "teacher"
    targets = distill.soft_targets(teacher_logits, temperature=2.0)
    settings = StudentSection(embedding_dim=16, hidden=[16], bigram_buckets=1009, epochs=5, batch_size=32, lr=3e-3, embedding_lr=3e-2)
    student = distill.train_student(train, targets, tmp_path / "s", settings)
    assert isinstance(student, distill.Student)
    assert student.model.config.embedding_dim == 16 and student.model.config.hidden == [16]
    assert distill.training_report(tmp_path / "s")["epochs_run"] == 5
    np.testing.assert_allclose(distill.load_student(tmp_path / "s").score(dev), student.score(dev), atol=1e-6)
    ev = distill.evaluate_student(student, dev, teacher=np.where(dev.labels > 0, 3.0, -3.0), out_dir=tmp_path / "eval")
    assert ev["result"]["student"]["accuracy"] > 0.85
    assert ev["report"]["html"].endswith("report.html")
    same = distill.evaluate_student(tmp_path / "s", dev)  # a directory, no teacher, no report
    assert same["result"]["student"]["accuracy"] == ev["result"]["student"]["accuracy"] and same["report"] == {}


def test_evaluate_student_rejects_misaligned_teacher_scores():
    dev = sentiment_pairs(10)
    with pytest.raises(DistilRankError, match="teacher scores have 3 rows"):
        distill.evaluate_student(np.zeros(10, np.float32), dev, teacher=np.zeros(3))


def test_pairs_export_is_the_class():
    assert distill.Pairs is Pairs
