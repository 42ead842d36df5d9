"""Start the student's word embeddings from what the teacher knows about each word.

A bag-of-n-grams student trained from random embeddings only learns about the
words its transfer set contains often enough; the teacher has seen far more
language.  :func:`teacher_word_vectors` runs every word of the student's
vocabulary *alone* through the fine-tuned teacher (``[CLS] word [SEP]``), takes
the vector its classifier reads (the pooled ``[CLS]`` output, 384-d for
MiniLM), and projects those vectors onto their top ``dim`` principal
components, so words the teacher treats alike start close together.  This is
knowledge distillation at the word level (the teacher is the only source; no
other pretrained vectors are used) and it changes nothing at serving time: the
graph, its inputs and its cost are those of a randomly initialised student.

A bi-encoder teacher (product-search runs) gives each word's own unit embedding, mean-pooled as it embeds a query
(:class:`distilrank.distill.teacher.embedding_store.EmbeddingStore`); :func:`word_vectors` takes either source.

Scale: the rows are centred and scaled so that their root-mean-square entry is
``rms`` (the random initialisation's standard deviation by default), so the
optimiser's learning rates keep their meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from distilrank.distill.student.model import EMBEDDING_INIT_STD
from distilrank.distill.student.tokenizer import SPECIAL_TOKENS
from distilrank.progress import progress_bar


@torch.inference_mode()
def teacher_word_features(teacher_dir: str | Path, words: Sequence[str], *, batch_size: int = 512,
                          progress: bool | None = None) -> np.ndarray:
    """Pooled teacher output for each word alone, float32 ``[len(words), hidden]``."""
    from distilrank.distill.teacher.model import load_teacher

    teacher = load_teacher(teacher_dir, device="cpu", max_length=16)
    base = teacher.model.base_model
    out = np.empty((len(words), base.config.hidden_size), dtype=np.float32)
    for start in progress_bar(range(0, len(words), batch_size), progress=progress, desc="teacher word vectors", unit="batch"):
        chunk = list(words[start : start + batch_size])
        enc = teacher.tokenizer(chunk, padding=True, truncation=True, max_length=16, return_tensors="pt")
        hidden = base(**enc)
        pooled = hidden.pooler_output if getattr(hidden, "pooler_output", None) is not None else hidden.last_hidden_state[:, 0]
        out[start : start + len(chunk)] = pooled.float().numpy()
    return out


def principal_components(features: np.ndarray, dim: int, *, rms: float = EMBEDDING_INIT_STD) -> np.ndarray:
    """``features`` ``[N, H]`` projected onto their top ``dim`` principal components, float32 ``[N, dim]``,
    scaled to root-mean-square entry ``rms``.  Raises ``ValueError`` when ``dim > min(N, H)``."""
    x = np.asarray(features, dtype=np.float64)
    if dim > min(x.shape):
        raise ValueError(f"cannot keep {dim} components of {x.shape[0]} vectors of size {x.shape[1]}")
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    z = x @ vt[:dim].T
    return (z * (rms / max(float(np.sqrt(np.mean(z**2))), 1e-12))).astype(np.float32)


def word_vectors(vocab: Sequence[str], dim: int, features: Callable[[list[str]], np.ndarray], *, seed: int = 0) -> np.ndarray:
    """Initial unigram rows ``[len(vocab), dim]`` for a student whose token ``i`` is ``vocab[i]``: ``features(words)``
    (``[len(words), H]``, one row per word alone) projected by :func:`principal_components`.

    Special tokens (``[PAD]``, ``[CLS]``, ...) keep a random start (``N(0, 0.05^2)``, seeded)."""
    rng = np.random.default_rng(seed)
    out = rng.normal(0.0, EMBEDDING_INIT_STD, size=(len(vocab), dim)).astype(np.float32)
    rows = [i for i, w in enumerate(vocab) if w not in SPECIAL_TOKENS]
    if rows:
        out[rows] = principal_components(np.asarray(features([vocab[i] for i in rows]), np.float32), dim)
    return out


def teacher_word_vectors(teacher_dir: str | Path, vocab: Sequence[str], dim: int, *, seed: int = 0,
                         progress: bool | None = None) -> np.ndarray:
    """:func:`word_vectors` from a fine-tuned cross-encoder teacher's pooled output of each word alone (see the module doc)."""
    return word_vectors(vocab, dim, lambda words: teacher_word_features(teacher_dir, words, progress=progress), seed=seed)
