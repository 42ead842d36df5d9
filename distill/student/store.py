"""Save and load a trained student directory.

Layout (all written atomically)::

    student_dir/
      tokenizer.json        the student tokenizer (also shipped to ML Commons)
      student_config.json   StudentConfig + free metadata (teachers, T, data)
      student.pt            state_dict of StudentModel
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from distilrank.atomic import atomic_path, write_json
from distilrank.distill.student.model import StudentConfig, StudentModel
from distilrank.distill.student.predict import predict_encoded
from distilrank.distill.student.tokenizer import encode_pairs, load_tokenizer
from distilrank.errors import DistilRankError
from distilrank.pairs import Pairs


@dataclass
class Student:
    """A loaded student: model (eval mode), tokenizer and metadata."""

    model: StudentModel
    tokenizer: Tokenizer
    metadata: dict

    def score(self, pairs: Pairs, batch_size: int = 4096) -> np.ndarray:
        """Raw logits float32 ``[N]`` for ``pairs`` (same featurisation as training and ONNX)."""
        return predict_encoded(self.model, encode_pairs(self.tokenizer, pairs.queries, pairs.texts), batch_size=batch_size)


def save_student(model: StudentModel, tokenizer: Tokenizer, out_dir: str | Path, *, metadata: dict | None = None) -> None:
    """Write the three files of a student directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "tokenizer.json") as tmp:
        tokenizer.save(str(tmp))
    write_json(out / "student_config.json", {"model": model.config.to_dict(), "metadata": metadata or {}})
    with atomic_path(out / "student.pt") as tmp:
        torch.save(model.state_dict(), tmp)


def load_student(student_dir: str | Path) -> Student:
    """Load a student directory written by :func:`save_student`."""
    d = Path(student_dir)
    for name in ("tokenizer.json", "student_config.json", "student.pt"):
        if not (d / name).exists():
            raise DistilRankError(f"{d}: not a student directory (missing {name})")
    cfg = json.loads((d / "student_config.json").read_text())
    model = StudentModel(StudentConfig(**cfg["model"]))
    model.load_state_dict(torch.load(d / "student.pt", weights_only=True))
    model.eval()
    return Student(model, load_tokenizer(d / "tokenizer.json"), cfg.get("metadata", {}))
