"""Train the student on (soft) targets, fast on a CPU.

Contract: with ``loss = "bce"`` (default) ``targets`` are probabilities in
``[0, 1]`` (soft targets ``sigmoid(z / T)`` from :mod:`distill.targets`, or gold
binary labels for the baseline) and the loss is binary cross-entropy with
logits; with ``loss = "mse"`` ``targets`` are teacher *logits* and the loss is
the mean squared error between student and teacher logits (Tang et al. 2019,
"logit regression").  Each epoch ends with
a validation loss on a held-out slice of the training rows, a checkpoint of the
full training state (``state.pt``, for ``resume``) and the best weights so far
(``student.pt``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from tqdm import tqdm

from distill.atomic import atomic_open, atomic_path, write_json
from distill.data.pairs import Pairs
from distill.progress import bar_disabled
from distill.student.model import StudentConfig, StudentModel
from distill.student.optim import RowSparseAdam
from distill.student.predict import batch_tensors, predict_encoded
from distill.student.store import save_student
from distill.student.tokenizer import encode_pairs


@dataclass
class StudentTrainConfig:
    """Optimisation hyper-parameters."""

    epochs: int = 4
    batch_size: int = 512
    lr: float = 1e-3
    embedding_lr: float = 5e-3
    weight_decay: float = 0.0
    val_fraction: float = 0.02
    seed: int = 0
    threads: int | None = None
    bucket_batches: int = 50
    lr_decay: float = 0.5  # multiply both learning rates by this after each epoch
    loss: str = "bce"  # bce on probability targets | mse on logit targets (see the module doc)


@dataclass
class StudentTrainResult:
    """What :func:`train_student` reports (also written to ``result.json``)."""

    out_dir: str
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    pairs_per_second: float
    seconds: float
    history: list[dict] = field(default_factory=list)


def _batches(index: np.ndarray, lengths: np.ndarray, batch_size: int, bucket: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle, then sort each window of ``bucket`` batches by length (less padding), then shuffle the batches."""
    order = rng.permutation(index)
    window = batch_size * bucket
    batches: list[np.ndarray] = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)  # type: ignore[arg-type]
    return batches


