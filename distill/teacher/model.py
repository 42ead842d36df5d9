"""Load a fine-tuned cross-encoder teacher and score pairs with it.

Score scale: raw logits (float32, one per pair) from a one-logit
``AutoModelForSequenceClassification`` head; ``sigmoid(logit)`` is the
teacher's relevance probability.  Single-text pairs (query ``""``) are encoded
as the text alone, pairs as ``tokenizer(query, text)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

hf_logging.set_verbosity_error()  # the 'newly initialized head' notice is expected for teachers
hf_logging.disable_progress_bar()

from distill.data.pairs import Pairs


def pick_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def tokenize_batch(
    tokenizer: PreTrainedTokenizerBase, queries: list[str], texts: list[str], max_length: int
) -> dict[str, torch.Tensor]:
    """Tokenise a batch, padded to its longest row; single-text rows when every query is empty."""
    if all(q == "" for q in queries):
        return tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    return tokenizer(queries, texts, truncation="longest_first", max_length=max_length, padding=True, return_tensors="pt")


def length_order(pairs: Pairs) -> np.ndarray:
    """Row indices sorted by character length (a cheap proxy for token length), longest first."""
    lengths = np.fromiter((len(q) + len(t) for q, t in pairs), dtype=np.int64, count=len(pairs))
    return np.argsort(-lengths, kind="stable")


@dataclass
class Teacher:
    """A cross-encoder in eval mode with its tokenizer."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    path: str
    max_length: int = 128

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def score(self, pairs: Pairs, batch_size: int = 128, max_length: int | None = None, progress: bool | None = False) -> np.ndarray:
        """Raw logits float32 ``[N]`` in the input order (batches are length-bucketed internally)."""
        self.model.eval()
        max_length = max_length or self.max_length
        order = length_order(pairs)
        out = np.empty(len(pairs), dtype=np.float32)
        starts = range(0, len(order), batch_size)
        for start in tqdm(starts, desc=f"score {Path(self.path).name}", unit="batch", disable=not progress if progress is not None else None):
            idx = order[start : start + batch_size]
            enc = tokenize_batch(self.tokenizer, [pairs.queries[i] for i in idx], [pairs.texts[i] for i in idx], max_length)
            enc = {k: v.to(self.device) for k, v in enc.items()}
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda"):
                logits = self.model(**enc).logits
            out[idx] = logits[:, 0].float().cpu().numpy()
        return out


def load_teacher(path: str | Path, *, device: str = "auto", max_length: int = 128) -> Teacher:
    """Load a local cross-encoder checkpoint (``save_pretrained`` directory with its tokenizer)."""
    model = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model.to(pick_device(device)).eval()
    return Teacher(model, tokenizer, str(path), max_length)
