"""Teachers for product ranking: train them on a fold's queries and score any table of pairs.

Three kinds (``TeacherConfig.kind``):

* ``cross-encoder``: a MiniLM cross-encoder fine-tuned on the training queries' judgments
  (grade / 3 as the BCE target) plus weak negatives (label 0); scores are logits.  Scoring is
  resumable and chunked (:func:`distilrank.distill.teacher.scoring.score_transfer_set`).
* ``bi-encoder``: zero-shot cosine of mean-pooled MiniLM embeddings (no training, so the same
  scores serve every fold); embeddings of every distinct string are computed once and cached.
* ``bm25``: the index's own BM25 score of the pair (the first-pass signal a stacker may use).

Every ``score`` returns float32 ``[N]`` aligned with the table's rows; scores of different
kinds are on different scales and are only combined through the stacker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from distilrank.atomic import write_json, write_npy
from distilrank.distill.api import train_teacher
from distilrank.distill.config import TeacherConfig, resolve_base_model
from distilrank.distill.teacher.biencoder import BiEncoder
from distilrank.distill.teacher.embedding_store import EmbeddingStore
from distilrank.distill.teacher.scoring import load_logits, score_transfer_set
from distilrank.grades import GRADE_MAX
from distilrank.pairs import Pairs


def train_cross_encoder(tc: TeacherConfig, train: Pairs, out_dir: Path, *, progress: bool | None = None) -> Path:
    """Fine-tune (or resume) the cross-encoder ``tc`` on labeled ``train``; returns its checkpoint directory."""
    if not (out_dir / "result.json").exists():
        train_teacher(train, out_dir, replace(tc, label_mode="graded", max_label=GRADE_MAX), progress=progress)
    return out_dir / "best"


def embedding_store(tc: TeacherConfig, out_dir: Path) -> EmbeddingStore:
    """The resumable embedding store of bi-encoder teacher ``tc`` under ``out_dir/embeddings/<name>``."""
    path = resolve_base_model(tc.base)
    return EmbeddingStore(out_dir / "embeddings" / tc.name, lambda: BiEncoder(path, max_length=tc.max_length),
                          identity={"model": str(path), "max_length": tc.max_length})


BM25Fn = Callable[[dict[str, list[str]]], dict[str, dict[str, float]]]


def bm25_of_pairs(pairs: Pairs, bm25: BM25Fn) -> np.ndarray:
    """BM25 score per row of a table whose ``extra["doc_id"]`` holds product ids; float32 ``[N]``."""
    ids = pairs.extra["doc_id"]
    wanted: dict[str, list[str]] = {}
    for q, d in zip(pairs.queries, ids):
        wanted.setdefault(q, []).append(d)
    scores = bm25(wanted)
    return np.array([scores[q][d] for q, d in zip(pairs.queries, ids)], dtype=np.float32)


def score_pairs(tc: TeacherConfig, pairs: Pairs, out_dir: Path, *, checkpoint: Path | None, embeddings: EmbeddingStore | None,
                progress: bool | None = None) -> np.ndarray:
    """Scores of the cross-encoder or bi-encoder teacher ``tc`` for ``pairs`` (float32 ``[N]``), cached as
    ``out_dir/logits.npy`` (a ``bm25`` teacher's scores are the first pass's: :attr:`RankingData.bm25`)."""
    done = out_dir / "logits.npy"
    if tc.kind == "cross-encoder":
        assert checkpoint is not None
        score_transfer_set(checkpoint, pairs, out_dir, batch_size=tc.score_batch_size, max_length=tc.max_length,
                           precision=tc.mixed_precision, progress=progress)
        return load_logits(out_dir)
    if done.exists() and len(z := np.load(done)) == len(pairs):
        return z
    if tc.kind != "bi-encoder" or embeddings is None:
        raise ValueError(f"teacher {tc.name!r}: score_pairs scores cross-encoders and bi-encoders (with their embeddings), not {tc.kind!r}")
    z = embeddings.pair_cosine(pairs, progress=progress)
    write_npy(done, z)
    write_json(out_dir / "meta.json", {"teacher": tc.name, "kind": tc.kind, "rows": len(pairs)})
    return z