def _loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "mse":
        return F.mse_loss(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


def _train_step(
    model: StudentModel, batch: tuple[torch.Tensor, ...], target: torch.Tensor, dense_opt: torch.optim.Optimizer, row_opt: RowSparseAdam,
    loss_kind: str = "bce",
) -> float:
    ids, weights = model.ngrams(*batch)
    rows, inverse = torch.unique(ids, return_inverse=True)
    row_emb = model.embedding.weight.detach().index_select(0, rows).requires_grad_()
    logits = model.head(torch.bmm(weights, F.embedding(inverse, row_emb))).squeeze(1)
    loss = _loss(logits, target, loss_kind)
    dense_opt.zero_grad(set_to_none=True)
    loss.backward()
    dense_opt.step()
    row_opt.step(rows, row_emb.grad)
    return float(loss.detach())


def _eval_loss(logits: np.ndarray, targets: np.ndarray, kind: str) -> float:
    return float(_loss(torch.from_numpy(logits), torch.from_numpy(targets), kind))


def train_student(
    pairs: Pairs,
    targets: np.ndarray,
    tokenizer: Tokenizer,
    out_dir: str | Path,
    *,
    model_config: StudentConfig | None = None,
    config: StudentTrainConfig | None = None,
    resume: bool = True,
    progress: bool | None = None,
    metadata: dict | None = None,
    init_embeddings: np.ndarray | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> StudentTrainResult:
    """Train a student on ``pairs`` with probability ``targets`` ``[N]`` and save it to ``out_dir``.

    ``out_dir`` receives ``tokenizer.json``, ``student_config.json``,
    ``student.pt`` (best weights by validation loss), ``state.pt`` (resumable
    state after the last finished epoch), ``train_log.jsonl`` and ``result.json``.
    With ``resume`` and a ``state.pt`` present, training continues after the
    last finished epoch.  ``init_embeddings`` ``[V', D]`` (``V' <= vocab_size``) replaces the random
    start of the first ``V'`` embedding rows (the unigram rows; see :mod:`distill.student.init`).
    ``on_epoch(record)`` receives each epoch's ``train_log.jsonl`` record (for a line per epoch off a terminal).
    """
    config = config or StudentTrainConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    targets = np.asarray(targets, dtype=np.float32)
    if targets.shape != (len(pairs),):
        raise ValueError(f"targets shape {targets.shape} does not match {len(pairs)} pairs from {pairs.source}")
    if len(pairs) == 0:
        raise ValueError(f"no training pairs in {pairs.source}")
    if config.loss not in ("bce", "mse"):
        raise ValueError(f"loss must be 'bce' or 'mse', got {config.loss!r}")
    if config.loss == "bce" and not np.all((targets >= 0) & (targets <= 1)):
        raise ValueError("targets must be probabilities in [0, 1] for loss='bce' (use distill.targets.soft_targets on logits)")
    if not np.all(np.isfinite(targets)):
        raise ValueError(f"targets for {pairs.source} contain non-finite values")
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)

    model_config = model_config or StudentConfig(vocab_size=tokenizer.get_vocab_size())
    model = StudentModel(model_config)
    if init_embeddings is not None:
        init = torch.as_tensor(np.asarray(init_embeddings, dtype=np.float32))
        if init.ndim != 2 or init.shape[1] != model_config.embedding_dim or init.shape[0] > model_config.vocab_size:
            raise ValueError(f"init_embeddings shape {tuple(init.shape)} does not fit vocab {model_config.vocab_size} x dim {model_config.embedding_dim}")
        with torch.no_grad():
            model.embedding.weight[: init.shape[0]] = init
    enc = encode_pairs(tokenizer, pairs.queries, pairs.texts)
    perm = rng.permutation(len(pairs))
    n_val = int(len(pairs) * config.val_fraction) if len(pairs) >= 50 else 0
    val_idx, train_idx = np.sort(perm[:n_val]), perm[n_val:]
    target_t = torch.from_numpy(targets)

    decay = [p for p in model.dense_parameters() if p.ndim > 1]
    no_decay = [p for p in model.dense_parameters() if p.ndim <= 1]
    dense_opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=config.lr
    )
    row_opt = RowSparseAdam(model.embedding.weight.data, lr=config.embedding_lr)

    history: list[dict] = []
    start_epoch, best_loss, best_epoch = 0, float("inf"), -1
    state_path = out / "state.pt"
    # what a resumed state must match (more epochs may be asked for: training continues)
    run_settings = {"model": model_config.to_dict(), "train": {k: v for k, v in asdict(config).items() if k != "epochs"},
                    "rows": len(pairs)}
    if resume and state_path.exists():
        state = torch.load(state_path, weights_only=True)
        if state.get("settings") != run_settings:
            raise ValueError(f"{state_path}: saved by a run with other settings ({state.get('settings')}); "
                             f"this run: {run_settings}. Delete the directory or pass resume=False")
        model.load_state_dict(state["model"])
        dense_opt.load_state_dict(state["dense_opt"])
        row_opt.load_state_dict(state["row_opt"])
        start_epoch, best_loss, best_epoch = state["epoch"] + 1, state["best_loss"], state["best_epoch"]
        history = state["history"]
        rng = np.random.default_rng([config.seed, start_epoch])
        torch.set_rng_state(state["torch_rng"])

    t_start, seen, train_seconds = time.perf_counter(), 0, 0.0
    for epoch in range(start_epoch, config.epochs):
        model.train()
        scale = config.lr_decay**epoch
        for group in dense_opt.param_groups:
            group["lr"] = config.lr * scale
        row_opt.lr = config.embedding_lr * scale
        batches = _batches(train_idx, enc.lengths, config.batch_size, config.bucket_batches, rng)
        bar = tqdm(batches, desc=f"student epoch {epoch + 1}/{config.epochs}", unit="batch", disable=bar_disabled(progress))
        t0, running = time.perf_counter(), 0.0
        for i, sel in enumerate(bar):
            loss = _train_step(model, batch_tensors(enc, sel), target_t[sel], dense_opt, row_opt, config.loss)
            running = loss if i == 0 else 0.98 * running + 0.02 * loss
            if i % 20 == 0:
                bar.set_postfix(loss=f"{running:.4f}")
        epoch_seconds = time.perf_counter() - t0
        train_seconds += epoch_seconds
        seen += len(train_idx)
        val_loss = _eval_loss(predict_encoded(model, enc, val_idx), targets[val_idx], config.loss) if n_val else running
        record = {"epoch": epoch + 1, "train_loss": running, "val_loss": val_loss, "seconds": epoch_seconds,
                  "pairs_per_second": len(train_idx) / epoch_seconds}
        history.append(record)
        if on_epoch is not None:
            on_epoch({**record, "epochs": config.epochs})
        if val_loss < best_loss:
            best_loss, best_epoch = val_loss, epoch + 1
            save_student(model, tokenizer, out, metadata={**(metadata or {}), "train_config": asdict(config), "best_epoch": best_epoch})
        with atomic_path(state_path) as tmp:
            torch.save({"model": model.state_dict(), "dense_opt": dense_opt.state_dict(), "row_opt": row_opt.state_dict(),
                        "epoch": epoch, "best_loss": best_loss, "best_epoch": best_epoch, "history": history,
                        "torch_rng": torch.get_rng_state(), "settings": run_settings}, tmp)
        with atomic_open(out / "train_log.jsonl") as fh:
            fh.writelines(json.dumps(h) + "\n" for h in history)

    result = StudentTrainResult(
        out_dir=str(out), epochs_run=len(history), best_epoch=best_epoch, best_val_loss=best_loss,
        pairs_per_second=seen / train_seconds if train_seconds else float("nan"),
        seconds=time.perf_counter() - t_start, history=history,
    )
    write_json(out / "result.json", asdict(result))
    return result
