"""Local ONNX Runtime scoring of a model zip on the bundled smoke pairs equals the student's PyTorch scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from distilrank.pairs import Pairs
from distilrank.plugin.deploy import default_smoke_pairs
from distilrank.plugin.local_scoring import LocalScorer


def test_smoke_pairs_and_local_scoring(exported):
    groups = default_smoke_pairs()
    assert sum(len(d) for _, d in groups) == 24 and all(docs for _, docs in groups)
    assert len(groups) > 2  # several queries, icecat pairs and edge cases
    scorer = LocalScorer(exported.zip)
    q, docs = groups[0]
    scores = scorer.score(q, docs)
    assert scores.shape == (len(docs),) and scores.dtype == np.float32
    from distilrank.distill.student.store import load_student

    student = load_student(Path(exported.out_dir).parent / "s")
    np.testing.assert_allclose(scores, student.score(Pairs([q] * len(docs), docs)), atol=1e-4)
