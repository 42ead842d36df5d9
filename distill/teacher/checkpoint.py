"""Crash-safe teacher checkpoints: the servable ``best/`` directory and the resumable training state.

* :func:`save_model_dir` writes a ``save_pretrained`` directory (model,
  tokenizer, ``distilrank_teacher.json``) into a temporary sibling and swaps
  it in with two renames; :func:`recover_model_dir` undoes a kill that
  landed between the two renames, so a complete checkpoint is always there.
* :func:`save_training_state` writes everything needed to continue training
  (weights, optimizer, scheduler, RNG, position in the data) as one file,
  atomically, so a ``kill -9`` at any moment leaves the previous state intact.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from distilrank.atomic import atomic_path, write_json
from distilrank.errors import DistilRankError

STATE_FILE = "training_state.pt"


def _siblings(path: Path) -> tuple[Path, Path]:
    return path.with_name(f".{path.name}.tmp"), path.with_name(f".{path.name}.old")


def recover_model_dir(path: str | Path) -> None:
    """If a swap was interrupted after ``path`` was moved aside, move the old copy back."""
    path = Path(path)
    tmp, old = _siblings(path)
    if not path.exists() and old.exists():
        old.rename(path)
    shutil.rmtree(tmp, ignore_errors=True)
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)


def save_model_dir(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: str | Path, meta: dict) -> None:
    """Replace the checkpoint directory ``path`` with ``model`` + ``tokenizer`` + ``meta`` (as ``distilrank_teacher.json``)."""
    from distilrank.distill.teacher.model import TEACHER_META

    path = Path(path)
    recover_model_dir(path)
    tmp, old = _siblings(path)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    write_json(tmp / TEACHER_META, meta)
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def save_training_state(state_dir: str | Path, state: dict[str, Any]) -> Path:
    """Atomically write ``state`` (tensors, state dicts, plain Python values) to ``state_dir/training_state.pt``."""
    path = Path(state_dir) / STATE_FILE
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_training_state(state_dir: str | Path) -> dict[str, Any] | None:
    """The saved training state, or ``None`` when there is none."""
    path = Path(state_dir) / STATE_FILE
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated file cannot come from atomic writes; say what to do
        raise DistilRankError(f"{path}: unreadable training state ({exc}); delete it or restart training") from exc
