"""Student logits for encoded pairs (shared by training's validation and :class:`distilrank.distill.student.store.Student`)."""

from __future__ import annotations

import numpy as np
import torch

from distilrank.distill.student.model import StudentModel
from distilrank.distill.student.tokenizer import EncodedPairs


def batch_tensors(enc: EncodedPairs, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask, token_type_ids)`` int64 ``[len(index), S]`` for rows ``index``."""
    ids, mask, types = enc.batch(index)
    return torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types)


@torch.inference_mode()
def predict_encoded(model: StudentModel, enc: EncodedPairs, index: np.ndarray | None = None, batch_size: int = 4096) -> np.ndarray:
    """Student logits float32 ``[len(index)]`` for encoded rows (all rows when ``index`` is None)."""
    model.eval()
    index = np.arange(len(enc)) if index is None else index
    out = np.empty(len(index), dtype=np.float32)
    for start in range(0, len(index), batch_size):
        sel = index[start : start + batch_size]
        out[start : start + len(sel)] = model(*batch_tensors(enc, sel)).squeeze(1).numpy()
    return out
