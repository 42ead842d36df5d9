"""Numeric parity between the PyTorch student and the exported ONNX model, scored the ML Commons way.

(a) PyTorch: the student on its training-time featurisation (batched, padded ids
    from :func:`distilrank.distill.student.tokenizer.encode_pairs`);
(b) ONNX Runtime: one pair per ``session.run``, ids from the *exported*
    ``tokenizer.json`` via the ``tokenizers`` library, ``encode(query, doc)``, shape ``[1, seq]``.
Both give raw logits; the check fails when any pair differs by more than ``tolerance``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tokenizers import Tokenizer

from distilrank.pairs import Pairs
from distilrank.plugin.serving_contract import onnx_session, score_like_ml_commons

if TYPE_CHECKING:
    from distilrank.distill.student.store import Student


@dataclass
class ParityReport:
    n_pairs: int
    max_abs_diff: float
    mean_abs_diff: float
    tolerance: float
    passed: bool
    worst: list[dict] = field(default_factory=list)


def check_parity(student: Student, model_path: str | Path, tokenizer_path: str | Path, pairs: Pairs, *, tolerance: float = 1e-4) -> ParityReport:
    """Compare (a) and (b) on ``pairs``; ``worst`` lists the five largest differences."""
    torch_scores = student.score(pairs)
    onnx_scores = score_like_ml_commons(onnx_session(model_path), Tokenizer.from_file(str(tokenizer_path)), pairs)
    diff = np.abs(torch_scores.astype(np.float64) - onnx_scores)
    order = np.argsort(-diff)[:5]
    worst = [{"query": pairs.queries[i], "text": pairs.texts[i][:120], "torch": float(torch_scores[i]), "onnx": float(onnx_scores[i]),
              "abs_diff": float(diff[i])} for i in order]
    max_diff = float(diff.max()) if len(diff) else 0.0
    return ParityReport(len(pairs), max_diff, float(diff.mean()) if len(diff) else 0.0, tolerance, max_diff <= tolerance, worst)
