"""Load a fine-tuned cross-encoder teacher and score pairs with it.

Score scale: raw logits (float32, one per pair) from a one-logit
``AutoModelForSequenceClassification`` head; ``sigmoid(logit)`` is the
teacher's relevance probability.  Single-text tables (every query ``""``)
are encoded as the text alone, others as ``tokenizer(query, text)``
(see :mod:`distilrank.distill.teacher.encoding`).
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from distilrank.distill.config import PRECISIONS
from distilrank.distill.teacher.encoding import collate, inference_batches, tokenize_batch, tokenize_pairs
from distilrank.errors import ConfigError
from distilrank.pairs import Pairs
from distilrank.progress import progress_bar

hf_logging.set_verbosity_error()  # the 'newly initialized head' notice is expected for teachers
hf_logging.disable_progress_bar()

__all__ = ["Teacher", "load_teacher", "pick_device", "autocast_context", "tokenize_batch", "TEACHER_META"]

TEACHER_META = "distilrank_teacher.json"  # written next to a fine-tuned checkpoint: max_length, label scale, metrics


def pick_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_precision(device: torch.device, precision: str) -> torch.dtype | None:
    """Autocast dtype for ``precision`` on ``device`` (``None`` = plain fp32).

    ``auto``: bf16 on CUDA GPUs that support it, else fp16 on CUDA; fp32 on CPU
    (CPU autocast only when asked for explicitly with ``bf16``/``fp16``).
    """
    if precision not in PRECISIONS:
        raise ConfigError("teacher", "mixed_precision", f"must be one of {PRECISIONS}, got {precision!r}")
    if precision == "no":
        return None
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type == "cpu":
        warn_slow_cpu_autocast(dtype)
    return dtype


#: CPU flags of native bf16 / fp16 arithmetic (x86: AVX-512 BF16 / FP16, AMX; Arm: BF16 / FP16 vector extensions)
NATIVE_CPU_FLAGS = {torch.bfloat16: ("avx512_bf16", "amx_bf16", "bf16"), torch.float16: ("avx512_fp16", "amx_fp16", "fphp", "asimdhp")}
_warned: set[torch.dtype] = set()


def cpu_flags() -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where it does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {f for line in text.splitlines() if line.split(":")[0].strip() in ("flags", "Features") for f in line.split(":", 1)[1].split()}


def autocast_slowdown(dtype: torch.dtype, size: int = 384, repeats: int = 5) -> float:
    """Measured time of a ``size`` x ``size`` matmul under CPU autocast to ``dtype`` over its fp32 time (best of
    ``repeats``; about 0.1 s)."""
    a, b = torch.randn(size, size), torch.randn(size, size)

    def best(ctx: Callable[[], contextlib.AbstractContextManager]) -> float:
        times = []
        for _ in range(repeats):
            with ctx():
                t0 = time.perf_counter()
                (a @ b).sum().item()
                times.append(time.perf_counter() - t0)
        return min(times)

    return best(lambda: torch.autocast("cpu", dtype=dtype)) / max(best(contextlib.nullcontext), 1e-9)


def warn_slow_cpu_autocast(dtype: torch.dtype) -> None:
    """Warn once per dtype when an explicit bf16/fp16 autocast runs on a CPU without native support for it, with
    the slowdown measured on this machine and what to set instead."""
    if dtype in _warned or set(NATIVE_CPU_FLAGS[dtype]) & cpu_flags():
        return
    _warned.add(dtype)
    name = "bf16" if dtype == torch.bfloat16 else "fp16"
    warnings.warn(f"mixed_precision = {name!r} on a CPU without native {name} ({', '.join(NATIVE_CPU_FLAGS[dtype])} absent): "
                  f"a matmul measured {autocast_slowdown(dtype):.1f}x slower than fp32 here; set mixed_precision = \"auto\" "
                  f"(fp32 on the CPU, bf16/fp16 on a GPU) or \"no\"", RuntimeWarning, stacklevel=3)


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype``, or a no-op context when ``dtype`` is ``None``."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@dataclass
class Teacher:
    """A one-logit cross-encoder with its tokenizer.

    Attributes:
        model: sequence-classification model with ``num_labels == 1``.
        tokenizer: its tokenizer.
        path: where it was loaded from (for messages and progress bars).
        max_length: default truncation length in tokens.
        precision: ``auto`` | ``bf16`` | ``fp16`` | ``no`` (see :func:`resolve_precision`).
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    path: str
    max_length: int = 128
    precision: str = "auto"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def score(
        self,
        pairs: Pairs,
        batch_size: int = 64,
        max_length: int | None = None,
        progress: bool | None = False,
        *,
        single_text: bool | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Raw logits, float32 ``[N]``, in the input order.

        Rows are tokenised once, sorted by token length (longest first) and
        batched ``batch_size`` at a time, each batch padded to its longest row;
        the results are put back in input order.  The model is put in eval
        mode (its previous mode is restored).  ``single_text`` overrides the
        table's own mode (pass the full table's mode when scoring a subset).
        ``on_batch(n_rows)`` is called after every batch.
        """
        max_length = max_length or self.max_length
        enc = tokenize_pairs(self.tokenizer, pairs, max_length, single_text=single_text)
        out = np.empty(len(pairs), dtype=np.float32)
        device = self.device
        dtype = resolve_precision(device, self.precision)
        was_training = self.model.training
        self.model.eval()
        try:
            batches = inference_batches(enc.lengths, batch_size)
            for idx in progress_bar(batches, progress=progress, desc=f"score {Path(self.path).name}", unit="batch", leave=False):
                inputs = {k: v.to(device, non_blocking=True) for k, v in collate(enc, idx).items()}
                with autocast_context(device, dtype):
                    logits = self.model(**inputs).logits
                out[idx] = logits[:, 0].float().cpu().numpy()
                if on_batch is not None:
                    on_batch(len(idx))
        finally:
            self.model.train(was_training)
        return out


def load_teacher(
    path: str | Path, *, device: str = "auto", max_length: int | None = None, precision: str = "auto"
) -> Teacher:
    """Load a local cross-encoder checkpoint (a ``save_pretrained`` directory with its tokenizer), in eval mode.

    ``max_length=None`` uses the length the teacher was fine-tuned with (from
    its ``distilrank_teacher.json``), else 128.
    """
    path = Path(path)
    if not (path / "config.json").exists():
        raise ConfigError(path, "teacher", "not a checkpoint directory (no config.json)")
    model = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True)
    if model.config.num_labels != 1:
        raise ConfigError(path, "num_labels", f"a teacher has one output logit, this checkpoint has {model.config.num_labels}")
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if max_length is None:
        meta = path / TEACHER_META
        max_length = int(json.loads(meta.read_text()).get("max_length", 128)) if meta.exists() else 128
    model.to(pick_device(device)).eval()
    resolve_precision(pick_device(device), precision)  # validate early
    return Teacher(model, tokenizer, str(path), max_length, precision)


def checkpoint_scorer(path: str | Path) -> Callable[[list[tuple[str, str]]], list[float]]:
    """``score(pairs) -> logits`` of the cross-encoder checkpoint at ``path``, for (query, text) pairs: what the
    serving half's A/B runner takes to judge with a teacher checkpoint
    (:func:`distilrank.plugin.abtest.runner.run_ab`)."""
    teacher = load_teacher(path)
    return lambda pairs: [float(x) for x in teacher.score(Pairs([q for q, _ in pairs], [d for _, d in pairs]))]
