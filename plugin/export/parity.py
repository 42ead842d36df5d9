"""Numeric parity between the PyTorch student and the exported ONNX model, scored the ML Commons way.

(a) PyTorch: the student on its training-time featurisation (batched, padded ids
    from :func:`distill.student.tokenizer.encode_pairs`);
(b) ONNX Runtime: one pair per ``session.run``, ids from the *exported*
    ``tokenizer.json`` via the ``tokenizers`` library, ``encode(query, doc)``, shape ``[1, seq]``.
Both give raw logits; the check fails when any pair differs by more than ``tolerance``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from distill.data.pairs import Pairs
from distill.student.store import Student


@dataclass
class ParityReport:
    n_pairs: int
    max_abs_diff: float
    mean_abs_diff: float
    tolerance: float
    passed: bool
    worst: list[dict] = field(default_factory=list)


def onnx_session(model_path: str | Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU session with ``threads`` intra-op threads (ML Commons runs one pair at a time)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


def score_like_ml_commons(session: ort.InferenceSession, tokenizer: Tokenizer, pairs: Pairs) -> np.ndarray:
    """Logits ``[N]`` float32, one ``(query, doc)`` pair per run, as ML Commons does it."""
    out = np.empty(len(pairs), dtype=np.float32)
    for i, (q, d) in enumerate(pairs):
        enc = tokenizer.encode(q, d)
        feed = {"input_ids": np.array([enc.ids], dtype=np.int64), "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
                "token_type_ids": np.array([enc.type_ids], dtype=np.int64)}
        outputs = session.run(None, feed)
        out[i] = outputs[0].reshape(-1)[0]  # ML Commons takes element 0 of every output
    return out


def ms_per_pair_single_calls(session: ort.InferenceSession, tokenizer: Tokenizer, pairs: Pairs, *, n: int = 100, repeats: int = 5) -> float:
    """Best-of-``repeats`` milliseconds per pair, scoring the first ``n`` pairs one per call (tokenisation included)."""
    sample = pairs.select(range(min(n, len(pairs))))
    score_like_ml_commons(session, tokenizer, sample)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        score_like_ml_commons(session, tokenizer, sample)
        best = min(best, time.perf_counter() - t0)
    return 1000 * best / len(sample)


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
